//! Safetensors checkpoints in either naming: Hugging Face `CLIPModel` keys (the canonical ones;
//! the module tree mirrors them) or OpenAI/open_clip state dicts, translated on the fly by the
//! keys and layouts of [`super::tree`] (fused `in_proj` split into q/k/v, `[W, E]` projections
//! transposed), so the model code never sees two namings.

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::config::{
    Activation, ClipConfig, DEFAULT_SURGERY_DEPTH, TextConfig, TowerConfig, VisionConfig,
};
use crate::error::{ClipError, Result};
use crate::weights::host::HostTensor;
use crate::weights::source::{WeightSource, check_shape, transposed};
use crate::weights::tree::{ClipTensors, Layout, TensorSpec};

/// Which key naming a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `transformers`' `CLIPModel`: `vision_model.encoder.layers.0.self_attn.q_proj.weight`, …
    HuggingFace,
    /// OpenAI `clip` / open_clip: `visual.transformer.resblocks.0.attn.in_proj_weight`, …
    OpenAi,
}

impl Naming {
    /// The naming of a checkpoint with these tensor names, or an error naming a few of them.
    pub fn detect<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Self> {
        let mut sample = Vec::new();
        for name in names {
            match name {
                "vision_model.embeddings.patch_embedding.weight" => return Ok(Self::HuggingFace),
                "visual.conv1.weight" => return Ok(Self::OpenAi),
                _ => sample.push(name),
            }
        }
        sample.sort_unstable();
        sample.truncate(4);
        Err(ClipError::UnknownNaming(if sample.is_empty() {
            "no tensors at all".into()
        } else {
            sample.join(", ")
        }))
    }

    /// The file tensor `spec` is read from in this naming, and how.
    pub fn key(self, spec: &TensorSpec) -> (&str, Layout) {
        match self {
            Naming::HuggingFace => (&spec.name, Layout::Same),
            Naming::OpenAi => (&spec.openai.name, spec.openai.layout),
        }
    }
}

