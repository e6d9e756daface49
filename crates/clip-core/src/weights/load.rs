//! The one model-loading pipeline, for the CLI and the web app alike: given a
//! [`ModelAddress`], decide whether it holds a weight pack, a Hugging Face checkpoint or an
//! OpenAI-named file; find and parse its config; and quantize a checkpoint on load when asked.
//! File access is passed in ([`ModelFiles`]): paths for the CLI, fetch + Cache Storage in the
//! worker (transformers.js does the same with its `getModelFile` and swappable cache).
//!
//! ```text
//! Manifest ─► manifest.json ─► each shard, checked as it arrives ─────────► Pack
//! Directory ─► manifest.json? ─ yes ─► (as above)
//!           └─ no (404) ─┐
//! Weights ──────────────►├─ quant = f32: config.json?, the weights whole ─► Checkpoint
//!                        └─ quantized:   a stored conversion? ─ yes ─────► Pack
//!                                         └ no: config.json?, the weights streamed through
//!                                           the converter (never cached) ─► Pack, stored
//! ```
//! Whatever proves unusable is dropped from the cache ([`ModelFiles::forget`]), so nothing
//! broken is ever read again.

use std::ops::ControlFlow;

use crate::config::ClipConfig;
use crate::error::ClipError;
use crate::weights::address::{CONFIG, ModelAddress, Target};
use crate::weights::checkpoint::Checkpoint;
use crate::weights::pack::{MANIFEST, Manifest, Pack, Scheme};
use crate::weights::stream::{Collect, Convert, Sink};

/// How the pipeline reaches a model's files.
///
/// The futures are not `Send`: in a browser everything runs on one thread, and the worker's
/// implementation holds JS values.
#[allow(async_fn_in_trait)]
pub trait ModelFiles {
    /// Why a file could not be read (I/O, HTTP status, CORS, …).
    type Error: FileError;

    /// Streams the file at `url` into `sink` and says where it came from. `keep`: whether a
    /// cache may keep it (false for a checkpoint converted on load — only the pack is worth
    /// keeping). A sink that answers `Break` ends the transfer early; the result is then `Ok`
    /// and the sink says why.
    async fn stream(
        &self,
        url: &str,
        keep: bool,
        sink: &mut dyn Sink,
    ) -> Result<Origin, Self::Error>;

    /// A file stored earlier with [`Self::store`] (default: no storage).
    async fn stored(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Keeps `bytes` under `key` for a later visit (default: nowhere). Failing to store costs
    /// only a conversion next time, so it is not an error.
    async fn store(&self, _key: &str, _bytes: &[u8]) {}

    /// Drops these files from any cache: they downloaded but proved unusable.
    async fn forget(&self, _urls: &[String]) {}
}

/// A file-access error that can say "no such file": the pipeline probes for files that a
/// model may lack (a directory's `manifest.json`, an OpenAI checkpoint's `config.json`).
pub trait FileError: std::error::Error + 'static {
    /// The file does not exist (HTTP 404, no such path).
    fn is_not_found(&self) -> bool;
}

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the source (network, disk).
    Source,
    /// Read from a cache.
    Cache,
}

/// What the pipeline reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadProgress<'a> {
    /// Bytes of a file (`total` when known).
    File {
        /// File name, for people (`shard-001.bin (2/3)`, `model.safetensors`).
        name: &'a str,
        /// Bytes received.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// A checkpoint being quantized as it downloads: the file's bytes so far.
    Convert {
        /// Target scheme.
        scheme: Scheme,
        /// Bytes received.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
}

/// Weights ready for the device.
#[derive(Debug)]
// One per loaded model, moved a handful of times: boxing the pack would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Weights {
    /// A weight pack (fetched, read, or converted on load).
    Pack(Pack),
    /// A safetensors checkpoint, kept as it is (checked: every tensor present and shaped).
    Checkpoint {
        /// The file.
        bytes: Vec<u8>,
        /// Its config (from `config.json`, or inferred from OpenAI-named shapes).
        config: ClipConfig,
    },
}

impl Weights {
    /// The model's config.
    pub fn config(&self) -> &ClipConfig {
        match self {
            Weights::Pack(pack) => &pack.manifest.config,
            Weights::Checkpoint { config, .. } => config,
        }
    }

    /// How the weights are stored (a checkpoint loads as f32).
    pub fn scheme(&self) -> Scheme {
        match self {
            Weights::Pack(pack) => pack.manifest.scheme,
            Weights::Checkpoint { .. } => Scheme::F32,
        }
    }

    /// Bytes of weights as loaded.
    pub fn bytes(&self) -> u64 {
        match self {
            Weights::Pack(pack) => pack.manifest.total_bytes(),
            Weights::Checkpoint { bytes, .. } => bytes.len() as u64,
        }
    }
}

/// What an address held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A weight pack.
    Pack,
    /// A checkpoint, kept as it is.
    Checkpoint,
    /// A checkpoint, quantized on load (now, or on an earlier visit: see [`Loaded::cached`]).
    Converted,
}

