//! f32 matrix products for the browser's CPU path, with the weight packed once at load.
//!
//! `y = x W + b`, `W` `[K, N]`. At load, `W` is laid out as panels of [`NR`] columns, each
//! `[K][NR]`, so that the inner loop reads one panel row with two 16-byte loads and multiplies
//! it by [`MR`] broadcast activations, keeping a `MR × NR` tile of sums in registers.
//!
//! Why not burn flex's own product (gemm) in wasm: gemm packs both operands on every call, and
//! its wasm micro-kernel ran at 14-14.5 GMAC/s in Chromium 156 on this project's VM (one
//! thread, ViT-B/16's shapes), this one at 16-16.6 with baseline SIMD (a multiply, then an
//! add) and at 21-22 where the build has relaxed SIMD (`f32x4.relaxed_madd`, a fused
//! multiply-add on x86-64 and ARM64; the `relaxed-simd` feature). Natively gemm's AVX-512
//! kernels are faster, so only wasm32 uses this (see [`PackedMatrix::PREFERRED`]); elsewhere
//! the same loop in plain Rust is what the tests check.

use rayon::prelude::*;

use crate::model::cpu;
use crate::weights::host::HostTensor;

/// Columns per panel: two `f32x4`.
const NR: usize = 8;
/// Rows per register tile: 12 accumulators, the two weight vectors and one broadcast fit the
/// 15 vector registers V8 allocates on x86-64, as long as the instructions stay in source
/// order (`.cargo/config.toml`'s `-pre-RA-sched=source`; LLVM's default order hoisted all six
/// broadcasts above their uses, and the kernel spilled and ran a third slower).
const MR: usize = 6;
/// Weights per column block: a block of panels (`K × columns`) stays in a core's L2 cache
/// while every row tile of a task runs over it.
const BLOCK_WEIGHTS: usize = 1 << 18;

/// A weight matrix packed for [`PackedMatrix::matmul`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `[⌈N / NR⌉][K][NR]`; columns past `N` are zero.
    panels: Vec<[f32; NR]>,
}

impl PackedMatrix {
    /// Whether this target's CPU path runs its f32 products here rather than through burn:
    /// wasm32 only (see the module documentation).
    pub const PREFERRED: bool = cfg!(target_arch = "wasm32");

    /// Packs a `[K, N]` matrix; `None` unless it is one.
    pub fn pack(w: &HostTensor) -> Option<Self> {
        let &[k, n] = w.shape.as_slice() else {
            return None;
        };
        if k == 0 || n == 0 || w.data.len() != k * n {
            return None;
        }
        let mut panels = vec![[0.0; NR]; n.div_ceil(NR) * k];
        for (g, panel) in panels.chunks_exact_mut(k).enumerate() {
            let columns = g * NR..((g + 1) * NR).min(n);
            for (row, out) in w.data.chunks_exact(n).zip(panel) {
                out[..columns.len()].copy_from_slice(&row[columns.clone()]);
            }
        }
        Some(Self { k, n, panels })
    }

    /// `[K, N]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }

    /// `x W (+ bias)` for `x` `[rows, K]` row-major: `[rows, N]` row-major. Rows are split
    /// into one task per thread; each task walks `W` once, block by block.
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        debug_assert_eq!(x.len(), rows * k);
        let mut out = vec![0.0f32; rows * n];
        if rows == 0 {
            return out;
        }
        let rows_per_task = cpu::rows_per_task(rows, MR);
        let kernel = Kernel::detect();
        out.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(task, out)| {
                let x = &x[task * rows_per_task * k..][..out.len() / n * k];
                self.task(kernel, x, out, bias);
            });
        out
    }

    /// One task's rows: `x` `[rows, K]` → `out` `[rows, N]`, block of panels by block.
    fn task(&self, kernel: Kernel, x: &[f32], out: &mut [f32], bias: Option<&[f32]>) {
        let (k, n) = (self.k, self.n);
        let rows = x.len() / k;
        let zeros = vec![0.0f32; k];
        let panels = &self.panels[..];
        let count = panels.len() / k;
        let per_block = (BLOCK_WEIGHTS / (k * NR)).max(1);
        for first in (0..count).step_by(per_block) {
            for t in (0..rows).step_by(MR) {
                let tile: [&[f32]; MR] = std::array::from_fn(|i| match t + i < rows {
                    true => &x[(t + i) * k..][..k],
                    false => &zeros[..],
                });
                for g in first..(first + per_block).min(count) {
                    let sums = kernel.tile(tile, &panels[g * k..][..k]);
                    store(out, n, t, rows, g * NR, sums, bias);
                }
            }
        }
    }
}

/// Writes a tile's sums (plus the bias) into rows `t..` of `out` (`[task_rows, n]`), columns
/// `c0..`, leaving out the padding rows and columns.
#[inline(always)]
fn store(
    out: &mut [f32],
    n: usize,
    t: usize,
    task_rows: usize,
    c0: usize,
    sums: [[f32; NR]; MR],
    bias: Option<&[f32]>,
) {
    let width = NR.min(n - c0);
    for (i, mut row) in sums.into_iter().enumerate() {
        if t + i >= task_rows {
            break;
        }
        if let Some(bias) = bias {
            for (c, y) in row.iter_mut().enumerate().take(width) {
                *y += bias[c0 + c];
            }
        }
        out[(t + i) * n + c0..][..width].copy_from_slice(&row[..width]);
    }
}

