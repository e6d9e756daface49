//! Similarity maps (host side): per-class min-max normalisation and bilinear resizing, as in
//! the official `get_similarity_map`. Pure functions on `f32` slices, shared by the CLI, the
//! app's canvas code and the position-embedding interpolation.

/// Bilinear resize of one row-major plane, PyTorch `interpolate(mode="bilinear",
/// align_corners=False)` semantics (half-pixel centres, edge clamping, no antialiasing).
pub fn resize_bilinear(src: &[f32], in_hw: [usize; 2], out_hw: [usize; 2]) -> Vec<f32> {
    let [ih, iw] = in_hw;
    let [oh, ow] = out_hw;
    debug_assert_eq!(src.len(), ih * iw);
    if in_hw == out_hw {
        return src.to_vec();
    }
    let rows = bilinear_taps(ih, oh);
    let cols = bilinear_taps(iw, ow);
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, wy0, wy1) in &rows {
        for &(x0, x1, wx0, wx1) in &cols {
            let top = wx0 * src[y0 * iw + x0] + wx1 * src[y0 * iw + x1];
            let bottom = wx0 * src[y1 * iw + x0] + wx1 * src[y1 * iw + x1];
            out.push(wy0 * top + wy1 * bottom);
        }
    }
    out
}

/// One axis of a bilinear resize from `in_len` to `out_len` samples: per output sample, the two
/// source indices and their weights (PyTorch `align_corners=False`: half-pixel centres, edges
/// clamped).
pub fn bilinear_taps(in_len: usize, out_len: usize) -> Vec<(usize, usize, f32, f32)> {
    // PyTorch computes the scale and source index in f32 (its CPU `opmath` type).
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|o| {
            let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_len - 1);
            let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// `(v - min) / (max - min)`; a constant input (max == min) maps to all zeros instead of the
/// NaNs the official code would produce.
pub fn min_max(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    if range > 0.0 && range.is_finite() {
        values.iter().map(|v| (v - lo) / range).collect()
    } else {
        vec![0.0; values.len()]
    }
}

/// Column `class` of a row-major `[rows, classes]` matrix.
pub fn column(matrix: &[f32], classes: usize, class: usize) -> Vec<f32> {
    matrix
        .iter()
        .skip(class)
        .step_by(classes)
        .copied()
        .collect()
}

/// The similarity map of one class: min-max over the patches, then resized from the patch grid
/// to `out_hw` (row-major `[out_h, out_w]`, values in [0, 1]).
pub fn similarity_map(patches: &[f32], grid: [usize; 2], out_hw: [usize; 2]) -> Vec<f32> {
    resize_bilinear(&min_max(patches), grid, out_hw)
}

/// The official "a+b" combination: min-max each part's patch similarities, then average.
pub fn combine_min_max(parts: &[Vec<f32>]) -> Vec<f32> {
    let n = parts.first().map_or(0, Vec::len);
    let mut mean = vec![0.0; n];
    for part in parts {
        for (m, v) in mean.iter_mut().zip(min_max(part)) {
            *m += v;
        }
    }
    let k = parts.len().max(1) as f32;
    mean.iter_mut().for_each(|m| *m /= k);
    mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_spans_unit_interval_and_constant_is_zero_not_nan() {
        assert_eq!(min_max(&[2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max(&[7.0; 4]), vec![0.0; 4]);
        assert_eq!(min_max(&[]), Vec::<f32>::new());
    }

    #[test]
    fn bilinear_matches_pytorch_on_small_cases() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), (3, 3),
        //     mode="bilinear", align_corners=False)
        let up = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], [2, 2], [3, 3]);
        let expected = [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0];
        for (a, b) in up.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
        // Downsampling 4 → 2 averages neighbour pairs (no antialias needed at exactly 2×).
        let down = resize_bilinear(&[0.0, 2.0, 4.0, 6.0], [1, 4], [1, 2]);
        assert_eq!(down, vec![1.0, 5.0]);
    }

    #[test]
    fn combine_averages_normalised_parts() {
        let combined = combine_min_max(&[vec![0.0, 10.0], vec![5.0, 5.0]]);
        assert_eq!(combined, vec![0.0, 0.5]);
    }

    #[test]
    fn column_extracts_strided_values() {
        assert_eq!(
            column(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 1),
            vec![2.0, 5.0]
        );
    }
}
