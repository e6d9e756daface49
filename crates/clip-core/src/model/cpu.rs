//! CPU (burn flex) versions of the few operations where burn's own leave speed on the table:
//! the linear layers' products (one parallel region each, see [`linear`]), and the
//! exponentials of softmax and QuickGELU (burn flex calls the C library's scalar `expf` per
//! element; [`exp`] here is branch-free arithmetic the compiler vectorises, natively and in
//! wasm). Everything else stays burn's.

use std::ops::Range;
use std::sync::Once;

use burn::tensor::{Device, Tensor, activation, module};
use rayon::prelude::*;

/// Output columns per task are a multiple of this, so that no task ends in a partial register
/// tile of gemm's kernels: 48 is a multiple of AVX-512's 16 f32 lanes (of AVX2's 8, wasm's 4)
/// and of gemm's 6-wide tiles.
const COLUMN_QUANTUM: usize = 48;

/// `x W (+ b)` on the CPU (burn flex), `W` `[in, out]` f32: one parallel region per product,
/// each thread computing a block of `W`'s columns with a single-threaded gemm, then one copy
/// joining the blocks.
///
/// gemm's own threading synchronises its threads several times per product (once per block of
/// `K` for packing and again for the kernels). Natively that costs little, but in the browser a
/// wake-up of a parked Web Worker costs far more than a native one, and ViT-B/16 on two wasm
/// threads ran slower than on one. Splitting by columns also keeps each thread's packed part
/// of `W` its own (on this machine, natively, 1.1-1.3× gemm's threading on ViT-B/16's shapes).
pub(crate) fn linear<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Tensor<D> {
    static SERIAL_GEMM: Once = Once::new();
    // Each task's gemm runs on its own thread: gemm would otherwise start its threads inside
    // ours. A process-wide setting, and the right one for every product this crate runs on the
    // CPU: the large ones come through here, attention's batched ones are split by burn-flex
    // across heads.
    SERIAL_GEMM.call_once(|| gemm::set_threading_threshold(usize::MAX));
    let [k, n] = w.dims();
    let blocks = column_blocks(n, rayon::current_num_threads());
    if blocks.len() <= 1 {
        return module::linear(x, w.clone(), bias.cloned());
    }
    let parts: Vec<Tensor<D>> = blocks
        .into_par_iter()
        .map(|columns| {
            let w = w.clone().slice([0..k, columns.clone()]);
            module::linear(x.clone(), w, bias.map(|b| b.clone().slice([columns])))
        })
        .collect();
    Tensor::cat(parts, D - 1)
}

/// Softmax over the last dimension on any device: [`softmax_last`] on the CPU.
pub(crate) fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device() == Device::flex() {
        softmax_last(x)
    } else {
        activation::softmax(x, D - 1)
    }
}

/// `x W` for a weight `W` `[in, out]` on any device: [`linear`] on the CPU.
pub(crate) fn matmul_weight<const D: usize>(x: Tensor<D>, w: &Tensor<2>) -> Tensor<D> {
    if w.device() == Device::flex() {
        linear(x, w, None)
    } else {
        module::linear(x, w.clone(), None)
    }
}

/// Rows per task when `rows` are split into one task per thread in whole tiles of `tile` rows
/// (the host products: each task streams the whole weight once, so more tasks than threads
/// only re-read it — ViT-B/16's 197 rows in tasks of 24 were 9 tasks, 5 and 4 on two threads).
pub(crate) fn rows_per_task(rows: usize, tile: usize) -> usize {
    rows.div_ceil(tile)
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1)
        * tile
}

/// `0..n` in at most `threads` ranges of whole [`COLUMN_QUANTUM`]s (the last takes the rest),
/// none empty.
fn column_blocks(n: usize, threads: usize) -> Vec<Range<usize>> {
    let quanta = n.div_ceil(COLUMN_QUANTUM);
    let tasks = threads.clamp(1, quanta.max(1));
    let per_task = quanta.div_ceil(tasks) * COLUMN_QUANTUM;
    (0..n)
        .step_by(per_task.max(1))
        .map(|start| start..(start + per_task).min(n))
        .collect()
}

/// `eˣ` with a relative error below 1.2e-7 (one f32 ulp; Cephes' `expf`: `2ⁿ · p(r)` with
/// `r = x − n·ln 2`, `|r| ≤ ln 2 / 2`, `p` of degree 7), as plain arithmetic with no branches
/// and no rounding instruction (SSE2 has none), so that loops over it vectorise on any x86-64
/// and in wasm. Exactly 0 below `ln 2⁻¹²⁶` (an attention mask's `-1e9` included) where `expf`
/// would give subnormals; above 88 it saturates at `e⁸⁸`. NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: `n · LN2_HI` is exact for every `n` that occurs.
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375 as an f32
    const LN2_LO: f32 = -2.121_944_4e-4;
    const LOWEST: f32 = -87.336_55; // ln 2⁻¹²⁶: the smallest normal result
    const HIGHEST: f32 = 88.0;
    // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    let clamped = x.clamp(LOWEST, HIGHEST);
    let t = clamped * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r)
        + r
        + 1.0;
    // 2ⁿ: `t`'s bits are `SHIFT`'s plus `n`; move `n + 127` into the exponent field.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    if x < LOWEST { 0.0 } else { p * scale }
}

