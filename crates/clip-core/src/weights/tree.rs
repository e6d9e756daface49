//! The one description of every tensor CLIP reads: its Hugging Face name, where an
//! OpenAI/open_clip state dict keeps it, its shape and how the model uses it.
//!
//! The tree is built with scoped paths in both namings at once (candle's `vs.pp("encoder")`
//! style): `vision.pp("encoder.layers.3", "transformer.resblocks.3")`. The loaders take their
//! node of the tree ([`LinearTensors`], [`LayerTensors`], …) and never spell a name; the
//! OpenAI key map, weight-pack manifests and the streaming converter read the same specs. So a
//! new tensor is one line in a builder below plus its use in a loader, and a mismatch between
//! what is stored and what is read cannot arise.

use crate::config::{ClipConfig, TextConfig, TowerConfig, VisionConfig};

/// How the model uses a checkpoint tensor, which decides how a weight pack may store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A linear layer's weight, `[out, in]` in the checkpoint: quantizable.
    Matrix,
    /// The token-embedding table `[vocab, width]`: quantizable, read a row at a time.
    Table,
    /// Everything else (norms, biases, position/class/patch embeddings, the temperature):
    /// stays float.
    Float,
}

/// How an OpenAI/open_clip state dict stores a tensor relative to its Hugging Face form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The same values and shape.
    Same,
    /// The transpose: OpenAI keeps projections as `[W, E]` and multiplies `x @ proj`.
    Transposed,
    /// One third of the fused `in_proj_{weight,bias}` rows: 0 = q, 1 = k, 2 = v.
    Third(usize),
}

/// Where an OpenAI/open_clip state dict keeps a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiKey {
    /// The state-dict key, e.g. `visual.transformer.resblocks.0.attn.in_proj_weight`.
    pub name: String,
    /// How its values relate to the Hugging Face tensor.
    pub layout: Layout,
}

/// One tensor the model reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Hugging Face `CLIPModel` key (the canonical name: packs and messages use it).
    pub name: String,
    /// Shape in a Hugging Face checkpoint (linear weights `[out, in]`).
    pub shape: Vec<usize>,
    /// How it is used.
    pub role: Role,
    /// Its place in an OpenAI/open_clip state dict.
    pub openai: OpenAiKey,
}

/// A linear layer: `weight` `[out, in]`, optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct LinearTensors {
    /// The weight.
    pub weight: TensorSpec,
    /// The bias, if the layer has one.
    pub bias: Option<TensorSpec>,
}

/// A LayerNorm: `weight` and `bias`, `[W]` each.
#[derive(Debug, Clone)]
pub struct NormTensors {
    /// Scale.
    pub weight: TensorSpec,
    /// Shift.
    pub bias: TensorSpec,
}

/// One residual attention block.
#[derive(Debug, Clone)]
pub struct LayerTensors {
    /// Query projection.
    pub q_proj: LinearTensors,
    /// Key projection.
    pub k_proj: LinearTensors,
    /// Value projection.
    pub v_proj: LinearTensors,
    /// Attention output projection.
    pub out_proj: LinearTensors,
    /// LayerNorm before attention (`ln_1`).
    pub layer_norm1: NormTensors,
    /// Feed-forward, `W → mlp_width` (`c_fc`).
    pub fc1: LinearTensors,
    /// Feed-forward, `mlp_width → W` (`c_proj`).
    pub fc2: LinearTensors,
    /// LayerNorm before the feed-forward block (`ln_2`).
    pub layer_norm2: NormTensors,
}

/// The ViT image tower.
#[derive(Debug, Clone)]
pub struct VisionTensors {
    /// Class token `[W]`.
    pub class_embedding: TensorSpec,
    /// Patch convolution `[W, 3, P, P]`.
    pub patch_embedding: TensorSpec,
    /// Position table `[G² + 1, W]`.
    pub position_embedding: TensorSpec,
    /// `ln_pre`.
    pub pre_layrnorm: NormTensors,
    /// The blocks.
    pub layers: Vec<LayerTensors>,
    /// `ln_post`.
    pub post_layernorm: NormTensors,
}

/// The text tower.
#[derive(Debug, Clone)]
pub struct TextTensors {
    /// Token table `[vocab, W]`.
    pub token_embedding: TensorSpec,
    /// Position table `[context, W]`.
    pub position_embedding: TensorSpec,
    /// The blocks.
    pub layers: Vec<LayerTensors>,
    /// `ln_final`.
    pub final_layer_norm: NormTensors,
}

