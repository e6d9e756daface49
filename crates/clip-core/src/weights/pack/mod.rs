//! The weight pack: a CLIP checkpoint for the web — quantized, in shards of at most 64 MB, with
//! a JSON manifest that a page can read before it downloads anything.
//!
//! ```text
//! manifest.json    format, version, model id, scheme, source, config, shards, tensor index
//! shard-000.bin    32-byte header + the next slice of the payload
//! shard-001.bin    …
//! ```
//!
//! The payload is every tensor of [`ClipTensors`](crate::weights::tree::ClipTensors) back to
//! back; the manifest gives each one's encoding, stored shape, and byte range in the payload (a
//! range may cross a shard boundary). Linear weights are stored `[in, out]` — transposed from
//! the checkpoint — because that is what burn's `linear` reads and its block quantization runs
//! along the last axis.
//!
//! The model id in every shard header is a digest of the scheme, the config and the payload, so
//! a shard from another conversion is named as such, not just "corrupt"; each shard's SHA-256
//! is in the manifest, so a damaged one never loads.
//!
//! Files: [`scheme`](Scheme) (what is stored how), `manifest` (the index and its checks),
//! `shards` (the header), `build` (encoding and cutting into shards).

mod build;
mod manifest;
mod scheme;
mod shards;

pub(crate) use build::{Encoded, assemble, encode};
pub use manifest::{FORMAT, MANIFEST, Manifest, ShardInfo, TEXT_BANK, TensorEntry, VERSION};
pub use scheme::{Encoding, Scheme};

use half::f16;

use crate::error::{ClipError, Result};
use crate::weights::host::HostTensor;
use crate::weights::quant::QuantMatrix;
use crate::weights::source::{Matrix, WeightSource, check_shape, transposed};
use crate::weights::tree::TensorSpec;

/// Largest shard file (64 MB): small enough to cache and retry one at a time, large enough that
/// a ViT-B/16 is a handful of requests.
pub const MAX_SHARD_BYTES: usize = 64_000_000;
/// Largest encoded tensor: WebGPU's default `maxStorageBufferBindingSize` (128 MiB).
pub const MAX_TENSOR_BYTES: usize = 128 << 20;

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
        let starts = manifest
            .shards
            .iter()
            .scan(0, |start, s| {
                let this = *start;
                *start += s.bytes - shards::HEADER as u64;
                Some(this)
            })
            .collect();
        Ok(Self {
            manifest,
            shards,
            starts,
        })
    }

    /// Lists `bank` (a [`crate::surgery::bank::StoredBank`]'s bytes, to be written beside the
    /// shards as [`TEXT_BANK`]) in the manifest.
    pub fn list_text_bank(&mut self, bank: &[u8]) {
        self.manifest.text_bank = Some(ShardInfo {
            file: TEXT_BANK.into(),
            bytes: bank.len() as u64,
            sha256: shards::sha256_hex(bank),
        });
    }

    /// The manifest as pretty JSON.
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("a manifest always serializes") + "\n"
    }

    /// A tensor's bytes, copied out of the one or more shards holding them. The manifest was
    /// validated (every range inside the payload) and every shard has its listed length.
    fn bytes(&self, entry: &TensorEntry) -> Vec<u8> {
        let mut out = Vec::with_capacity(entry.bytes as usize);
        let (mut at, end) = (entry.offset, entry.offset + entry.bytes);
        while at < end {
            let shard = self.starts.partition_point(|&s| s <= at) - 1;
            let local = (at - self.starts[shard]) as usize + shards::HEADER;
            let take = ((end - at) as usize).min(self.shards[shard].len() - local);
            out.extend_from_slice(&self.shards[shard][local..local + take]);
            at += take as u64;
        }
        out
    }

    fn entry(&self, spec: &TensorSpec) -> Result<&TensorEntry> {
        self.manifest
            .tensors
            .get(&spec.name)
            .ok_or_else(|| ClipError::MissingTensor(spec.name.clone()))
    }

    /// Decodes a tensor as stored (a matrix stays `[in, out]`, quantized stays quantized).
    fn stored(&self, spec: &TensorSpec) -> Result<Matrix> {
        let entry = self.entry(spec)?;
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
                        "{}: quantized but not a matrix",
                        spec.name
                    )));
                };
                Matrix::Quant(QuantMatrix::from_bytes(bits, [rows, cols], &bytes)?)
            }
        })
    }
}

impl WeightSource for Pack {
    fn float(&self, spec: &TensorSpec) -> Result<HostTensor> {
        let value = self.stored(spec)?.into_f32();
        let value = if self.entry(spec)?.transposed {
            transposed(spec, &value)?
        } else {
            value
        };
        check_shape(&spec.name, &spec.shape, &value.shape)?;
        Ok(value)
    }

    fn matrix(&self, spec: &TensorSpec) -> Result<Matrix> {
        if !self.entry(spec)?.transposed {
            let value = self.float(spec)?;
            return transposed(spec, &value).map(Matrix::Float);
        }
        let m = self.stored(spec)?;
        let &[out, inp] = spec.shape.as_slice() else {
            return Err(ClipError::Pack(format!("{} is not a matrix", spec.name)));
        };
        check_shape(&spec.name, &[inp, out], &m.shape())?;
        Ok(m)
    }

    fn table(&self, spec: &TensorSpec) -> Result<Matrix> {
        let m = self.stored(spec)?;
        check_shape(&spec.name, &spec.shape, &m.shape())?;
        Ok(m)
    }
}
