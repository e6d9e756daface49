//! The ViT image tower, with CLIP Surgery's architecture surgery as an explicit code path.

use burn::tensor::{Device, Tensor};

use crate::config::VisionConfig;
use crate::error::{ClipError, Result};
use crate::input::preprocess::MAX_INPUT_SIDE;
use crate::model::cpu::matmul_weight;
use crate::model::encoder::EncoderLayer;
use crate::model::nn::{LayerNorm, upload};
use crate::output::maps::resize_bilinear;
use crate::weights::host::HostTensor;
use crate::weights::source::WeightSource;
use crate::weights::tree::VisionTensors;

/// Hugging Face `CLIPVisionTransformer` (without the projection, which lives in the model).
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    /// Sizes.
    pub config: VisionConfig,
    /// The stride-P patch convolution as a matrix, `[3·P·P, W]` (channel-major patch order).
    pub patch_embedding: Tensor<2>,
    /// The class token, `[W]`.
    pub class_embedding: Tensor<1>,
    /// Position embedding for the training grid, `[G²+1, W]`, kept on the host: each input
    /// size gets its own re-gridded copy from [`interpolate_pos_embed`]; the model never changes.
    pub position_embedding: HostTensor,
    /// LayerNorm after the embeddings (`ln_pre`).
    pub pre_layrnorm: LayerNorm,
    /// Residual attention blocks.
    pub layers: Vec<EncoderLayer>,
    /// LayerNorm applied to every output token (`ln_post`).
    pub post_layernorm: LayerNorm,
}

/// Re-grids a `[1 + G², W]` position embedding (class slot first) to `gh × gw` patches with
/// bilinear interpolation (align_corners = false), keeping the class slot, as the official code
/// does for inputs other than the training size. A pure function: returns a new table.
pub fn interpolate_pos_embed(pos: &HostTensor, grid: [usize; 2]) -> HostTensor {
    let (rows, width) = (pos.shape[0], pos.shape[1]);
    let side = ((rows - 1) as f64).sqrt().round() as usize;
    if [side, side] == grid {
        return pos.clone();
    }
    let [gh, gw] = grid;
    // [G², W] → planar [W, G, G] → resize each channel plane → back to [gh·gw, W].
    let patches = HostTensor::new(vec![rows - 1, width], pos.data[width..].to_vec())
        .transposed()
        .expect("a matrix");
    let mut out = vec![0.0; (1 + gh * gw) * width];
    out[..width].copy_from_slice(&pos.data[..width]);
    for c in 0..width {
        let plane = &patches.data[c * side * side..(c + 1) * side * side];
        let resized = resize_bilinear(plane, [side, side], grid);
        for (i, v) in resized.into_iter().enumerate() {
            out[(1 + i) * width + c] = v;
        }
    }
    HostTensor::new(vec![1 + gh * gw, width], out)
}

