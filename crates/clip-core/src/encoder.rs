//! A pre-norm residual attention block, single path and CLIP Surgery's dual path.

use burn::tensor::{Device, Tensor};

use crate::attention::SelfAttention;
use crate::config::TowerConfig;
use crate::error::Result;
use crate::nn::{LayerNorm, Linear, Mlp};
use crate::weights::WeightSource;

/// `x + attn(ln1(x))`, then `x + mlp(ln2(x))` (Hugging Face `CLIPEncoderLayer`).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    /// Attention (q/k/v/out projections).
    pub self_attn: SelfAttention,
    /// LayerNorm before attention (`ln_1` in OpenAI naming).
    pub layer_norm1: LayerNorm,
    /// Feed-forward block.
    pub mlp: Mlp,
    /// LayerNorm before the feed-forward block (`ln_2`).
    pub layer_norm2: LayerNorm,
}

impl EncoderLayer {
    /// Loads `<prefix>.{self_attn,layer_norm1,mlp,layer_norm2}`.
    pub fn load(
        weights: &dyn WeightSource,
        prefix: &str,
        cfg: &TowerConfig,
        device: &Device,
    ) -> Result<Self> {
        let w = cfg.width;
        let lin = |name: &str, shape| {
            Linear::load(weights, &format!("{prefix}.{name}"), shape, true, device)
        };
        Ok(Self {
            self_attn: SelfAttention {
                q_proj: lin("self_attn.q_proj", [w, w])?,
                k_proj: lin("self_attn.k_proj", [w, w])?,
                v_proj: lin("self_attn.v_proj", [w, w])?,
                out_proj: lin("self_attn.out_proj", [w, w])?,
                heads: cfg.heads,
            },
            layer_norm1: LayerNorm::load(
                weights,
                &format!("{prefix}.layer_norm1"),
                w,
                cfg.layer_norm_eps,
                device,
            )?,
            mlp: Mlp {
                fc1: lin("mlp.fc1", [w, cfg.mlp_width])?,
                fc2: lin("mlp.fc2", [cfg.mlp_width, w])?,
                activation: cfg.activation,
            },
            layer_norm2: LayerNorm::load(
                weights,
                &format!("{prefix}.layer_norm2"),
                w,
                cfg.layer_norm_eps,
                device,
            )?,
        })
    }

    /// Single path. `x: [B, N, W]`, optional additive `mask: [N, N]`.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x), mask);
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }

    /// Dual path (official `ResidualAttentionBlock` with the surgery `Attention`).
    ///
    /// Both attentions read `ln_1` of the ORIGINAL path; the original path is updated exactly
    /// as in [`Self::forward`]; the surgery path only accumulates the v-v attention output and
    /// skips the FFN. At the first surgery block both inputs are the same tensor.
    /// Returns `(surgery, original)`, each `[B, N, W]`.
    pub fn forward_dual(&self, surgery: Tensor<3>, original: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let attn = self
            .self_attn
            .forward_dual(self.layer_norm1.forward(original.clone()));
        let original = original + attn.original;
        let original = original.clone() + self.mlp.forward(self.layer_norm2.forward(original));
        (surgery + attn.surgery, original)
    }
}
