//! int8 matrix products on the CPU: a pack's int8 (or 4-bit) weights run as integers there,
//! instead of being widened to f32.
//!
//! `y = x W + b`, `W` `[K, N]`. At load, `W` is re-quantized to int8 with one scale per column
//! and block of [`KB`] rows: an integer dot product needs scales that are constant along `K`,
//! which the pack's blocks (32 values along a row of `W`, i.e. along `N`) are not. Each call
//! quantizes `x` per row and block of [`KB`] columns, sums products in i32 within a block and
//! adds each block's sum, scaled, into an f32 result.
//!
//! On wasm32 the inner loop is `i32x4.dot_i16x8_s`: 8 multiply-adds per instruction where f32
//! SIMD does 4 with no fused multiply-add, over weights a quarter of their f32 size. Elsewhere
//! the same loop is plain Rust. Both give the same bits: the integer sums are exact, and the f32
//! epilogue does the same operations in the same order, so the CLI reproduces the browser.

use rayon::prelude::*;

use crate::model::cpu;
use crate::weights::host::HostTensor;

/// Rows of `W` (columns of `x`) per scale. Finer blocks cost more epilogue work; coarser ones
/// let one outlier channel flatten more of its neighbours.
pub const KB: usize = 128;
/// Columns per packed group: two `i16x8` halves of one 16-byte load.
const NR: usize = 8;
/// Rows per tile: six activations share each loaded weight vector (with six `i32x4`
/// accumulator pairs, a tile's working set fits x86-64's 16 vector registers, which wasm
/// engines have there).
const MR: usize = 6;
/// One block's codes of one column group: `KB / 2` row pairs × `NR` columns × 2.
const BLOCK_CODES: usize = KB * NR;

/// A weight matrix packed for [`Int8Matrix::matmul`].
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Matrix {
    k: usize,
    n: usize,
    /// Column groups of [`NR`]; within one, `[K / 2][NR][2]`: for each pair of rows
    /// `(2p, 2p + 1)` and each column, the two codes side by side.
    codes: Vec<i8>,
    /// `[K / KB][N]`: the scale of each column in each block of rows.
    scales: Vec<f32>,
}

/// Scale of a block whose largest magnitude is `peak`: codes span [-127, 127]. An all-zero
/// block gets 1 (its codes are 0 either way; nothing divides by zero).
fn scale_of(peak: f32) -> f32 {
    if peak > 0.0 { peak / 127.0 } else { 1.0 }
}

/// `x / scale` rounded to the nearest integer (ties to even) and clamped to [-127, 127]. Plain
/// arithmetic (adding and subtracting 1.5·2²³ rounds any |v| < 2²² to an integer; here
/// |v| ≤ 127), which the compiler vectorises: `f32::round` is a library call per value in wasm.
fn code(x: f32, scale: f32) -> i8 {
    const ROUND: f32 = 12_582_912.0;
    ((x / scale + ROUND) - ROUND).clamp(-127.0, 127.0) as i8
}

impl Int8Matrix {
    /// Whether a `[k, n]` matrix can be packed.
    pub fn fits(k: usize, n: usize) -> bool {
        k > 0 && k.is_multiple_of(KB) && n > 0 && n.is_multiple_of(NR)
    }

    /// Packs a `[K, N]` matrix; `None` when its shape does not [fit](Self::fits).
    pub fn quantize(w: &HostTensor) -> Option<Self> {
        let &[k, n] = w.shape.as_slice() else {
            return None;
        };
        if !Self::fits(k, n) || w.data.len() != k * n {
            return None;
        }
        let mut scales = vec![0.0f32; k / KB * n];
        for (r, row) in w.data.chunks_exact(n).enumerate() {
            let peaks = &mut scales[r / KB * n..][..n];
            for (peak, x) in peaks.iter_mut().zip(row) {
                *peak = peak.max(x.abs());
            }
        }
        for s in &mut scales {
            *s = scale_of(*s);
        }
        let mut codes = Vec::with_capacity(k * n);
        for g in 0..n / NR {
            for p in 0..k / 2 {
                for c in g * NR..(g + 1) * NR {
                    for r in [2 * p, 2 * p + 1] {
                        codes.push(code(w.data[r * n + c], scales[r / KB * n + c]));
                    }
                }
            }
        }
        Some(Self {
            k,
            n,
            codes,
            scales,
        })
    }