/// Elements per parallel task in the element-wise kernels below (enough work for a task).
const ELEMENTS_PER_TASK: usize = 1 << 15;

/// Softmax over the last dimension of a CPU tensor, in place when the tensor is not shared.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let row = x.dims()[D - 1];
    let mut data = x.into_data();
    let Ok(values) = data.as_mut_slice::<f32>() else {
        // Not reachable (activations are f32 on the CPU); burn's own then.
        return activation::softmax(Tensor::from_data(data, &device), D - 1);
    };
    if let Some(rows_per_task) = ELEMENTS_PER_TASK.checked_div(row) {
        let rows_per_task = rows_per_task.max(1);
        values
            .par_chunks_mut(rows_per_task * row)
            .for_each(|rows| rows.chunks_exact_mut(row).for_each(softmax_row));
    }
    Tensor::from_data(data, &device)
}

fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// OpenAI's QuickGELU, `x·σ(1.702x)`, on any device: [`quick_gelu_in_place`] on the CPU.
pub(crate) fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device() == Device::flex() {
        quick_gelu_in_place(x)
    } else {
        x.clone() * activation::sigmoid(x * 1.702)
    }
}

/// QuickGELU as `x / (1 + e^(−1.702x))` on a CPU tensor: one pass, in place when the tensor is
/// not shared (burn's would be three passes and two temporaries).
fn quick_gelu_in_place<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let mut data = x.into_data();
    let Ok(values) = data.as_mut_slice::<f32>() else {
        // Not reachable (activations are f32 on the CPU); burn's own then.
        let x = Tensor::from_data(data, &device);
        return x.clone() * activation::sigmoid(x * 1.702);
    };
    values.par_chunks_mut(ELEMENTS_PER_TASK).for_each(|chunk| {
        for v in chunk {
            *v /= 1.0 + exp(-1.702 * *v);
        }
    });
    Tensor::from_data(data, &device)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    #[test]
    fn column_blocks_cover_the_columns_in_whole_quanta() {
        assert_eq!(column_blocks(768, 1), vec![0..768]);
        assert_eq!(column_blocks(768, 2), vec![0..384, 384..768]);
        assert_eq!(
            column_blocks(3072, 3),
            vec![0..1056, 1056..2112, 2112..3072]
        );
        // Fewer columns than threads × quantum: fewer tasks, none empty.
        assert_eq!(column_blocks(50, 4), vec![0..48, 48..50]);
        assert_eq!(column_blocks(5, 8), vec![0..5]);
        assert_eq!(column_blocks(0, 2), Vec::<Range<usize>>::new());
    }

    #[test]
    fn exp_is_within_one_ulp() {
        // Against the exact value (f64); measured worst 8.0e-8.
        let mut worst = 0.0f64;
        let mut x = -87.3f32;
        while x < 88.0 {
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / want);
            x += 0.001_3;
        }
        assert!(worst < f64::from(f32::EPSILON), "relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e9), 0.0, "an attention mask's value");
        assert_eq!(exp(-88.0), 0.0, "below the smallest normal result");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(1e9).is_finite() && exp(1e9) > 1e38);
    }

    #[test]
    fn softmax_and_quick_gelu_equal_burns() {
        let device = Device::flex();
        let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 7.0;
        let x = Tensor::<3>::from_data(
            TensorData::new((0..2 * 5 * 77).map(value).collect::<Vec<_>>(), [2, 5, 77]),
            &device,
        );
        let close = |a: Tensor<3>, b: Tensor<3>, tol: f32| {
            let (a, b) = (
                a.into_data().try_to_vec::<f32>().unwrap(),
                b.into_data().try_to_vec::<f32>().unwrap(),
            );
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
            }
        };
        // A masked entry (−1e9, as the text tower's) gets exactly 0.
        let masked = x
            .clone()
            .slice_assign([0..1, 0..1, 0..1], Tensor::full([1, 1, 1], -1e9, &device));
        let soft = softmax_last(masked.clone());
        assert_eq!(
            soft.clone().slice([0..1, 0..1, 0..1]).into_scalar::<f32>(),
            0.0
        );
        close(soft, activation::softmax(masked, 2), 1e-6);
        close(
            quick_gelu(x.clone()),
            x.clone() * activation::sigmoid(x * 1.702),
            1e-6,
        );
    }

    #[test]
    fn split_product_equals_the_single_one() {
        let device = Device::flex();
        let (rows, k, n) = (7, 96, 200);
        let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 50.0;
        let x = Tensor::<3>::from_data(
            TensorData::new((0..rows * k).map(value).collect::<Vec<_>>(), [1, rows, k]),
            &device,
        );
        let w = Tensor::<2>::from_data(
            TensorData::new((0..k * n).map(|i| value(i + 3)).collect::<Vec<_>>(), [k, n]),
            &device,
        );
        let b = Tensor::<1>::from_data(
            TensorData::new((0..n).map(|i| value(i + 5)).collect::<Vec<_>>(), [n]),
            &device,
        );
        let expected = module::linear(x.clone(), w.clone(), Some(b.clone()))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let split = pool.install(|| linear(x, &w, Some(&b)));
        assert_eq!(split.dims(), [1, rows, n]);
        let split = split.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in split.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
