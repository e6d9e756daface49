//! Where weights come from: the [`WeightSource`] the model loads through, implemented by
//! safetensors checkpoints ([`Checkpoint`]), weight packs ([`crate::pack::Pack`]) and random
//! init ([`RandomWeights`]) — all under Hugging Face names.
//!
//! Two checkpoint namings are understood. Hugging Face `CLIPModel` keys are the canonical ones (the module
//! tree in [`crate::model`] mirrors them); OpenAI/open_clip state dicts are translated on the fly
//! (fused `in_proj_weight` split into q/k/v, `[W, E]` projections transposed), so the model code
//! never sees two namings.

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::config::{ClipConfig, TextConfig, TowerConfig, VisionConfig};
use crate::error::{ClipError, Result};
use crate::quant::QuantMatrix;

/// A tensor on the host: row-major `f32` data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Wraps data; the caller guarantees `data.len()` is the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// The transpose of a matrix.
    pub fn transposed(&self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                data[c * rows + r] = self.data[r * cols + c];
            }
        }
        Self::new(vec![cols, rows], data)
    }

    /// Rows `start..end` of the outermost dimension.
    fn rows(&self, start: usize, end: usize) -> Self {
        let inner: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Self::new(shape, self.data[start * inner..end * inner].to_vec())
    }
}

/// A matrix as the model uploads it: float, or block-quantized (it then stays quantized on
/// the device).
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Plain `f32`.
    Float(HostTensor),
    /// int8 / int4 blocks with their scales.
    Quant(QuantMatrix),
}

impl Matrix {
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        match self {
            Matrix::Float(t) => [t.shape[0], t.shape[1]],
            Matrix::Quant(q) => q.shape,
        }
    }

    /// Appends row `r` in `f32` to `out`.
    pub fn extend_row(&self, r: usize, out: &mut Vec<f32>) {
        match self {
            Matrix::Float(t) => {
                let cols = t.shape[1];
                out.extend_from_slice(&t.data[r * cols..(r + 1) * cols]);
            }
            Matrix::Quant(q) => q.extend_row(r, out),
        }
    }

    /// The whole matrix in `f32`.
    pub fn to_f32(&self) -> HostTensor {
        match self {
            Matrix::Float(t) => t.clone(),
            Matrix::Quant(q) => q.dequantize(),
        }
    }
}

/// Where the model's tensors come from: a checkpoint, a weight pack, or a random generator.
/// Names are Hugging Face `CLIPModel` keys ([`ClipConfig::tensor_specs`] lists them).
pub trait WeightSource {
    /// A tensor in `f32`, checked against the shape a Hugging Face checkpoint has.
    fn float(&self, name: &str, shape: &[usize]) -> Result<HostTensor>;

    /// A linear weight `[out, in]` in the checkpoint, returned as `[in, out]` (`y = x·W`, the
    /// layout burn's `linear` reads).
    fn matrix(&self, name: &str, out_in: [usize; 2]) -> Result<Matrix> {
        Ok(Matrix::Float(self.float(name, &out_in)?.transposed()))
    }

    /// A lookup table `[rows, cols]` as stored (the token embedding).
    fn table(&self, name: &str, shape: [usize; 2]) -> Result<Matrix> {
        Ok(Matrix::Float(self.float(name, &shape)?))
    }
}

/// A checked shape: the one error every source reports the same way.
pub(crate) fn check_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<()> {
    if expected == found {
        return Ok(());
    }
    Err(ClipError::ShapeMismatch {
        name: name.to_string(),
        expected: expected.to_vec(),
        found: found.to_vec(),
        hint: " (do config.json and the weights belong to the same model?)",
    })
}

impl WeightSource for Checkpoint<'_> {
    fn float(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        self.get_shaped(name, shape)
    }
}

/// A small deterministic generator for random-init models (benchmarks, tests): the numbers
/// only need to be reproducible and roughly unit-scaled, not cryptographic.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, shape: &[usize], scale: f32) -> HostTensor {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect();
        HostTensor::new(shape.to_vec(), data)
    }
}

/// A randomly initialised checkpoint of any size (benchmarks: the compute and the weight
/// statistics of a real model without a download). Each tensor is seeded by its name, so the
/// order of reads does not matter: linear weights `U(±1/√in)` like PyTorch, norms around the
/// identity, embeddings small.
#[derive(Debug, Clone)]
pub struct RandomWeights {
    seed: u64,
}

