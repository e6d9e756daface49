//! The result of one explanation: the CLI's `--json`, the app's `window.clipSurgery.last`.
//! Plain data: the page draws it without the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};
use crate::output::maps::{resize_bilinear, similarity_map};
use crate::output::points::Points;
use crate::output::segmentation::{BackgroundRule, PatchScores, Segmentation, segment};

/// The result of one explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// One entry per result column; never the same label twice (a label set refuses a
    /// repeat), so everything keyed by label below is one-to-one with the columns.
    pub labels: Vec<String>,
    /// Patch grid `[gh, gw]`.
    pub grid: [usize; 2],
    /// Per patch (row-major over the grid, class token excluded), one value per label, before
    /// min-max. For an "a+b" text: the mean of the parts' min-maxed similarities.
    pub similarity: Vec<Vec<f32>>,
    /// Per patch (row-major over the grid, class token excluded), the cosine of the method's
    /// dense token with each encoded text — before feature surgery, min-max or softmax: the
    /// author's segmentation scores. One column per label of a label set; a single text has
    /// one per part of its "a+b".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logits: Vec<Vec<f32>>,
    /// The softmax scale of the cosines (`exp` of the checkpoint's `logit_scale`: 100 for
    /// OpenAI's CLIPs).
    #[serde(default = "default_logit_scale")]
    pub logit_scale: f32,
    /// Image-level probabilities over the labels (a single text scores 1).
    pub cls_scores: Vec<f32>,
    /// Label sets only: feature surgery (Eq. 9, label-set mode) on the original path's CLS
    /// token, `w_k·cos(cls, t_k) − mean_j w_j·cos(cls, t_j)` — the author's multi-label score.
    /// Unlike `cls_scores` it does not sum to 1: a label is present where it is positive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cls_surgery: Vec<f32>,
    /// Text2Points per label, in original-image pixels (by column: [`Self::points_of`]).
    pub points: BTreeMap<String, Points>,
    /// The one column is an "a+b" combination: already min-maxed (see [`Self::map`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub combined: bool,
    /// Labels whose prompts exceeded the 77-token context and were truncated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// The multimodal view (paper §5.6, `explain --tokens`): a single text's tokens, SOT to
    /// EOT, each as a class of feature surgery against the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenMap>,
    /// The attention view (paper Fig. 1, `explain --attention-at`): one patch's attention
    /// row in one block, q-k beside v-v.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionRows>,
    /// The redundancy view (paper Fig. 2, `explain --redundancy`): what every class shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Redundancy>,
}

/// What a label set's maps share (paper Fig. 2), per patch (row-major over the grid), before
/// min-max, from the method's tokens: the cosine with the ensemble of the empty text `""`, and
/// the term Eq. 9 subtracts from every class, `x · mean_k(w_k t_k)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redundancy {
    /// `cos(x, ensemble(""))`.
    pub empty: Vec<f32>,
    /// Feature surgery's subtracted term.
    pub term: Vec<f32>,
}

/// One patch's attention to every token in one block of the image tower, averaged over heads:
/// the original q-k attention beside the v-v attention of CLIP Surgery's path. Both rows are
/// softmaxes over the class token (index 0) and the patches (`1 + row·gw + col`), so each sums
/// to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionRows {
    /// The block (0-based).
    pub block: usize,
    /// The query patch `[row, col]` on the grid.
    pub query: [usize; 2],
    /// q-k attention (raw CLIP's; CLIP Surgery's original path), `1 + gh·gw` values.
    pub qk: Vec<f32>,
    /// v-v attention (CLIP Surgery's path), `1 + gh·gw` values.
    pub vv: Vec<f32>,
}

impl AttentionRows {
    /// The patches' part of a row (class token dropped) as a map at `hw`, min-max as the
    /// heatmaps are.
    pub fn map(row: &[f32], grid: [usize; 2], hw: [usize; 2]) -> Vec<f32> {
        similarity_map(row.get(1..).unwrap_or_default(), grid, hw)
    }
}

/// One token of a text in the multimodal view: its feature is the text tower's final state at
/// that token (`ln_final`), projected with `text_projection` and L2-normalised; the tokens
/// together are the class set of feature surgery (Eq. 9, label-set mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMap {
    /// How the token reads (`</w>` dropped; `<|startoftext|>`, `<|endoftext|>`).
    pub text: String,
    /// Per patch (row-major over the grid), before min-max: feature surgery of the image's
    /// tokens against the text's tokens (raw CLIP: the cosine).
    pub similarity: Vec<f32>,
    /// Cosine of the token's feature with the image's CLS feature.
    pub score: f32,
}

/// CLIP's trained softmax scale, for results written before `logit_scale` was.
fn default_logit_scale() -> f32 {
    100.0
}

impl Explanation {
    /// The similarity column of label `i` over the patches.
    pub fn patch_column(&self, i: usize) -> Vec<f32> {
        self.similarity
            .iter()
            .map(|row| row.get(i).copied().unwrap_or(0.0))
            .collect()
    }