    /// `[K, N]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.scales.len()
    }

    /// `x W (+ bias)` for `x` `[rows, K]` row-major: `[rows, N]` row-major.
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        debug_assert_eq!(x.len(), rows * k);
        let act = Activations::quantize(x, rows, k);
        let kernel = Kernel::detect();
        let mut out = vec![0.0f32; rows * n];
        if rows == 0 {
            return out;
        }
        let rows_per_task = cpu::rows_per_task(rows, MR);
        out.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * rows_per_task;
                let task_rows = out.len() / n;
                for g in 0..n / NR {
                    let columns = &self.codes[g * k * NR..][..k * NR];
                    for t in (0..task_rows).step_by(MR) {
                        let tile = kernel.tile(&act, first + t, self, g, columns);
                        for (i, sums) in tile.chunks_exact(NR).take(task_rows - t).enumerate() {
                            let row = &mut out[(t + i) * n + g * NR..][..NR];
                            row.copy_from_slice(sums);
                            if let Some(bias) = bias {
                                for (y, b) in row.iter_mut().zip(&bias[g * NR..]) {
                                    *y += b;
                                }
                            }
                        }
                    }
                }
            });
        out
    }
}

/// Activations quantized per row and block of [`KB`] columns; rows padded with zeros to a
/// multiple of [`MR`].
struct Activations {
    /// `[rows][K / 2]`: each pair of codes as two i16 in one i32 (low half first), the operand
    /// `i32x4.splat` broadcasts.
    pairs: Vec<i32>,
    /// `[rows][K / KB]`.
    scales: Vec<f32>,
    k: usize,
}

impl Activations {
    fn quantize(x: &[f32], rows: usize, k: usize) -> Self {
        let padded = rows.div_ceil(MR) * MR;
        let mut pairs = vec![0i32; padded * k / 2];
        let mut scales = vec![0.0f32; padded * k / KB];
        // Rows in parallel: serial, it would hold up the other threads before every product.
        pairs
            .par_chunks_mut(k / 2)
            .zip(scales.par_chunks_mut(k / KB))
            .zip(x.par_chunks(k))
            .for_each(|((pairs, scales), row)| {
                let blocks = row.chunks_exact(KB).zip(pairs.chunks_exact_mut(KB / 2));
                for ((block, out), s) in blocks.zip(scales) {
                    *s = scale_of(block.iter().fold(0.0f32, |m, v| m.max(v.abs())));
                    for (pair, xs) in out.iter_mut().zip(block.chunks_exact(2)) {
                        let lo = i32::from(code(xs[0], *s)) & 0xffff;
                        *pair = lo | (i32::from(code(xs[1], *s)) << 16);
                    }
                }
            });
        Self { pairs, scales, k }
    }
}

/// The inner loop this CPU runs: SIMD where there is integer multiply-add, else plain Rust.
/// Every kind gives the same bits.
#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Wasm,
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Self::Wasm;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return Self::Avx2(simd);
        }
        #[allow(unreachable_code)]
        Self::Portable
    }

    /// The `[MR][NR]` sums of rows `r0..r0 + MR` times column group `g` (`columns`: its
    /// codes), row-major.
    fn tile(
        self,
        act: &Activations,
        r0: usize,
        w: &Int8Matrix,
        g: usize,
        columns: &[i8],
    ) -> [f32; MR * NR] {
        match self {
            Self::Portable => tile(act, r0, w, g, columns),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Self::Wasm => tile_wasm(act, r0, w, g, columns),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(simd) => simd.vectorize(
                #[inline(always)]
                || tile_avx2(simd, act, r0, w, g, columns),
            ),
        }
    }
}

