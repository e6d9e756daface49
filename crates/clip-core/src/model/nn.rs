//! The few layers CLIP needs, as plain tensors: inference only, so no `Module` machinery.
//! Field names follow the Hugging Face checkpoint (`fc1`, `layer_norm1`, …).

use burn::tensor::{Device, Tensor, TensorData, activation, module};

use crate::config::Activation;
use crate::error::Result;
use crate::weights::host::HostTensor;
use crate::weights::source::{Matrix, WeightSource};
use crate::weights::tree::{LinearTensors, NormTensors};

/// Uploads a host tensor of rank `D`, handing its buffer over (no copy on the host: the
/// weights are only ever in memory once more than on the device).
pub(crate) fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

/// Uploads a matrix. A quantized one stays quantized on a GPU, where memory is what runs out.
/// On the CPU (burn flex) it is widened to f32 at load: flex's quantized matmul measured 7.5×
/// slower than f32 on ViT-B/16's image tower (`benches/quantized.rs`), and there the weights
/// live in host memory anyway; the pack still saves the download and the cache.
pub(crate) fn upload_matrix(m: Matrix, device: &Device) -> Tensor<2> {
    match m {
        Matrix::Float(t) => upload(t, device),
        Matrix::Quant(q) if *device == Device::flex() => upload(q.dequantize(), device),
        Matrix::Quant(q) => Tensor::from_data(q.to_tensor_data(), device),
    }
}

/// `y = x Wᵀ + b` with `W` stored `[in, out]` on the device (burn's layout).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`; float, or a burn quantized tensor (int8/int4 blocks stay packed on the
    /// device and `linear` streams them).
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// Loads a linear layer's weight (`[out, in]` in a checkpoint) and bias.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &LinearTensors,
        device: &Device,
    ) -> Result<Self> {
        let weight = upload_matrix(weights.matrix(&tensors.weight)?, device);
        let bias = match &tensors.bias {
            Some(bias) => Some(upload(weights.float(bias)?, device)),
            None => None,
        };
        Ok(Self { weight, bias })
    }

    /// `[.., in] → [.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::linear(x, self.weight.clone(), self.bias.clone())
    }
}

/// LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale `γ`, `[W]`.
    pub weight: Tensor<1>,
    /// Shift `β`, `[W]`.
    pub bias: Tensor<1>,
    /// Variance epsilon.
    pub eps: f64,
}

impl LayerNorm {
    /// Loads a LayerNorm's scale and shift.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &NormTensors,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            weight: upload(weights.float(&tensors.weight)?, device),
            bias: upload(weights.float(&tensors.bias)?, device),
            eps,
        })
    }

    /// `[.., W] → [.., W]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }
}

/// The feed-forward block: `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// `W → 4W`.
    pub fc1: Linear,
    /// `4W → W`.
    pub fc2: Linear,
    /// Activation between them.
    pub activation: Activation,
}

impl Mlp {
    /// `[.., W] → [.., W]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.fc1.forward(x);
        let h = match self.activation {
            // OpenAI's QuickGELU: x·σ(1.702x).
            Activation::QuickGelu => h.clone() * activation::sigmoid(h * 1.702),
            Activation::Gelu => activation::gelu(h),
        };
        self.fc2.forward(h)
    }
}
