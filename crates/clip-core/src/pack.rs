//! The weight pack: a CLIP checkpoint for the web — quantized, in shards of at most 64 MB, with
//! a JSON manifest that a page can read before it downloads anything.
//!
//! ```text
//! manifest.json    format, version, model id, scheme, source, config, shards, tensor index
//! shard-000.bin    32-byte header + the next slice of the payload
//! shard-001.bin    …
//! ```
//!
//! The payload is every tensor of [`ClipConfig::tensor_specs`] back to back; the manifest gives
//! each one's encoding, stored shape, and byte range in the payload (a range may cross a shard
//! boundary). Linear weights are stored `[in, out]` — transposed from the checkpoint — because
//! that is what burn's `linear` reads and its block quantization runs along the last axis.
//!
//! A shard header is `CLIPPACK`, the 16-byte model id, the shard index and the shard count
//! (`u32` little-endian each). The model id is a digest of the scheme, the config and the
//! payload, so a shard from another conversion is named as such, not just "corrupt"; each
//! shard's SHA-256 is in the manifest, so a damaged one never loads.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use half::f16;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ClipConfig, Role, TensorSpec};
use crate::error::{ClipError, Result};
use crate::quant::{Bits, QuantMatrix};
use crate::weights::{Checkpoint, HostTensor, Matrix, WeightSource, check_shape};

/// `format` of every manifest.
pub const FORMAT: &str = "clip-surgery-pack";
/// The manifest version this code writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// Largest shard file (64 MB): small enough to cache and retry one at a time, large enough that
/// a ViT-B/16 is a handful of requests.
pub const MAX_SHARD_BYTES: usize = 64_000_000;
/// Largest encoded tensor: WebGPU's default `maxStorageBufferBindingSize` (128 MiB).
pub const MAX_TENSOR_BYTES: usize = 128 << 20;

const MAGIC: &[u8; 8] = b"CLIPPACK";
const HEADER: usize = 32;

/// How a pack stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// No quantization: the checkpoint's values, sharded.
    F32,
    /// Half precision matrices (dequantized to `f32` on load: WebGPU's f16 is optional).
    F16,
    /// Symmetric int8, one f16 scale per 32 values (burn `Q8S`, quantized on the device).
    Int8,
    /// Symmetric int4, one f16 scale per 32 values (burn `Q4S`, quantized on the device), for
    /// the vision tower and token table; int8 for the text transformer and projections.
    Q4,
}

impl Scheme {
    /// Every scheme, largest first.
    pub const ALL: [Scheme; 4] = [Scheme::F32, Scheme::F16, Scheme::Int8, Scheme::Q4];

    /// The name used in manifests, URLs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::F32 => "f32",
            Scheme::F16 => "f16",
            Scheme::Int8 => "int8",
            Scheme::Q4 => "q4",
        }
    }

    /// How a tensor is stored. Norms, biases and embeddings other than the token table are
    /// small (0.7 % of ViT-B/16) and sensitive, so they never go below f16 — lossless for
    /// OpenAI's checkpoints, which were trained and released in fp16.
    ///
    /// `q4` is 4-bit only where fidelity allows: the vision transformer and the token table.
    /// The text transformer and both projections stay int8. Measured on the fixture (lowest
    /// Pearson r of surgery maps against f32): all 4-bit 0.77; 4-bit text layers alone 0.86;
    /// vision + table 0.989, plus 4-bit projections 0.963. Feature surgery keeps only what
    /// differs between the labels' text features, and 4-bit noise in those features (31 %
    /// relative error, against 1.5 % at int8) is of that size.
    fn encoding(self, spec: &TensorSpec) -> Encoding {
        let cols = stored_shape(spec).last().copied().unwrap_or(0);
        let quantize = |bits| match spec.role {
            Role::Matrix | Role::Table if QuantMatrix::fits(cols) => Encoding::Quant(bits),
            _ => Encoding::F16,
        };
        let four_bit_ok = spec.role == Role::Table || spec.name.starts_with("vision_model.");
        match self {
            Scheme::F32 => Encoding::F32,
            _ if spec.role == Role::Float && spec.shape.is_empty() => Encoding::F32,
            Scheme::F16 => Encoding::F16,
            Scheme::Int8 => quantize(Bits::Q8),
            Scheme::Q4 if four_bit_ok => quantize(Bits::Q4),
            Scheme::Q4 => quantize(Bits::Q8),
        }
    }

    /// Exact size of a pack of `config` in this scheme: the shards, headers included (the
    /// manifest adds a few tens of KB of JSON).
    pub fn pack_bytes(self, config: &ClipConfig) -> u64 {
        self.pack_bytes_with(config, MAX_SHARD_BYTES)
    }

    /// [`Self::pack_bytes`] for shards of at most `shard_bytes`.
    pub fn pack_bytes_with(self, config: &ClipConfig, shard_bytes: usize) -> u64 {
        let payload: usize = config
            .tensor_specs()
            .iter()
            .map(|spec| {
                self.encoding(spec)
                    .stored_len(&stored_shape(spec))
                    .unwrap_or(0)
            })
            .sum();
        let per_shard = shard_bytes.saturating_sub(HEADER).max(1);
        (payload + payload.div_ceil(per_shard).max(1) * HEADER) as u64
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = ClipError;

    fn from_str(s: &str) -> Result<Self> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| ClipError::UnknownScheme(s.to_string()))
    }
}