/// The inner loop this target runs. The portable one and wasm's baseline SIMD give the same
/// bits (a multiply, then an add, in the same order); relaxed SIMD's fused multiply-add rounds
/// once instead of twice.
#[derive(Clone, Copy)]
enum Kernel {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    Portable,
    #[cfg(all(
        target_arch = "wasm32",
        target_feature = "simd128",
        not(feature = "relaxed-simd")
    ))]
    Wasm,
    #[cfg(all(
        target_arch = "wasm32",
        target_feature = "simd128",
        feature = "relaxed-simd"
    ))]
    Relaxed,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(all(
            target_arch = "wasm32",
            target_feature = "simd128",
            not(feature = "relaxed-simd")
        ))]
        return Self::Wasm;
        #[cfg(all(
            target_arch = "wasm32",
            target_feature = "simd128",
            feature = "relaxed-simd"
        ))]
        return Self::Relaxed;
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        Self::Portable
    }

    /// `Σₖ rows[i][k] · panel[k][j]` for the tile's `MR` rows (each at least `K` long) and
    /// the panel's `NR` columns (`K` long).
    #[inline(always)]
    fn tile(self, rows: [&[f32]; MR], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
        match self {
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            Self::Portable => tile(rows, panel),
            #[cfg(all(
                target_arch = "wasm32",
                target_feature = "simd128",
                not(feature = "relaxed-simd")
            ))]
            Self::Wasm => tile_wasm::<false>(rows, panel),
            #[cfg(all(
                target_arch = "wasm32",
                target_feature = "simd128",
                feature = "relaxed-simd"
            ))]
            Self::Relaxed => tile_relaxed(rows, panel),
        }
    }
}

/// The portable inner loop (and the definition of what the SIMD one computes).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn tile(rows: [&[f32]; MR], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
    let k = panel.len();
    let rows = rows.map(|r| &r[..k]);
    let mut acc = [[0.0f32; NR]; MR];
    for (kk, w) in panel.iter().enumerate() {
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let a = row[kk];
            for (s, w) in acc.iter_mut().zip(w) {
                *s += a * w;
            }
        }
    }
    acc
}

/// [`tile`] with wasm SIMD: the same sums, lane by lane (`FUSED`: each multiply-add rounded
/// once, [`tile_relaxed`]).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn tile_wasm<const FUSED: bool>(rows: [&[f32]; MR], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
    use core::arch::wasm32::*;
    let k = panel.len();
    // Slices exactly `k` long: the loop below indexes them without bounds checks.
    let rows = rows.map(|r| &r[..k]);
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    for kk in 0..k {
        let w: [[f32; 4]; 2] = bytemuck::cast(panel[kk]);
        let (w0, w1): (v128, v128) = (bytemuck::cast(w[0]), bytemuck::cast(w[1]));
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let a = f32x4_splat(row[kk]);
            acc[0] = multiply_add::<FUSED>(a, w0, acc[0]);
            acc[1] = multiply_add::<FUSED>(a, w1, acc[1]);
        }
    }
    bytemuck::cast(acc)
}

/// [`tile_wasm`] with relaxed SIMD's `f32x4.relaxed_madd` (a fused multiply-add on x86-64
/// and ARM64): this function alone is compiled with the feature, so the instruction inlines
/// into its loop and nowhere else.
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
#[target_feature(enable = "relaxed-simd")]
fn tile_relaxed(rows: [&[f32]; MR], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
    tile_wasm::<true>(rows, panel)
}

/// `a·b + c`: fused (`FUSED`, builds with the `relaxed-simd` feature), else a multiply, then
/// an add.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn multiply_add<const FUSED: bool>(
    a: core::arch::wasm32::v128,
    b: core::arch::wasm32::v128,
    c: core::arch::wasm32::v128,
) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    #[cfg(feature = "relaxed-simd")]
    if FUSED {
        return f32x4_relaxed_madd(a, b, c);
    }
    f32x4_add(c, f32x4_mul(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::values;

    #[test]
    fn products_equal_the_plain_sums() {
        // Ragged everywhere: rows not a multiple of the tile, columns not of the panel, more
        // than one column block, several tasks.
        let (rows, k, n) = (23, BLOCK_WEIGHTS / (3 * NR), 3 * NR + 5);
        let x = values(rows * k, 1);
        let w = values(k * n, 2);
        let bias = values(n, 3);
        let packed = PackedMatrix::pack(&HostTensor::new(vec![k, n], w.clone())).unwrap();
        assert_eq!(packed.shape(), [k, n]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let got = pool.install(|| packed.matmul(&x, rows, Some(&bias)));
        // The same operations in the same order (k ascending, a multiply then an add, the
        // bias last): the same bits, on every target.
        for r in 0..rows {
            for c in 0..n {
                let mut sum = 0.0f32;
                for i in 0..k {
                    sum += x[r * k + i] * w[i * n + c];
                }
                assert_eq!(got[r * n + c], sum + bias[c], "row {r}, column {c}");
            }
        }
        assert_eq!(packed.matmul(&[], 0, None), Vec::<f32>::new());
    }

    #[test]
    fn shapes_that_are_not_matrices_are_refused() {
        assert!(PackedMatrix::pack(&HostTensor::new(vec![4], vec![0.0; 4])).is_none());
        assert!(PackedMatrix::pack(&HostTensor::new(vec![0, 4], vec![])).is_none());
        let short = HostTensor {
            shape: vec![2, 4],
            data: vec![0.0; 7],
        };
        assert!(PackedMatrix::pack(&short).is_none());
    }
}
