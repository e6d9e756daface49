//! Error-compensating rounding for 4-bit weights (GPTQ: Frantar et al., 2022, arXiv 2210.17323).
//!
//! Rounding each weight to its nearest code ([`QuantMatrix::quantize`]) minimises the error of
//! the *weights*. What matters is the error of the layer's *outputs* on the inputs it really
//! sees: for `y = x W` (`W` `[in, out]`) that is `tr(ΔWᵀ H ΔW)` with `H = E[xᵀx]` over
//! calibration inputs. GPTQ rounds the rows of `W` (one input each) one at a time and moves each
//! row's rounding error onto the rows not yet rounded, in the proportions `H⁻¹` says cancel it
//! best. Rows run in order of decreasing `H_ii` (the inputs that carry the most energy first,
//! "act-order"); a row's block scales are chosen when it is rounded, from its updated values,
//! by a small search that may clip the block's peak when that lowers the block's error. The
//! result is an ordinary [`QuantMatrix`]: readers cannot tell it from a nearest-rounded one.

use crate::error::{ClipError, Result};
use crate::weights::host::HostTensor;
use crate::weights::quant::{BLOCK, Bits, QuantMatrix, round_block};

/// Damping added to `H`'s diagonal, as a fraction of its mean (GPTQ's default): keeps `H`
/// invertible when calibration inputs span fewer directions than the layer has inputs.
const DAMP: f64 = 0.01;

/// The second moment `Σ xᵀx` of a layer's inputs, accumulated over calibration batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    /// Inputs per row.
    n: usize,
    /// `[n, n]`, row-major.
    sum: Vec<f64>,
    /// Input rows accumulated.
    rows: u64,
}

impl Gram {
    /// An empty sum for inputs of width `n`.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            sum: vec![0.0; n * n],
            rows: 0,
        }
    }

    /// Input width.
    pub fn width(&self) -> usize {
        self.n
    }

    /// Adds `xᵀx` (`[n, n]`, row-major) of a batch of `rows` inputs.
    pub fn add(&mut self, xtx: &[f32], rows: usize) -> Result<()> {
        if xtx.len() != self.sum.len() {
            return Err(ClipError::Config(format!(
                "a {n}×{n} input moment cannot take {} values",
                xtx.len(),
                n = self.n
            )));
        }
        for (s, &v) in self.sum.iter_mut().zip(xtx) {
            *s += f64::from(v);
        }
        self.rows += rows as u64;
        Ok(())
    }
}

/// `w` (`[in, out]`, `out` a multiple of [`BLOCK`]) rounded to `bits` so that the layer's output
/// error on inputs with moment `gram` is small (see the module docs).
pub fn quantize(w: &HostTensor, gram: &Gram, bits: Bits) -> Result<QuantMatrix> {
    let &[n, m] = w.shape.as_slice() else {
        return Err(ClipError::Config(format!(
            "only matrices are quantized, got shape {:?}",
            w.shape
        )));
    };
    if gram.n != n || gram.rows == 0 || !QuantMatrix::fits(m) {
        return Err(ClipError::Config(format!(
            "cannot round a {n}×{m} matrix against a {0}×{0} input moment of {1} rows",
            gram.n, gram.rows
        )));
    }
    let mut h: Vec<f64> = gram.sum.iter().map(|s| s / gram.rows as f64).collect();
    let mut w = w.data.clone();
    // An input that is always zero leaves its row free: zero it, and keep H invertible.
    for i in 0..n {
        if h[i * n + i] == 0.0 {
            h[i * n + i] = 1.0;
            w[i * m..(i + 1) * m].fill(0.0);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]));
    let mean_diag = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
    let permuted: Vec<f64> = order
        .iter()
        .flat_map(|&a| order.iter().map(move |&b| (a, b)))
        .map(|(a, b)| h[a * n + b])
        .collect();
    let u = inverse_cholesky_upper(&permuted, n, DAMP * mean_diag)?;

    let mut rows: Vec<f32> = order
        .iter()
        .flat_map(|&i| w[i * m..(i + 1) * m].iter().copied())
        .collect();
    let mut codes = vec![0i8; n * m];
    let mut scales = vec![half::f16::ZERO; n * m / BLOCK];
    let mut err = vec![0f32; m];
    for (p, &i) in order.iter().enumerate() {
        let (done, rest) = rows.split_at_mut((p + 1) * m);
        let row = &done[p * m..];
        let d = u[p * n + p] as f32;
        for (b, block) in row.chunks_exact(BLOCK).enumerate() {
            let (scale, block_codes) = round_block(block, bits);
            scales[(i * m) / BLOCK + b] = scale;
            let s = scale.to_f32();
            for (c, (&x, q)) in block.iter().zip(block_codes).enumerate() {
                codes[i * m + b * BLOCK + c] = q;
                err[b * BLOCK + c] = (x - f32::from(q) * s) / d;
            }
        }
        for (later, next) in rest.chunks_exact_mut(m).zip(p + 1..) {
            let f = u[p * n + next] as f32;
            for (x, e) in later.iter_mut().zip(&err) {
                *x -= f * e;
            }
        }
    }
    Ok(QuantMatrix::from_codes(bits, [n, m], &codes, scales))
}

