//! Symmetric block quantization of weight matrices: one scale per 32 consecutive values of a
//! row, `q = round(x / s)` with `s = max|x| / q_max` (`q_max` 127 for int8, 7 for 4-bit; for
//! 4-bit, `s` may be a fraction of that when clipping the block's peak lowers its error).
//!
//! This is burn's `Q8S` / `Q4S` per-block-32 scheme, so a matrix goes to the device as it is
//! stored and stays quantized there (burn's `linear` streams the packed weight). Scales are kept
//! as f16 (rounded *up*, so the largest value of a block never clips): at 32 values per block,
//! f32 scales would cost 0.125 byte per weight — 19 MB on ViT-B/16 — for no measurable gain.

use half::f16;
use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};
use crate::weights::host::HostTensor;

/// Values per scale.
pub const BLOCK: usize = 32;

/// Bits per quantized value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bits {
    /// int8 in [-127, 127] (burn `Q8S`).
    Q8,
    /// int4 in [-7, 7], two per byte, low nibble first (burn `Q4S`).
    Q4,
}

impl Bits {
    /// The largest magnitude a value takes.
    pub fn q_max(self) -> f32 {
        match self {
            Bits::Q8 => 127.0,
            Bits::Q4 => 7.0,
        }
    }

    /// Bytes holding `n` values (`n` a multiple of [`BLOCK`]).
    pub fn value_bytes(self, n: usize) -> usize {
        match self {
            Bits::Q8 => n,
            Bits::Q4 => n / 2,
        }
    }

    /// Bytes of a `[rows, cols]` matrix as stored: values, then one f16 scale per block.
    pub fn encoded_len(self, rows: usize, cols: usize) -> usize {
        self.value_bytes(rows * cols) + rows * cols / BLOCK * 2
    }
}

/// A `[rows, cols]` matrix quantized in blocks of [`BLOCK`] along each row.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantMatrix {
    /// Value width.
    pub bits: Bits,
    /// `[rows, cols]`; `cols` is a multiple of [`BLOCK`].
    pub shape: [usize; 2],
    /// Row-major values: one `i8` per byte (Q8) or two nibbles per byte (Q4, low first).
    pub values: Vec<u8>,
    /// Row-major block scales, `[rows, cols / BLOCK]`.
    pub scales: Vec<f16>,
}

/// The smallest f16 not below `x`: a scale rounded down would push its block's largest value
/// past `q_max`, where it clips.
fn f16_up(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() >= x {
        h
    } else {
        f16::from_bits(h.to_bits() + 1)
    }
}

/// Peaks tried for a 4-bit block's scale, as fractions of its largest magnitude. At 15 levels
/// the step is coarse: clipping the block's one or two largest values to get a finer step for
/// the other thirty often lowers its squared error. On full-size random-init ViT-B/16 (16
/// labels, 6 inputs; README) this alone raised q4's lowest map correlation from 0.935 to 0.987.
/// int8's 255 levels gain nothing from it and always use the whole peak.
const Q4_PEAK_FRACTIONS: [f32; 7] = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7];

/// One block's f16 scale and codes: the scale (a fraction of the block's peak over `q_max`,
/// rounded up to f16) with the least squared error.
pub(crate) fn round_block(block: &[f32], bits: Bits) -> (f16, [i8; BLOCK]) {
    let q_max = bits.q_max();
    let peak = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let fractions: &[f32] = match bits {
        Bits::Q8 => &[1.0],
        Bits::Q4 => &Q4_PEAK_FRACTIONS,
    };
    let mut best = (f32::INFINITY, f16::from_bits(1), [0i8; BLOCK]);
    for fraction in fractions {
        // An all-zero block keeps a tiny positive scale: its values are 0 either way, and no
        // reader ever divides by zero.
        let scale = f16_up(peak * fraction / q_max).max(f16::from_bits(1));
        let s = scale.to_f32();
        let mut codes = [0i8; BLOCK];
        let mut error = 0.0;
        for (code, &x) in codes.iter_mut().zip(block) {
            let q = (x / s).round().clamp(-q_max, q_max);
            *code = q as i8;
            error += (x - q * s) * (x - q * s);
        }
        if error < best.0 {
            best = (error, scale, codes);
        }
    }
    (best.1, best.2)
}

impl QuantMatrix {
    /// Whether a matrix with `cols` columns can be block-quantized.
    pub fn fits(cols: usize) -> bool {
        cols > 0 && cols.is_multiple_of(BLOCK)
    }

