//! Result files: what `explain --json` and `segment --json` write — the numbers and what
//! produced them (model, precision, method, input) — enough to draw them again without the
//! model. Versioned: a reader refuses a version it does not know rather than misread it.

use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};
use crate::input::query::Method;
use crate::output::explanation::Explanation;
use crate::output::segmentation::{Score, Segmentation};
use crate::weights::pack::Scheme;

/// The result-file version this build writes and reads; a field that changes meaning bumps it.
pub const RESULT_VERSION: u32 = 1;

/// What produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// [`RESULT_VERSION`] of the writer.
    pub version: u32,
    /// The model's name: its directory, file or pack name (the app: its address).
    pub model: String,
    /// e.g. "ViT-B/16".
    pub architecture: String,
    /// The precision its weights ran at.
    pub quant: Scheme,
    /// Surgery or raw CLIP.
    pub method: Method,
    /// The image's file name.
    pub image: String,
}

/// `explain --json`: the explanation, what produced it and its input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainDocument {
    /// What produced it.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The network input `[height, width]`.
    pub size: [usize; 2],
    /// The image's `[height, width]` (EXIF-oriented), which points and maps are drawn at.
    pub image_hw: [usize; 2],
    /// The numbers.
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// `segment --json`: the segmentation, what produced it and how it was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDocument {
    /// What produced it.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The network input `[height, width]`, or the sliding window's.
    pub size: [usize; 2],
    /// The sliding-window protocol's `[short side, window, stride]`, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<[usize; 3]>,
    /// What the labels competed on.
    pub score: Score,
    /// The background probability floor, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Background words, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub background: Vec<String>,
    /// The mask.
    #[serde(flatten)]
    pub segmentation: Segmentation,
}

/// Reads a result file written by `explain --json`, refusing versions this build does not know
/// (checked before anything else is read: a later version may change any field).
pub fn read_explain(json: &str) -> Result<ExplainDocument> {
    check_version(json)?;
    serde_json::from_str(json).map_err(|e| ClipError::BadResult(e.to_string()))
}

/// Reads a result file written by `segment --json` (see [`read_explain`]).
pub fn read_segment(json: &str) -> Result<SegmentDocument> {
    check_version(json)?;
    serde_json::from_str(json).map_err(|e| ClipError::BadResult(e.to_string()))
}

fn check_version(json: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<u32>,
    }
    let found = serde_json::from_str::<Versioned>(json)
        .map_err(|e| ClipError::BadResult(e.to_string()))?
        .version;
    match found {
        Some(RESULT_VERSION) => Ok(()),
        found => Err(ClipError::ResultVersion {
            found,
            known: RESULT_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn document() -> ExplainDocument {
        ExplainDocument {
            provenance: Provenance {
                version: RESULT_VERSION,
                model: "tiny-clip".into(),
                architecture: "ViT-2×64/16".into(),
                quant: Scheme::Int8,
                method: Method::Surgery,
                image: "cat.png".into(),
            },
            size: [224, 224],
            image_hw: [300, 400],
            explanation: Explanation {
                labels: vec!["cat".into(), "dog".into()],
                grid: [1, 2],
                similarity: vec![vec![0.2, 0.5], vec![0.4, 0.6]],
                logits: vec![vec![0.25, 0.2], vec![0.1, 0.3]],
                logit_scale: 100.0,
                cls_scores: vec![0.3, 0.7],
                cls_surgery: vec![0.01, -0.01],
                points: BTreeMap::new(),
                combined: false,
                truncated: vec![],
                tokens: vec![],
                attention: None,
                redundancy: None,
            },
        }
    }

    #[test]
    fn a_document_is_the_explanation_with_its_provenance_beside_it() {
        let d = document();
        let json = serde_json::to_string(&d).unwrap();
        // Flat: readers of the explanation's fields find them where they always were.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["quant"], "int8");
        assert_eq!(value["labels"][1], "dog");
        assert_eq!(read_explain(&json).unwrap(), d);
    }

    #[test]
    fn unknown_or_missing_versions_and_garbage_are_typed_errors() {
        let json = serde_json::to_string(&document()).unwrap();
        let later = json.replace("\"version\":1", "\"version\":2");
        assert!(matches!(
            read_explain(&later),
            Err(ClipError::ResultVersion {
                found: Some(2),
                known: 1
            })
        ));
        let bare = json.replace("\"version\":1,", "");
        assert!(matches!(
            read_explain(&bare),
            Err(ClipError::ResultVersion { found: None, .. })
        ));
        for bad in ["", "[]", "{\"version\":1}", "{\"version\":\"1\"}"] {
            assert!(
                matches!(
                    read_explain(bad),
                    Err(ClipError::BadResult(_) | ClipError::ResultVersion { .. })
                ),
                "{bad}"
            );
        }
    }
}
