//! The page's side of the model worker: [`WorkerClient`] sends requests, and [`use_worker`]
//! carries out the wishes the reducer writes into the state — a model, an image, a run — then
//! reports what it sent (`ModelRequested`, `ImageRequested`, `RunRequested`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use clip_core::error::ClipError;
use clip_core::output::document::read_explain;
use clip_core::weights::address::ModelAddress;
use clip_core::weights::pack::Scheme;
use clip_protocol::{
    DeviceChoice, ExplainRequest, ModelSource, PREVIEW_MAX_SIDE, Request, Response, RunResult,
    Scope,
};
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::params::{Simd, default_model};
use crate::render::Picture;
use crate::ui::dom;
use crate::ui::link::WorkerLink;
use crate::ui::state::{
    Action, DeviceState, ImageSource, ModelState, ModelWish, RunState, State, Viewer,
};

/// Longer side of the per-label thumbnails.
const THUMB_SIDE: u32 = 160;

/// The page's handle on the worker (what callbacks and effects share).
#[derive(Clone)]
pub struct WorkerClient {
    link: Rc<RefCell<Option<WorkerLink>>>,
    ids: Rc<Cell<u64>>,
    /// A copy of the last image's bytes, to restore it into a restarted worker.
    last_image: Rc<RefCell<Option<(ArrayBuffer, String)>>>,
    dispatch: UseReducerDispatcher<State>,
}

impl PartialEq for WorkerClient {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.link, &other.link)
    }
}

impl WorkerClient {
    fn next_id(&self) -> u64 {
        self.ids.set(self.ids.get() + 1);
        self.ids.get()
    }

    fn send(&self, request: &Request, payload: Option<&JsValue>, transfer: Option<&Array>) {
        if let Some(link) = self.link.borrow().as_ref() {
            link.send(request, payload, transfer);
        }
    }

    /// Starts a worker (dropping, and so terminating, any earlier one) with at most `threads`
    /// CPU threads, of the `simd` build if one is asked for.
    fn start(&self, device: DeviceChoice, threads: Option<usize>, simd: Option<Simd>) {
        self.link.borrow_mut().take();
        let dispatch = self.dispatch.clone();
        let on_response = Callback::from(move |(response, payload): (Response, JsValue)| {
            on_response(&dispatch, response, &payload)
        });
        let dispatch = self.dispatch.clone();
        let on_crash =
            Callback::from(move |message: String| dispatch.dispatch(Action::WorkerDied(message)));
        match WorkerLink::spawn(device, threads, simd, on_response, on_crash) {
            Ok(link) => {
                link.send(&Request::Init { device }, None, None);
                link.send(&Request::CacheInfo, None, None);
                *self.link.borrow_mut() = Some(link);
            }
            Err(e) => self.dispatch.dispatch(Action::WorkerDied(e)),
        }
    }

    /// Empties the worker's download cache.
    pub fn clear_cache(&self) {
        self.send(&Request::ClearCache, None, None);
    }

    fn load(&self, wish: &ModelWish, quant: Scheme) {
        let id = self.next_id();
        let (source, payload, name) = match wish {
            ModelWish::Url(url) => {
                let url = if url.is_empty() { default_model() } else { url };
                // The worker resolves relative URLs against its own script, not this page.
                let source = ModelSource::Url {
                    url: dom::absolute(url),
                    quant,
                };
                (source, None, url.to_string())
            }
            ModelWish::Files(files) => {
                let names: Vec<String> = files.iter().map(web_sys::File::name).collect();
                let name = names.join(" + ");
                let payload: Array = files.iter().collect();
                (ModelSource::Files { names, quant }, Some(payload), name)
            }
        };
        self.send(
            &Request::LoadModel { id, source },
            payload.as_ref().map(|p| p.as_ref()),
            None,
        );
        self.dispatch.dispatch(Action::ModelRequested { id, name });
    }

