//! The paper's explainability metrics over a dataset (§5.1, Table 1), as `eval-explain`
//! computes them. The paper publishes neither its evaluation code nor the exact formulas; the
//! definitions here are ours and the README states them:
//!
//! - **mIoU at t**: for every (image, class present in its truth) pair, the class's similarity
//!   map (min-max per class over the patches, bilinear to the image: [`Explanation::map`]) is
//!   thresholded — a pixel is predicted as the class where its map value is *above* t — and
//!   compared with the class's pixels, truth value 255 left out of both; the IoUs are averaged
//!   over the pairs. Thresholds t = 0.05, 0.10, …, 0.95; the best is the paper's "grid-searched
//!   threshold".
//! - **mSC** (mean score contrast): over the same pairs, the mean map value on the class's
//!   pixels minus the mean on the other evaluated pixels, × 100. A pair whose class covers every
//!   evaluated pixel has no contrast and is left out of mSC only.
//!
//! [`Explanation::map`]: crate::output::explanation::Explanation::map

use serde::Serialize;

use crate::error::{ClipError, Result};
use crate::output::evaluation::IGNORE;

/// Number of thresholds: 0.05 … 0.95 in steps of 0.05.
pub const THRESHOLDS: usize = 19;

/// Threshold `k` (0-based): `(k + 1) / 20`.
pub fn threshold(k: usize) -> f32 {
    (k + 1) as f32 / 20.0
}

/// Sums over (image, class) pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExplainMetrics {
    /// Σ IoU at each threshold.
    iou_sum: [f64; THRESHOLDS],
    /// Pairs in the IoU means.
    pairs: usize,
    /// Σ contrast (map units, not yet × 100).
    contrast_sum: f64,
    /// Pairs in mSC.
    contrast_pairs: usize,
}

impl ExplainMetrics {
    /// Adds one pair: `map` (values in [0, 1]) and `truth` (class values, [`IGNORE`] skipped)
    /// over the same pixels, for class value `class`. A class with no pixel in `truth` is not a
    /// pair: nothing is added and `false` returned.
    pub fn add(&mut self, map: &[f32], truth: &[u8], class: u8) -> Result<bool> {
        if map.len() != truth.len() {
            return Err(ClipError::Evaluation(format!(
                "the map has {} pixels, the truth {}",
                map.len(),
                truth.len()
            )));
        }
        // Pixels of the class / of other classes whose value is above threshold k, counted by
        // how many thresholds each value exceeds: one pass, exact for every threshold.
        let mut inside = [0u64; THRESHOLDS + 1];
        let mut outside = [0u64; THRESHOLDS + 1];
        let (mut sum_in, mut sum_out) = (0.0f64, 0.0f64);
        for (&v, &t) in map.iter().zip(truth) {
            if t == IGNORE {
                continue;
            }
            let above = (0..THRESHOLDS).take_while(|&k| v > threshold(k)).count();
            if t == class {
                inside[above] += 1;
                sum_in += f64::from(v);
            } else {
                outside[above] += 1;
                sum_out += f64::from(v);
            }
        }
        let n_in: u64 = inside.iter().sum();
        let n_out: u64 = outside.iter().sum();
        if n_in == 0 {
            return Ok(false);
        }
        for k in 0..THRESHOLDS {
            // Values exceeding threshold k exceed at least k + 1 thresholds.
            let hit: u64 = inside[k + 1..].iter().sum();
            let false_alarm: u64 = outside[k + 1..].iter().sum();
            self.iou_sum[k] += hit as f64 / (n_in + false_alarm) as f64;
        }
        self.pairs += 1;
        if n_out > 0 {
            self.contrast_sum += sum_in / n_in as f64 - sum_out / n_out as f64;
            self.contrast_pairs += 1;
        }
        Ok(true)
    }

