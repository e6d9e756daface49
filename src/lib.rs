//! The CLIP Surgery web app: a Yew UI ([`ui`]) and one Web Worker (`crates/clip-worker`) that
//! owns the model and runs `clip-core` on WebGPU (or the CPU). They talk through the
//! `clip-protocol` crate, whose docs draw the whole flow.
//!
//! The pure parts — the URL contract ([`params`]), label presets ([`presets`]) and the pixels
//! the canvases show ([`render`]) — are plain functions, tested natively.

pub mod params;
pub mod presets;
pub mod render;
pub mod ui;
