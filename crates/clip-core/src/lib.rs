//! # clip-core
//!
//! CLIP and *CLIP Surgery* (Li et al., "A Closer Look at the Explainability of Contrastive
//! Language-Image Pre-training", arXiv 2304.05653) on [burn], device-agnostic: the same code
//! runs on the CPU (`Device::flex()`), natively on wgpu, and in the browser on WebGPU.
//!
//! The paper's pieces, in reading order:
//! - [`attention`]: multi-head attention and its dual (q-k + v-v) form;
//! - [`encoder`] and [`vision`]: architecture surgery — the dual path in the last blocks;
//! - [`surgery`]: feature surgery (label-set and single-text modes);
//! - [`maps`]: similarity maps; [`points`]: Text2Points;
//! - [`prompts`]: the 85-template ensembles; [`explain`]: all of it end to end.
//!
//! Loading ([`weights`], [`config`]), [`tokenizer`] and [`preprocess`] reproduce the reference
//! inputs exactly; results are checked against PyTorch goldens in `tests/`.

pub mod attention;
pub mod colormap;
pub mod config;
pub mod device;
pub mod encoder;
pub mod error;
pub mod explain;
pub mod maps;
pub mod model;
pub mod nn;
pub mod points;
pub mod preprocess;
pub mod prompts;
pub mod surgery;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use config::ClipConfig;
pub use error::{ClipError, Result};
pub use explain::{Explanation, Stage, explain};
pub use model::{Clip, Method};
pub use prompts::Query;
pub use tokenizer::ClipTokenizer;

/// Re-exported so that callers pick devices and read tensors with the same burn.
pub use burn;