    /// Quantizes a rank-2 host tensor whose last dimension is a multiple of [`BLOCK`].
    pub fn quantize(t: &HostTensor, bits: Bits) -> Result<Self> {
        let &[rows, cols] = t.shape.as_slice() else {
            return Err(ClipError::Config(format!(
                "only matrices are quantized, got shape {:?}",
                t.shape
            )));
        };
        if !Self::fits(cols) {
            return Err(ClipError::Config(format!(
                "a quantized matrix needs a multiple of {BLOCK} columns, got {cols}"
            )));
        }
        let mut scales = Vec::with_capacity(rows * cols / BLOCK);
        let mut codes = Vec::with_capacity(rows * cols);
        for block in t.data.chunks_exact(BLOCK) {
            let (scale, block_codes) = round_block(block, bits);
            scales.push(scale);
            codes.extend(block_codes);
        }
        Ok(Self::from_codes(bits, [rows, cols], &codes, scales))
    }

    /// A matrix from its codes (row-major, each within `bits`' range) and block scales.
    pub(crate) fn from_codes(
        bits: Bits,
        shape: [usize; 2],
        codes: &[i8],
        scales: Vec<f16>,
    ) -> Self {
        // Room for the scales too, so `into_bytes` appends them without moving the values.
        let mut values = Vec::with_capacity(bits.encoded_len(shape[0], shape[1]));
        match bits {
            Bits::Q8 => values.extend(codes.iter().map(|&v| v as u8)),
            Bits::Q4 => values.extend(
                codes
                    .chunks_exact(2)
                    .map(|p| (p[0] as u8 & 0x0f) | ((p[1] as u8 & 0x0f) << 4)),
            ),
        }
        Self {
            bits,
            shape,
            values,
            scales,
        }
    }

    /// Value `i` (row-major) as a signed integer.
    fn value(&self, i: usize) -> i8 {
        match self.bits {
            Bits::Q8 => self.values[i] as i8,
            Bits::Q4 => {
                let byte = self.values[i / 2];
                let nibble = if i.is_multiple_of(2) {
                    byte << 4
                } else {
                    byte & 0xf0
                };
                (nibble as i8) >> 4
            }
        }
    }

    /// Appends row `r`, dequantized, to `out` (the token-embedding lookup).
    pub fn extend_row(&self, r: usize, out: &mut Vec<f32>) {
        let cols = self.shape[1];
        out.extend(
            (r * cols..(r + 1) * cols)
                .map(|i| f32::from(self.value(i)) * self.scales[i / BLOCK].to_f32()),
        );
    }

    /// The matrix in `f32`.
    pub fn dequantize(&self) -> HostTensor {
        let mut data = Vec::with_capacity(self.shape[0] * self.shape[1]);
        for r in 0..self.shape[0] {
            self.extend_row(r, &mut data);
        }
        HostTensor::new(self.shape.to_vec(), data)
    }