/// Every tensor of a CLIP model, as a tree for the loaders and as a flat list.
#[derive(Debug, Clone)]
pub struct ClipTensors {
    /// Image tower.
    pub vision: VisionTensors,
    /// Text tower.
    pub text: TextTensors,
    /// `W_v → E`, no bias.
    pub visual_projection: LinearTensors,
    /// `W_t → E`, no bias.
    pub text_projection: LinearTensors,
    /// Learned temperature (log scale), a scalar.
    pub logit_scale: TensorSpec,
    all: Vec<TensorSpec>,
}

/// A scope in both namings; every spec handed out is also recorded in checkpoint order.
struct Scope<'a> {
    hf: String,
    openai: String,
    record: &'a std::cell::RefCell<Vec<TensorSpec>>,
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

impl Scope<'_> {
    /// A sub-scope: `hf` under the Hugging Face path, `openai` under the OpenAI one.
    fn pp(&self, hf: &str, openai: &str) -> Self {
        Scope {
            hf: join(&self.hf, hf),
            openai: join(&self.openai, openai),
            record: self.record,
        }
    }

    fn tensor(
        &self,
        hf: &str,
        openai: &str,
        layout: Layout,
        shape: &[usize],
        role: Role,
    ) -> TensorSpec {
        let spec = TensorSpec {
            name: join(&self.hf, hf),
            shape: shape.to_vec(),
            role,
            openai: OpenAiKey {
                name: join(&self.openai, openai),
                layout,
            },
        };
        self.record.borrow_mut().push(spec.clone());
        spec
    }

    /// A float tensor stored the same way in both namings.
    fn float(&self, hf: &str, openai: &str, shape: &[usize]) -> TensorSpec {
        self.tensor(hf, openai, Layout::Same, shape, Role::Float)
    }

    /// `<scope>.weight` `[out, in]` and, with `bias`, `<scope>.bias` `[out]`.
    fn linear(&self, [d_in, d_out]: [usize; 2], bias: bool) -> LinearTensors {
        LinearTensors {
            weight: self.tensor(
                "weight",
                "weight",
                Layout::Same,
                &[d_out, d_in],
                Role::Matrix,
            ),
            bias: bias.then(|| self.float("bias", "bias", &[d_out])),
        }
    }

    fn norm(&self, width: usize) -> NormTensors {
        NormTensors {
            weight: self.float("weight", "weight", &[width]),
            bias: self.float("bias", "bias", &[width]),
        }
    }

    /// q, k or v: a plain linear in Hugging Face naming, a third of OpenAI's fused
    /// `in_proj_weight` / `in_proj_bias` (the scope is the block's `attn`).
    fn qkv_third(&self, hf: &str, part: usize, width: usize) -> LinearTensors {
        let layout = Layout::Third(part);
        LinearTensors {
            weight: self.tensor(
                &format!("{hf}.weight"),
                "in_proj_weight",
                layout,
                &[width, width],
                Role::Matrix,
            ),
            bias: Some(self.tensor(
                &format!("{hf}.bias"),
                "in_proj_bias",
                layout,
                &[width],
                Role::Float,
            )),
        }
    }

    fn layer(&self, tower: &TowerConfig) -> LayerTensors {
        let (w, m) = (tower.width, tower.mlp_width);
        let attn = self.pp("self_attn", "attn");
        LayerTensors {
            q_proj: attn.qkv_third("q_proj", 0, w),
            k_proj: attn.qkv_third("k_proj", 1, w),
            v_proj: attn.qkv_third("v_proj", 2, w),
            out_proj: attn.pp("out_proj", "out_proj").linear([w, w], true),
            // Checkpoint order (struct literals evaluate in the order written): both norms,
            // then the feed-forward block.
            layer_norm1: self.pp("layer_norm1", "ln_1").norm(w),
            layer_norm2: self.pp("layer_norm2", "ln_2").norm(w),
            fc1: self.pp("mlp.fc1", "mlp.c_fc").linear([w, m], true),
            fc2: self.pp("mlp.fc2", "mlp.c_proj").linear([m, w], true),
        }
    }

    fn layers(&self, tower: &TowerConfig) -> Vec<LayerTensors> {
        (0..tower.layers)
            .map(|i| {
                self.pp(
                    &format!("encoder.layers.{i}"),
                    &format!("transformer.resblocks.{i}"),
                )
                .layer(tower)
            })
            .collect()
    }

    fn vision(&self, v: &VisionConfig) -> VisionTensors {
        let (w, p, g) = (v.tower.width, v.patch_size, v.grid_side());
        VisionTensors {
            class_embedding: self.float("embeddings.class_embedding", "class_embedding", &[w]),
            patch_embedding: self.float(
                "embeddings.patch_embedding.weight",
                "conv1.weight",
                &[w, 3, p, p],
            ),
            position_embedding: self.float(
                "embeddings.position_embedding.weight",
                "positional_embedding",
                &[g * g + 1, w],
            ),
            pre_layrnorm: self.pp("pre_layrnorm", "ln_pre").norm(w),
            layers: self.layers(&v.tower),
            post_layernorm: self.pp("post_layernorm", "ln_post").norm(w),
        }
    }

    fn text(&self, t: &TextConfig) -> TextTensors {
        let w = t.tower.width;
        TextTensors {
            token_embedding: self.tensor(
                "embeddings.token_embedding.weight",
                "token_embedding.weight",
                Layout::Same,
                &[t.vocab_size, w],
                Role::Table,
            ),
            position_embedding: self.float(
                "embeddings.position_embedding.weight",
                "positional_embedding",
                &[t.context_length, w],
            ),
            layers: self.layers(&t.tower),
            final_layer_norm: self.pp("final_layer_norm", "ln_final").norm(w),
        }
    }

    /// A projection without bias, which OpenAI stores transposed under its own name.
    fn projection(&self, hf: &str, openai: &str, [d_in, d_out]: [usize; 2]) -> LinearTensors {
        LinearTensors {
            weight: self.tensor(
                &format!("{hf}.weight"),
                openai,
                Layout::Transposed,
                &[d_out, d_in],
                Role::Matrix,
            ),
            bias: None,
        }
    }
}

