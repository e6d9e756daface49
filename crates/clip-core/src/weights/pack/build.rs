//! Writing packs: each tensor encoded as its scheme says ([`encode`]), then the payload cut into
//! shards behind their headers ([`assemble`]). [`Pack::build`] converts any
//! [`WeightSource`]; the streaming converter ([`crate::weights::stream`]) encodes tensors as
//! their bytes arrive and assembles the same way, so both give byte-identical packs.

use std::collections::BTreeMap;

use half::f16;
use sha2::{Digest, Sha256};

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::weights::gptq::{self, Gram};
use crate::weights::host::HostTensor;
use crate::weights::pack::manifest::{FORMAT, Manifest, ShardInfo, TensorEntry, VERSION};
use crate::weights::pack::scheme::{Encoding, Scheme};
use crate::weights::pack::shards::{self, HEADER};
use crate::weights::pack::{MAX_SHARD_BYTES, MAX_TENSOR_BYTES, Pack};
use crate::weights::quant::{Bits, QuantMatrix};
use crate::weights::source::WeightSource;
use crate::weights::tree::{ClipTensors, Role, TensorSpec};

/// One tensor as the pack stores it.
#[derive(Debug)]
pub(crate) struct Encoded {
    encoding: Encoding,
    shape: Vec<usize>,
    transposed: bool,
    bytes: Vec<u8>,
}

/// Encodes `value` — the tensor of `spec` in the pack's layout (matrices `[in, out]`) — as
/// `scheme` stores it; `gram`, the moment of the layer's inputs, where calibrated.
pub(crate) fn encode(
    spec: &TensorSpec,
    scheme: Scheme,
    value: HostTensor,
    gram: Option<&Gram>,
) -> Result<Encoded> {
    let encoding = scheme.encoding_calibrated(spec, gram.is_some());
    let bytes = match encoding {
        Encoding::Quant(Bits::Q4) if let Some(gram) = gram => {
            gptq::quantize(&value, gram, Bits::Q4)?.into_bytes()
        }
        Encoding::F32 => value.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Encoding::F16 => value
            .data
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect(),
        Encoding::Quant(bits) => QuantMatrix::quantize(&value, bits)?.into_bytes(),
    };
    if bytes.len() > MAX_TENSOR_BYTES {
        return Err(ClipError::Pack(format!(
            "tensor {} takes {} bytes as {}; WebGPU binds at most {MAX_TENSOR_BYTES} (choose a \
             smaller scheme)",
            spec.name,
            bytes.len(),
            encoding.name()
        )));
    }
    Ok(Encoded {
        encoding,
        shape: value.shape,
        transposed: spec.role == Role::Matrix,
        bytes,
    })
}

/// Checks the shard size a caller asked for.
pub(crate) fn check_shard_bytes(shard_bytes: usize) -> Result<()> {
    if (HEADER + 1..=MAX_SHARD_BYTES).contains(&shard_bytes) {
        Ok(())
    } else {
        Err(ClipError::Pack(format!(
            "shards must hold between 1 and {MAX_SHARD_BYTES} bytes with their header"
        )))
    }
}