/// The upper triangular `U` with `Uᵀ U = (H + damp·I)⁻¹`, `h` `[n, n]` symmetric positive
/// semi-definite. With `J` the order reversal, `J H J = L Lᵀ` (Cholesky) gives
/// `H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J)`, and `J L⁻¹ J` is upper triangular. Damping grows tenfold
/// while rounding leaves a pivot non-positive.
fn inverse_cholesky_upper(h: &[f64], n: usize, damp: f64) -> Result<Vec<f64>> {
    let mut damp = damp.max(f64::MIN_POSITIVE);
    for _ in 0..6 {
        let reversed: Vec<f64> = (0..n * n)
            .map(|k| {
                let (a, b) = (n - 1 - k / n, n - 1 - k % n);
                h[a * n + b] + if a == b { damp } else { 0.0 }
            })
            .collect();
        if let Some(l) = cholesky(&reversed, n) {
            let inv = invert_lower(&l, n);
            return Ok((0..n * n)
                .map(|k| inv[(n - 1 - k / n) * n + (n - 1 - k % n)])
                .collect());
        }
        damp *= 10.0;
    }
    Err(ClipError::Config(
        "the calibration inputs' moment is not positive definite".into(),
    ))
}

/// Lower triangular `L` with `L Lᵀ = a` (row-major), or `None` if a pivot is not positive.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = l[i * n..i * n + j]
                .iter()
                .zip(&l[j * n..j * n + j])
                .map(|(x, y)| x * y)
                .sum();
            let v = a[i * n + j] - dot;
            if i == j {
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// `L⁻¹` of a lower triangular `L` with a positive diagonal, by forward substitution per
/// column (row-major in and out).
fn invert_lower(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    let mut x = vec![0.0; n];
    for j in 0..n {
        for i in j..n {
            let dot: f64 = l[i * n + j..i * n + i]
                .iter()
                .zip(&x[j..i])
                .map(|(a, b)| a * b)
                .sum();
            let rhs = if i == j { 1.0 } else { 0.0 };
            x[i] = (rhs - dot) / l[i * n + i];
            inv[i * n + j] = x[i];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::values;

    fn matmul(a: &[f32], b: &[f32], k: usize, n: usize) -> Vec<f32> {
        let rows = a.len() / k;
        let mut out = vec![0.0; rows * n];
        for r in 0..rows {
            for i in 0..k {
                for c in 0..n {
                    out[r * n + c] += a[r * k + i] * b[i * n + c];
                }
            }
        }
        out
    }

    #[test]
    fn inverse_cholesky_is_the_inverse() {
        let n = 5;
        let x = values(9 * n, 3);
        let mut h = vec![0.0f64; n * n];
        for row in x.chunks_exact(n) {
            for a in 0..n {
                for b in 0..n {
                    h[a * n + b] += f64::from(row[a] * row[b]);
                }
            }
        }
        let u = inverse_cholesky_upper(&h, n, 0.0).unwrap();
        for a in 0..n {
            for b in 0..a {
                assert_eq!(u[a * n + b], 0.0, "upper triangular");
            }
        }
        // (Uᵀ U) H = I.
        for a in 0..n {
            for b in 0..n {
                let v: f64 = (0..n)
                    .map(|k| {
                        (0..n).map(|j| u[j * n + a] * u[j * n + k]).sum::<f64>() * h[k * n + b]
                    })
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-9, "({a},{b}): {v}");
            }
        }
    }

    /// On inputs that span only a few directions (as prompts that share their words do),
    /// compensated rounding leaves a smaller output error than nearest rounding — by a margin,
    /// not by luck — with codes and scales a plain reader decodes.
    #[test]
    fn compensated_rounding_beats_nearest_on_the_outputs() {
        let (n, m, rank, samples) = (64, 64, 8, 256);
        let w = HostTensor::new(vec![n, m], values(n * m, 7));
        let basis = values(rank * n, 11);
        let mix = values(samples * rank, 13);
        let x = matmul(&mix, &basis, rank, n);
        let mut xtx = vec![0.0f32; n * n];
        for row in x.chunks_exact(n) {
            for a in 0..n {
                for b in 0..n {
                    xtx[a * n + b] += row[a] * row[b];
                }
            }
        }
        let mut gram = Gram::new(n);
        gram.add(&xtx, samples).unwrap();
        let exact = matmul(&x, &w.data, n, m);
        let output_error = |q: &QuantMatrix| {
            let got = matmul(&x, &q.dequantize().data, n, m);
            got.iter()
                .zip(&exact)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
        };
        let nearest = output_error(&QuantMatrix::quantize(&w, Bits::Q4).unwrap());
        let gptq = quantize(&w, &gram, Bits::Q4).unwrap();
        let compensated = output_error(&gptq);
        assert!(
            compensated < 0.5 * nearest,
            "compensated {compensated} vs nearest {nearest}"
        );
        let bytes = gptq.to_bytes();
        assert_eq!(
            QuantMatrix::from_bytes(Bits::Q4, [n, m], &bytes).unwrap(),
            gptq
        );
    }

    #[test]
    fn mismatched_moments_are_errors() {
        let w = HostTensor::new(vec![4, 32], vec![0.5; 128]);
        assert!(
            quantize(&w, &Gram::new(4), Bits::Q4).is_err(),
            "no rows yet"
        );
        let mut gram = Gram::new(5);
        gram.add(&[1.0; 25], 1).unwrap();
        assert!(quantize(&w, &gram, Bits::Q4).is_err());
        assert!(gram.add(&[1.0; 3], 1).is_err());
    }
}