    /// The stored form: values, then the scales as little-endian f16.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.clone().into_bytes()
    }

    /// [`Self::to_bytes`] without copying the values.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut bytes = self.values;
        bytes.extend(self.scales.iter().flat_map(|s| s.to_le_bytes()));
        bytes
    }

    /// Reads the stored form; the length must match `shape` exactly.
    pub fn from_bytes(bits: Bits, shape: [usize; 2], bytes: &[u8]) -> Result<Self> {
        let [rows, cols] = shape;
        if !Self::fits(cols) {
            return Err(ClipError::Pack(format!(
                "a quantized matrix needs a multiple of {BLOCK} columns, got shape {shape:?}"
            )));
        }
        let expected = bits.encoded_len(rows, cols);
        if bytes.len() != expected {
            return Err(ClipError::Pack(format!(
                "a {bits:?} matrix of shape {shape:?} takes {expected} bytes, found {}",
                bytes.len()
            )));
        }
        let (values, scales) = bytes.split_at(bits.value_bytes(rows * cols));
        Ok(Self {
            bits,
            shape,
            values: values.to_vec(),
            scales: scales
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        })
    }

    /// burn's quantized tensor data: values packed along rows (a whole number of `u32` words
    /// per row, since rows are whole blocks), then the block scales as `f32`.
    #[cfg(feature = "burn")]
    pub fn to_tensor_data(&self) -> burn::tensor::TensorData {
        use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
        let value = match self.bits {
            Bits::Q8 => QuantValue::Q8S,
            Bits::Q4 => QuantValue::Q4S,
        };
        let scheme = QuantScheme::default()
            .with_value(value)
            .with_store(QuantStore::PackedU32(0))
            .per_block([BLOCK as u8], ScaleDtype::F32);
        let mut bytes = Vec::with_capacity(self.values.len() + 4 * self.scales.len());
        bytes.extend_from_slice(&self.values);
        bytes.extend(self.scales.iter().flat_map(|s| s.to_f32().to_ne_bytes()));
        burn::tensor::TensorData::from_bytes_vec(
            bytes,
            self.shape.to_vec(),
            burn::tensor::DType::QFloat(scheme),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let data: Vec<f32> = (0..4 * 64)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let t = HostTensor::new(vec![4, 64], data);
        for bits in [Bits::Q8, Bits::Q4] {
            let q = QuantMatrix::quantize(&t, bits).unwrap();
            assert_eq!(q.to_bytes().len(), bits.encoded_len(4, 64));
            assert_eq!(
                QuantMatrix::from_bytes(bits, [4, 64], &q.to_bytes()).unwrap(),
                q
            );
            let back = q.dequantize();
            for (i, (a, b)) in t.data.iter().zip(&back.data).enumerate() {
                let step = q.scales[i / BLOCK].to_f32();
                // Within half a step, or clipped to the block's largest code (4-bit only).
                let clipped = a.abs() - bits.q_max() * step;
                assert!(
                    (a - b).abs() <= (0.5 * step).max(clipped) + 1e-6,
                    "{bits:?} {i}: {a} vs {b}"
                );
            }
            // int8 never clips: the largest value of each block is representable.
            let peak = t.data[..BLOCK].iter().fold(0.0f32, |m, x| m.max(x.abs()));
            if bits == Bits::Q8 {
                assert!(q.scales[0].to_f32() * bits.q_max() >= peak);
            }
        }
    }

    /// A block with one outlier: the 4-bit scale clips it when that lowers the block's error.
    #[test]
    fn q4_scale_trades_an_outlier_for_a_finer_step() {
        let mut data: Vec<f32> = (0..BLOCK).map(|i| (i % 7) as f32 / 6.0 - 0.5).collect();
        data[3] = 2.0;
        let t = HostTensor::new(vec![1, BLOCK], data.clone());
        let q = QuantMatrix::quantize(&t, Bits::Q4).unwrap();
        let s = q.scales[0].to_f32();
        assert!(s * 7.0 < 2.0, "the outlier is clipped: scale {s}");
        let error =
            |back: &[f32]| -> f32 { back.iter().zip(&data).map(|(a, b)| (a - b).powi(2)).sum() };
        let unclipped = 2.0 / 7.0;
        let nearest: Vec<f32> = data
            .iter()
            .map(|x| (x / unclipped).round() * unclipped)
            .collect();
        assert!(error(&q.dequantize().data) < error(&nearest));
    }

    #[test]
    fn q4_nibbles_are_signed_low_first() {
        let mut data = vec![0.0; BLOCK];
        data[0] = -7.0;
        data[1] = 7.0;
        data[2] = -1.0;
        let q = QuantMatrix::quantize(&HostTensor::new(vec![1, BLOCK], data), Bits::Q4).unwrap();
        assert_eq!(q.scales[0].to_f32(), 1.0);
        assert_eq!(q.values[0], 0x79); // -7 = 0x9 low, 7 high
        assert_eq!(q.values[1], 0x0f); // -1 low, 0 high
        assert_eq!(&q.dequantize().data[..3], &[-7.0, 7.0, -1.0]);
    }

    #[test]
    fn zero_blocks_and_bad_shapes() {
        let q =
            QuantMatrix::quantize(&HostTensor::new(vec![1, 32], vec![0.0; 32]), Bits::Q8).unwrap();
        assert!(q.scales[0].to_f32() > 0.0);
        assert!(q.dequantize().data.iter().all(|&x| x == 0.0));
        assert!(
            QuantMatrix::quantize(&HostTensor::new(vec![1, 31], vec![0.0; 31]), Bits::Q8).is_err()
        );
        assert!(QuantMatrix::from_bytes(Bits::Q4, [2, 32], &[0; 5]).is_err());
    }
}
