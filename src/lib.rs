//! The CLIP Surgery web app: a Yew UI ([`ui`]) and one Web Worker (`crates/clip-worker`) that
//! owns the model and runs `clip-core` on WebGPU (or the CPU). They talk through the
//! `clip-protocol` crate, whose docs draw the whole flow.
//!
//! The pure parts — the URL contract ([`params`]) and the pixels the canvases show
//! ([`render`]) — are plain functions, tested natively; the label presets are clip-core's
//! (`clip_core::input::presets`), shared with the CLI's evaluation harness.

pub mod params;
pub mod render;
pub mod ui;
