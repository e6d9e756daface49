//! What is asked ([`Query`], [`Method`]) and what comes back ([`Explanation`]): plain data with
//! no device behind it, so the web page can use it without linking the model code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};
use crate::points::Points;

/// How image tokens are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// CLIP Surgery: architecture surgery in the image tower (and, downstream, feature surgery).
    #[default]
    Surgery,
    /// Plain CLIP: every token through `ln_post` + projection, no surgery (the paper's
    /// "raw" maps, which highlight background).
    Raw,
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "surgery" => Ok(Self::Surgery),
            "raw" => Ok(Self::Raw),
            other => Err(format!("unknown method `{other}` (surgery, raw)")),
        }
    }
}

impl Method {
    /// Lower-case name (CLI flag, URL parameter).
    pub fn name(self) -> &'static str {
        match self {
            Self::Surgery => "surgery",
            Self::Raw => "raw",
        }
    }
}

/// What the user asked to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// One free text (single-text feature surgery with the empty-string redundancy). A text
    /// with "+" (e.g. `"person+bench"`) is a combined target: each part is explained on its
    /// own and the min-maxed maps are averaged (official demo).
    Text(String),
    /// A label set (label-set feature surgery: the features shared by all classes are removed).
    Labels(Vec<String>),
}

impl Query {
    /// Parses a comma-separated label list, trimming blanks; empty → [`ClipError::EmptyQuery`].
    pub fn labels(list: &str) -> Result<Self> {
        let labels = split_labels(list);
        if labels.is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        Ok(Self::Labels(labels))
    }

    /// A single text; blank → [`ClipError::EmptyQuery`].
    pub fn text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() || split_target(text).is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        Ok(Self::Text(text.to_string()))
    }

    /// The label under which each result column is reported.
    pub fn display_labels(&self) -> Vec<String> {
        match self {
            Self::Text(t) => vec![t.clone()],
            Self::Labels(l) => l.clone(),
        }
    }
}

/// The parts of an "a+b" target (one part for a plain text).
pub fn split_target(text: &str) -> Vec<String> {
    split_trimmed(text, '+')
}

/// A comma-separated label list: trimmed, blanks dropped.
pub fn split_labels(list: &str) -> Vec<String> {
    split_trimmed(list, ',')
}

fn split_trimmed(s: &str, separator: char) -> Vec<String> {
    s.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The result of one explanation (the CLI's `--json`, the app's `window.clipSurgery.last`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// One entry per result column.
    pub labels: Vec<String>,
    /// Patch grid `[gh, gw]`.
    pub grid: [usize; 2],
    /// Per patch (row-major over the grid, class token excluded), one value per label, before
    /// min-max. For an "a+b" text: the mean of the parts' min-maxed similarities.
    pub similarity: Vec<Vec<f32>>,
    /// Image-level probabilities over the labels (a single text scores 1).
    pub cls_scores: Vec<f32>,
    /// Text2Points per label, in original-image pixels.
    pub points: BTreeMap<String, Points>,
    /// Labels whose prompts exceeded the 77-token context and were truncated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

impl Explanation {
    /// The similarity column of label `i` over the patches.
    pub fn patch_column(&self, i: usize) -> Vec<f32> {
        self.similarity.iter().map(|row| row[i]).collect()
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
mod pearson_tests {
    use super::pearson;

    #[test]
    fn pearson_known_values() {
        assert!((pearson(&[1., 2., 3.], &[2., 4., 6.]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1., 2., 3.], &[3., 2., 1.]) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1., 2., 1., 2.], &[1., 1., 2., 2.]).abs() < 1e-12);
        assert_eq!(pearson(&[1., 1.], &[1., 1.]), 1.0);
        assert_eq!(pearson(&[1., 1.], &[1., 2.]), 0.0);
    }
}