/// The portable inner loop (and the definition of what the SIMD ones compute).
fn tile(act: &Activations, r0: usize, w: &Int8Matrix, g: usize, columns: &[i8]) -> [f32; MR * NR] {
    let mut out = [0.0f32; MR * NR];
    for (b, (codes, xs)) in blocks(act, r0, columns).enumerate() {
        let mut acc = [[0i32; NR]; MR];
        for p in 0..KB / 2 {
            let wp = &codes[p * NR * 2..][..NR * 2];
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let (x0, x1) = (i32::from(x[p] as i16), x[p] >> 16);
                for (a, w) in acc.iter_mut().zip(wp.chunks_exact(2)) {
                    *a += x0 * i32::from(w[0]) + x1 * i32::from(w[1]);
                }
            }
        }
        let ws = &w.scales[b * w.n + g * NR..][..NR];
        for (i, acc) in acc.iter().enumerate() {
            let xs = act.scales[(r0 + i) * act.k / KB + b];
            for j in 0..NR {
                out[i * NR + j] += acc[j] as f32 * (xs * ws[j]);
            }
        }
    }
    out
}

/// Per block of [`KB`] rows of `W`: the column group's codes, and the `MR` activation rows'
/// pairs (fixed sizes: the inner loops index them without bounds checks).
fn blocks<'a>(
    act: &'a Activations,
    r0: usize,
    columns: &'a [i8],
) -> impl Iterator<Item = (&'a [i8; BLOCK_CODES], [&'a [i32; KB / 2]; MR])> + 'a {
    let half = act.k / 2;
    let rows: [&[[i32; KB / 2]]; MR] =
        std::array::from_fn(|i| act.pairs[(r0 + i) * half..][..half].as_chunks().0);
    columns
        .as_chunks::<BLOCK_CODES>()
        .0
        .iter()
        .enumerate()
        .map(move |(b, codes)| (codes, rows.map(|row| &row[b])))
}

/// [`tile`] with wasm SIMD: the same sums, the same f32 operations lane by lane.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn tile_wasm(
    act: &Activations,
    r0: usize,
    w: &Int8Matrix,
    g: usize,
    columns: &[i8],
) -> [f32; MR * NR] {
    use core::arch::wasm32::*;
    let load = |bytes: &[u8]| bytemuck::pod_read_unaligned::<v128>(&bytes[..16]);
    let scales: &[u8] = bytemuck::cast_slice(&w.scales);
    let mut out = [f32x4_splat(0.0); MR * 2];
    for (b, (codes, xs)) in blocks(act, r0, columns).enumerate() {
        let mut acc = [i32x4_splat(0); MR * 2];
        let codes: &[u8; BLOCK_CODES] = bytemuck::cast_ref(codes);
        for p in 0..KB / 2 {
            let wv = load(&codes[p * 16..]);
            let (lo, hi) = (i16x8_extend_low_i8x16(wv), i16x8_extend_high_i8x16(wv));
            for (acc, x) in acc.chunks_exact_mut(2).zip(&xs) {
                let x = i32x4_splat(x[p]);
                acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(x, lo));
                acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(x, hi));
            }
        }
        let at = (b * w.n + g * NR) * 4;
        let ws = [load(&scales[at..]), load(&scales[at + 16..])];
        for i in 0..MR {
            let xs = f32x4_splat(act.scales[(r0 + i) * act.k / KB + b]);
            for h in 0..2 {
                let scaled = f32x4_mul(f32x4_convert_i32x4(acc[2 * i + h]), f32x4_mul(xs, ws[h]));
                out[2 * i + h] = f32x4_add(out[2 * i + h], scaled);
            }
        }
    }
    bytemuck::cast(out)
}