impl ClipTensors {
    /// The tree of `config` (vision tower, text tower, projections, temperature).
    pub fn new(config: &ClipConfig) -> Self {
        let record = std::cell::RefCell::new(Vec::new());
        let root = Scope {
            hf: String::new(),
            openai: String::new(),
            record: &record,
        };
        let (wv, wt, e) = (
            config.vision.tower.width,
            config.text.tower.width,
            config.embed_dim,
        );
        let vision = root.pp("vision_model", "visual").vision(&config.vision);
        // OpenAI's text tower sits at the root of the state dict.
        let text = root.pp("text_model", "").text(&config.text);
        let visual_projection = root.projection("visual_projection", "visual.proj", [wv, e]);
        let text_projection = root.projection("text_projection", "text_projection", [wt, e]);
        let logit_scale = root.float("logit_scale", "logit_scale", &[]);
        Self {
            vision,
            text,
            visual_projection,
            text_projection,
            logit_scale,
            all: record.into_inner(),
        }
    }

    /// Every tensor, in checkpoint order (vision, text, projections, temperature).
    pub fn all(&self) -> &[TensorSpec] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ClipConfig {
        let mut c = ClipConfig::vit_b_16();
        c.vision.tower.layers = 2;
        c.text.tower.layers = 1;
        c
    }

    #[test]
    fn every_tensor_is_listed_once_in_checkpoint_order() {
        let tree = ClipTensors::new(&tiny());
        let names: Vec<&str> = tree.all().iter().map(|s| s.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        // Vision: 3 embeddings, 2 norms, 16 per block × 2; text: 2 embeddings, 16 × 1 block,
        // 1 norm; 2 projections; the temperature.
        assert_eq!(names.len(), (3 + 4 + 2 * 16) + (2 + 16 + 2) + 2 + 1);
        assert_eq!(names[0], "vision_model.embeddings.class_embedding");
        assert_eq!(names[names.len() - 1], "logit_scale");
        assert_eq!(tree.vision.layers[1].fc1.weight.shape, vec![3072, 768]);
    }

    #[test]
    fn openai_keys_follow_the_state_dict() {
        let tree = ClipTensors::new(&tiny());
        fn key(s: &TensorSpec) -> (&str, Layout) {
            (&s.openai.name, s.openai.layout)
        }
        let layer = &tree.vision.layers[1];
        assert_eq!(
            key(&layer.k_proj.weight),
            (
                "visual.transformer.resblocks.1.attn.in_proj_weight",
                Layout::Third(1)
            )
        );
        assert_eq!(
            key(layer.v_proj.bias.as_ref().unwrap()),
            (
                "visual.transformer.resblocks.1.attn.in_proj_bias",
                Layout::Third(2)
            )
        );
        assert_eq!(
            key(&tree.text.layers[0].fc2.weight),
            ("transformer.resblocks.0.mlp.c_proj.weight", Layout::Same)
        );
        assert_eq!(
            key(&tree.text.final_layer_norm.bias),
            ("ln_final.bias", Layout::Same)
        );
        assert_eq!(
            key(&tree.text.position_embedding),
            ("positional_embedding", Layout::Same)
        );
        assert_eq!(
            key(&tree.visual_projection.weight),
            ("visual.proj", Layout::Transposed)
        );
        assert_eq!(
            tree.vision.patch_embedding.openai.name,
            "visual.conv1.weight"
        );
    }
}