/// How one tensor's bytes encode its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Little-endian `f32`.
    F32,
    /// Little-endian IEEE half.
    F16,
    /// Block-quantized matrix ([`QuantMatrix::to_bytes`]).
    Quant(Bits),
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::F32 => "f32",
            Encoding::F16 => "f16",
            Encoding::Quant(Bits::Q8) => "q8",
            Encoding::Quant(Bits::Q4) => "q4",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [
            Encoding::F32,
            Encoding::F16,
            Encoding::Quant(Bits::Q8),
            Encoding::Quant(Bits::Q4),
        ]
        .into_iter()
        .find(|e| e.name() == s)
    }

    /// Bytes of a tensor of `shape`; `None` if this encoding cannot hold that shape.
    fn stored_len(self, shape: &[usize]) -> Option<usize> {
        let n: usize = shape.iter().product();
        match self {
            Encoding::F32 => Some(4 * n),
            Encoding::F16 => Some(2 * n),
            Encoding::Quant(bits) => match *shape {
                [rows, cols] if QuantMatrix::fits(cols) => Some(bits.encoded_len(rows, cols)),
                _ => None,
            },
        }
    }
}

impl Serialize for Encoding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Encoding::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown encoding {name:?}")))
    }
}

/// The shape a pack stores: matrices transposed to `[in, out]`.
fn stored_shape(spec: &TensorSpec) -> Vec<usize> {
    match (spec.role, spec.shape.as_slice()) {
        (Role::Matrix, &[out, inp]) => vec![inp, out],
        _ => spec.shape.clone(),
    }
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the manifest.
    pub file: String,
    /// File size, header included.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
}

/// One tensor's place in the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// How its bytes encode values.
    pub encoding: Encoding,
    /// Shape as stored (matrices `[in, out]`).
    pub shape: Vec<usize>,
    /// Whether the checkpoint's `[out, in]` matrix was transposed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transposed: bool,
    /// Byte offset in the payload (the shards' contents after their headers, concatenated).
    pub offset: u64,
    /// Byte length.
    pub bytes: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// 32 hex digits: digest of scheme, config and payload; repeated in every shard header.
    pub model_id: String,
    /// How matrices are stored.
    pub scheme: Scheme,
    /// What the pack was converted from (a file name or URL).
    pub source: String,
    /// Model sizes and surgery depth.
    pub config: ClipConfig,
    /// Shard files in payload order.
    pub shards: Vec<ShardInfo>,
    /// Every tensor by Hugging Face name.
    pub tensors: BTreeMap<String, TensorEntry>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn shard_header(model_id: &[u8; 16], index: usize, count: usize) -> [u8; HEADER] {
    let mut header = [0; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..24].copy_from_slice(model_id);
    header[24..28].copy_from_slice(&(index as u32).to_le_bytes());
    header[28..32].copy_from_slice(&(count as u32).to_le_bytes());
    header
}

