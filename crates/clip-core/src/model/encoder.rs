//! A pre-norm residual attention block, single path and CLIP Surgery's dual path.

use burn::tensor::{Device, Tensor};

use crate::config::TowerConfig;
use crate::error::Result;
use crate::model::attention::SelfAttention;
use crate::model::nn::{LayerNorm, Linear, Mlp};
use crate::weights::source::WeightSource;
use crate::weights::tree::LayerTensors;

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
    /// Loads one block.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &LayerTensors,
        cfg: &TowerConfig,
        device: &Device,
    ) -> Result<Self> {
        let lin = |t| Linear::load(weights, t, device);
        let norm = |t| LayerNorm::load(weights, t, cfg.layer_norm_eps, device);
        Ok(Self {
            self_attn: SelfAttention {
                q_proj: lin(&tensors.q_proj)?,
                k_proj: lin(&tensors.k_proj)?,
                v_proj: lin(&tensors.v_proj)?,
                out_proj: lin(&tensors.out_proj)?,
                heads: cfg.heads,
            },
            layer_norm1: norm(&tensors.layer_norm1)?,
            mlp: Mlp {
                fc1: lin(&tensors.fc1)?,
                fc2: lin(&tensors.fc2)?,
                activation: cfg.activation,
            },
            layer_norm2: norm(&tensors.layer_norm2)?,
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