/// The pipeline's result.
#[derive(Debug)]
pub struct Loaded {
    /// The weights.
    pub weights: Weights,
    /// What the address held.
    pub found: Found,
    /// Every file came from a cache.
    pub cached: bool,
    /// What was read (URLs and cache keys): to [`ModelFiles::forget`] if the weights still
    /// prove unusable (e.g. on the device).
    pub files: Vec<String>,
    /// A pack's precomputed text features as stored, checked against its manifest (read
    /// them with `surgery::bank::StoredBank::from_bytes`).
    pub text_bank: Option<Vec<u8>>,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E: FileError> {
    /// A file could not be read.
    #[error(transparent)]
    Files(E),
    /// The files are not a usable model.
    #[error(transparent)]
    Model(#[from] ClipError),
}

type Step<T, E> = Result<T, LoadError<E>>;

/// Loads the model at `address`; a checkpoint is quantized to `quant` on load unless that is
/// [`Scheme::F32`] (a pack keeps its own scheme).
pub async fn load<F: ModelFiles>(
    files: &F,
    address: &ModelAddress,
    quant: Scheme,
    progress: &mut dyn FnMut(LoadProgress<'_>),
) -> Step<Loaded, F::Error> {
    let mut run = Run {
        files,
        progress,
        read: Vec::new(),
    };
    let result = run.load(address, quant).await;
    if let Err(LoadError::Model(_)) = &result {
        // Downloaded, but unusable: never read it from the cache again.
        files.forget(&run.read).await;
    }
    result
}

/// One load: the file access, the progress callback, and what was read so far.
struct Run<'a, F> {
    files: &'a F,
    progress: &'a mut dyn FnMut(LoadProgress<'_>),
    read: Vec<String>,
}

/// Counts bytes for progress reports on their way to the real sink.
struct Counting<'a> {
    inner: &'a mut dyn Sink,
    report: &'a mut dyn FnMut(u64, Option<u64>),
    done: u64,
    total: Option<u64>,
    reported: u64,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a mut dyn Sink, report: &'a mut dyn FnMut(u64, Option<u64>)) -> Self {
        Self {
            inner,
            report,
            done: 0,
            total: None,
            reported: 0,
        }
    }

    /// The last report: everything received.
    fn finish(&mut self) {
        (self.report)(self.done, Some(self.total.unwrap_or(0).max(self.done)));
    }
}

impl Sink for Counting<'_> {
    fn size(&mut self, bytes: Option<u64>) {
        self.total = bytes;
        (self.report)(0, bytes);
        self.inner.size(bytes);
    }

    fn chunk(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        self.done += bytes.len() as u64;
        // ~200 updates per file at most: enough for a smooth bar, few messages.
        let step = self.total.map_or(1 << 20, |t| t / 200);
        if self.done - self.reported >= step {
            (self.report)(self.done, self.total);
            self.reported = self.done;
        }
        self.inner.chunk(bytes)
    }
}

/// The last path segment of a URL or path, for progress messages.
fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

