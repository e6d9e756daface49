//! Files arrive in chunks ([`Sink`]): collected whole ([`Collect`]), or — for a checkpoint that
//! is quantized on load — converted into a weight pack while it downloads ([`Convert`]).
//!
//! The converter never holds the checkpoint: it reads the safetensors header, decodes the
//! tensors the model needs as their bytes arrive, and encodes each one as soon as it is whole,
//! dropping its values. Converting ViT-B/16 to int8 so peaks at about the pack (160 MB) plus
//! the largest tensor in flight (the token table: 101 MB of values, 26 MB encoded), instead of
//! the whole 600 MB download plus the pack.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use safetensors::tensor::Metadata;

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::weights::checkpoint::{
    Naming, check_dtype, decode_into, derive, file_shape, infer_openai_config,
};
use crate::weights::host::HostTensor;
use crate::weights::pack::{self, Encoded, Pack, Scheme};
use crate::weights::source::{check_shape, transposed};
use crate::weights::tree::{ClipTensors, Layout, Role, TensorSpec};

/// Where a file's bytes go as they arrive.
pub trait Sink {
    /// The file's size, when the source knows it, before the first chunk.
    fn size(&mut self, bytes: Option<u64>);
    /// The next chunk. `Break` stops the transfer; the sink keeps the reason.
    fn chunk(&mut self, bytes: &[u8]) -> ControlFlow<()>;
}

/// Collects a whole file.
#[derive(Debug, Default)]
pub struct Collect(pub Vec<u8>);

/// Never reserve more than this up front, whatever a server announces.
const MAX_RESERVE: u64 = 1 << 30;

impl Sink for Collect {
    fn size(&mut self, bytes: Option<u64>) {
        if let Some(bytes) = bytes {
            self.0.reserve(bytes.min(MAX_RESERVE) as usize);
        }
    }

    fn chunk(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        self.0.extend_from_slice(bytes);
        ControlFlow::Continue(())
    }
}

/// safetensors' own limit on the JSON header.
const MAX_HEADER: u64 = 100_000_000;

/// A file tensor the model needs, and the tensors it becomes.
struct Wanted {
    name: String,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    /// Byte range in the data section.
    start: u64,
    end: u64,
    specs: Vec<(TensorSpec, Layout)>,
}

/// Reading tensor data.
struct Receiving {
    config: ClipConfig,
    /// The file tensors the model needs, in file order.
    wanted: Vec<Wanted>,
    /// Index into `wanted` of the tensor being received.
    next: usize,
    /// Position in the data section.
    at: u64,
    /// Length of the data section.
    len: u64,
    /// The values of the tensor being received, decoded as its bytes arrive.
    values: Vec<f32>,
    /// The bytes of a value split between two chunks.
    carry: Vec<u8>,
    /// Tensors done, as the pack stores them.
    encoded: BTreeMap<String, Encoded>,
}

enum State {
    /// Reading the 8-byte length and the JSON header.
    Header(Vec<u8>),
    Data(Box<Receiving>),
    Failed,
}

/// Converts a safetensors checkpoint (Hugging Face or OpenAI naming) into a weight pack as its
/// bytes arrive; the pack is byte-identical to [`Pack::build`] on the whole file.
pub struct Convert {
    given: Option<ClipConfig>,
    scheme: Scheme,
    source: String,
    state: State,
    error: Option<ClipError>,
}

impl std::fmt::Debug for Convert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Convert")
            .field("scheme", &self.scheme)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn bad(message: impl Into<String>) -> ClipError {
    ClipError::Safetensors(message.into())
}

impl Convert {
    /// A converter to `scheme`; `config` from `config.json` (required for Hugging Face
    /// naming; OpenAI naming infers it from the shapes). `source` is recorded in the manifest.
    pub fn new(config: Option<ClipConfig>, scheme: Scheme, source: &str) -> Self {
        Self {
            given: config,
            scheme,
            source: source.to_string(),
            state: State::Header(Vec::new()),
            error: None,
        }
    }

