//! # clip-core
//!
//! CLIP and *CLIP Surgery* (Li et al., "A Closer Look at the Explainability of Contrastive
//! Language-Image Pre-training", arXiv 2304.05653) on [burn], device-agnostic: the same code
//! runs on the CPU (`Device::flex()`), natively on wgpu, and in the browser on WebGPU.
//!
//! The folders follow the pipeline, in reading order:
//! - [`input`]: what is asked ([`input::query`]), the picture ([`input::preprocess`]) and the
//!   text ([`input::tokenizer`]), both reproducing the reference's inputs exactly;
//! - [`model`]: CLIP itself — layers, attention and its dual (q-k + v-v) form, the encoder
//!   blocks with architecture surgery, both towers;
//! - [`surgery`]: feature surgery, the 85-template prompt ensembles, and [`surgery::explain`],
//!   all of it end to end;
//! - [`output`]: the explanation, similarity maps, Text2Points, colormaps;
//! - [`weights`]: where tensors come from — one name tree, checkpoints, weight packs,
//!   quantization, and the one loading pipeline.
//!
//! plus [`config`], [`error`] and [`device`] at the top.
//!
//! Without the default `burn` feature only the device-free parts are built — `input`, `output`,
//! `weights`, `config`, `error` — which is what the web page links (the model runs in its
//! worker).

pub mod config;
#[cfg(feature = "burn")]
pub mod device;
pub mod error;
pub mod input;
#[cfg(feature = "burn")]
pub mod model;
pub mod output;
#[cfg(feature = "burn")]
pub mod surgery;
pub mod weights;

/// Deterministic test data.
#[cfg(test)]
pub(crate) mod testing {
    /// `len` xorshift values in [-1, 1] from `seed`.
    pub fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }
}