    fn set_image(&self, bytes: ArrayBuffer, name: String) {
        let id = self.next_id();
        *self.last_image.borrow_mut() = Some((bytes.slice(0), name.clone()));
        self.dispatch.dispatch(Action::ImageRequested { id, name });
        // Moved, not copied, into the worker.
        self.send(
            &Request::SetImage { id },
            Some(&bytes),
            Some(&Array::of1(&bytes)),
        );
    }

    /// Opens an image: decoded by the worker, or by the page while a result file is shown
    /// (`on_page`: no worker runs then).
    fn open(&self, source: ImageSource, on_page: bool) {
        let client = self.clone();
        spawn_local(async move {
            let bytes = match source {
                ImageSource::Url(url) => {
                    let name = url.rsplit('/').next().unwrap_or(&url).to_string();
                    dom::fetch_bytes(&url).await.map(|b| (b, name))
                }
                ImageSource::File(file) => dom::blob_bytes(&file).await.map(|b| (b, file.name())),
                ImageSource::Bytes(bytes, name) => Ok((bytes, name)),
            };
            match bytes {
                Ok((bytes, name)) if on_page => client.decode_on_page(bytes, name).await,
                Ok((bytes, name)) => client.set_image(bytes, name),
                Err(e) => client.dispatch.dispatch(Action::ImageFailed(e)),
            }
        });
    }

    /// The browser decodes the image (EXIF orientation applied, as the worker does) into the
    /// preview; the bytes are kept for the worker of a later live run.
    async fn decode_on_page(&self, bytes: ArrayBuffer, name: String) {
        let id = self.next_id();
        *self.last_image.borrow_mut() = Some((bytes.slice(0), name.clone()));
        self.dispatch.dispatch(Action::ImageRequested { id, name });
        match dom::decode_picture(&bytes, PREVIEW_MAX_SIDE).await {
            Ok((picture, original_hw)) => {
                self.dispatch
                    .dispatch(image_ready(id, picture, original_hw));
            }
            Err(e) => self.dispatch.dispatch(Action::ImageFailed(e)),
        }
    }

    fn explain(&self, s: &State) {
        let (Some(Ok(query)), Some(image)) = (s.params.query(), &s.image) else {
            return;
        };
        let id = self.next_id();
        let p = &s.params;
        let request = ExplainRequest {
            id,
            image: image.id,
            query,
            size: p.size,
            method: p.method,
            compare: p.compare,
            attention: p.attention(),
            redundancy: p.redundancy(),
        };
        self.send(&Request::Explain(request), None, None);
        self.dispatch.dispatch(Action::RunRequested {
            id,
            image: image.id,
        });
    }
}

/// A decoded picture (the worker's or the browser's) as the preview, with its thumbnail.
fn image_ready(id: u64, picture: Picture, original_hw: [usize; 2]) -> Action {
    Action::ImageReady {
        id,
        thumb: Rc::new(picture.thumbnail(THUMB_SIDE)),
        picture: Rc::new(picture),
        original_hw,
    }
}

fn on_response(dispatch: &UseReducerDispatcher<State>, response: Response, payload: &JsValue) {
    let Response::Image {
        id,
        width,
        height,
        original_hw,
    } = response
    else {
        return dispatch.dispatch(Action::Worker(response));
    };
    let pixels = Uint8Array::new(payload).to_vec();
    match Picture::new(width, height, pixels) {
        Some(picture) => dispatch.dispatch(image_ready(id, picture, original_hw)),
        None => dispatch.dispatch(Action::Worker(Response::Failed {
            id,
            scope: Scope::Image,
            message: "the decoded image arrived damaged".into(),
        })),
    }
}