impl VisionTransformer {
    /// Loads the image tower.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &VisionTensors,
        config: &VisionConfig,
        device: &Device,
    ) -> Result<Self> {
        let (w, p) = (config.tower.width, config.patch_size);
        let eps = config.tower.layer_norm_eps;
        // The stride-P convolution as a `[3·P·P, W]` matrix (channel-major patch order).
        let conv = weights.float(&tensors.patch_embedding)?;
        let patch_embedding = HostTensor::new(vec![w, 3 * p * p], conv.data)
            .transposed()
            .expect("a [W, 3·P·P] matrix");
        let layers = tensors
            .layers
            .iter()
            .map(|layer| EncoderLayer::load(weights, layer, &config.tower, device))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            patch_embedding: upload(patch_embedding, device),
            class_embedding: upload(weights.float(&tensors.class_embedding)?, device),
            position_embedding: weights.float(&tensors.position_embedding)?,
            pre_layrnorm: LayerNorm::load(weights, &tensors.pre_layrnorm, eps, device)?,
            layers,
            post_layernorm: LayerNorm::load(weights, &tensors.post_layernorm, eps, device)?,
        })
    }

    /// The patch grid `[gh, gw]` for an input of `height × width` pixels, or an error if the
    /// size is not a positive multiple of the patch.
    pub fn grid_for(&self, height: usize, width: usize) -> Result<[usize; 2]> {
        let p = self.config.patch_size;
        if height == 0 || width == 0 || !height.is_multiple_of(p) || !width.is_multiple_of(p) {
            return Err(ClipError::BadInputSize {
                height,
                width,
                patch: p,
                max: MAX_INPUT_SIDE,
            });
        }
        Ok([height / p, width / p])
    }

    /// Patch + class + position embeddings and `ln_pre`: `[B, 3, H, W] → [B, 1 + gh·gw, W]`.
    pub fn embed(&self, pixels: Tensor<4>) -> Result<Tensor<3>> {
        let [b, c, h, w] = pixels.dims();
        let [gh, gw] = self.grid_for(h, w)?;
        let p = self.config.patch_size;
        let width = self.config.tower.width;
        let device = pixels.device();
        // A stride-P convolution is a matmul over non-overlapping patches.
        let patches = pixels
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5]) // [B, gh, gw, C, P, P]
            .reshape([b, gh * gw, c * p * p]);
        let tokens = matmul_weight(patches, &self.patch_embedding); // [B, N, W]
        let class = self
            .class_embedding
            .clone()
            .reshape([1, 1, width])
            .repeat_dim(0, b);
        let pos = upload::<2>(
            interpolate_pos_embed(&self.position_embedding, [gh, gw]),
            &device,
        );
        let x = Tensor::cat(vec![class, tokens], 1) + pos.unsqueeze::<3>();
        Ok(self.pre_layrnorm.forward(x))
    }

    /// Block `block`'s attention of token `query` (0: the class token; `1 + row·gw + col`: a
    /// patch) to every token, averaged over heads, for one image: `[2, 1 + N]`, q-k then v-v
    /// ([`SelfAttention::attention_rows`](crate::model::attention::SelfAttention::attention_rows)).
    /// Both read `ln_1` of the original path — the only attention input in either path — and
    /// the original path is raw CLIP's, so this does not depend on the surgery depth.
    pub fn attention_rows(
        &self,
        pixels: Tensor<4>,
        block: usize,
        query: usize,
    ) -> Result<Tensor<2>> {
        let blocks = self.layers.len();
        let mut x = self.embed(pixels)?;
        let [b, n, _] = x.dims();
        if block >= blocks || query >= n || b != 1 {
            return Err(ClipError::BadAttentionQuery {
                block,
                blocks,
                query,
                tokens: n,
            });
        }
        for layer in &self.layers[..block] {
            x = layer.forward(x, None);
        }
        let layer = &self.layers[block];
        Ok(layer
            .self_attn
            .attention_rows(layer.layer_norm1.forward(x), query))
    }

    /// All tokens after `ln_post`, `[B, 1 + N, W]`.
    ///
    /// `surgery_depth = 0` is plain CLIP. Otherwise the last `surgery_depth` blocks run the
    /// dual path ([`EncoderLayer::forward_dual`]); the output is the surgery path's patch
    /// tokens with the ORIGINAL path's class token (official `x[0] = x_ori[0]`), so the
    /// image-level feature (and CLS scores) are CLIP's own.
    pub fn forward(&self, pixels: Tensor<4>, surgery_depth: usize) -> Result<Tensor<3>> {
        let mut x = self.embed(pixels)?;
        let split = self.layers.len() - surgery_depth.min(self.layers.len());
        for layer in &self.layers[..split] {
            x = layer.forward(x, None);
        }
        if split < self.layers.len() {
            let (mut surgery, mut original) = (x.clone(), x);
            for layer in &self.layers[split..] {
                (surgery, original) = layer.forward_dual(surgery, original);
            }
            let [b, n, w] = surgery.dims();
            x = Tensor::cat(
                vec![
                    original.slice([0..b, 0..1, 0..w]),
                    surgery.slice([0..b, 1..n, 0..w]),
                ],
                1,
            );
        }
        Ok(self.post_layernorm.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_embed_same_grid_is_identity_and_class_slot_is_kept() {
        let pos = HostTensor::new(vec![5, 2], (0..10).map(|v| v as f32).collect());
        assert_eq!(interpolate_pos_embed(&pos, [2, 2]), pos);
        let up = interpolate_pos_embed(&pos, [4, 3]);
        assert_eq!(up.shape, vec![13, 2]);
        assert_eq!(&up.data[..2], &[0.0, 1.0]);
    }

    #[test]
    fn pos_embed_upsampling_matches_hand_computed_bilinear() {
        // One channel, 2×2 grid [[0, 1], [2, 3]] → 4×4; torch gives row 0 = [0, .25, .75, 1].
        let pos = HostTensor::new(vec![5, 1], vec![9.0, 0.0, 1.0, 2.0, 3.0]);
        let up = interpolate_pos_embed(&pos, [4, 4]);
        assert_eq!(&up.data[1..5], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&up.data[13..17], &[2.0, 2.25, 2.75, 3.0]);
    }
}