/// Whether tensors of `dtype` can be read (`F32`, `F16`, `BF16`).
pub fn check_dtype(name: &str, dtype: Dtype) -> Result<()> {
    match dtype {
        Dtype::F32 | Dtype::F16 | Dtype::BF16 => Ok(()),
        other => Err(ClipError::UnsupportedDtype {
            name: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// The shape a file stores `spec` in, given its layout there.
pub fn file_shape(spec: &TensorSpec, layout: Layout) -> Vec<usize> {
    match (layout, spec.shape.as_slice()) {
        (Layout::Same, shape) => shape.to_vec(),
        (Layout::Transposed, shape) => shape.iter().rev().copied().collect(),
        (Layout::Third(_), [rows, rest @ ..]) => std::iter::once(rows.saturating_mul(3))
            .chain(rest.iter().copied())
            .collect(),
        (Layout::Third(_), []) => vec![],
    }
}

/// Little-endian `F32`/`F16`/`BF16` bytes as `f32` values.
pub fn decode(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    decode_into(name, dtype, bytes, &mut out)?;
    Ok(out)
}

/// Appends the values of `bytes` (whole elements: a trailing partial one is ignored) to `out`.
pub fn decode_into(name: &str, dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        other => {
            return Err(ClipError::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    }
    Ok(())
}

/// The tensor `spec` describes, from the file tensor `key` holds it in (`layout` says how),
/// checked against the shape the model expects.
pub fn derive(
    spec: &TensorSpec,
    key: &str,
    layout: Layout,
    stored: HostTensor,
) -> Result<HostTensor> {
    let tensor = match layout {
        Layout::Same => stored,
        Layout::Transposed => transposed(spec, &stored)?,
        Layout::Third(part) => {
            // q/k/v are thirds of the fused input projection's rows.
            let rows = stored.shape.first().copied().unwrap_or(0);
            let third = rows / 3;
            let slice = (rows % 3 == 0)
                .then(|| stored.rows(part * third, (part + 1) * third))
                .flatten();
            slice.ok_or_else(|| ClipError::ShapeMismatch {
                name: key.to_string(),
                expected: vec![3 * spec.shape.first().copied().unwrap_or(0)],
                found: stored.shape.clone(),
                hint: " (fused q/k/v projection must have 3·W rows)",
            })?
        }
    };
    check_shape(&spec.name, &spec.shape, &tensor.shape)?;
    Ok(tensor)
}

/// A parsed safetensors archive that hands out tensors by their [`TensorSpec`].
pub struct Checkpoint<'a> {
    archive: SafeTensors<'a>,
    naming: Naming,
}

impl std::fmt::Debug for Checkpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("naming", &self.naming)
            .finish_non_exhaustive()
    }
}

impl<'a> Checkpoint<'a> {
    /// Parses the archive header (no tensor is copied yet) and detects the naming.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let archive =
            SafeTensors::deserialize(bytes).map_err(|e| ClipError::Safetensors(e.to_string()))?;
        let naming = Naming::detect(archive.names())?;
        Ok(Self { archive, naming })
    }

    /// The model's config: `given` (from `config.json`) if any, else inferred from OpenAI-named
    /// shapes — Hugging Face weights carry no shapes-only config, so they need `config.json`.
    pub fn config(&self, given: Option<ClipConfig>) -> Result<ClipConfig> {
        let config = match (self.naming, given) {
            (_, Some(config)) => config,
            (Naming::OpenAi, None) => {
                infer_openai_config(|name| Some(self.archive.tensor(name).ok()?.shape().to_vec()))?
            }
            (Naming::HuggingFace, None) => {
                return Err(ClipError::Config(
                    "Hugging Face weights need their config.json beside model.safetensors".into(),
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks, from the header alone, that every tensor of `config` is in the file with a
    /// readable dtype and the right shape — so a wrong file fails before anything is uploaded.
    pub fn check(&self, config: &ClipConfig) -> Result<()> {
        for spec in ClipTensors::new(config).all() {
            let (key, layout) = self.naming.key(spec);
            let view = self
                .archive
                .tensor(key)
                .map_err(|_| ClipError::MissingTensor(spec.name.clone()))?;
            check_dtype(key, view.dtype())?;
            check_shape(&spec.name, &file_shape(spec, layout), view.shape())?;
        }
        Ok(())
    }

    /// Reads a tensor stored under its own (file) name, converting to `f32`.
    pub fn raw(&self, name: &str) -> Result<HostTensor> {
        let view = self
            .archive
            .tensor(name)
            .map_err(|_| ClipError::MissingTensor(name.to_string()))?;
        let data = decode(name, view.dtype(), view.data())?;
        Ok(HostTensor::new(view.shape().to_vec(), data))
    }
}

impl WeightSource for Checkpoint<'_> {
    fn float(&self, spec: &TensorSpec) -> Result<HostTensor> {
        let (key, layout) = self.naming.key(spec);
        let stored = self.raw(key).map_err(|e| match e {
            // Name the tensor the model wanted; the file's key is in the hint-free message.
            ClipError::MissingTensor(_) => ClipError::MissingTensor(spec.name.clone()),
            e => e,
        })?;
        derive(spec, key, layout, stored)
    }
}

/// Writes every tensor of `config` from `weights` as a safetensors checkpoint in `naming` (for
/// OpenAI naming: q, k and v fused into `in_proj`, projections transposed), `F32` or `F16`.
/// Test fixtures, fuzz seeds and benchmark inputs of any size without a download.
pub fn write_safetensors(
    weights: &dyn WeightSource,
    config: &ClipConfig,
    naming: Naming,
    dtype: Dtype,
) -> Result<Vec<u8>> {
    let mut tensors: std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        std::collections::BTreeMap::new();
    let encode = |data: &[f32]| -> Result<Vec<u8>> {
        Ok(match dtype {
            Dtype::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F16 => data
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
            other => {
                return Err(ClipError::UnsupportedDtype {
                    name: "(writing)".into(),
                    dtype: format!("{other:?}"),
                });
            }
        })
    };
    for spec in ClipTensors::new(config).all() {
        let t = weights.float(spec)?;
        let (key, layout) = naming.key(spec);
        let t = match layout {
            Layout::Same | Layout::Third(_) => t,
            Layout::Transposed => transposed(spec, &t)?,
        };
        let bytes = encode(&t.data)?;
        match tensors.get_mut(key) {
            // q, k and v come in that order: the fused tensor grows by their rows.
            Some((shape, data)) => {
                shape[0] += t.shape[0];
                data.extend(bytes);
            }
            None => {
                tensors.insert(key.to_string(), (t.shape, bytes));
            }
        }
    }
    let views = tensors
        .iter()
        .map(|(name, (shape, data))| {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| ClipError::Safetensors(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| ClipError::Safetensors(e.to_string()))
}

/// Infers the configuration from OpenAI-named tensor shapes (OpenAI checkpoints carry no
/// config): widths from norms and projections, depth by counting blocks, 64-wide heads.
/// `shape(name)` is a tensor's shape, `None` when the file lacks it.
pub fn infer_openai_config(shape: impl Fn(&str) -> Option<Vec<usize>>) -> Result<ClipConfig> {
    let get = |name: &str| shape(name).ok_or_else(|| ClipError::MissingTensor(name.into()));
    let count = |prefix: &str| {
        (0..)
            .take_while(|i| shape(&format!("{prefix}.{i}.attn.in_proj_weight")).is_some())
            .count()
    };
    let conv = get("visual.conv1.weight")?;
    let pos = get("visual.positional_embedding")?;
    let proj = get("visual.proj")?;
    let text_pos = get("positional_embedding")?;
    let tokens = get("token_embedding.weight")?;
    let fc = get("visual.transformer.resblocks.0.mlp.c_fc.weight")?;
    let text_fc = get("transformer.resblocks.0.mlp.c_fc.weight")?;
    let ranks_ok = conv.len() == 4
        && pos.len() == 2
        && proj.len() == 2
        && tokens.len() == 2
        && !text_pos.is_empty()
        && !fc.is_empty()
        && !text_fc.is_empty();
    if !ranks_ok {
        return Err(ClipError::Config(
            "OpenAI weights have unexpected ranks".into(),
        ));
    }
    let patch = conv[3];
    let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid.checked_mul(grid).and_then(|g| g.checked_add(1)) != Some(pos[0]) {
        return Err(ClipError::Config(format!(
            "visual.positional_embedding has {} rows, not a square grid plus one",
            pos[0]
        )));
    }
    let tower = |width: usize, layers: usize, mlp_width: usize| TowerConfig {
        width,
        layers,
        heads: (width / 64).max(1),
        mlp_width,
        activation: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
    };
    let config = ClipConfig {
        vision: VisionConfig {
            tower: tower(conv[0], count("visual.transformer.resblocks"), fc[0]),
            patch_size: patch,
            image_size: grid.saturating_mul(patch),
        },
        text: TextConfig {
            tower: tower(tokens[1], count("transformer.resblocks"), text_fc[0]),
            vocab_size: tokens[0],
            context_length: text_pos[0],
        },
        embed_dim: proj[1],
        surgery_depth: 0,
    };
    let config = ClipConfig {
        surgery_depth: DEFAULT_SURGERY_DEPTH.min(config.vision.tower.layers),
        ..config
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x08\0\0\0\0\0\0\0{}",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(matches!(
                Checkpoint::parse(bytes),
                Err(ClipError::Safetensors(_))
            ));
        }
    }

    #[test]
    fn written_checkpoints_read_back_in_both_namings() {
        use crate::weights::random::RandomWeights;
        let mut config = ClipConfig::vit_b_16();
        config.vision.tower = TowerConfig {
            width: 64,
            layers: 2,
            heads: 1,
            mlp_width: 128,
            activation: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        };
        config.vision.image_size = 32;
        config.text.tower = config.vision.tower.clone();
        config.text.vocab_size = 100;
        config.embed_dim = 64;
        config.surgery_depth = 2; // the paper's 6, capped at the depth (as inference does)
        let source = RandomWeights::new(9);
        for naming in [Naming::HuggingFace, Naming::OpenAi] {
            let bytes = write_safetensors(&source, &config, naming, Dtype::F32).unwrap();
            let ckpt = Checkpoint::parse(&bytes).unwrap();
            assert_eq!(ckpt.naming, naming);
            if naming == Naming::OpenAi {
                assert_eq!(ckpt.config(None).unwrap(), config);
            }
            ckpt.check(&config).unwrap();
            for spec in ClipTensors::new(&config).all() {
                assert_eq!(
                    ckpt.float(spec).unwrap(),
                    source.float(spec).unwrap(),
                    "{naming:?} {}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn naming_is_detected_or_explained() {
        assert_eq!(
            Naming::detect(["x", "visual.conv1.weight"]).unwrap(),
            Naming::OpenAi
        );
        let err = Naming::detect(["model.a", "model.b"]).unwrap_err();
        assert!(err.to_string().contains("model.a, model.b"), "{err}");
    }
}
