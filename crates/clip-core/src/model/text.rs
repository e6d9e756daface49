//! The causal text transformer.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::TextConfig;
use crate::error::{ClipError, Result};
use crate::input::tokenizer::Tokenized;
use crate::model::encoder::EncoderLayer;
use crate::model::nn::{LayerNorm, upload};
use crate::weights::source::{Matrix, WeightSource};
use crate::weights::tree::TextTensors;

/// Additive mask value for future positions: large enough that `exp` underflows to exactly 0,
/// finite so that no backend has to handle infinities in its softmax.
const MASKED: f32 = -1e9;

/// Hugging Face `CLIPTextTransformer`, pooled at the end-of-text token.
#[derive(Debug, Clone)]
pub struct TextTransformer {
    /// Sizes.
    pub config: TextConfig,
    /// Token embedding `[V, W]`, kept on the host (quantized if the weights are): token ids
    /// are host data, so the lookup is a row copy, and a 49 408-row table never has to fit a GPU
    /// binding (ViT-L's is 152 MB in f32).
    pub token_embedding: Matrix,
    /// Position embedding `[context, W]`.
    pub position_embedding: Tensor<2>,
    /// Residual attention blocks (causal).
    pub layers: Vec<EncoderLayer>,
    /// Final LayerNorm (`ln_final`).
    pub final_layer_norm: LayerNorm,
}

impl TextTransformer {
    /// Loads the text tower.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &TextTensors,
        config: &TextConfig,
        device: &Device,
    ) -> Result<Self> {
        let eps = config.tower.layer_norm_eps;
        let layers = tensors
            .layers
            .iter()
            .map(|layer| EncoderLayer::load(weights, layer, &config.tower, device))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            token_embedding: weights.table(&tensors.token_embedding)?,
            position_embedding: upload(weights.float(&tensors.position_embedding)?, device),
            layers,
            final_layer_norm: LayerNorm::load(weights, &tensors.final_layer_norm, eps, device)?,
        })
    }

    /// Pooled text states `[B, W]` (final LayerNorm applied, not projected).
    ///
    /// Runs only the first `max(eot) + 1` positions of the batch: with a causal mask no
    /// position attends to a later one, so the states up to each EOT are the same as with the
    /// full 77-token context (the padding is pure wasted work — 4–8× for short prompts).
    /// EOT positions come from the token ids on the host, never from a device read-back.
    pub fn forward(&self, batch: &[Tokenized], device: &Device) -> Result<Tensor<2>> {
        let w = self.config.tower.width;
        let vocab = self.config.vocab_size;
        let b = batch.len();
        let len = batch
            .iter()
            .map(|t| t.eot + 1)
            .max()
            .ok_or(ClipError::EmptyQuery)?;
        if len > self.config.context_length {
            return Err(ClipError::Config(format!(
                "a prompt needs {len} positions, the model has {}",
                self.config.context_length
            )));
        }
        let mut embedded = Vec::with_capacity(b * len * w);
        for tokens in batch {
            for &id in &tokens.ids[..len] {
                let id = id as usize;
                if id >= vocab {
                    return Err(ClipError::Config(format!(
                        "token id {id} is outside the {vocab}-token vocabulary"
                    )));
                }
                self.token_embedding.extend_row(id, &mut embedded);
            }
        }
        let x = Tensor::<3>::from_data(TensorData::new(embedded, [b, len, w]), device);
        let x = x + self
            .position_embedding
            .clone()
            .slice([0..len, 0..w])
            .unsqueeze::<3>();
        let mask: Vec<f32> = (0..len * len)
            .map(|i| if i % len > i / len { MASKED } else { 0.0 })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [len, len]), device);
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(x, Some(&mask));
        }
        let x = self.final_layer_norm.forward(x).reshape([b * len, w]);
        let rows: Vec<i64> = batch
            .iter()
            .enumerate()
            .map(|(i, t)| (i * len + t.eot) as i64)
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [b]), device);
        Ok(x.select(0, rows))
    }
}
