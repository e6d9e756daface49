//! The [`WeightSource`] the model loads through — implemented by checkpoints
//! ([`super::checkpoint::Checkpoint`]), weight packs ([`super::pack::Pack`]) and random init
//! ([`super::random::RandomWeights`]) — and [`Matrix`], what a linear layer's weight is on the
//! way to the device.

use crate::error::{ClipError, Result};
use crate::weights::host::HostTensor;
use crate::weights::quant::QuantMatrix;
use crate::weights::tree::TensorSpec;

/// A matrix as the model uploads it: float, or block-quantized (it then stays quantized on
/// the device).
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Plain `f32`.
    Float(HostTensor),
    /// int8 / int4 blocks with their scales.
    Quant(QuantMatrix),
}

impl Matrix {
    /// The shape (`[rows, cols]` for every matrix a source hands out).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Matrix::Float(t) => t.shape.clone(),
            Matrix::Quant(q) => q.shape.to_vec(),
        }
    }

    /// Appends row `r` in `f32` to `out`.
    pub fn extend_row(&self, r: usize, out: &mut Vec<f32>) {
        match self {
            Matrix::Float(t) => {
                let cols = t.shape.last().copied().unwrap_or(0);
                out.extend_from_slice(&t.data[r * cols..(r + 1) * cols]);
            }
            Matrix::Quant(q) => q.extend_row(r, out),
        }
    }

    /// The whole matrix in `f32`.
    pub fn to_f32(&self) -> HostTensor {
        match self {
            Matrix::Float(t) => t.clone(),
            Matrix::Quant(q) => q.dequantize(),
        }
    }

    /// The whole matrix in `f32`, without a copy when it is float already.
    pub fn into_f32(self) -> HostTensor {
        match self {
            Matrix::Float(t) => t,
            Matrix::Quant(q) => q.dequantize(),
        }
    }
}

/// Where the model's tensors come from: a checkpoint, a weight pack, or a random generator.
/// Tensors are asked for by their [`TensorSpec`] (see [`super::tree`]).
pub trait WeightSource {
    /// A tensor in `f32`, checked against the shape a Hugging Face checkpoint has.
    fn float(&self, spec: &TensorSpec) -> Result<HostTensor>;

    /// A linear weight (`[out, in]` in the checkpoint), returned as `[in, out]` (`y = x·W`,
    /// the layout burn's `linear` reads).
    fn matrix(&self, spec: &TensorSpec) -> Result<Matrix> {
        let t = self.float(spec)?;
        transposed(spec, &t).map(Matrix::Float)
    }

    /// A lookup table `[rows, cols]` as stored (the token embedding).
    fn table(&self, spec: &TensorSpec) -> Result<Matrix> {
        Ok(Matrix::Float(self.float(spec)?))
    }
}

/// The transpose of a tensor that must be a matrix.
pub(crate) fn transposed(spec: &TensorSpec, t: &HostTensor) -> Result<HostTensor> {
    t.transposed().ok_or_else(|| ClipError::ShapeMismatch {
        name: spec.name.clone(),
        expected: spec.shape.clone(),
        found: t.shape.clone(),
        hint: " (a matrix was expected)",
    })
}

/// A checked shape: the one error every source reports the same way.
pub(crate) fn check_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<()> {
    if expected == found {
        return Ok(());
    }
    Err(ClipError::ShapeMismatch {
        name: name.to_string(),
        expected: expected.to_vec(),
        found: found.to_vec(),
        hint: " (do config.json and the weights belong to the same model?)",
    })
}