    /// Text `i`'s cosines over the patches, before feature surgery (`logits`' column); `None`
    /// past the last text or without logits.
    pub fn logit_column(&self, i: usize) -> Option<Vec<f32>> {
        if self.logits.is_empty() {
            return None;
        }
        self.logits.iter().map(|row| row.get(i).copied()).collect()
    }

    /// The points of column `i`.
    pub fn points_of(&self, i: usize) -> Option<&Points> {
        self.points.get(self.labels.get(i)?)
    }

    /// Label `i`'s similarity map at `hw` (`[height, width]`, row-major, values in [0, 1]),
    /// the one rule the CLI's overlays and the app's canvases share: per-label min-max over the
    /// patches, then a bilinear resize (official `get_similarity_map`). An "a+b" combination is
    /// the mean of its parts' min-maxed maps already, so it is only resized — the official
    /// demo draws that mean as it is, and a second min-max would stretch it.
    pub fn map(&self, i: usize, hw: [usize; 2]) -> Vec<f32> {
        let patches = self.patch_column(i);
        if self.combined {
            resize_bilinear(&patches, self.grid, hw)
        } else {
            similarity_map(&patches, self.grid, hw)
        }
    }

    /// Label indices, most likely present first: by `cls_surgery` (the author's multi-label
    /// score) where there is one, else by CLIP's `cls_scores`. Ties keep label order.
    pub fn ranking(&self) -> Vec<usize> {
        let scores = if self.cls_surgery.is_empty() {
            &self.cls_scores
        } else {
            &self.cls_surgery
        };
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by(|&a, &b| {
            let score = |i: usize| scores.get(i).copied().unwrap_or(f32::NEG_INFINITY);
            score(b).total_cmp(&score(a))
        });
        order
    }

    /// Whether label `i` counts as present at `threshold` on `cls_surgery`; `None` without
    /// that score (a single text).
    pub fn present(&self, i: usize, threshold: f32) -> Option<bool> {
        self.cls_surgery.get(i).map(|&s| s > threshold)
    }

    /// The label set segmented at `hw` (`[height, width]`) by the author's protocol from the
    /// `logits` this result holds (argmax of the upsampled cosines); pixels whose winner's
    /// probability, `softmax(logit_scale · logits)`, is below `threshold` are background. What
    /// `clip-surgery segment` computes for the same labels without background words.
    pub fn segment(&self, threshold: Option<f32>, hw: [usize; 2]) -> Result<Segmentation> {
        let columns = self.labels.len();
        let [gh, gw] = self.grid;
        // A single text has nothing to compete with.
        let fits = !self.combined
            && columns >= 2
            && self.logits.len() == gh * gw
            && self.logits.iter().all(|row| row.len() == columns);
        if !fits {
            return Err(ClipError::NotSegmentable);
        }
        let scores = PatchScores {
            grid: self.grid,
            columns,
            values: self.logits.concat(),
        };
        let rule = BackgroundRule {
            words: 0,
            threshold,
            scale: self.logit_scale,
        };
        segment(&scores, &self.labels, hw, &rule)
    }

    /// Token `i`'s map at `hw` (the multimodal view), drawn by the rule of [`Self::map`].
    pub fn token_map(&self, i: usize, hw: [usize; 2]) -> Option<Vec<f32>> {
        let token = self.tokens.get(i)?;
        Some(similarity_map(&token.similarity, self.grid, hw))
    }

    /// The `n` tokens of the multimodal view with the highest scores, best first (the
    /// paper's figure highlights three); SOT and EOT compete like the words.
    pub fn top_tokens(&self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tokens.len()).collect();
        order.sort_by(|&a, &b| self.tokens[b].score.total_cmp(&self.tokens[a].score));
        order.truncate(n);
        order
    }

    /// Index of the best CLS score.
    pub fn top1(&self) -> Option<usize> {
        (0..self.cls_scores.len())
            .max_by(|&a, &b| self.cls_scores[a].total_cmp(&self.cls_scores[b]))
    }

    /// How closely `other` (e.g. a quantized model's result) reproduces this one: the Pearson
    /// correlation of each label's patch similarities — what a map's *shape* depends on, since
    /// maps are min-maxed — and whether the CLS top-1 label agrees.
    pub fn agreement(&self, other: &Explanation) -> Agreement {
        Agreement {
            pearson: (0..self.labels.len())
                .map(|i| pearson(&self.patch_column(i), &other.patch_column(i)))
                .collect(),
            top1_agrees: self.top1() == other.top1(),
        }
    }
}

/// See [`Explanation::agreement`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Pearson r per label.
    pub pearson: Vec<f64>,
    /// Whether the highest CLS score is on the same label.
    pub top1_agrees: bool,
}

