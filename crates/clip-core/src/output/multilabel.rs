//! Multi-label recognition metrics (paper §5.4): per class the average precision of a score
//! over the images, and their mean (mAP) — for CLIP Surgery's score (`cls_surgery`, Eq. 9 on
//! the CLS token) and CLIP's (`cls_scores`) side by side, as `eval-multilabel` reports them.
//!
//! Average precision is the usual non-interpolated one (scikit-learn's
//! `average_precision_score`): images ranked by score, `AP = Σ_n (R_n − R_{n−1}) P_n` over the
//! distinct scores, images with equal scores entering together.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::error::{ClipError, Result};

/// Average precision of `scores` against `truth` (same images; `None`: left out, as VOC's
/// "difficult" images are); `None` without a positive.
pub fn average_precision(scores: &[f32], truth: &[Option<bool>]) -> Option<f64> {
    let positives = truth.iter().filter(|&&t| t == Some(true)).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len().min(truth.len()))
        .filter(|&i| truth[i].is_some())
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut recall) = (0usize, 0usize, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        // One group of equal scores.
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            if truth[order[i]] == Some(true) {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let r = tp as f64 / positives as f64;
        ap += (r - recall) * tp as f64 / (tp + fp) as f64;
        recall = r;
    }
    Some(ap)
}

/// Scores and truths over a dataset, one row per image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultiLabel {
    classes: usize,
    surgery: Vec<Vec<f32>>,
    clip: Vec<Vec<f32>>,
    truth: Vec<Vec<Option<bool>>>,
}

impl MultiLabel {
    /// Nothing yet, for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            ..Self::default()
        }
    }

    /// One image: its CLIP Surgery and CLIP scores per class and which classes it has (`None`:
    /// not evaluated for that class).
    pub fn add(
        &mut self,
        surgery: Vec<f32>,
        clip: Vec<f32>,
        truth: Vec<Option<bool>>,
    ) -> Result<()> {
        let n = self.classes;
        if surgery.len() != n || clip.len() != n || truth.len() != n {
            return Err(ClipError::Evaluation(format!(
                "an image has {} / {} scores and {} truths for {n} classes",
                surgery.len(),
                clip.len(),
                truth.len()
            )));
        }
        self.surgery.push(surgery);
        self.clip.push(clip);
        self.truth.push(truth);
        Ok(())
    }

    /// Per class APs and their means, classes named `names`.
    pub fn scores(&self, names: &[String]) -> MultiLabelScores {
        let column = |rows: &[Vec<f32>], c: usize| rows.iter().map(|r| r[c]).collect::<Vec<_>>();
        let per_class: Vec<(String, ClassAp)> = (0..self.classes)
            .map(|c| {
                let truth: Vec<Option<bool>> = self.truth.iter().map(|r| r[c]).collect();
                let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
                (
                    name,
                    ClassAp {
                        surgery: average_precision(&column(&self.surgery, c), &truth),
                        clip: average_precision(&column(&self.clip, c), &truth),
                        positives: truth.iter().filter(|&&t| t == Some(true)).count(),
                    },
                )
            })
            .collect();
        let mean = |pick: fn(&ClassAp) -> Option<f64>| {
            let aps: Vec<f64> = per_class.iter().filter_map(|(_, ap)| pick(ap)).collect();
            (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64)
        };
        MultiLabelScores {
            map_surgery: mean(|ap| ap.surgery),
            map_clip: mean(|ap| ap.clip),
            per_class,
            images: self.truth.len(),
        }
    }
}

/// One class's APs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAp {
    /// AP of CLIP Surgery's score; `None` without a positive image.
    pub surgery: Option<f64>,
    /// AP of CLIP's softmax score.
    pub clip: Option<f64>,
    /// Images that have the class.
    pub positives: usize,
}

/// The result of `eval-multilabel` (its `--json`): `{"map_surgery", "map_clip", "per_class":
/// {name: {"surgery", "clip", "positives"}}, "images"}`, classes in the dataset's order; the
/// means over the classes with at least one positive image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiLabelScores {
    /// mAP of CLIP Surgery's score (0–1).
    pub map_surgery: Option<f64>,
    /// mAP of CLIP's score (0–1).
    pub map_clip: Option<f64>,
    /// Per class.
    #[serde(serialize_with = "ordered")]
    pub per_class: Vec<(String, ClassAp)>,
    /// Images evaluated.
    pub images: usize,
}

fn ordered<S: Serializer>(
    pairs: &[(String, ClassAp)],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (name, ap) in pairs {
        map.serialize_entry(name, ap)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_average_precision() {
        // Ranked: 0.9 (+), 0.8 (−), 0.7 (+), 0.1 (−): P at the positives 1 and 2/3.
        let t = |v: &[bool]| v.iter().map(|&b| Some(b)).collect::<Vec<_>>();
        let ap = average_precision(&[0.1, 0.9, 0.7, 0.8], &t(&[false, true, true, false]));
        assert!((ap.unwrap() - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // Perfect ranking, and none positive.
        assert_eq!(
            average_precision(&[0.2, 0.1], &t(&[true, false])),
            Some(1.0)
        );
        assert_eq!(average_precision(&[0.2, 0.1], &t(&[false, false])), None);
        // A left-out image (the 0.8) does not count: then the ranking is perfect.
        let difficult = [Some(false), Some(true), Some(true), None];
        let ap = average_precision(&[0.1, 0.9, 0.7, 0.8], &difficult);
        assert_eq!(ap, Some(1.0));
        // Ties enter together: {0.5 +, 0.5 −} first → R 1/2 at P 1/2; then 0.4 (+) → R 1 at
        // P 2/3. AP = 1/2·1/2 + 1/2·2/3 (scikit-learn: 0.58333).
        let tie = average_precision(&[0.5, 0.5, 0.4], &t(&[true, false, true])).unwrap();
        assert!((tie - (0.25 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn map_over_classes_with_positives_and_json_order() {
        let mut m = MultiLabel::new(3);
        // Class 0: surgery ranks its positive first, CLIP last. Class 2 never present.
        let t = |v: [bool; 3]| v.map(Some).to_vec();
        m.add(
            vec![0.3, 0.1, 0.0],
            vec![0.1, 0.5, 0.4],
            t([true, false, false]),
        )
        .unwrap();
        m.add(
            vec![0.2, 0.4, 0.0],
            vec![0.6, 0.2, 0.2],
            t([false, true, false]),
        )
        .unwrap();
        let names = ["zebra".to_string(), "apple".into(), "kiwi".into()];
        let s = m.scores(&names);
        // Class 0: surgery 1; CLIP ranks 0.6 (−) before 0.1 (+): 1/2.
        // Class 1: surgery ranks 0.4 (+) first: 1; CLIP 0.5 (−) then 0.2 (+): 1/2.
        assert_eq!(s.map_surgery, Some(1.0));
        assert_eq!(s.map_clip, Some(0.5));
        assert_eq!(s.images, 2);
        assert_eq!(s.per_class[2].1.surgery, None);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.starts_with(r#"{"map_surgery":1.0,"map_clip":0.5,"per_class":{"zebra":"#));
        assert!(json.contains(r#""kiwi":{"surgery":null,"clip":null,"positives":0}"#));
        assert!(matches!(
            m.add(vec![0.0], vec![0.0; 3], vec![Some(false); 3]),
            Err(ClipError::Evaluation(_))
        ));
    }
}
