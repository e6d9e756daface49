//! The page's end of the worker: spawn it, send requests, turn its messages into callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};
use yew::Callback;

use clip_protocol::{DeviceChoice, Request, Response, pack, unpack};

use crate::params::Simd;

/// The worker's loader script (www/worker_loader.js, beside the tokenizer it fetches): a module
/// worker that picks the WebGPU build or the threaded CPU one for the device asked for.
const WORKER_URL: &str = "./www/worker_loader.js";

/// Requests held until the worker listens: `None` once it does.
type Backlog = Rc<RefCell<Option<Vec<(js_sys::Object, Option<Array>)>>>>;

/// A running model worker; dropping it terminates the worker.
pub struct WorkerLink {
    worker: Worker,
    backlog: Backlog,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerLink {
    /// Starts the worker, for `device` and at most `threads` CPU threads (of the `simd` build,
    /// if one is asked for). `on_response` gets
    /// each message with its payload (or `undefined`); `on_crash` gets a message when the
    /// worker dies (an uncaught error or an abort).
    pub fn spawn(
        device: DeviceChoice,
        threads: Option<usize>,
        simd: Option<Simd>,
        on_response: Callback<(Response, JsValue)>,
        on_crash: Callback<String>,
    ) -> Result<Self, String> {
        let mut url = format!("{WORKER_URL}?device={}", device.param().unwrap_or("auto"));
        if let Some(threads) = threads {
            url += &format!("&threads={threads}");
        }
        if let Some(simd) = simd {
            url += &format!("&simd={}", simd.name());
        }
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(&url, &options)
            .map_err(|e| format!("cannot start the model worker: {e:?}"))?;
        let crash = on_crash.clone();
        let backlog: Backlog = Rc::new(RefCell::new(Some(Vec::new())));
        let (held, target) = (backlog.clone(), worker.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match unpack::<Response>(&event.data()) {
                Ok((Response::Listening, _)) => {
                    for (message, transfer) in held.borrow_mut().take().unwrap_or_default() {
                        post(&target, &message, transfer.as_ref());
                    }
                }
                Ok((response, payload)) => on_response.emit((response, payload)),
                Err(e) => crash.emit(format!("unreadable message from the worker: {e}")),
            }
        });
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            on_crash.emit(format!("the model worker stopped: {}", event.message()));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            backlog,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Sends `request`; `payload` travels beside it, and the objects in `transfer` are moved
    /// (not copied) to the worker.
    pub fn send(&self, request: &Request, payload: Option<&JsValue>, transfer: Option<&Array>) {
        let message = match pack(request, payload) {
            Ok(message) => message,
            Err(e) => return web_sys::console::error_1(&format!("unsendable request: {e}").into()),
        };
        match self.backlog.borrow_mut().as_mut() {
            Some(held) => held.push((message, transfer.cloned())),
            None => post(&self.worker, &message, transfer),
        }
    }
}

fn post(worker: &Worker, message: &JsValue, transfer: Option<&Array>) {
    let sent = match transfer {
        Some(transfer) => worker.post_message_with_transfer(message, transfer),
        None => worker.post_message(message),
    };
    if let Err(e) = sent {
        web_sys::console::error_2(&"postMessage to the worker failed".into(), &e);
    }
}

impl Drop for WorkerLink {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