/// Pearson correlation; 1 for two identical constant series (nothing to disagree on), 0 if
/// only one is constant.
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    match (saa > 0.0, sbb > 0.0) {
        (true, true) => sab / (saa * sbb).sqrt(),
        (false, false) if a == b => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two labels over a 1×2 grid (also the result files' test explanation).
    pub(crate) fn two_labels() -> Explanation {
        Explanation {
            labels: vec!["cat".into(), "dog".into()],
            grid: [1, 2],
            similarity: vec![vec![0.2, 0.5], vec![0.4, 0.6]],
            logits: vec![vec![0.25, 0.2], vec![0.1, 0.3]],
            logit_scale: 100.0,
            cls_scores: vec![0.3, 0.7],
            cls_surgery: vec![],
            points: BTreeMap::from([
                ("cat".into(), Points::default()),
                (
                    "dog".into(),
                    Points {
                        xy: vec![[1, 2]],
                        positive: vec![true],
                    },
                ),
            ]),
            combined: false,
            truncated: vec![],
            tokens: vec![],
            attention: None,
            redundancy: None,
        }
    }

    #[test]
    fn json_keys_points_by_label_and_columns_find_theirs() {
        let e = two_labels();
        let json: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(json["points"]["dog"]["xy"], serde_json::json!([[1, 2]]));
        for absent in [
            "combined",
            "truncated",
            "cls_surgery",
            "tokens",
            "attention",
            "redundancy",
        ] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
        let back: Explanation = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.points_of(1).unwrap().xy, vec![[1, 2]]);
        assert_eq!(e.points_of(2), None);
    }

    #[test]
    fn ranking_prefers_the_surgery_score_and_presence_thresholds_it() {
        let mut e = two_labels();
        // CLIP's softmax prefers dog; without a surgery score that is the order.
        assert_eq!(e.ranking(), vec![1, 0]);
        assert_eq!(e.present(0, 0.0), None);
        e.cls_surgery = vec![0.02, -0.01];
        assert_eq!(e.ranking(), vec![0, 1]);
        assert_eq!(
            (e.present(0, 0.0), e.present(1, 0.0)),
            (Some(true), Some(false))
        );
        assert_eq!(e.present(0, 0.03), Some(false));
    }

    #[test]
    fn a_label_set_segments_from_its_logits() {
        let mut e = two_labels();
        // Label 0 wins the left patch by 0.05, label 1 the right one by 0.2; at 1×4 the second
        // pixel (taps 0.75/0.25) already leans right: 0.2125 against 0.225.
        let s = e.segment(None, [1, 4]).unwrap();
        assert_eq!(s.mask, vec![0, 1, 1, 1]);
        assert_eq!(s.area, vec![0.25, 0.75]);
        // Its winner's probability is 1 / (1 + e^-1.25) = 0.78 at scale 100: background at 0.9.
        let floor = e.segment(Some(0.9), [1, 4]).unwrap();
        assert_eq!(floor.mask, vec![0, 255, 1, 1]);
        e.logit_scale = 1000.0;
        assert_eq!(e.segment(Some(0.9), [1, 4]).unwrap().mask, vec![0, 1, 1, 1]);
        // Nothing to segment: results without logits, combinations, a single label.
        let json = serde_json::to_value(two_labels()).unwrap();
        let mut old: Explanation = serde_json::from_value(serde_json::json!({
            "labels": json["labels"], "grid": json["grid"], "similarity": json["similarity"],
            "cls_scores": json["cls_scores"], "points": json["points"],
        }))
        .unwrap();
        assert_eq!(old.logit_scale, 100.0);
        assert!(matches!(
            old.segment(None, [1, 4]),
            Err(ClipError::NotSegmentable)
        ));
        old.logits = two_labels().logits;
        assert!(old.segment(None, [1, 4]).is_ok());
        old.combined = true;
        assert!(old.segment(None, [1, 4]).is_err());
        let mut one = two_labels();
        one.labels.truncate(1);
        one.logits = vec![vec![0.1], vec![0.2]];
        assert!(one.segment(None, [1, 4]).is_err());
    }

    #[test]
    fn top_tokens_by_score() {
        let mut e = two_labels();
        assert!(e.top_tokens(3).is_empty());
        e.tokens = [0.1, 0.4, -0.2, 0.3]
            .iter()
            .map(|&score| TokenMap {
                text: String::new(),
                similarity: vec![],
                score,
            })
            .collect();
        assert_eq!(e.top_tokens(3), vec![1, 3, 0]);
        assert_eq!(e.top_tokens(9).len(), 4);
    }

    #[test]
    fn maps_min_max_unless_combined() {
        let mut e = two_labels();
        e.labels.truncate(1);
        e.similarity = vec![vec![0.2], vec![0.6]];
        assert_eq!(e.map(0, [1, 2]), vec![0.0, 1.0]);
        // A combination's column is already a mean of min-maxed maps: drawn as it is.
        e.combined = true;
        assert_eq!(e.map(0, [1, 2]), vec![0.2, 0.6]);
    }

    #[test]
    fn pearson_known_values() {
        assert!((pearson(&[1., 2., 3.], &[2., 4., 6.]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1., 2., 3.], &[3., 2., 1.]) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1., 2., 1., 2.], &[1., 1., 2., 2.]).abs() < 1e-12);
        assert_eq!(pearson(&[1., 1.], &[1., 1.]), 1.0);
        assert_eq!(pearson(&[1., 1.], &[1., 2.]), 0.0);
    }
}