/// Runs the worker for the app: (re)started with each generation of `state.worker`, and the
/// state's wishes carried out as soon as they can be.
#[hook]
pub fn use_worker(state: &UseReducerHandle<State>) -> WorkerClient {
    let client = WorkerClient {
        link: use_mut_ref(|| None),
        ids: (*use_state(|| Rc::new(Cell::new(0)))).clone(),
        last_image: use_mut_ref(|| None),
        dispatch: state.dispatcher(),
    };
    // No worker while a result file is shown (it starts with the first live run), and the
    // page decodes its images.
    let viewing = state.viewer.is_some();
    {
        let (client, device, threads, simd) = (
            client.clone(),
            state.params.device,
            state.params.threads,
            state.params.simd,
        );
        use_effect_with(state.worker, move |&generation| {
            if !viewing {
                client.start(device, threads, simd);
            }
            // A restarted worker holds no image: give it the last one again.
            let last = client.last_image.borrow().clone();
            if let (true, Some((bytes, name))) = (generation > 1, last) {
                client.set_image(bytes, name);
            }
            let link = client.link.clone();
            move || drop(link.borrow_mut().take())
        });
    }

    {
        let client = client.clone();
        use_effect_with(state.image_wish.clone(), move |wish| {
            if let Some(wish) = wish {
                client.open(wish.source.clone(), viewing);
            }
        });
    }
    {
        // A result file to show: fetched and read by the page.
        let dispatch = state.dispatcher();
        let wanted = match &state.viewer {
            Some(Viewer::Wanted(url)) => Some(url.clone()),
            _ => None,
        };
        use_effect_with(wanted, move |wanted| {
            if let Some(url) = wanted.clone() {
                dispatch.dispatch(Action::ResultRequested);
                spawn_local(async move {
                    let read = dom::fetch_bytes(&url).await.and_then(|bytes| {
                        let text = String::from_utf8(Uint8Array::new(&bytes).to_vec())
                            .map_err(|_| format!("{url} is not text"))?;
                        read_result(&url, &text)
                    });
                    dispatch.dispatch(Action::ResultFetched(read.map(Rc::new)));
                });
            }
        });
    }
    {
        // A wanted model, and a wanted run once model and image are ready. One effect for
        // both: each wish is answered at once by a `…Requested` action that ends it, so
        // neither is ever sent twice.
        let (client, s) = (client.clone(), (**state).clone());
        let key = (s.model.clone(), s.run == RunState::Wanted, s.can_run());
        use_effect_with(key, move |(model, wanted, can_run)| {
            if let ModelState::Wanted(wish) = model {
                client.load(wish, s.params.quant);
            }
            if *wanted && *can_run {
                client.explain(&s);
            }
        });
    }
    client
}

/// A result file as the app shows it, or what is wrong with it (worded here: the core's error
/// messages would bring all of its formatting into the page).
fn read_result(url: &str, text: &str) -> Result<RunResult, String> {
    match read_explain(text) {
        Ok(document) => Ok(RunResult::precomputed(document)),
        Err(ClipError::ResultVersion { found, known }) => Err(format!(
            "{url} is a result file of {}; this app reads version {known}: make it again with this version's clip-surgery explain --json",
            found.map_or("no version".to_string(), |v| format!("version {v}"))
        )),
        Err(ClipError::BadResult(why)) => Err(format!(
            "{url} is not a result of clip-surgery explain --json: {why}"
        )),
        Err(_) => Err(format!("{url} could not be read")),
    }
}

/// Loads the model by itself when the address asks for it (a model, or an image + query) or
/// Cache Storage holds it; otherwise it waits for a click (the default is a 600 MB download).
#[hook]
pub fn use_autoload(state: &UseReducerHandle<State>) {
    let asked = use_mut_ref(|| false);
    let s = (**state).clone();
    let dispatch = state.dispatcher();
    let ready = matches!(s.device, DeviceState::Ready { .. });
    use_effect_with((ready, s.cache.known), move |&(ready, known)| {
        if !ready || !known || *asked.borrow() {
            return;
        }
        *asked.borrow_mut() = true;
        let p = &s.params;
        let cached = ModelAddress::url(&dom::absolute(&p.model))
            .cache_keys(p.quant)
            .iter()
            .any(|key| s.cache.urls.contains(key));
        if p.model != default_model() || s.run == RunState::Wanted || cached {
            dispatch.dispatch(Action::AutoLoadModel);
        }
    });
}
