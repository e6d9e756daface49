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
//! inputs exactly; results are checked against PyTorch goldens in `tests/`. [`pack`] is the
//! sharded, quantized weight format for the web ([`quant`]: int8/int4 blocks).

//!
//! Without the default `burn` feature only the device-free parts are built — queries,
//! results, maps, points, colormaps, preprocessing, tokenizer, config — which is what the web
//! page links (the model itself runs in its worker).

pub mod colormap;
pub mod config;
pub mod error;
pub mod maps;
pub mod pack;
pub mod points;
pub mod preprocess;
pub mod quant;
pub mod query;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "burn")]
pub mod attention;
#[cfg(feature = "burn")]
pub mod device;
#[cfg(feature = "burn")]
pub mod encoder;
#[cfg(feature = "burn")]
pub mod explain;
#[cfg(feature = "burn")]
pub mod model;
#[cfg(feature = "burn")]
pub mod nn;
#[cfg(feature = "burn")]
pub mod prompts;
#[cfg(feature = "burn")]
pub mod surgery;
#[cfg(feature = "burn")]
pub mod text;
#[cfg(feature = "burn")]
pub mod vision;

pub use config::ClipConfig;
pub use error::{ClipError, Result};
pub use query::{Explanation, Method, Query};
pub use tokenizer::ClipTokenizer;

#[cfg(feature = "burn")]
pub use explain::{Stage, explain};
#[cfg(feature = "burn")]
pub use model::Clip;

/// Re-exported so that callers pick devices and read tensors with the same burn.
#[cfg(feature = "burn")]
pub use burn;
