//! Everything a request can fail with, as one type: its message is what the page shows. Which
//! request a failure belongs to (its [`clip_protocol::Scope`]) is decided in one place,
//! [`clip_protocol::Request::failure`].

use clip_core::error::ClipError;
use clip_core::weights::load::LoadError;
use thiserror::Error;

use crate::net::FetchError;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The model, the image or the query was unusable.
    #[error(transparent)]
    Clip(#[from] ClipError),
    /// A file could not be fetched or read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// No device could be had (WebGPU asked for but absent, or its initialisation failed).
    #[error("{0}")]
    Device(String),
    /// An explanation was asked for before a model loaded.
    #[error("no model is loaded yet")]
    NoModel,
    /// The image an explanation was about was replaced while it waited.
    #[error("the image changed while this was queued; run again")]
    ImageChanged,
    /// Cache Storage refused an operation.
    #[error("{0}")]
    Cache(String),
}

impl From<LoadError<FetchError>> for WorkerError {
    fn from(e: LoadError<FetchError>) -> Self {
        match e {
            LoadError::Files(e) => Self::Fetch(e),
            LoadError::Model(e) => Self::Clip(e),
        }
    }
}