impl Manifest {
    /// [`Self::parse`] for the file's bytes as fetched or read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let json = std::str::from_utf8(bytes)
            .map_err(|_| ClipError::Pack(format!("{MANIFEST} is not UTF-8 text")))?;
        Self::parse(json)
    }

    /// Parses and checks a manifest against the model it describes: every tensor present,
    /// shaped and sized as the config demands, inside the payload — before any shard is
    /// fetched.
    pub fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ClipError::Pack(format!("the manifest is not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ClipError::Pack(format!(
                "not a {FORMAT} manifest (its `format` is {})",
                value.get("format").unwrap_or(&serde_json::Value::Null)
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            v => {
                return Err(ClipError::Pack(format!(
                    "manifest version {v:?}; this build reads version {VERSION}"
                )));
            }
        }
        let scheme = value.get("scheme").and_then(|s| s.as_str()).unwrap_or("");
        scheme.parse::<Scheme>()?;
        if let Some(tensors) = value.get("tensors").and_then(|t| t.as_object()) {
            for (name, entry) in tensors {
                let encoding = entry.get("encoding").and_then(|e| e.as_str()).unwrap_or("");
                if Encoding::from_name(encoding).is_none() {
                    return Err(ClipError::UnknownScheme(format!(
                        "{encoding} (encoding of tensor {name})"
                    )));
                }
            }
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| ClipError::Pack(format!("manifest.json: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if self.model_id.len() != 32 || !self.model_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClipError::Pack(format!("bad model id {:?}", self.model_id)));
        }
        if self.shards.is_empty() {
            return Err(ClipError::Pack("the manifest lists no shards".into()));
        }
        for shard in &self.shards {
            // Shard names become URLs and paths next to the manifest: nothing that climbs out.
            let safe = !shard.file.is_empty()
                && !shard.file.starts_with('.')
                && shard
                    .file
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !safe || (shard.bytes as usize) <= HEADER {
                return Err(ClipError::Pack(format!(
                    "bad shard entry {:?} ({} bytes)",
                    shard.file, shard.bytes
                )));
            }
        }
        let payload = self.payload_len();
        for spec in self.config.tensor_specs() {
            let entry = self
                .tensors
                .get(&spec.name)
                .ok_or_else(|| ClipError::MissingTensor(spec.name.clone()))?;
            let stored = stored_shape(&spec);
            let expected_shape = if entry.transposed {
                stored
            } else {
                spec.shape.clone()
            };
            check_shape(&spec.name, &expected_shape, &entry.shape)?;
            let len = entry.encoding.stored_len(&entry.shape);
            if len != Some(entry.bytes as usize) || entry.offset + entry.bytes > payload {
                return Err(ClipError::Pack(format!(
                    "tensor {} claims bytes {}..{} as {}, which does not fit its shape or the \
                     {payload}-byte payload",
                    spec.name,
                    entry.offset,
                    entry.offset + entry.bytes,
                    entry.encoding.name()
                )));
            }
        }
        Ok(())
    }

    fn payload_len(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes - HEADER as u64).sum()
    }

    /// Total download: every shard.
    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// Checks shard `index` as received: length, then header (model and place), then SHA-256
    /// — so each failure is named by its most likely cause.
    pub fn check_shard(&self, index: usize, bytes: &[u8]) -> Result<()> {
        let info = self.shards.get(index).ok_or_else(|| {
            ClipError::Pack(format!(
                "no shard {index} in a {}-shard pack",
                self.shards.len()
            ))
        })?;
        let file = info.file.clone();
        if bytes.len() as u64 != info.bytes {
            return Err(ClipError::ShardLength {
                file,
                expected: info.bytes,
                found: bytes.len() as u64,
            });
        }
        let expected = format!(
            "model {} shard {}/{}",
            self.model_id,
            index + 1,
            self.shards.len()
        );
        let found = if bytes[..8] != MAGIC[..] {
            "something that is not a pack shard".to_string()
        } else {
            let word = |at: usize| {
                u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            };
            format!(
                "model {} shard {}/{}",
                hex(&bytes[8..24]),
                word(24) + 1,
                word(28)
            )
        };
        if found != expected {
            return Err(ClipError::ForeignShard {
                file,
                expected,
                found,
            });
        }
        let digest = sha256_hex(bytes);
        if digest != info.sha256 {
            return Err(ClipError::ShardChecksum {
                file,
                expected: info.sha256.clone(),
                found: digest,
            });
        }
        Ok(())
    }
}