/// [`tile`] with AVX2 (`vpmaddwd` on eight columns at once): the same sums, the same f32
/// operations lane by lane (no fused multiply-add, which would round differently).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile_avx2(
    simd: pulp::x86::V3,
    act: &Activations,
    r0: usize,
    w: &Int8Matrix,
    g: usize,
    columns: &[i8],
) -> [f32; MR * NR] {
    use core::arch::x86_64::{__m128i, __m256};
    let (avx, avx2) = (simd.avx, simd.avx2);
    let scales: &[u8] = bytemuck::cast_slice(&w.scales);
    let mut out = [avx._mm256_setzero_ps(); MR];
    for (b, (codes, xs)) in blocks(act, r0, columns).enumerate() {
        let mut acc = [avx._mm256_setzero_si256(); MR];
        let codes: &[u8; BLOCK_CODES] = bytemuck::cast_ref(codes);
        for p in 0..KB / 2 {
            let wv = bytemuck::pod_read_unaligned::<__m128i>(&codes[p * 16..][..16]);
            let wv = avx2._mm256_cvtepi8_epi16(wv);
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let x = avx._mm256_set1_epi32(x[p]);
                *acc = avx2._mm256_add_epi32(*acc, avx2._mm256_madd_epi16(x, wv));
            }
        }
        let at = (b * w.n + g * NR) * 4;
        let ws = bytemuck::pod_read_unaligned::<__m256>(&scales[at..at + 32]);
        for (i, (out, acc)) in out.iter_mut().zip(acc).enumerate() {
            let xs = avx._mm256_set1_ps(act.scales[(r0 + i) * act.k / KB + b]);
            let scaled = avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(acc), avx._mm256_mul_ps(xs, ws));
            *out = avx._mm256_add_ps(*out, scaled);
        }
    }
    bytemuck::cast(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) with a few large outlier columns, as in ViT activations.
    /// Test values, every 97th (from the 6th) ×20 with `outliers`.
    fn values(len: usize, seed: u32, outliers: bool) -> Vec<f32> {
        let mut v = crate::testing::values(len, seed);
        if outliers {
            v.iter_mut().skip(5).step_by(97).for_each(|x| *x *= 20.0);
        }
        v
    }

    fn reference(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0.0f64; rows * n];
        for r in 0..rows {
            for i in 0..k {
                for c in 0..n {
                    y[r * n + c] += f64::from(x[r * k + i]) * f64::from(w[i * n + c]);
                }
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn pearson(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (
            a.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
            b.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
        );
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
        sab / (saa * sbb).sqrt()
    }

    #[test]
    fn products_follow_f32_within_int8_rounding() {
        // 37 rows: tiles and tasks with a ragged end.
        let (rows, k, n) = (37, 2 * KB, 24);
        let x = values(rows * k, 1, true);
        let w = values(k * n, 2, false);
        let bias = values(n, 3, false);
        let packed = Int8Matrix::quantize(&HostTensor::new(vec![k, n], w.clone())).unwrap();
        let got = packed.matmul(&x, rows, Some(&bias));
        let mut want = reference(&x, &w, rows, k, n);
        for (i, y) in want.iter_mut().enumerate() {
            *y += bias[i % n];
        }
        // Outliers of 20 in x set its blocks' step to 20/127: the other values lose ~4 % of
        // their spread to rounding, while the outliers carry most of y. r = 0.999 leaves room
        // for that and fails for any error in packing, pairing or scaling (r ≈ 0 then).
        let r = pearson(&got, &want);
        assert!(r > 0.999, "r = {r}");
        let plain = values(rows * k, 6, false);
        let r = pearson(
            &packed.matmul(&plain, rows, None),
            &reference(&plain, &w, rows, k, n),
        );
        assert!(r > 0.9999, "without outliers r = {r}");
    }

    #[test]
    fn exact_when_values_are_codes() {
        // Integers in [-127, 127] with a block peak of 127 quantize to themselves: the
        // integer path must then be exact.
        let (rows, k, n) = (5, KB, 16);
        let ints = |len: usize, seed: u32| -> Vec<f32> {
            let mut v: Vec<f32> = values(len, seed, false)
                .into_iter()
                .map(|v| (v * 127.0).round())
                .collect();
            v[0] = 127.0;
            v
        };
        let mut x = ints(rows * k, 4);
        for r in 0..rows {
            x[r * k] = 127.0;
        }
        let mut w = ints(k * n, 5);
        w[..n].fill(127.0);
        let packed = Int8Matrix::quantize(&HostTensor::new(vec![k, n], w.clone())).unwrap();
        assert_eq!(packed.matmul(&x, rows, None), reference(&x, &w, rows, k, n));
    }

    #[test]
    fn zero_blocks_and_shapes_that_do_not_fit() {
        let (k, n) = (KB, 8);
        let packed = Int8Matrix::quantize(&HostTensor::new(vec![k, n], vec![0.0; k * n])).unwrap();
        assert_eq!(packed.matmul(&vec![1.0; 2 * k], 2, None), vec![0.0; 2 * n]);
        assert_eq!(packed.matmul(&[], 0, None), Vec::<f32>::new());
        for (k, n) in [(KB + 2, 8), (KB, 12), (0, 8)] {
            assert!(Int8Matrix::quantize(&HostTensor::new(vec![k, n], vec![0.5; k * n])).is_none());
        }
    }
}
