//! Multi-head self-attention, plus the paper's dual form (§3.2, "architecture surgery").
//!
//! The dual form computes, from the same `ln_1` input and the same weights, both the original
//! attention `softmax(s·q kᵀ)·v` and the v-v attention `softmax(s·v vᵀ)·v` that CLIP Surgery
//! adds: with q and k replaced by v, every token attends to tokens with similar *values*, which
//! keeps the map on the object instead of the "opposite" background the q-k path highlights.

use burn::tensor::Tensor;

use crate::model::cpu;
use crate::model::nn::Linear;

/// Self-attention with separate q/k/v projections (Hugging Face layout).
#[derive(Debug, Clone)]
pub struct SelfAttention {
    /// Query projection `W → W`.
    pub q_proj: Linear,
    /// Key projection `W → W`.
    pub k_proj: Linear,
    /// Value projection `W → W`.
    pub v_proj: Linear,
    /// Output projection `W → W`.
    pub out_proj: Linear,
    /// Number of heads.
    pub heads: usize,
}

/// The two outputs of [`SelfAttention::forward_dual`], both after `out_proj`.
#[derive(Debug, Clone)]
pub struct DualAttention {
    /// The v-v path (CLIP Surgery's new path).
    pub surgery: Tensor<3>,
    /// The unchanged q-k path.
    pub original: Tensor<3>,
}

impl SelfAttention {
    /// `[B, N, W] → [B, H, N, W/H]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, n, w] = x.dims();
        x.reshape([b, n, self.heads, w / self.heads])
            .swap_dims(1, 2)
    }

    /// `[B, H, N, W/H] → [B, N, W]`.
    fn merge_heads(x: Tensor<4>) -> Tensor<3> {
        let [b, h, n, d] = x.dims();
        x.swap_dims(1, 2).reshape([b, n, h * d])
    }

    /// `softmax(s · a bᵀ + mask) · v` per head; all `[B, H, N, d]`, mask `[N, N]` additive.
    fn attend(
        &self,
        a: Tensor<4>,
        b: Tensor<4>,
        v: Tensor<4>,
        mask: Option<&Tensor<2>>,
    ) -> Tensor<4> {
        let [.., d] = a.dims();
        let scale = (d as f64).powf(-0.5);
        let mut scores = a.matmul(b.swap_dims(2, 3)) * scale; // [B, H, N, N]
        if let Some(mask) = mask {
            scores = scores + mask.clone().unsqueeze::<4>();
        }
        cpu::softmax(scores).matmul(v)
    }

    /// Standard attention. `x: [B, N, W]`, optional additive `mask: [N, N]` → `[B, N, W]`.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>) -> Tensor<3> {
        let q = self.split_heads(self.q_proj.forward(x.clone()));
        let k = self.split_heads(self.k_proj.forward(x.clone()));
        let v = self.split_heads(self.v_proj.forward(x));
        self.out_proj
            .forward(Self::merge_heads(self.attend(q, k, v, mask)))
    }

    /// The attention of token `query` to every token, averaged over heads, for input
    /// `x: [1, N, W]` (`ln_1`'s output): `[2, N]`, the q-k row (the original path's) then the
    /// v-v row (the surgery path's) — each a softmax, so each sums to 1 (paper Fig. 1).
    pub fn attention_rows(&self, x: Tensor<3>, query: usize) -> Tensor<2> {
        let [_, n, _] = x.dims();
        let q = self.split_heads(self.q_proj.forward(x.clone()));
        let k = self.split_heads(self.k_proj.forward(x.clone()));
        let v = self.split_heads(self.v_proj.forward(x));
        let [_, h, _, d] = q.dims();
        let scale = (d as f64).powf(-0.5);
        let row = |a: Tensor<4>, b: Tensor<4>| {
            let a = a.slice([0..1, 0..h, query..query + 1, 0..d]);
            let probs = cpu::softmax(a.matmul(b.swap_dims(2, 3)) * scale); // [1, H, 1, N]
            probs.mean_dim(1).reshape([1, n])
        };
        Tensor::cat(vec![row(q, k), row(v.clone(), v)], 0)
    }

    /// Both paths of a surgery block from one input `x: [B, N, W]` (the original path's
    /// `ln_1` output). The q-k path is exactly [`Self::forward`]; the v-v path uses the same
    /// projections and scale with q and k replaced by v (official `Attention` module).
    pub fn forward_dual(&self, x: Tensor<3>) -> DualAttention {
        let q = self.split_heads(self.q_proj.forward(x.clone()));
        let k = self.split_heads(self.k_proj.forward(x.clone()));
        let v = self.split_heads(self.v_proj.forward(x));
        let original = self.attend(q, k, v.clone(), None);
        let surgery = self.attend(v.clone(), v.clone(), v, None);
        // One out_proj matmul for both paths: stack them along the batch dimension.
        let batch = original.dims()[0];
        let both = self
            .out_proj
            .forward(Self::merge_heads(Tensor::cat(vec![surgery, original], 0)));
        let [_, n, w] = both.dims();
        DualAttention {
            surgery: both.clone().slice([0..batch, 0..n, 0..w]),
            original: both.slice([batch..2 * batch, 0..n, 0..w]),
        }
    }
}
