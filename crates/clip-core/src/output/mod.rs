//! What comes out: the [`explanation::Explanation`] (the CLI's `--json` with its provenance,
//! [`document`]; the app's result), similarity maps ([`maps`]), Text2Points ([`points`]),
//! segmentations ([`segmentation`]), the metrics over a dataset — segmentation
//! ([`evaluation`]), explainability ([`explainability`]), multi-label recognition
//! ([`multilabel`]) — and the colours everything is drawn in ([`colormap`]). Plain data and
//! pure functions: the page uses them without the model.

pub mod colormap;
pub mod document;
pub mod evaluation;
pub mod explainability;
pub mod explanation;
pub mod maps;
pub mod multilabel;
pub mod points;
pub mod segmentation;