/// A whole pack in memory: the manifest and its shard files. It is a [`WeightSource`].
#[derive(Debug, Clone)]
pub struct Pack {
    /// The manifest.
    pub manifest: Manifest,
    /// Shard files as stored, headers included.
    pub shards: Vec<Vec<u8>>,
    /// Payload offset at which each shard starts.
    starts: Vec<u64>,
}

impl Pack {
    /// Converts safetensors bytes (Hugging Face or OpenAI naming; `config` from `config.json`,
    /// required for Hugging Face weights) into shards of the default size.
    pub fn from_checkpoint(
        bytes: &[u8],
        config: Option<ClipConfig>,
        scheme: Scheme,
        source: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let ckpt = Checkpoint::parse(bytes)?;
        let config = ckpt.config(config)?;
        Self::build(&ckpt, &config, scheme, source, MAX_SHARD_BYTES, progress)
    }

    /// Converts a weight source: reads every tensor of `config`, encodes it per `scheme`, and cuts
    /// the payload into shards of at most `shard_bytes` ([`MAX_SHARD_BYTES`] unless testing).
    /// `progress(done, total)` counts weights.
    pub fn build(
        weights: &dyn WeightSource,
        config: &ClipConfig,
        scheme: Scheme,
        source: &str,
        shard_bytes: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        config.validate()?;
        if !(HEADER + 1..=MAX_SHARD_BYTES).contains(&shard_bytes) {
            return Err(ClipError::Pack(format!(
                "shards must hold between 1 and {MAX_SHARD_BYTES} bytes with their header"
            )));
        }
        let specs = config.tensor_specs();
        let total: u64 = specs
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum();
        let mut payload = Vec::with_capacity(scheme.pack_bytes(config) as usize);
        let mut tensors = BTreeMap::new();
        let mut done = 0;
        for spec in &specs {
            let encoding = scheme.encoding(spec);
            let transposed = spec.role == Role::Matrix;
            let value = if transposed {
                let &[out, inp] = spec.shape.as_slice() else {
                    unreachable!("matrix specs are rank 2")
                };
                weights.matrix(&spec.name, [out, inp])?.to_f32()
            } else {
                weights.float(&spec.name, &spec.shape)?
            };
            let offset = payload.len() as u64;
            match encoding {
                Encoding::F32 => payload.extend(value.data.iter().flat_map(|x| x.to_le_bytes())),
                Encoding::F16 => payload.extend(
                    value
                        .data
                        .iter()
                        .flat_map(|&x| f16::from_f32(x).to_le_bytes()),
                ),
                Encoding::Quant(bits) => {
                    payload.extend(QuantMatrix::quantize(&value, bits)?.to_bytes())
                }
            }
            let bytes = payload.len() as u64 - offset;
            if bytes as usize > MAX_TENSOR_BYTES {
                return Err(ClipError::Pack(format!(
                    "tensor {} takes {bytes} bytes as {}; WebGPU binds at most {MAX_TENSOR_BYTES} \
                     (choose a smaller scheme)",
                    spec.name,
                    encoding.name()
                )));
            }
            tensors.insert(
                spec.name.clone(),
                TensorEntry {
                    encoding,
                    shape: value.shape.clone(),
                    transposed,
                    offset,
                    bytes,
                },
            );
            done += spec.shape.iter().product::<usize>() as u64;
            progress(done, total);
        }

        let mut id = Sha256::new();
        id.update(scheme.name());
        id.update(serde_json::to_vec(config).map_err(|e| ClipError::Pack(e.to_string()))?);
        id.update(&payload);
        let model_id: [u8; 16] = id.finalize()[..16].try_into().expect("16 of 32 bytes");

        let chunks: Vec<&[u8]> = payload.chunks(shard_bytes - HEADER).collect();
        let count = chunks.len();
        let mut shards = Vec::with_capacity(count);
        let mut infos = Vec::with_capacity(count);
        for (index, chunk) in chunks.into_iter().enumerate() {
            let mut shard = Vec::with_capacity(HEADER + chunk.len());
            shard.extend_from_slice(&shard_header(&model_id, index, count));
            shard.extend_from_slice(chunk);
            infos.push(ShardInfo {
                file: format!("shard-{index:03}.bin"),
                bytes: shard.len() as u64,
                sha256: sha256_hex(&shard),
            });
            shards.push(shard);
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            model_id: hex(&model_id),
            scheme,
            source: source.into(),
            config: config.clone(),
            shards: infos,
            tensors,
        };
        manifest.validate()?;
        Ok(Self::assemble(manifest, shards))
    }

