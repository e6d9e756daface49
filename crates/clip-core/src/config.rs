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
    /// The name `transformers` gives it (`hidden_act`).
    fn hf_name(self) -> &'static str {
        match self {
            Self::QuickGelu => "quick_gelu",
            Self::Gelu => "gelu",
        }
    }

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
        if self.width > MAX_WIDTH || self.mlp_width > 4 * MAX_WIDTH || self.layers > MAX_LAYERS {
            return Err(ClipError::Config(format!(
                "{tower}: {} layers of width {} (feed-forward {}) is beyond any CLIP (at most \
                 {MAX_LAYERS} layers of width {MAX_WIDTH})",
                self.layers, self.width, self.mlp_width
            )));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(ClipError::Config(format!(
                "{tower}: layer_norm_eps {} is not a small positive number",
                self.layer_norm_eps
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

// Sanity bounds on a config read from a file: far above every released CLIP (ViT-bigG/14 is
// 48 × 1664 wide, text 32 × 1280, 49 408 tokens), far below sizes whose tensors cannot exist.
/// Widest residual stream or joint embedding accepted.
pub const MAX_WIDTH: usize = 8192;
/// Most blocks per tower accepted.
pub const MAX_LAYERS: usize = 128;
/// Largest vocabulary accepted.
pub const MAX_VOCAB: usize = 1 << 18;
/// Longest text context accepted.
pub const MAX_CONTEXT: usize = 4096;
/// Largest training resolution accepted.
pub const MAX_IMAGE_SIZE: usize = 4096;

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

    /// A "ViT-B/16"-style name from the tower shapes (OpenAI's names where the shapes are
    /// theirs; layers × width otherwise, and the native resolution when it is not 224).
    pub fn architecture(&self) -> String {
        let v = &self.vision;
        let size = match (v.tower.width, v.tower.layers) {
            (768, 12) => "B".to_string(),
            (1024, 24) => "L".to_string(),
            (1280, 32) => "H".to_string(),
            (w, l) => format!("{l}×{w}"),
        };
        let res = if v.image_size != 224 {
            format!("@{}px", v.image_size)
        } else {
            String::new()
        };
        format!("ViT-{size}/{}{res}", v.patch_size)
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
            surgery_depth: 0,
        };
        // The paper's depth, or every block of a shallower model.
        let config = Self {
            surgery_depth: DEFAULT_SURGERY_DEPTH.min(config.vision.tower.layers),
            ..config
        };
        config.validate()?;
        Ok(config)
    }

    /// A Hugging Face `CLIPModel` `config.json` for this model (`from_hf_json` reads it back;
    /// the surgery depth is not part of it). With it and the weights in Hugging Face naming,
    /// `transformers` loads the model as it loads any CLIP.
    pub fn to_hf_json(&self) -> String {
        let tower = |t: &TowerConfig| {
            serde_json::json!({
                "hidden_size": t.width,
                "intermediate_size": t.mlp_width,
                "num_hidden_layers": t.layers,
                "num_attention_heads": t.heads,
                "hidden_act": t.activation.hf_name(),
                "layer_norm_eps": t.layer_norm_eps,
                "projection_dim": self.embed_dim,
            })
        };
        let mut text = tower(&self.text.tower);
        let mut vision = tower(&self.vision.tower);
        for (key, value) in [
            ("model_type", serde_json::json!("clip_text_model")),
            ("vocab_size", self.text.vocab_size.into()),
            ("max_position_embeddings", self.text.context_length.into()),
            // The CLIP BPE's special tokens: transformers pools the text at `eos_token_id`.
            ("bos_token_id", 49_406.into()),
            ("eos_token_id", 49_407.into()),
            ("pad_token_id", 1.into()),
        ] {
            text[key] = value;
        }
        for (key, value) in [
            ("model_type", serde_json::json!("clip_vision_model")),
            ("image_size", self.vision.image_size.into()),
            ("patch_size", self.vision.patch_size.into()),
            ("num_channels", 3.into()),
        ] {
            vision[key] = value;
        }
        let config = serde_json::json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": self.embed_dim,
            "text_config": text,
            "vision_config": vision,
        });
        serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
    }

    /// Checks internal consistency (divisibility, surgery depth) and that the sizes are those
    /// of a model that can exist: a config comes from a server, and every size in it becomes an
    /// allocation.
    pub fn validate(&self) -> Result<()> {
        self.vision.tower.validate("vision")?;
        self.text.tower.validate("text")?;
        let v = &self.vision;
        if v.patch_size == 0
            || v.image_size < v.patch_size
            || v.image_size > MAX_IMAGE_SIZE
            || !v.image_size.is_multiple_of(v.patch_size)
        {
            return Err(ClipError::Config(format!(
                "image_size {} is not a positive multiple of patch_size {} (at most \
                 {MAX_IMAGE_SIZE})",
                self.vision.image_size, self.vision.patch_size
            )));
        }
        if self.surgery_depth > self.vision.tower.layers {
            return Err(ClipError::Config(format!(
                "surgery_depth {} exceeds the {} vision layers",
                self.surgery_depth, self.vision.tower.layers
            )));
        }
        let t = &self.text;
        let positive = self.embed_dim > 0 && t.context_length > 0 && t.vocab_size > 0;
        let plausible = self.embed_dim <= MAX_WIDTH
            && t.context_length <= MAX_CONTEXT
            && t.vocab_size <= MAX_VOCAB;
        if !(positive && plausible) {
            return Err(ClipError::Config(format!(
                "embed_dim {}, context {} and vocabulary {} must be positive and at most \
                 {MAX_WIDTH}, {MAX_CONTEXT} and {MAX_VOCAB}",
                self.embed_dim, t.context_length, t.vocab_size
            )));
        }
        Ok(())
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
    fn architectures_are_named_like_openai_does() {
        let mut c = ClipConfig::vit_b_16();
        assert_eq!(c.architecture(), "ViT-B/16");
        assert_eq!(ClipConfig::vit_b_32().architecture(), "ViT-B/32");
        c.vision.image_size = 336;
        c.vision.tower.width = 64;
        assert_eq!(c.architecture(), "ViT-12×64/16@336px");
    }

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
    fn hf_json_round_trips_every_preset() {
        for config in [
            ClipConfig::vit_b_32(),
            ClipConfig::vit_b_16(),
            ClipConfig::vit_l_14_336(),
        ] {
            let json = config.to_hf_json();
            assert_eq!(ClipConfig::from_hf_json(&json).unwrap(), config, "{json}");
        }
        let mut gelu = ClipConfig::vit_b_16();
        gelu.text.tower.activation = Activation::Gelu;
        assert!(gelu.to_hf_json().contains(r#""hidden_act": "gelu""#));
        assert_eq!(ClipConfig::from_hf_json(&gelu.to_hf_json()).unwrap(), gelu);
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
