//! The few layers CLIP needs, as plain tensors: inference only, so no `Module` machinery.
//! Field names follow the Hugging Face checkpoint (`fc1`, `layer_norm1`, …).

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData, activation, module};

use crate::config::Activation;
use crate::error::Result;
use crate::model::cpu;
use crate::model::int8::Int8Matrix;
use crate::model::packed::PackedMatrix;
use crate::weights::host::HostTensor;
use crate::weights::source::{Matrix, WeightSource};
use crate::weights::tree::{LinearTensors, NormTensors};

/// Uploads a host tensor of rank `D`, handing its buffer over (no copy on the host: the
/// weights are only ever in memory once more than on the device).
pub(crate) fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

/// Uploads a matrix. A quantized one stays quantized on a GPU, where memory is what runs out;
/// on the CPU (burn flex), where burn's quantized matmul dequantizes the whole weight on every
/// call (7.5× slower than f32 on ViT-B/16, `benches/quantized.rs`), [`Linear`] runs it as
/// integers instead, and what else is quantized is widened to f32 here.
pub(crate) fn upload_matrix(m: Matrix, device: &Device) -> Tensor<2> {
    match m {
        Matrix::Float(t) => upload(t, device),
        Matrix::Quant(q) if *device == Device::flex() => upload(q.dequantize(), device),
        Matrix::Quant(q) => Tensor::from_data(q.to_tensor_data(), device),
    }
}

/// Where a linear layer's product runs.
#[derive(Debug, Clone)]
// One per layer, and the large variant is the usual one: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Weight {
    /// `[in, out]` on a GPU: f32, or burn's quantized blocks.
    Device(Tensor<2>),
    /// `[in, out]` f32 on the CPU, its products split by columns across the thread pool
    /// ([`cpu::linear`]).
    Cpu(Tensor<2>),
    /// `[in, out]` int8 on the host, for the CPU's integer product (a quantized pack there).
    Int8(Arc<Int8Matrix>),
    /// `[in, out]` f32 packed on the host, for the CPU's f32 product where burn's is slower
    /// (wasm: [`PackedMatrix::PREFERRED`]).
    Packed(Arc<PackedMatrix>),
}

/// `y = x Wᵀ + b` with `W` stored `[in, out]` (burn's layout).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    /// `[out]`.
    bias: Option<Tensor<1>>,
    /// The bias on the host, for the integer product's epilogue.
    host_bias: Option<Arc<[f32]>>,
}

impl Linear {
    /// Loads a linear layer's weight (`[out, in]` in a checkpoint) and bias.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &LinearTensors,
        device: &Device,
    ) -> Result<Self> {
        let bias = match &tensors.bias {
            Some(bias) => Some(weights.float(bias)?),
            None => None,
        };
        let matrix = weights.matrix(&tensors.weight)?;
        if *device != Device::flex() {
            return Ok(Self {
                weight: Weight::Device(upload_matrix(matrix, device)),
                bias: bias.map(|b| upload(b, device)),
                host_bias: None,
            });
        }
        // The CPU: a host product where one applies (it reads the bias on the host), else
        // burn's. A quantized matrix runs as integers.
        let host = |weight| Self {
            weight,
            bias: None,
            host_bias: bias.as_ref().map(|b| b.data.clone().into()),
        };
        let float = match matrix {
            Matrix::Quant(q) => {
                let float = q.dequantize();
                match Int8Matrix::quantize(&float) {
                    Some(int8) => return Ok(host(Weight::Int8(Arc::new(int8)))),
                    None => float,
                }
            }
            Matrix::Float(t) => t,
        };
        if PackedMatrix::PREFERRED
            && let Some(packed) = PackedMatrix::pack(&float)
        {
            return Ok(host(Weight::Packed(Arc::new(packed))));
        }
        Ok(Self {
            weight: Weight::Cpu(upload(float, device)),
            bias: bias.map(|b| upload(b, device)),
            host_bias: None,
        })
    }

    /// Whether the product runs as integers (an int8 or 4-bit pack on the CPU).
    pub fn is_integer(&self) -> bool {
        matches!(self.weight, Weight::Int8(_))
    }

    /// `[.., in] → [.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.weight {
            Weight::Device(w) => module::linear(x, w.clone(), self.bias.clone()),
            Weight::Cpu(w) => cpu::linear(x, w, self.bias.as_ref()),
            Weight::Int8(w) => host_product(x, w.shape(), |x, rows| {
                w.matmul(x, rows, self.host_bias.as_deref())
            }),
            Weight::Packed(w) => host_product(x, w.shape(), |x, rows| {
                w.matmul(x, rows, self.host_bias.as_deref())
            }),
        }
    }
}

/// `x W` by a product on the host (`product(x, rows)` → `[rows, N]`) for a CPU tensor `x`
/// `[.., K]` and `W` `[K, N]`.
fn host_product<const D: usize>(
    x: Tensor<D>,
    [k, n]: [usize; 2],
    product: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> Tensor<D> {
    let device = x.device();
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    let out = match x.into_data().try_into_vec_as::<f32>() {
        Ok(x) if x.len() == rows * k => product(&x, rows),
        // Not reachable (activations are f32 on the CPU); NaN, which no map survives, rather
        // than numbers that look like a result.
        _ => vec![f32::NAN; rows * n],
    };
    dims[D - 1] = n;
    Tensor::from_data(TensorData::new(out, dims), &device)
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
        self.fc2.forward(self.hidden(x))
    }

    /// `act(fc1(x))`: `[.., W] → [.., 4W]`, the input of `fc2`.
    pub fn hidden<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.fc1.forward(x);
        match self.activation {
            Activation::QuickGelu => cpu::quick_gelu(h),
            Activation::Gelu => activation::gelu(h),
        }
    }
}