    fn assemble(manifest: Manifest, shards: Vec<Vec<u8>>) -> Self {
        let starts = manifest
            .shards
            .iter()
            .scan(0, |start, s| {
                let this = *start;
                *start += s.bytes - HEADER as u64;
                Some(this)
            })
            .collect();
        Self {
            manifest,
            shards,
            starts,
        }
    }

    /// Opens a pack from its shards, checking each ([`Manifest::check_shard`]).
    pub fn from_shards(manifest: Manifest, shards: Vec<Vec<u8>>) -> Result<Self> {
        for (i, shard) in shards.iter().enumerate() {
            manifest.check_shard(i, shard)?;
        }
        Self::from_checked_shards(manifest, shards)
    }

    /// Opens a pack whose shards each already passed [`Manifest::check_shard`] (as they
    /// arrived); only their number and lengths are checked again.
    pub fn from_checked_shards(manifest: Manifest, shards: Vec<Vec<u8>>) -> Result<Self> {
        let lengths_match = shards.len() == manifest.shards.len()
            && shards
                .iter()
                .zip(&manifest.shards)
                .all(|(shard, info)| shard.len() as u64 == info.bytes);
        if !lengths_match {
            return Err(ClipError::Pack(format!(
                "{} shards given, the manifest lists {}",
                shards.len(),
                manifest.shards.len()
            )));
        }
        Ok(Self::assemble(manifest, shards))
    }

    /// The manifest as pretty JSON.
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("a manifest always serializes") + "\n"
    }

    /// A tensor's bytes, copied out of the one or two shards holding them.
    fn bytes(&self, entry: &TensorEntry) -> Vec<u8> {
        let mut out = Vec::with_capacity(entry.bytes as usize);
        let (mut at, end) = (entry.offset, entry.offset + entry.bytes);
        while at < end {
            let shard = self.starts.partition_point(|&s| s <= at) - 1;
            let local = (at - self.starts[shard]) as usize + HEADER;
            let take = ((end - at) as usize).min(self.shards[shard].len() - local);
            out.extend_from_slice(&self.shards[shard][local..local + take]);
            at += take as u64;
        }
        out
    }

    fn entry(&self, name: &str) -> Result<&TensorEntry> {
        self.manifest
            .tensors
            .get(name)
            .ok_or_else(|| ClipError::MissingTensor(name.to_string()))
    }

    /// Decodes a tensor as stored (a matrix stays `[in, out]`, quantized stays quantized).
    fn stored(&self, name: &str) -> Result<Matrix> {
        let entry = self.entry(name)?;
        let bytes = self.bytes(entry);
        Ok(match entry.encoding {
            Encoding::F32 => Matrix::Float(HostTensor::new(
                entry.shape.clone(),
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            Encoding::F16 => Matrix::Float(HostTensor::new(
                entry.shape.clone(),
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            )),
            Encoding::Quant(bits) => {
                let &[rows, cols] = entry.shape.as_slice() else {
                    return Err(ClipError::Pack(format!(
                        "{name}: quantized but not a matrix"
                    )));
                };
                Matrix::Quant(QuantMatrix::from_bytes(bits, [rows, cols], &bytes)?)
            }
        })
    }
}

impl WeightSource for Pack {
    fn float(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let value = self.stored(name)?.to_f32();
        let value = if self.entry(name)?.transposed {
            value.transposed()
        } else {
            value
        };
        check_shape(name, shape, &value.shape)?;
        Ok(value)
    }

    fn matrix(&self, name: &str, [out, inp]: [usize; 2]) -> Result<Matrix> {
        if !self.entry(name)?.transposed {
            return Ok(Matrix::Float(self.float(name, &[out, inp])?.transposed()));
        }
        let m = self.stored(name)?;
        check_shape(name, &[inp, out], &m.shape())?;
        Ok(m)
    }

    fn table(&self, name: &str, shape: [usize; 2]) -> Result<Matrix> {
        let m = self.stored(name)?;
        check_shape(name, &shape, &m.shape())?;
        Ok(m)
    }
}
