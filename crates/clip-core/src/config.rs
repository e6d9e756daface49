//! Model configuration: parsed from a Hugging Face `config.json`, inferred from OpenAI-style
//! weights, or taken from a named preset.

use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};

/// Feed-forward activation of a transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · σ(1.702 x)`: what OpenAI trained every released CLIP with.
    QuickGelu,
    /// The exact (erf) GELU, used by some open_clip/LAION checkpoints.
    Gelu,
}

impl Activation {
    fn from_hf(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Self::QuickGelu),
            "gelu" => Ok(Self::Gelu),
            other => Err(ClipError::Config(format!(
                "hidden_act `{other}` is not supported (quick_gelu, gelu)"
            ))),
        }
    }
}

/// One transformer tower (text or vision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerConfig {
    /// Residual stream width `W`.
    pub width: usize,
    /// Number of residual attention blocks.
    pub layers: usize,
    /// Attention heads per block; `W / heads` is the head dimension.
    pub heads: usize,
    /// Hidden width of the feed-forward block (4·W in all released CLIPs).
    pub mlp_width: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl TowerConfig {
    /// Head dimension `W / heads`.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    fn validate(&self, tower: &str) -> Result<()> {
        if self.width == 0 || self.layers == 0 || self.heads == 0 || self.mlp_width == 0 {
            return Err(ClipError::Config(format!(
                "{tower}: sizes must be positive: {self:?}"
            )));
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(ClipError::Config(format!(
                "{tower}: width {} is not divisible by {} heads",
                self.width, self.heads
            )));
        }
        Ok(())
    }
}

/// The vision transformer (ViT) tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Transformer sizes.
    pub tower: TowerConfig,
    /// Side of the square patches, in pixels.
    pub patch_size: usize,
    /// Training resolution: the position embedding holds `(image_size / patch)²` patch slots.
    pub image_size: usize,
}

impl VisionConfig {
    /// Side of the patch grid the position embedding was trained for.
    pub fn grid_side(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// The text transformer tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Transformer sizes.
    pub tower: TowerConfig,
    /// Vocabulary size (49 408 for every CLIP BPE).
    pub vocab_size: usize,
    /// Context length (77).
    pub context_length: usize,
}

/// A whole CLIP model plus the surgery setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// Image tower.
    pub vision: VisionConfig,
    /// Text tower.
    pub text: TextConfig,
    /// Joint embedding width `E` (output of both projections).
    pub embed_dim: usize,
    /// How many of the last vision blocks get the dual (v-v) path. The paper uses 6.
    pub surgery_depth: usize,
}

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

/// One tensor the model reads, under its Hugging Face name.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Hugging Face `CLIPModel` key.
    pub name: String,
    /// Shape in a Hugging Face checkpoint.
    pub shape: Vec<usize>,
    /// How it is used.
    pub role: Role,
}

fn tower_specs(out: &mut Vec<TensorSpec>, prefix: &str, tower: &TowerConfig) {
    let (w, m) = (tower.width, tower.mlp_width);
    let mut push =
        |name: String, shape: Vec<usize>, role| out.push(TensorSpec { name, shape, role });
    for i in 0..tower.layers {
        let layer = format!("{prefix}.encoder.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            push(
                format!("{layer}.self_attn.{proj}.weight"),
                vec![w, w],
                Role::Matrix,
            );
            push(
                format!("{layer}.self_attn.{proj}.bias"),
                vec![w],
                Role::Float,
            );
        }
        for norm in ["layer_norm1", "layer_norm2"] {
            push(format!("{layer}.{norm}.weight"), vec![w], Role::Float);
            push(format!("{layer}.{norm}.bias"), vec![w], Role::Float);
        }
        push(format!("{layer}.mlp.fc1.weight"), vec![m, w], Role::Matrix);
        push(format!("{layer}.mlp.fc1.bias"), vec![m], Role::Float);
        push(format!("{layer}.mlp.fc2.weight"), vec![w, m], Role::Matrix);
        push(format!("{layer}.mlp.fc2.bias"), vec![w], Role::Float);
    }
}

/// The paper's default: architecture surgery on the last six ViT blocks.
pub const DEFAULT_SURGERY_DEPTH: usize = 6;

fn tower(width: usize, layers: usize, heads: usize) -> TowerConfig {
    TowerConfig {
        width,
        layers,
        heads,
        mlp_width: 4 * width,
        activation: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
    }
}