impl<F: ModelFiles> Run<'_, F> {
    async fn load(&mut self, address: &ModelAddress, quant: Scheme) -> Step<Loaded, F::Error> {
        if address.target() == Target::Manifest {
            return self.pack(address, None).await;
        }
        if quant != Scheme::F32
            && let Some(pack) = self.stored_conversion(address, quant).await
        {
            return Ok(Loaded {
                files: self.read.clone(),
                text_bank: None,
                weights: Weights::Pack(pack),
                found: Found::Converted,
                cached: true,
            });
        }
        // A directory may hold a pack; a checkpoint directory has no manifest.
        // A directory may hold a pack. Any failure to read its manifest means "no pack here":
        // a checkpoint directory answers 404, and offline the checkpoint may still be cached.
        if address.target() == Target::Directory {
            match self.read_file(&address.manifest(), MANIFEST, true).await {
                Ok(manifest) => return self.pack(address, Some(manifest)).await,
                Err(LoadError::Files(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // OpenAI-naming checkpoints carry no config.json: its absence is not an error yet.
        let config = match self.probe(&address.config(), CONFIG).await? {
            Some((bytes, _)) => Some(parse_config(&bytes)?),
            None => None,
        };
        let weights_url = address.weights();
        let name = file_name(&weights_url).to_string();
        if quant == Scheme::F32 {
            let (bytes, origin) = self.read_file(&weights_url, &name, true).await?;
            let ckpt = Checkpoint::parse(&bytes)?;
            let config = ckpt.config(config)?;
            ckpt.check(&config)?;
            return Ok(Loaded {
                weights: Weights::Checkpoint { bytes, config },
                found: Found::Checkpoint,
                cached: origin == Origin::Cache,
                files: self.read.clone(),
                text_bank: None,
            });
        }
        let mut converter = Convert::new(config, quant, &name);
        let origin = {
            let progress = &mut *self.progress;
            let mut report = |done, total| {
                progress(LoadProgress::Convert {
                    scheme: quant,
                    done,
                    total,
                })
            };
            let mut counting = Counting::new(&mut converter, &mut report);
            let origin = self.files.stream(&weights_url, false, &mut counting).await;
            counting.finish();
            origin.map_err(LoadError::Files)?
        };
        let pack = converter.finish()?;
        self.store_conversion(address, &pack).await;
        Ok(Loaded {
            weights: Weights::Pack(pack),
            found: Found::Converted,
            cached: origin == Origin::Cache,
            files: self.read.clone(),
            text_bank: None,
        })
    }

    /// Reads a whole file into memory (a cache may keep it), reporting progress as `name`.
    async fn read_file(
        &mut self,
        url: &str,
        name: &str,
        keep: bool,
    ) -> Step<(Vec<u8>, Origin), F::Error> {
        let mut collect = Collect::default();
        let origin = {
            let progress = &mut *self.progress;
            let mut report = |done, total| progress(LoadProgress::File { name, done, total });
            let mut counting = Counting::new(&mut collect, &mut report);
            let origin = self.files.stream(url, keep, &mut counting).await;
            counting.finish();
            origin.map_err(LoadError::Files)?
        };
        self.read.push(url.to_string());
        Ok((collect.0, origin))
    }

    /// [`Self::read_file`] for a file the model may lack: `None` when it does not exist.
    async fn probe(&mut self, url: &str, name: &str) -> Step<Option<(Vec<u8>, Origin)>, F::Error> {
        match self.read_file(url, name, true).await {
            Ok(read) => Ok(Some(read)),
            Err(LoadError::Files(e)) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A pack from its manifest (read already when `manifest` is given), then each shard,
    /// checked as it arrives.
    async fn pack(
        &mut self,
        address: &ModelAddress,
        manifest: Option<(Vec<u8>, Origin)>,
    ) -> Step<Loaded, F::Error> {
        let (bytes, origin) = match manifest {
            Some(read) => read,
            None => self.read_file(&address.manifest(), MANIFEST, true).await?,
        };
        let manifest = Manifest::from_bytes(&bytes)?;
        let count = manifest.shards.len();
        let mut cached = origin == Origin::Cache;
        let mut shards = Vec::with_capacity(count);
        for (i, info) in manifest.shards.iter().enumerate() {
            let url = address.sibling(&info.file);
            let name = format!("{} ({}/{count})", info.file, i + 1);
            let (bytes, origin) = self.read_file(&url, &name, true).await?;
            manifest.check_shard(i, &bytes)?;
            cached &= origin == Origin::Cache;
            shards.push(bytes);
        }
        let text_bank = match &manifest.text_bank {
            Some(info) => {
                let (bytes, origin) = self
                    .read_file(&address.sibling(&info.file), &info.file, true)
                    .await?;
                manifest.check_text_bank(&bytes)?;
                cached &= origin == Origin::Cache;
                Some(bytes)
            }
            None => None,
        };
        Ok(Loaded {
            weights: Weights::Pack(Pack::from_checked_shards(manifest, shards)?),
            found: Found::Pack,
            cached,
            files: self.read.clone(),
            text_bank,
        })
    }

    /// An earlier conversion, if storage holds all of it intact; a damaged one is dropped.
    async fn stored_conversion(&mut self, address: &ModelAddress, quant: Scheme) -> Option<Pack> {
        let key = |file: &str| address.conversion_key(quant, file);
        let json = self.files.stored(&key(MANIFEST)).await?;
        let manifest = Manifest::from_bytes(&json).ok();
        let mut keys = vec![key(MANIFEST)];
        let mut shards = Vec::new();
        if let Some(manifest) = &manifest {
            for (i, info) in manifest.shards.iter().enumerate() {
                keys.push(key(&info.file));
                match self.files.stored(&key(&info.file)).await {
                    Some(bytes) if manifest.check_shard(i, &bytes).is_ok() => shards.push(bytes),
                    _ => break,
                }
            }
        }
        let pack = manifest.and_then(|m| Pack::from_checked_shards(m, shards).ok());
        match pack {
            Some(pack) => {
                self.read.extend(keys);
                Some(pack)
            }
            None => {
                self.files.forget(&keys).await;
                None
            }
        }
    }

    /// Keeps a conversion: shards first, the manifest last, so a half-stored one is never
    /// taken for whole.
    async fn store_conversion(&mut self, address: &ModelAddress, pack: &Pack) {
        let scheme = pack.manifest.scheme;
        for (info, shard) in pack.manifest.shards.iter().zip(&pack.shards) {
            let key = address.conversion_key(scheme, &info.file);
            self.files.store(&key, shard).await;
            self.read.push(key);
        }
        let key = address.conversion_key(scheme, MANIFEST);
        self.files
            .store(&key, pack.manifest_json().as_bytes())
            .await;
        self.read.push(key);
    }
}

fn parse_config(bytes: &[u8]) -> Result<ClipConfig, ClipError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ClipError::Config("config.json is not UTF-8 text".into()))?;
    ClipConfig::from_hf_json(text)
}
