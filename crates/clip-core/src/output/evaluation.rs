//! Segmentation metrics over a dataset, as mmsegmentation computes them: one confusion matrix
//! accumulated over every image (ignore index 255), then per class IoU = |truth ∩ prediction| /
//! |truth ∪ prediction|, mIoU the mean over the classes present in the truth or the prediction
//! somewhere in the set (a class absent from both is left out), and pixel accuracy.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::error::{ClipError, Result};

/// The truth value of pixels that are not evaluated.
pub const IGNORE: u8 = 255;

/// Pixel counts of (true class, predicted class) over a dataset. A prediction of no class (a
/// background pixel where the dataset has no background class) is one more column: it is
/// wrong for every true class.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    classes: usize,
    /// `[classes, classes + 1]`, row-major: row = truth, column = prediction.
    counts: Vec<u64>,
}

impl Confusion {
    /// An empty matrix for `classes` classes (at most 255: class values are bytes, 255 ignored).
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * (classes + 1)],
        }
    }

    /// Adds one image: `truth` and `predicted` class values per pixel, same order. Truth
    /// pixels of [`IGNORE`] are skipped; a predicted value that is no class counts as wrong.
    pub fn add(&mut self, truth: &[u8], predicted: &[u8]) -> Result<()> {
        if truth.len() != predicted.len() {
            return Err(ClipError::Evaluation(format!(
                "the truth has {} pixels, the prediction {}",
                truth.len(),
                predicted.len()
            )));
        }
        let n = self.classes;
        for (&t, &p) in truth.iter().zip(predicted) {
            if t == IGNORE {
                continue;
            }
            let t = usize::from(t);
            if t >= n {
                return Err(ClipError::Evaluation(format!(
                    "the truth has class value {t}; the dataset has {n} classes (0–{}, {IGNORE} ignored)",
                    n.saturating_sub(1)
                )));
            }
            let p = usize::from(p).min(n);
            self.counts[t * (n + 1) + p] += 1;
        }
        Ok(())
    }

    /// Per class IoU; `None` for a class neither true nor predicted anywhere.
    pub fn iou(&self) -> Vec<Option<f64>> {
        let n = self.classes;
        (0..n)
            .map(|c| {
                let hit = self.counts[c * (n + 1) + c];
                let truth: u64 = self.counts[c * (n + 1)..(c + 1) * (n + 1)].iter().sum();
                let predicted: u64 = (0..n).map(|t| self.counts[t * (n + 1) + c]).sum();
                let union = truth + predicted - hit;
                (union > 0).then(|| hit as f64 / union as f64)
            })
            .collect()
    }

    /// Mean IoU over the classes that have one; `None` if none has.
    pub fn miou(&self) -> Option<f64> {
        let present: Vec<f64> = self.iou().into_iter().flatten().collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    }

    /// Correct pixels over evaluated pixels; `None` if no pixel was evaluated.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let n = self.classes;
        let total: u64 = self.counts.iter().sum();
        let hits: u64 = (0..n).map(|c| self.counts[c * (n + 1) + c]).sum();
        (total > 0).then(|| hits as f64 / total as f64)
    }
}

/// The result of `eval-seg` (its `--json`): `{"miou", "pixel_accuracy", "per_class": {name: iou
/// or null}, "images"}`, classes in the dataset's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationScores {
    /// Mean IoU (0–1).
    pub miou: Option<f64>,
    /// Pixel accuracy (0–1).
    pub pixel_accuracy: Option<f64>,
    /// IoU per class; `None` where the class is neither true nor predicted in the set.
    #[serde(serialize_with = "ordered_map")]
    pub per_class: Vec<(String, Option<f64>)>,
    /// Images evaluated.
    pub images: usize,
}

impl SegmentationScores {
    /// The scores of `confusion`, whose classes are named `classes`, over `images` images.
    pub fn new(confusion: &Confusion, classes: &[String], images: usize) -> Self {
        Self {
            miou: confusion.miou(),
            pixel_accuracy: confusion.pixel_accuracy(),
            per_class: classes.iter().cloned().zip(confusion.iou()).collect(),
            images,
        }
    }
}

/// A list of pairs as a JSON object, in list order.
fn ordered_map<S: Serializer>(
    pairs: &[(String, Option<f64>)],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (name, value) in pairs {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_iou_accuracy_and_mean() {
        // Three classes. Truth / prediction over two images:
        //   image 1: t = [0, 0, 1, 1, 255], p = [0, 1, 1, 1, 2]
        //   image 2: t = [2, 2, 0],          p = [2, 255, 0]   (255: no class predicted)
        // class 0: hit 2 (0,0 and the last), truth 3, predicted 2 → IoU 2/3
        // class 1: hit 2, truth 2, predicted 3 → 2/3
        // class 2: hit 1, truth 2, predicted 1 (the ignored pixel's 2 does not count) → 1/2
        // accuracy: 5 hits of 7 evaluated pixels.
        let mut c = Confusion::new(3);
        c.add(&[0, 0, 1, 1, 255], &[0, 1, 1, 1, 2]).unwrap();
        c.add(&[2, 2, 0], &[2, 255, 0]).unwrap();
        let iou = c.iou();
        assert_eq!(iou, vec![Some(2.0 / 3.0), Some(2.0 / 3.0), Some(0.5)]);
        assert!((c.miou().unwrap() - (2.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert_eq!(c.pixel_accuracy(), Some(5.0 / 7.0));
    }

    #[test]
    fn absent_classes_leave_the_mean_and_predicted_only_ones_score_zero() {
        let mut c = Confusion::new(4);
        // Class 3 never appears; class 2 is only predicted.
        c.add(&[0, 0, 1], &[0, 2, 1]).unwrap();
        assert_eq!(c.iou(), vec![Some(0.5), Some(1.0), Some(0.0), None]);
        assert_eq!(c.miou(), Some(0.5));
        assert_eq!(Confusion::new(2).miou(), None);
        assert_eq!(Confusion::new(2).pixel_accuracy(), None);
    }

    #[test]
    fn bad_masks_are_errors() {
        let mut c = Confusion::new(2);
        assert!(matches!(
            c.add(&[0, 1], &[0]),
            Err(ClipError::Evaluation(_))
        ));
        assert!(matches!(c.add(&[5], &[0]), Err(ClipError::Evaluation(_))));
    }

    #[test]
    fn json_keeps_the_class_order() {
        let mut c = Confusion::new(2);
        c.add(&[1], &[1]).unwrap();
        let scores = SegmentationScores::new(&c, &["zebra".into(), "apple".into()], 1);
        let json = serde_json::to_string(&scores).unwrap();
        assert_eq!(
            json,
            r#"{"miou":1.0,"pixel_accuracy":1.0,"per_class":{"zebra":null,"apple":1.0},"images":1}"#
        );
    }
}