    /// The pack, once the whole file went through [`Sink::chunk`].
    pub fn finish(self) -> Result<Pack> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.state {
            State::Data(r) if r.next == r.wanted.len() && r.at == r.len => pack::assemble(
                &r.config,
                self.scheme,
                &self.source,
                pack::MAX_SHARD_BYTES,
                r.encoded,
            ),
            State::Data(r) => Err(bad(format!(
                "the file ends after {} of its {} bytes of tensor data (truncated download?)",
                r.at, r.len
            ))),
            State::Header(_) | State::Failed => {
                Err(bad("the file ends inside its header (truncated download?)"))
            }
        }
    }

    fn fail(&mut self, error: ClipError) -> ControlFlow<()> {
        self.error = Some(error);
        self.state = State::Failed;
        ControlFlow::Break(())
    }

    /// Parses the header; `bytes` holds at least the 8-byte length and the JSON. Returns the
    /// data state and how many bytes of `bytes` the header took.
    fn start(&self, bytes: &[u8]) -> Result<Option<(State, usize)>> {
        let Some(len) = bytes.get(..8) else {
            return Ok(None);
        };
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        if n > MAX_HEADER {
            return Err(bad(format!("a {n}-byte header is not a safetensors file")));
        }
        let Some(json) = bytes.get(8..8 + n as usize) else {
            return Ok(None);
        };
        let json = std::str::from_utf8(json).map_err(|_| bad("the header is not UTF-8"))?;
        let metadata: Metadata =
            serde_json::from_str(json).map_err(|e| bad(format!("bad header: {e}")))?;
        let infos = metadata.tensors();
        let naming = Naming::detect(infos.keys().map(String::as_str))?;
        let config = match (naming, self.given.clone()) {
            (_, Some(config)) => config,
            (Naming::OpenAi, None) => {
                infer_openai_config(|name| infos.get(name).map(|i| i.shape.clone()))?
            }
            (Naming::HuggingFace, None) => {
                return Err(ClipError::Config(
                    "Hugging Face weights need their config.json beside model.safetensors".into(),
                ));
            }
        };
        config.validate()?;
        // Every tensor the model needs, grouped by the file tensor it comes from; a missing
        // one is reported now, before the rest of the download.
        let tree = ClipTensors::new(&config);
        let mut by_key: HashMap<&str, Vec<(TensorSpec, Layout)>> = HashMap::new();
        for spec in tree.all() {
            let (key, layout) = naming.key(spec);
            let info = infos
                .get(key)
                .ok_or_else(|| ClipError::MissingTensor(spec.name.clone()))?;
            check_dtype(key, info.dtype)?;
            check_shape(&spec.name, &file_shape(spec, layout), &info.shape)?;
            if self
                .scheme
                .stored_bytes(spec)
                .is_none_or(|b| b > pack::MAX_TENSOR_BYTES)
            {
                return Err(ClipError::Pack(format!(
                    "tensor {} of shape {:?} is too large for a {} pack (WebGPU binds at most \
                     {} bytes)",
                    spec.name,
                    spec.shape,
                    self.scheme,
                    pack::MAX_TENSOR_BYTES
                )));
            }
            by_key.entry(key).or_default().push((spec.clone(), layout));
        }
        let mut wanted: Vec<Wanted> = by_key
            .into_iter()
            .map(|(key, specs)| {
                let info = infos[key];
                Wanted {
                    name: key.to_string(),
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: info.data_offsets.0 as u64,
                    end: info.data_offsets.1 as u64,
                    specs,
                }
            })
            .collect();
        wanted.sort_by_key(|w| w.start);
        let state = State::Data(Box::new(Receiving {
            config,
            wanted,
            next: 0,
            at: 0,
            len: metadata.data_len() as u64,
            values: Vec::new(),
            carry: Vec::new(),
            encoded: BTreeMap::new(),
        }));
        Ok(Some((state, 8 + n as usize)))
    }

    /// Takes header bytes; once the header is complete, starts on the data after it.
    fn header(&mut self, buffer: Vec<u8>) -> Result<()> {
        match self.start(&buffer)? {
            None => {
                self.state = State::Header(buffer);
                Ok(())
            }
            Some((state, used)) => {
                self.state = state;
                self.data(&buffer[used..])
            }
        }
    }

    /// Takes data bytes; encodes every wanted tensor that completes.
    fn data(&mut self, mut bytes: &[u8]) -> Result<()> {
        let State::Data(r) = &mut self.state else {
            return Ok(());
        };
        let Receiving {
            wanted,
            next,
            at,
            len,
            values,
            carry,
            encoded,
            ..
        } = &mut **r;
        if bytes.len() as u64 > *len - *at {
            return Err(bad(format!(
                "the file is longer than its header says ({len} bytes of tensor data)"
            )));
        }
        while !bytes.is_empty() {
            let Some(w) = wanted.get(*next) else {
                // Past the last wanted tensor: the rest is not needed.
                *at += bytes.len() as u64;
                return Ok(());
            };
            if *at < w.start {
                let skip = (w.start - *at).min(bytes.len() as u64) as usize;
                bytes = &bytes[skip..];
                *at += skip as u64;
                continue;
            }
            let width = (w.dtype.bitsize() / 8) as u64;
            if *at == w.start {
                // The exact size, never a doubling: this is the largest buffer held.
                values.reserve_exact(((w.end - w.start) / width) as usize);
            }
            let take = (w.end - *at).min(bytes.len() as u64) as usize;
            let (mut piece, rest) = bytes.split_at(take);
            bytes = rest;
            *at += take as u64;
            // Bytes become values as they arrive; only a value split by a chunk boundary waits.
            if !carry.is_empty() {
                let need = (width as usize - carry.len()).min(piece.len());
                carry.extend_from_slice(&piece[..need]);
                piece = &piece[need..];
                if carry.len() == width as usize {
                    decode_into(&w.name, w.dtype, carry, values)?;
                    carry.clear();
                }
            }
            let whole = piece.len() - piece.len() % width as usize;
            decode_into(&w.name, w.dtype, &piece[..whole], values)?;
            carry.extend_from_slice(&piece[whole..]);
            if *at == w.end {
                let mut stored = Some(HostTensor::new(w.shape.clone(), std::mem::take(values)));
                for (i, (spec, layout)) in w.specs.iter().enumerate() {
                    // q, k and v share one fused tensor; the last of them takes it.
                    let source = if i + 1 < w.specs.len() {
                        stored.clone()
                    } else {
                        stored.take()
                    };
                    let source = source.expect("taken by the last spec only");
                    let value = derive(spec, &w.name, *layout, source)?;
                    let value = match spec.role {
                        Role::Matrix => transposed(spec, &value)?,
                        Role::Table | Role::Float => value,
                    };
                    encoded.insert(
                        spec.name.clone(),
                        pack::encode(spec, self.scheme, value, None)?,
                    );
                }
                *next += 1;
            }
        }
        Ok(())
    }
}

impl Sink for Convert {
    fn size(&mut self, _bytes: Option<u64>) {}

    fn chunk(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        let result = match &mut self.state {
            State::Failed => return ControlFlow::Break(()),
            State::Data(_) => self.data(bytes),
            State::Header(buffer) => {
                buffer.extend_from_slice(bytes);
                let buffer = std::mem::take(buffer);
                self.header(buffer)
            }
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => self.fail(e),
        }
    }
}
