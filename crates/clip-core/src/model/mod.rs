//! The whole CLIP: both towers, both projections, and the image/text encoders the paper uses.

use burn::tensor::{Device, Tensor};

use crate::config::ClipConfig;
use crate::error::Result;
use crate::input::query::Method;
use crate::input::tokenizer::Tokenized;
use crate::model::nn::Linear;
use crate::model::text::{PrefixStates, TextTransformer};
use crate::model::vision::VisionTransformer;
use crate::weights::checkpoint::Checkpoint;
use crate::weights::load::Weights;
use crate::weights::pack::Pack;
use crate::weights::random::RandomWeights;
use crate::weights::source::WeightSource;
use crate::weights::tree::ClipTensors;

pub mod attention;
pub mod calibration;
pub(crate) mod cpu;
pub mod encoder;
pub mod int8;
pub mod nn;
pub mod packed;
pub mod text;
pub mod vision;

/// CLIP with both towers on one device.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Sizes and surgery depth.
    pub config: ClipConfig,
    /// Image tower.
    pub vision_model: VisionTransformer,
    /// Text tower.
    pub text_model: TextTransformer,
    /// `W_v → E`, no bias.
    pub visual_projection: Linear,
    /// `W_t → E`, no bias.
    pub text_projection: Linear,
    /// Learned temperature (log scale), as stored.
    pub logit_scale: f32,
    device: Device,
}

/// L2-normalises along the last dimension (`x / max(‖x‖, 1e-12)`).
pub fn l2_normalize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = (x.clone() * x.clone())
        .sum_dim(D - 1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

impl Clip {
    /// Loads a checkpoint from safetensors bytes.
    ///
    /// Hugging Face naming needs `config` (from `config.json`); OpenAI naming carries no
    /// config, so it is inferred from the tensor shapes, and a given `config` must agree.
    pub fn from_safetensors(
        bytes: &[u8],
        config: Option<ClipConfig>,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::parse(bytes)?;
        let config = ckpt.config(config)?;
        ckpt.check(&config)?;
        Self::load(&ckpt, config, device)
    }

    /// Puts what the loading pipeline ([`crate::weights::load`]) produced on `device`.
    pub fn from_weights(weights: &Weights, device: &Device) -> Result<Self> {
        match weights {
            Weights::Pack(pack) => Self::from_pack(pack, device),
            Weights::Checkpoint { bytes, config } => {
                Self::load(&Checkpoint::parse(bytes)?, config.clone(), device)
            }
        }
    }

    /// Loads a weight pack (its shards already checked).
    pub fn from_pack(pack: &Pack, device: &Device) -> Result<Self> {
        Self::load(pack, pack.manifest.config.clone(), device)
    }

    /// Loads every tensor of `config` from a weight source (checkpoint, pack or random).
    pub fn load(weights: &dyn WeightSource, config: ClipConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let tensors = ClipTensors::new(&config);
        Ok(Self {
            vision_model: VisionTransformer::load(
                weights,
                &tensors.vision,
                &config.vision,
                device,
            )?,
            text_model: TextTransformer::load(weights, &tensors.text, &config.text, device)?,
            visual_projection: Linear::load(weights, &tensors.visual_projection, device)?,
            text_projection: Linear::load(weights, &tensors.text_projection, device)?,
            logit_scale: weights
                .float(&tensors.logit_scale)?
                .data
                .first()
                .copied()
                .unwrap_or(0.0),
            config,
            device: device.clone(),
        })
    }

    /// A randomly initialised model of the given size (benchmarks: same compute as the real
    /// weights, no download).
    pub fn random(config: ClipConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::load(&RandomWeights::new(seed), config, device)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Image tokens `[B, 1 + N, E]`, each L2-normalised; token 0 is the class token.
    ///
    /// `pixels: [B, 3, H, W]`, normalised; H and W multiples of the patch size.
    pub fn encode_image(&self, pixels: Tensor<4>, method: Method) -> Result<Tensor<3>> {
        let depth = match method {
            Method::Surgery => self.config.surgery_depth,
            Method::Raw => 0,
        };
        let tokens = self.vision_model.forward(pixels, depth)?;
        Ok(l2_normalize(self.visual_projection.forward(tokens)))
    }

    /// Text features `[B, E]` (projected, not normalised) for tokenized prompts.
    pub fn encode_text(&self, batch: &[Tokenized]) -> Result<Tensor<2>> {
        self.encode_text_continued(batch, None)
    }

    /// Every token's projected feature `[T, E]` (not normalised) for one text, SOT to EOT
    /// ([`TextTransformer::token_states`]).
    pub fn encode_tokens(&self, tokens: &Tokenized) -> Result<Tensor<2>> {
        let states = self.text_model.token_states(tokens, &self.device)?;
        Ok(self.text_projection.forward(states))
    }

    /// [`Self::encode_text`] where prompt `i` may continue prefix `which[i]` of `states`
    /// ([`TextTransformer::forward_continued`]).
    pub fn encode_text_continued(
        &self,
        batch: &[Tokenized],
        prefixes: Option<(&PrefixStates, &[usize])>,
    ) -> Result<Tensor<2>> {
        let pooled = self
            .text_model
            .forward_continued(batch, prefixes, &self.device)?;
        Ok(self.text_projection.forward(pooled))
    }
}
