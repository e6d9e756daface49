//! The model worker (built by trunk as `data-type="worker"`): one dedicated Web Worker owns the
//! device, the tokenizer, the model and the current image, so inference never blocks the page.
//! It fetches its own weights (copying hundreds of megabytes from the page into a worker is
//! what runs browsers out of memory). The messages and the flow are drawn in
//! [`clip_protocol`].
//!
//! Files by responsibility: [`device`] (WebGPU or CPU, limits, a lost GPU), [`loading`] (the
//! pipeline's file access and the upload), [`jobs`] (explanations, one at a time), [`image`]
//! (the current picture), [`net`] (fetch + Cache Storage), [`session`] (what is held between
//! requests), [`error`] (the one error type).

mod device;
mod error;
mod image;
mod jobs;
mod latch;
mod loading;
mod net;
mod session;

use clip_protocol::{Request, Response, Scope, Task, pack, unpack};
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::error::WorkerError;

fn main() {
    console_error_panic_hook::set_once();
    // The threaded build listens once its loader has started the thread pool (`start`): a
    // request handled before would run burn's first kernels on rayon's single-thread fallback,
    // and the pool could not be made any more.
    if !cfg!(feature = "threads") {
        listen();
    }
}

// The threaded build exports wasm-bindgen-rayon's `initThreadPool(threads)`, which starts the
// Web Workers rayon runs on; the loader awaits it, then calls `start`.
#[cfg(feature = "threads")]
extern crate wasm_bindgen_rayon;

/// Listens for requests (the threaded build, once its pool runs).
#[cfg(feature = "threads")]
#[wasm_bindgen]
pub fn start() {
    listen();
}

/// Handle requests from the page.
fn listen() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match unpack::<Request>(&event.data()) {
            Ok((request, payload)) => spawn_local(handle(request, payload)),
            Err(e) => post(
                &Response::Failed {
                    id: 0,
                    scope: Scope::Protocol,
                    message: format!("unreadable request: {e}"),
                },
                None,
            ),
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&Response::Listening, None);
}

async fn handle(request: Request, payload: JsValue) {
    let result = match request.clone() {
        Request::Init { device } => device::init(device).await,
        Request::LoadModel { id, source } => loading::load_model(id, source, payload).await,
        Request::SetImage { id } => image::set_image(id, &payload),
        Request::Explain(job) => jobs::enqueue(job).await,
        Request::CacheInfo => cache_info().await,
        Request::ClearCache => match net::clear().await {
            Ok(()) => cache_info().await,
            Err(e) => Err(WorkerError::Cache(format!(
                "could not clear the cache: {e}"
            ))),
        },
    };
    if let Err(error) = result {
        report(&request, error);
    }
}

/// Tells the page that `request` failed, under the request's id and scope.
fn report(request: &Request, error: WorkerError) {
    let (id, scope) = request.failure();
    post(
        &Response::Failed {
            id,
            scope,
            message: error.to_string(),
        },
        None,
    );
}

/// Sends a response; `payload` travels beside it, moved with the objects in its array.
fn post(response: &Response, payload: Option<(&JsValue, &Array)>) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let message = match pack(response, payload.map(|(p, _)| p)) {
        Ok(message) => message,
        Err(e) => {
            let failed = Response::Failed {
                id: 0,
                scope: Scope::Protocol,
                message: format!("unsendable response: {e}"),
            };
            return post(&failed, None);
        }
    };
    let sent = match payload {
        Some((_, transfer)) => scope.post_message_with_transfer(&message, transfer),
        None => scope.post_message(&message),
    };
    if let Err(e) = sent {
        web_sys::console::error_2(&"worker: postMessage failed".into(), &e);
    }
}

fn progress(id: u64, task: Task, done: f64, total: f64) {
    post(
        &Response::Progress {
            id,
            task,
            done,
            total,
        },
        None,
    );
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// Reports what Cache Storage holds.
async fn cache_info() -> Result<(), WorkerError> {
    let (bytes, urls) = net::contents()
        .await
        .map_err(|e| WorkerError::Cache(format!("cannot read the cache: {e}")))?;
    post(&Response::Cache { bytes, urls }, None);
    Ok(())
}
