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

/// `explain --json`: the explanation, what produced it and its input size (read it with
/// [`read_explain`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
///
/// Read in two passes over the text — what produced it, then the explanation — rather than
/// through `#[serde(flatten)]`, whose buffered deserializer added 31 KB gzip to the page.
pub fn read_explain(json: &str) -> Result<ExplainDocument> {
    /// The fields of [`Provenance`] and the sizes, as they lie beside the explanation's.
    #[derive(Deserialize)]
    struct Head {
        version: u32,
        model: String,
        architecture: String,
        quant: Scheme,
        method: Method,
        image: String,
        size: [usize; 2],
        image_hw: [usize; 2],
    }
    check_version(json)?;
    let bad = |e: serde_json::Error| ClipError::BadResult(e.to_string());
    let head: Head = serde_json::from_str(json).map_err(bad)?;
    let explanation: Explanation = serde_json::from_str(json).map_err(bad)?;
    let document = ExplainDocument {
        provenance: Provenance {
            version: head.version,
            model: head.model,
            architecture: head.architecture,
            quant: head.quant,
            method: head.method,
            image: head.image,
        },
        size: head.size,
        image_hw: head.image_hw,
        explanation,
    };
    document.check()?;
    Ok(document)
}

/// The most patches a result file may have (a 4096-px side at patch 8).
const MAX_CELLS: usize = 512 * 512;

impl ExplainDocument {
    /// Whether its numbers fit together: a file from elsewhere is not trusted, and whatever
    /// draws it indexes the similarities by grid and label.
    fn check(&self) -> Result<()> {
        let e = &self.explanation;
        let [gh, gw] = e.grid;
        let cells = gh.saturating_mul(gw);
        let bad = |why: &str| Err(ClipError::BadResult(why.to_string()));
        if e.labels.is_empty() {
            return bad("it has no labels");
        }
        if cells == 0 || cells > MAX_CELLS {
            return bad("its grid is empty or too large");
        }
        let columns = if e.combined { 1 } else { e.labels.len() };
        if e.similarity.len() != cells || e.similarity.iter().any(|row| row.len() != columns) {
            return bad("its similarity is not one row of label values per grid cell");
        }
        if !e.logits.is_empty() && e.logits.len() != cells {
            return bad("its logits are not one row per grid cell");
        }
        if self.size.contains(&0) || self.image_hw.contains(&0) {
            return bad("its input or image size is zero");
        }
        Ok(())
    }
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
                cls_surgery: vec![0.01, -0.01],
                ..crate::output::explanation::tests::two_labels()
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
        // Numbers that do not fit the grid are refused, not drawn.
        let mut short = document();
        short.explanation.similarity.pop();
        let json = serde_json::to_string(&short).unwrap();
        assert!(matches!(read_explain(&json), Err(ClipError::BadResult(_))));
        let mut wide = document();
        wide.explanation.grid = [1 << 20, 1 << 20];
        let json = serde_json::to_string(&wide).unwrap();
        assert!(matches!(read_explain(&json), Err(ClipError::BadResult(_))));
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
