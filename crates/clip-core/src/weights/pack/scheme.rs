//! How a pack stores each tensor: the [`Scheme`] a user picks and the per-tensor [`Encoding`]
//! it implies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::weights::pack::MAX_SHARD_BYTES;
use crate::weights::pack::shards::HEADER;
use crate::weights::quant::{Bits, QuantMatrix};
use crate::weights::tree::{ClipTensors, Role, TensorSpec};

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
    /// the vision tower and token table; int8 for the text transformer and projections —
    /// except, in a calibrated conversion, the text layers [`crate::weights::gptq`] rounds.
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
    pub fn encoding(self, spec: &TensorSpec) -> Encoding {
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

    /// [`Self::encoding`] for a layer whose inputs were calibrated: `q4` stores it at 4 bits
    /// wherever it can, its rounding compensated ([`crate::weights::gptq`]).
    pub fn encoding_calibrated(self, spec: &TensorSpec, calibrated: bool) -> Encoding {
        match (self, self.encoding(spec)) {
            (Scheme::Q4, Encoding::Quant(_)) if calibrated => Encoding::Quant(Bits::Q4),
            (_, encoding) => encoding,
        }
    }

    /// Bytes of `spec` as this scheme stores it (`None` if its shape overflows).
    pub(crate) fn stored_bytes(self, spec: &TensorSpec) -> Option<usize> {
        self.encoding(spec).stored_len(&stored_shape(spec))
    }

    /// Exact size of a pack of `config` in this scheme: the shards, headers included (the
    /// manifest adds a few tens of KB of JSON).
    pub fn pack_bytes(self, config: &ClipConfig) -> u64 {
        self.pack_bytes_with(config, MAX_SHARD_BYTES)
    }

    /// [`Self::pack_bytes`] for shards of at most `shard_bytes`.
    pub fn pack_bytes_with(self, config: &ClipConfig, shard_bytes: usize) -> u64 {
        let payload: u64 = ClipTensors::new(config)
            .all()
            .iter()
            .map(|spec| self.stored_bytes(spec).unwrap_or(0) as u64)
            .fold(0, u64::saturating_add);
        let per_shard = shard_bytes.saturating_sub(HEADER).max(1) as u64;
        let headers = payload.div_ceil(per_shard).max(1) * HEADER as u64;
        payload.saturating_add(headers)
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
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::F32 => "f32",
            Encoding::F16 => "f16",
            Encoding::Quant(Bits::Q8) => "q8",
            Encoding::Quant(Bits::Q4) => "q4",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Self> {
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
    pub(crate) fn stored_len(self, shape: &[usize]) -> Option<usize> {
        // A manifest may claim any shape: overflow is "cannot hold", not a panic.
        let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        match self {
            Encoding::F32 => n.checked_mul(4),
            Encoding::F16 => n.checked_mul(2),
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
pub(crate) fn stored_shape(spec: &TensorSpec) -> Vec<usize> {
    match (spec.role, spec.shape.as_slice()) {
        (Role::Matrix, &[out, inp]) => vec![inp, out],
        _ => spec.shape.clone(),
    }
}