/// The pack of `config` from every tensor of it, encoded (`tensors` by Hugging Face name).
///
/// The payload is the tensors in checkpoint order; each tensor's bytes move into their shard
/// and are freed at once, so assembling needs no second copy of the payload.
pub(crate) fn assemble(
    config: &ClipConfig,
    scheme: Scheme,
    source: &str,
    shard_bytes: usize,
    mut tensors: BTreeMap<String, Encoded>,
) -> Result<Pack> {
    check_shard_bytes(shard_bytes)?;
    let tree = ClipTensors::new(config);
    let mut ordered = Vec::with_capacity(tree.all().len());
    for spec in tree.all() {
        let encoded = tensors
            .remove(&spec.name)
            .ok_or_else(|| ClipError::MissingTensor(spec.name.clone()))?;
        ordered.push((spec.name.clone(), encoded));
    }
    // The model id: a digest of what the pack holds, repeated in every shard header.
    let mut id = Sha256::new();
    id.update(scheme.name());
    id.update(serde_json::to_vec(config).map_err(|e| ClipError::Pack(e.to_string()))?);
    for (_, encoded) in &ordered {
        id.update(&encoded.bytes);
    }
    let model_id: [u8; 16] = id.finalize()[..16].try_into().expect("16 of 32 bytes");

    let payload: usize = ordered.iter().map(|(_, e)| e.bytes.len()).sum();
    let per_shard = shard_bytes - HEADER;
    let count = payload.div_ceil(per_shard).max(1);
    let mut shards: Vec<Vec<u8>> = Vec::with_capacity(count);
    let mut entries = BTreeMap::new();
    let mut offset = 0u64;
    for (name, encoded) in ordered {
        let mut rest = encoded.bytes.as_slice();
        while !rest.is_empty() || shards.is_empty() {
            let full = shards.last().is_none_or(|s| s.len() == shard_bytes);
            if full {
                let size = HEADER + (payload - shards.len() * per_shard).min(per_shard);
                let mut shard = Vec::with_capacity(size);
                shard.extend_from_slice(&shards::header(&model_id, shards.len(), count));
                shards.push(shard);
            }
            let shard = shards.last_mut().expect("pushed above");
            let take = rest.len().min(shard_bytes - shard.len());
            shard.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        entries.insert(
            name,
            TensorEntry {
                encoding: encoded.encoding,
                shape: encoded.shape,
                transposed: encoded.transposed,
                offset,
                bytes: encoded.bytes.len() as u64,
            },
        );
        offset += encoded.bytes.len() as u64;
    }
    let infos = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| ShardInfo {
            file: format!("shard-{index:03}.bin"),
            bytes: shard.len() as u64,
            sha256: shards::sha256_hex(shard),
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        model_id: shards::hex(&model_id),
        scheme,
        source: source.into(),
        config: config.clone(),
        shards: infos,
        tensors: entries,
        text_bank: None,
    };
    manifest.validate()?;
    Pack::from_checked_shards(manifest, shards)
}

impl Pack {
    /// Converts a weight source: reads every tensor of `config`, encodes it per `scheme`, and
    /// cuts the payload into shards of at most `shard_bytes` ([`MAX_SHARD_BYTES`] unless
    /// testing). `progress(done, total)` counts weights.
    pub fn build(
        weights: &dyn WeightSource,
        config: &ClipConfig,
        scheme: Scheme,
        source: &str,
        shard_bytes: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        Self::build_with(
            weights,
            config,
            scheme,
            source,
            shard_bytes,
            &|_| None,
            progress,
        )
    }

    /// [`Self::build`], with `gram(name)` the input moment of each calibrated layer: `q4`
    /// then stores those layers at 4 bits, rounded to compensate each other's errors
    /// ([`crate::weights::gptq`]), instead of at 8.
    pub fn build_with<'g>(
        weights: &dyn WeightSource,
        config: &ClipConfig,
        scheme: Scheme,
        source: &str,
        shard_bytes: usize,
        gram: &dyn Fn(&str) -> Option<&'g Gram>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        config.validate()?;
        check_shard_bytes(shard_bytes)?;
        let tree = ClipTensors::new(config);
        let total: u64 = tree
            .all()
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum();
        let mut tensors = BTreeMap::new();
        let mut done = 0;
        for spec in tree.all() {
            let value = match spec.role {
                Role::Matrix => weights.matrix(spec)?.into_f32(),
                Role::Table | Role::Float => weights.float(spec)?,
            };
            let encoded = encode(spec, scheme, value, gram(&spec.name))?;
            tensors.insert(spec.name.clone(), encoded);
            done += spec.shape.iter().product::<usize>() as u64;
            progress(done, total);
        }
        assemble(config, scheme, source, shard_bytes, tensors)
    }
}
