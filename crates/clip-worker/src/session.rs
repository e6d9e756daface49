//! What the worker holds between requests: the device, the tokenizer, the model (and where it
//! came from, to load it again after the GPU was lost), the current image and the queue of
//! explanations. One per worker, on its one thread.

use std::cell::RefCell;
use std::rc::Rc;

use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use clip_core::surgery::bank::TextBank;
use clip_protocol::{DeviceChoice, ExplainRequest, ModelSource};
use image::RgbImage;

use crate::device::ActiveDevice;
use crate::latch::Latch;

/// Where a model came from: enough to load it again.
#[derive(Debug)]
pub struct ModelOrigin {
    /// The request's source.
    pub source: ModelSource,
    /// Picked files (for [`ModelSource::Files`]): references, read again when needed.
    pub files: Vec<web_sys::File>,
}

/// The model on the device.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model.
    pub clip: Clip,
    /// Where it came from.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read to reload after a lost GPU
    pub origin: Rc<ModelOrigin>,
    /// Names its weights for persisted text features (clip-core's `bank::text_model_id`).
    pub text_id: String,
    /// Its text features so far (taken out while a run uses it).
    pub bank: RefCell<TextBank>,
}

/// The model slot.
#[derive(Debug, Clone, Default)]
pub enum ModelSlot {
    /// None loaded yet.
    #[default]
    Empty,
    /// On the device.
    Ready(Rc<LoadedModel>),
    /// The device holding it was lost: the next run loads it again (from the cache).
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Lost(Rc<ModelOrigin>),
}

/// The worker's state.
#[derive(Debug, Default)]
pub struct Session {
    /// The device once `Init` chose it (or why none could be had).
    pub device: Rc<Latch<Result<ActiveDevice, String>>>,
    /// What the page asked for (to choose again after a lost GPU).
    pub device_choice: DeviceChoice,
    /// The GPU was lost: the next run makes a new device.
    pub device_lost: bool,
    /// Counts WebGPU devices made, so a late "lost" of a replaced one is ignored.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    pub device_generation: u64,
    /// CLIP's tokenizer, fetched with the first model.
    pub tokenizer: Option<Rc<ClipTokenizer>>,
    /// The model.
    pub model: ModelSlot,
    /// The newest model request: an older load that finishes later is discarded.
    pub model_request: u64,
    /// The current image (decoded, EXIF-oriented) and its request id.
    pub image: Option<(u64, Rc<RgbImage>)>,
    /// The newest explanation request.
    pub latest: u64,
    /// An explanation is running.
    pub running: bool,
    /// The one waiting (a newer request replaces it).
    pub queued: Option<ExplainRequest>,
}

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
}

/// Runs `f` on the session (never across an `await`).
pub fn session<R>(f: impl FnOnce(&mut Session) -> R) -> R {
    SESSION.with_borrow_mut(f)
}