    /// The scores so far.
    pub fn scores(&self) -> ExplainScores {
        let thresholds: Vec<f32> = (0..THRESHOLDS).map(threshold).collect();
        let miou_at: Vec<f64> = if self.pairs == 0 {
            vec![]
        } else {
            self.iou_sum.iter().map(|s| s / self.pairs as f64).collect()
        };
        // The first threshold wins ties.
        let best = miou_at
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f64)>, (k, &m)| match best {
                Some((_, b)) if b >= m => best,
                _ => Some((k, m)),
            });
        ExplainScores {
            thresholds,
            miou_at,
            best_threshold: best.map(|(k, _)| threshold(k)),
            best_miou: best.map(|(_, m)| m),
            msc: (self.contrast_pairs > 0)
                .then(|| 100.0 * self.contrast_sum / self.contrast_pairs as f64),
            pairs: self.pairs,
        }
    }
}

/// The result of `eval-explain` (its `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainScores {
    /// 0.05 … 0.95.
    pub thresholds: Vec<f32>,
    /// mIoU (0–1) at each threshold; empty without pairs.
    pub miou_at: Vec<f64>,
    /// The threshold of the best mIoU.
    pub best_threshold: Option<f32>,
    /// The best mIoU (0–1).
    pub best_miou: Option<f64>,
    /// Mean score contrast (map units × 100).
    pub msc: Option<f64>,
    /// (image, class) pairs evaluated.
    pub pairs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_curve_and_contrast() {
        let mut m = ExplainMetrics::default();
        // Pair 1: class 1 on pixels 0–1; the ignored pixel's 0.9 counts nowhere.
        //   map   [0.8, 0.3, 0.6, 0.1, 0.9]
        //   truth [1,   1,   0,   0,   255]
        // t < 0.1: predicted {0, 1, 2, 3}: IoU 2/4; 0.1 ≤ t < 0.3: {0, 1, 2}: 2/3;
        // 0.3 ≤ t < 0.6: {0, 2}: 1/3;
        // 0.6 ≤ t < 0.8: {0}: 1/2; t ≥ 0.8: none: 0.
        // Contrast: (0.8 + 0.3)/2 − (0.6 + 0.1)/2 = 0.2.
        assert!(
            m.add(&[0.8, 0.3, 0.6, 0.1, 0.9], &[1, 1, 0, 0, 255], 1)
                .unwrap()
        );
        // Pair 2: class 0 covers every pixel: IoU 1 where both are above t, no contrast.
        //   map [0.5, 1.0]: t < 0.5: 1; 0.5 ≤ t < 1: 1/2.
        assert!(m.add(&[0.5, 1.0], &[0, 0], 0).unwrap());
        // Not a pair: class 3 is absent.
        assert!(!m.add(&[0.5, 1.0], &[0, 0], 3).unwrap());
        let s = m.scores();
        assert_eq!(s.pairs, 2);
        let expected = |t: f32| {
            let a = match t {
                t if t < 0.1 => 0.5,
                t if t < 0.3 => 2.0 / 3.0,
                t if t < 0.6 => 1.0 / 3.0,
                t if t < 0.8 => 0.5,
                _ => 0.0,
            };
            let b = if t < 0.5 { 1.0 } else { 0.5 };
            (a + b) / 2.0
        };
        for (k, (&t, &miou)) in s.thresholds.iter().zip(&s.miou_at).enumerate() {
            assert!((miou - expected(t)).abs() < 1e-12, "t {t} (k {k}): {miou}");
        }
        // Best: 0.10 … 0.25 all give (2/3 + 1)/2; the first wins.
        assert_eq!(s.best_threshold, Some(0.1));
        assert!((s.best_miou.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // The map values are f32: 0.8 is 0.800000011…, so 1e-5 after the × 100.
        assert!((s.msc.unwrap() - 20.0).abs() < 1e-5);
        // A value exactly on a threshold is not above it.
        let mut edge = ExplainMetrics::default();
        edge.add(&[0.5, 0.0], &[0, 1], 0).unwrap();
        let e = edge.scores();
        assert_eq!(e.miou_at[8], 1.0); // t = 0.45
        assert_eq!(e.miou_at[9], 0.0); // t = 0.5
    }

    #[test]
    fn empty_and_bad_inputs() {
        let s = ExplainMetrics::default().scores();
        assert_eq!((s.pairs, s.best_miou, s.msc), (0, None, None));
        assert!(s.miou_at.is_empty());
        assert_eq!(s.thresholds.len(), 19);
        assert!(matches!(
            ExplainMetrics::default().add(&[0.1], &[0, 0], 0),
            Err(ClipError::Evaluation(_))
        ));
    }
}