impl ClipConfig {
    fn openai(
        embed_dim: usize,
        vision: (usize, usize, usize, usize, usize),
        text_width: usize,
    ) -> Self {
        let (width, layers, heads, patch_size, image_size) = vision;
        Self {
            vision: VisionConfig {
                tower: tower(width, layers, heads),
                patch_size,
                image_size,
            },
            text: TextConfig {
                tower: tower(text_width, 12, text_width / 64),
                vocab_size: 49_408,
                context_length: 77,
            },
            embed_dim,
            surgery_depth: DEFAULT_SURGERY_DEPTH,
        }
    }

    /// Every tensor the model reads, in checkpoint order (vision, text, projections).
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let (v, t) = (&self.vision, &self.text);
        let (wv, wt, p) = (v.tower.width, t.tower.width, v.patch_size);
        let g = v.grid_side();
        let spec = |name: &str, shape: Vec<usize>, role| TensorSpec {
            name: name.to_string(),
            shape,
            role,
        };
        let norm = |out: &mut Vec<TensorSpec>, name: &str, w: usize| {
            out.push(spec(&format!("{name}.weight"), vec![w], Role::Float));
            out.push(spec(&format!("{name}.bias"), vec![w], Role::Float));
        };
        let mut out = vec![
            spec(
                "vision_model.embeddings.class_embedding",
                vec![wv],
                Role::Float,
            ),
            spec(
                "vision_model.embeddings.patch_embedding.weight",
                vec![wv, 3, p, p],
                Role::Float,
            ),
            spec(
                "vision_model.embeddings.position_embedding.weight",
                vec![g * g + 1, wv],
                Role::Float,
            ),
        ];
        norm(&mut out, "vision_model.pre_layrnorm", wv);
        tower_specs(&mut out, "vision_model", &v.tower);
        norm(&mut out, "vision_model.post_layernorm", wv);
        out.push(spec(
            "text_model.embeddings.token_embedding.weight",
            vec![t.vocab_size, wt],
            Role::Table,
        ));
        out.push(spec(
            "text_model.embeddings.position_embedding.weight",
            vec![t.context_length, wt],
            Role::Float,
        ));
        tower_specs(&mut out, "text_model", &t.tower);
        norm(&mut out, "text_model.final_layer_norm", wt);
        out.push(spec(
            "visual_projection.weight",
            vec![self.embed_dim, wv],
            Role::Matrix,
        ));
        out.push(spec(
            "text_projection.weight",
            vec![self.embed_dim, wt],
            Role::Matrix,
        ));
        out.push(spec("logit_scale", vec![], Role::Float));
        out
    }

    /// OpenAI ViT-B/32.
    pub fn vit_b_32() -> Self {
        Self::openai(512, (768, 12, 12, 32, 224), 512)
    }

    /// OpenAI ViT-B/16 (the paper's main model).
    pub fn vit_b_16() -> Self {
        Self::openai(512, (768, 12, 12, 16, 224), 512)
    }

    /// OpenAI ViT-L/14.
    pub fn vit_l_14() -> Self {
        Self::openai(768, (1024, 24, 16, 14, 224), 768)
    }

    /// OpenAI ViT-L/14 at 336 px.
    pub fn vit_l_14_336() -> Self {
        Self::openai(768, (1024, 24, 16, 14, 336), 768)
    }

    /// A preset by its usual name (`ViT-B/16`, `vit-b-16`, `openai/clip-vit-base-patch16`, …).
    pub fn preset(name: &str) -> Option<Self> {
        let key: String = name
            .to_ascii_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let key = key.trim_start_matches("openai").trim_start_matches("clip");
        match key {
            "vitb32" | "vitbasepatch32" => Some(Self::vit_b_32()),
            "vitb16" | "vitbasepatch16" => Some(Self::vit_b_16()),
            "vitl14" | "vitlargepatch14" => Some(Self::vit_l_14()),
            "vitl14336" | "vitl14336px" | "vitlargepatch14336" => Some(Self::vit_l_14_336()),
            _ => None,
        }
    }

    /// Parses a Hugging Face `CLIPModel` `config.json`. Missing fields take the same defaults
    /// as `transformers` (so old configs that only carry `*_config_dict` work too).
    pub fn from_hf_json(json: &str) -> Result<Self> {
        let raw: HfClipConfig = serde_json::from_str(json)
            .map_err(|e| ClipError::Config(format!("config.json: {e}")))?;
        let text = raw.text_config.or(raw.text_config_dict).unwrap_or_default();
        let vision = raw
            .vision_config
            .or(raw.vision_config_dict)
            .unwrap_or_default();
        let config = Self {
            vision: VisionConfig {
                // transformers' CLIPVisionConfig defaults (ViT-B/32).
                tower: vision.tower([768, 12, 12, 3072])?,
                patch_size: vision.patch_size.unwrap_or(32),
                image_size: vision.image_size.unwrap_or(224),
            },
            text: TextConfig {
                // transformers' CLIPTextConfig defaults.
                tower: text.tower([512, 12, 8, 2048])?,
                vocab_size: text.vocab_size.unwrap_or(49_408),
                context_length: text.max_position_embeddings.unwrap_or(77),
            },
            embed_dim: raw.projection_dim.unwrap_or(512),
            surgery_depth: DEFAULT_SURGERY_DEPTH,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks internal consistency (divisibility, surgery depth).
    pub fn validate(&self) -> Result<()> {
        self.vision.tower.validate("vision")?;
        self.text.tower.validate("text")?;
        if self.vision.patch_size == 0
            || !self
                .vision
                .image_size
                .is_multiple_of(self.vision.patch_size)
        {
            return Err(ClipError::Config(format!(
                "image_size {} is not a multiple of patch_size {}",
                self.vision.image_size, self.vision.patch_size
            )));
        }
        if self.surgery_depth > self.vision.tower.layers {
            return Err(ClipError::Config(format!(
                "surgery_depth {} exceeds the {} vision layers",
                self.surgery_depth, self.vision.tower.layers
            )));
        }
        if self.embed_dim == 0 || self.text.context_length == 0 || self.text.vocab_size == 0 {
            return Err(ClipError::Config(
                "embed_dim, context and vocab must be positive".into(),
            ));
        }
        Ok(())
    }

    /// A copy with another surgery depth (0 disables architecture surgery).
    pub fn with_surgery_depth(mut self, depth: usize) -> Self {
        self.surgery_depth = depth;
        self
    }
}

#[derive(Deserialize, Default)]
struct HfClipConfig {
    text_config: Option<HfTower>,
    text_config_dict: Option<HfTower>,
    vision_config: Option<HfTower>,
    vision_config_dict: Option<HfTower>,
    projection_dim: Option<usize>,
}

impl HfTower {
    /// The tower sizes, with `[width, layers, heads, mlp_width]` defaults for missing fields.
    fn tower(&self, [width, layers, heads, mlp_width]: [usize; 4]) -> Result<TowerConfig> {
        Ok(TowerConfig {
            width: self.hidden_size.unwrap_or(width),
            layers: self.num_hidden_layers.unwrap_or(layers),
            heads: self.num_attention_heads.unwrap_or(heads),
            mlp_width: self.intermediate_size.unwrap_or(mlp_width),
            activation: Activation::from_hf(self.hidden_act.as_deref().unwrap_or("quick_gelu"))?,
            layer_norm_eps: self.layer_norm_eps.unwrap_or(1e-5),
        })
    }
}

#[derive(Deserialize, Default)]
struct HfTower {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    // text
    vocab_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    // vision
    image_size: Option<usize>,
    patch_size: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_by_any_common_name() {
        assert_eq!(ClipConfig::preset("ViT-B/16"), Some(ClipConfig::vit_b_16()));
        assert_eq!(
            ClipConfig::preset("openai/clip-vit-base-patch16"),
            Some(ClipConfig::vit_b_16())
        );
        assert_eq!(
            ClipConfig::preset("ViT-L/14@336px"),
            Some(ClipConfig::vit_l_14_336())
        );
        assert_eq!(ClipConfig::preset("ViT-B-32"), Some(ClipConfig::vit_b_32()));
        assert_eq!(ClipConfig::preset("resnet50"), None);
    }

    #[test]
    fn hf_json_with_defaults_matches_b16_preset() {
        let json = r#"{"projection_dim": 512, "text_config": {},
            "vision_config": {"patch_size": 16}}"#;
        let b16 = ClipConfig::vit_b_16();
        assert_eq!(ClipConfig::from_hf_json(json).unwrap(), b16);
    }

    #[test]
    fn hf_json_rejects_unknown_activation_and_bad_sizes() {
        let act = r#"{"text_config": {"hidden_act": "swish"}}"#;
        assert!(matches!(
            ClipConfig::from_hf_json(act),
            Err(ClipError::Config(_))
        ));
        let heads = r#"{"vision_config": {"hidden_size": 100, "num_attention_heads": 3}}"#;
        assert!(matches!(
            ClipConfig::from_hf_json(heads),
            Err(ClipError::Config(_))
        ));
        assert!(matches!(
            ClipConfig::from_hf_json("{"),
            Err(ClipError::Config(_))
        ));
    }
}