impl RandomWeights {
    /// Weights drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl WeightSource for RandomWeights {
    fn float(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        // FNV-1a of the name, mixed with the seed.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = SplitMix::new(hash ^ self.seed);
        Ok(if name == "logit_scale" {
            HostTensor::new(vec![], vec![(1.0f32 / 0.07).ln()])
        } else if name.contains("norm") && name.ends_with(".weight") {
            let mut t = rng.uniform(shape, 0.1);
            t.data.iter_mut().for_each(|w| *w += 1.0);
            t
        } else if name.contains("embedding") {
            rng.uniform(shape, 0.02)
        } else if name.ends_with(".weight") && shape.len() == 2 {
            rng.uniform(shape, 1.0 / (shape[1] as f32).sqrt())
        } else {
            rng.uniform(shape, 0.05)
        })
    }
}

/// Which key naming a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `transformers`' `CLIPModel`: `vision_model.encoder.layers.0.self_attn.q_proj.weight`, …
    HuggingFace,
    /// OpenAI `clip` / open_clip: `visual.transformer.resblocks.0.attn.in_proj_weight`, …
    OpenAi,
}

/// A parsed safetensors archive that hands out tensors by their Hugging Face name.
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
        let names = archive.names();
        let has = |key: &str| names.contains(&key);
        let naming = if has("vision_model.embeddings.patch_embedding.weight") {
            Naming::HuggingFace
        } else if has("visual.conv1.weight") {
            Naming::OpenAi
        } else {
            let mut sample: Vec<&str> = names.iter().map(|s| &s[..]).collect();
            sample.sort_unstable();
            sample.truncate(4);
            return Err(ClipError::UnknownNaming(if sample.is_empty() {
                "no tensors at all".into()
            } else {
                sample.join(", ")
            }));
        };
        Ok(Self { archive, naming })
    }

    /// The detected naming.
    pub fn naming(&self) -> Naming {
        self.naming
    }

    /// The model's config: `given` (from `config.json`) if any, else inferred from OpenAI-named
    /// shapes — Hugging Face weights carry no shapes-only config, so they need `config.json`.
    pub fn config(&self, given: Option<ClipConfig>) -> Result<ClipConfig> {
        let config = match (self.naming, given) {
            (_, Some(config)) => config,
            (Naming::OpenAi, None) => self.infer_openai_config()?,
            (Naming::HuggingFace, None) => {
                return Err(ClipError::Config(
                    "Hugging Face weights need their config.json beside model.safetensors".into(),
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads a tensor stored under its own (file) name, converting to `f32`.
    pub fn raw(&self, name: &str) -> Result<HostTensor> {
        let view = self
            .archive
            .tensor(name)
            .map_err(|_| ClipError::MissingTensor(name.to_string()))?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ClipError::UnsupportedDtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(HostTensor::new(view.shape().to_vec(), data))
    }

    fn has_raw(&self, name: &str) -> bool {
        self.archive.tensor(name).is_ok()
    }

    /// Reads a tensor by its Hugging Face name, translating from OpenAI naming if needed.
    pub fn get(&self, hf_name: &str) -> Result<HostTensor> {
        match self.naming {
            Naming::HuggingFace => self.raw(hf_name),
            Naming::OpenAi => self.get_openai(hf_name),
        }
    }

    /// Like [`Self::get`], and checks the shape.
    pub fn get_shaped(&self, hf_name: &str, expected: &[usize]) -> Result<HostTensor> {
        let tensor = self.get(hf_name)?;
        check_shape(hf_name, expected, &tensor.shape)?;
        Ok(tensor)
    }

    fn get_openai(&self, hf: &str) -> Result<HostTensor> {
        let missing = || ClipError::MissingTensor(hf.to_string());
        // Fixed names first.
        let fixed = match hf {
            "logit_scale" => Some(("logit_scale", false)),
            "visual_projection.weight" => Some(("visual.proj", true)),
            "text_projection.weight" => Some(("text_projection", true)),
            "vision_model.embeddings.class_embedding" => Some(("visual.class_embedding", false)),
            "vision_model.embeddings.patch_embedding.weight" => {
                Some(("visual.conv1.weight", false))
            }
            "vision_model.embeddings.position_embedding.weight" => {
                Some(("visual.positional_embedding", false))
            }
            "text_model.embeddings.token_embedding.weight" => {
                Some(("token_embedding.weight", false))
            }
            "text_model.embeddings.position_embedding.weight" => {
                Some(("positional_embedding", false))
            }
            _ => None,
        };
        if let Some((name, transpose)) = fixed {
            let t = self.raw(name)?;
            return Ok(if transpose { t.transposed() } else { t });
        }
        // Norms outside the blocks: `<tower>.<norm>.{weight,bias}`.
        let (stem, leaf) = hf.rsplit_once('.').ok_or_else(missing)?;
        let norm = match stem {
            "vision_model.pre_layrnorm" => Some("visual.ln_pre"),
            "vision_model.post_layernorm" => Some("visual.ln_post"),
            "text_model.final_layer_norm" => Some("ln_final"),
            _ => None,
        };
        if let Some(norm) = norm {
            return self.raw(&format!("{norm}.{leaf}"));
        }
        // Block parameters: `<tower>.encoder.layers.<i>.<module>.<leaf>`.
        let (tower, rest) = if let Some(rest) = stem.strip_prefix("vision_model.encoder.layers.") {
            ("visual.transformer.resblocks", rest)
        } else if let Some(rest) = stem.strip_prefix("text_model.encoder.layers.") {
            ("transformer.resblocks", rest)
        } else {
            return Err(missing());
        };
        let (layer, module) = rest.split_once('.').ok_or_else(missing)?;
        let block = format!("{tower}.{layer}");
        let simple = match module {
            "self_attn.out_proj" => Some("attn.out_proj"),
            "layer_norm1" => Some("ln_1"),
            "layer_norm2" => Some("ln_2"),
            "mlp.fc1" => Some("mlp.c_fc"),
            "mlp.fc2" => Some("mlp.c_proj"),
            _ => None,
        };
        if let Some(simple) = simple {
            return self.raw(&format!("{block}.{simple}.{leaf}"));
        }
        // q/k/v are thirds of the fused input projection.
        let part = match module {
            "self_attn.q_proj" => 0,
            "self_attn.k_proj" => 1,
            "self_attn.v_proj" => 2,
            _ => return Err(missing()),
        };
        let fused = self.raw(&format!("{block}.attn.in_proj_{leaf}"))?;
        let third = fused.shape[0] / 3;
        if !fused.shape[0].is_multiple_of(3) {
            return Err(ClipError::ShapeMismatch {
                name: format!("{block}.attn.in_proj_{leaf}"),
                expected: vec![3 * third],
                found: fused.shape,
                hint: " (fused q/k/v projection must have 3·W rows)",
            });
        }
        Ok(fused.rows(part * third, (part + 1) * third))
    }

    /// Infers the configuration from OpenAI-named tensor shapes (OpenAI checkpoints carry no
    /// config): widths from norms and projections, depth by counting blocks, 64-wide heads.
    pub fn infer_openai_config(&self) -> Result<ClipConfig> {
        let shape = |name: &str| -> Result<Vec<usize>> {
            let view = self
                .archive
                .tensor(name)
                .map_err(|_| ClipError::MissingTensor(name.into()))?;
            Ok(view.shape().to_vec())
        };
        let count = |prefix: &str| {
            (0..)
                .take_while(|i| self.has_raw(&format!("{prefix}.{i}.attn.in_proj_weight")))
                .count()
        };
        let conv = shape("visual.conv1.weight")?;
        let pos = shape("visual.positional_embedding")?;
        let proj = shape("visual.proj")?;
        let text_pos = shape("positional_embedding")?;
        let tokens = shape("token_embedding.weight")?;
        let fc = shape("visual.transformer.resblocks.0.mlp.c_fc.weight")?;
        let text_fc = shape("transformer.resblocks.0.mlp.c_fc.weight")?;
        if conv.len() != 4 || pos.len() != 2 || proj.len() != 2 || tokens.len() != 2 {
            return Err(ClipError::Config(
                "OpenAI weights have unexpected ranks".into(),
            ));
        }
        let patch = conv[3];
        let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
        if grid * grid + 1 != pos[0] {
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
            activation: crate::config::Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        };
        let config = ClipConfig {
            vision: VisionConfig {
                tower: tower(conv[0], count("visual.transformer.resblocks"), fc[0]),
                patch_size: patch,
                image_size: grid * patch,
            },
            text: TextConfig {
                tower: tower(tokens[1], count("transformer.resblocks"), text_fc[0]),
                vocab_size: tokens[0],
                context_length: text_pos[0],
            },
            embed_dim: proj[1],
            surgery_depth: crate::config::DEFAULT_SURGERY_DEPTH,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_rows() {
        let t = HostTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(
            t.transposed(),
            HostTensor::new(vec![3, 2], vec![1., 4., 2., 5., 3., 6.])
        );
        assert_eq!(t.rows(1, 2), HostTensor::new(vec![1, 3], vec![4., 5., 6.]));
    }

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
}
