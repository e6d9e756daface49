//! The few layers CLIP needs, as plain tensors: inference only, so no `Module` machinery.
//! Field names follow the Hugging Face checkpoint (`fc1`, `layer_norm1`, …).

use burn::tensor::{Device, Tensor, TensorData, activation, module};

use crate::config::Activation;
use crate::error::Result;
use crate::weights::{Checkpoint, HostTensor};

/// Uploads a host tensor of rank `D`.
pub(crate) fn upload<const D: usize>(t: &HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// A small deterministic generator for random-init models (benchmarks, unit tests): the
/// numbers only need to be reproducible and roughly unit-scaled, not cryptographic.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, shape: &[usize], scale: f32) -> HostTensor {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect();
        HostTensor::new(shape.to_vec(), data)
    }
}

/// `y = x Wᵀ + b` with `W` stored `[in, out]` on the device (burn's layout).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// Loads `<prefix>.weight` (`[out, in]` in the file) and, if `bias`, `<prefix>.bias`.
    pub fn load(
        ckpt: &Checkpoint,
        prefix: &str,
        shape: [usize; 2],
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        let [d_in, d_out] = shape;
        let weight = ckpt
            .get_shaped(&format!("{prefix}.weight"), &[d_out, d_in])?
            .transposed();
        let bias = if bias {
            Some(upload(
                &ckpt.get_shaped(&format!("{prefix}.bias"), &[d_out])?,
                device,
            ))
        } else {
            None
        };
        Ok(Self {
            weight: upload(&weight, device),
            bias,
        })
    }

    /// Random init (`U(±1/√in)` like PyTorch), for benchmarks.
    pub fn random(rng: &mut SplitMix, shape: [usize; 2], bias: bool, device: &Device) -> Self {
        let scale = 1.0 / (shape[0] as f32).sqrt();
        Self {
            weight: upload(&rng.uniform(&shape, scale), device),
            bias: bias.then(|| upload(&rng.uniform(&[shape[1]], scale), device)),
        }
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
    /// Loads `<prefix>.weight` and `<prefix>.bias`.
    pub fn load(
        ckpt: &Checkpoint,
        prefix: &str,
        width: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            weight: upload(
                &ckpt.get_shaped(&format!("{prefix}.weight"), &[width])?,
                device,
            ),
            bias: upload(
                &ckpt.get_shaped(&format!("{prefix}.bias"), &[width])?,
                device,
            ),
            eps,
        })
    }

    /// Random init around the identity.
    pub fn random(rng: &mut SplitMix, width: usize, eps: f64, device: &Device) -> Self {
        let mut weight = rng.uniform(&[width], 0.1);
        weight.data.iter_mut().for_each(|w| *w += 1.0);
        Self {
            weight: upload(&weight, device),
            bias: upload(&rng.uniform(&[width], 0.05), device),
            eps,
        }
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
