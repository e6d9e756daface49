//! Text2Points (§4.4 of the paper): turn a similarity map into positive and negative point
//! prompts for SAM, as the official `similarity_map_to_points` does — minus its latent bugs.

use serde::{Deserialize, Serialize};

use crate::output::maps::{min_max, resize_bilinear};

/// Point prompts in original-image pixel coordinates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Points {
    /// `[x, y]` pairs.
    pub xy: Vec<[u32; 2]>,
    /// `true` for a positive (object) point, `false` for a negative (background) one.
    pub positive: Vec<bool>,
}

/// The official defaults: threshold on the min-maxed map, and 2× down-sampling to smooth it.
pub const POINT_THRESHOLD: f32 = 0.8;
/// See [`POINT_THRESHOLD`].
pub const POINT_DOWNSAMPLE: usize = 2;

/// Points from one map of raw patch similarities (`grid` = `[gh, gw]`, row-major) for an
/// image of `image_hw = [height, width]` pixels: up to N/2 positives (highest first-to-last in
/// ascending order, as the official code emits them) then as many negatives (lowest).
///
/// Differences from the official code, all of which only matter where it misbehaved:
/// - a constant map yields no points (officially NaNs made `num = 0` and `rank[-0:]` then
///   returned every cell as a "positive" with a mismatched label array);
/// - a non-square grid keeps its aspect (officially `side = √N` broke it);
/// - grids smaller than the down-sampling factor keep at least one cell, and coordinates
///   are clamped into the image however narrow it is;
/// - ties are ranked stably, so results do not depend on the sort implementation.
pub fn similarity_to_points(
    similarity: &[f32],
    grid: [usize; 2],
    image_hw: [usize; 2],
    threshold: f32,
    down_sample: usize,
) -> Points {
    let [gh, gw] = grid;
    let down = down_sample.max(1);
    let (dh, dw) = ((gh / down).max(1), (gw / down).max(1));
    let small = resize_bilinear(similarity, grid, [dh, dw]);
    let (lo, hi) = small
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Points::default();
    }
    let norm = min_max(&small);
    let mut rank: Vec<usize> = (0..norm.len()).collect();
    rank.sort_by(|&a, &b| norm[a].total_cmp(&norm[b])); // stable
    let above = norm.iter().filter(|&&v| v >= threshold).count();
    let num = above.min(norm.len() / 2);
    let [height, width] = image_hw;
    let (scale_h, scale_w) = (height as f64 / dh as f64, width as f64 / dw as f64);
    let to_xy = |idx: usize| -> [u32; 2] {
        let x = (((idx % dw) as f64 + 0.5) * scale_w).min(width.saturating_sub(1) as f64);
        let y = (((idx / dw) as f64 + 0.5) * scale_h).min(height.saturating_sub(1) as f64);
        [x as u32, y as u32]
    };
    let positives = rank[rank.len() - num..].iter().map(|&i| to_xy(i));
    let negatives = rank[..num].iter().map(|&i| to_xy(i));
    Points {
        xy: positives.chain(negatives).collect(),
        positive: std::iter::repeat_n(true, num)
            .chain(std::iter::repeat_n(false, num))
            .collect(),
    }
}

/// Points for an "a+b" target (official demo): negatives from the mean of the min-maxed part
/// maps, then the positives of each part's own map, in part order.
pub fn combined_points(
    parts: &[Vec<f32>],
    mean: &[f32],
    grid: [usize; 2],
    image_hw: [usize; 2],
) -> Points {
    let from_mean = similarity_to_points(mean, grid, image_hw, POINT_THRESHOLD, POINT_DOWNSAMPLE);
    let mut out = Points::default();
    let take = |points: Points, positive: bool, out: &mut Points| {
        for (xy, p) in points.xy.into_iter().zip(points.positive) {
            if p == positive {
                out.xy.push(xy);
                out.positive.push(p);
            }
        }
    };
    take(from_mean, false, &mut out);
    for part in parts {
        let points = similarity_to_points(part, grid, image_hw, POINT_THRESHOLD, POINT_DOWNSAMPLE);
        take(points, true, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hottest_cell_is_positive_coldest_negative() {
        // 4×4 grid → 2×2 after down-sampling; the bottom-right block is hot.
        let mut sm = vec![0.0; 16];
        for (i, v) in sm.iter_mut().enumerate() {
            *v = (i / 4 + i % 4) as f32;
        }
        let p = similarity_to_points(&sm, [4, 4], [100, 200], POINT_THRESHOLD, 2);
        assert_eq!(p.positive, vec![true, false]);
        assert_eq!(p.xy, vec![[150, 75], [50, 25]]);
    }

    #[test]
    fn constant_map_has_no_points() {
        let p = similarity_to_points(&[0.5; 16], [4, 4], [64, 64], POINT_THRESHOLD, 2);
        assert_eq!(p, Points::default());
    }

    #[test]
    fn tiny_grid_and_narrow_image_stay_in_bounds() {
        let p = similarity_to_points(&[0.0, 1.0, 2.0], [1, 3], [1, 2], POINT_THRESHOLD, 2);
        assert!(p.xy.iter().all(|&[x, y]| x < 2 && y < 1), "{p:?}");
        assert_eq!(p.xy.len(), p.positive.len());
    }

    #[test]
    fn combined_takes_negatives_from_mean_and_positives_from_parts() {
        let one_hot = |at: usize| -> Vec<f32> { (0..16).map(|i| f32::from(i == at)).collect() };
        let (a, b) = (one_hot(15), one_hot(0));
        let mean = crate::output::maps::combine_min_max(&[a.clone(), b.clone()]);
        let p = combined_points(&[a, b], &mean, [4, 4], [40, 40]);
        // Mean map (2×2): hot at both diagonal corners → the off-diagonal cells are negatives.
        assert_eq!(p.xy, vec![[30, 10], [10, 30], [30, 30], [10, 10]]);
        assert_eq!(p.positive, vec![false, false, true, true]);
    }
}
