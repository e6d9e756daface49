//! The root component: owns the state, the worker link and the side effects — messages to the
//! worker, the address bar, `window.clipSurgery`, paste and drop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{ClipboardEvent, DragEvent, File};
use yew::prelude::*;

use clip_core::ClipConfig;
use clip_core::pack::{MANIFEST, Scheme};

use crate::params::{DEFAULT_MODEL, Params, converted_url, dir_manifest_url, model_urls};
use crate::protocol::{DeviceChoice, ExplainRequest, ModelSource, Request, Response, Scope};
use crate::render::Picture;
use crate::ui::components::image_panel::{ImagePanel, SAMPLES};
use crate::ui::components::model_panel::ModelPanel;
use crate::ui::components::progress::ProgressBar;
use crate::ui::components::query_panel::QueryPanel;
use crate::ui::components::results::Results;
use crate::ui::dom;
use crate::ui::link::WorkerLink;
use crate::ui::state::{Action, DeviceState, ModelState, RunState, State};

/// Longer side of the per-label thumbnails.
const THUMB_SIDE: u32 = 160;

/// The long-lived handles the callbacks share.
#[derive(Clone)]
struct Engine {
    link: Rc<RefCell<Option<WorkerLink>>>,
    ids: Rc<Cell<u64>>,
    /// A copy of the last image's bytes, to restore it into a restarted worker.
    last_image: Rc<RefCell<Option<(ArrayBuffer, String)>>>,
    dispatch: UseReducerDispatcher<State>,
}

impl Engine {
    fn next_id(&self) -> u64 {
        self.ids.set(self.ids.get() + 1);
        self.ids.get()
    }

    fn send(&self, request: &Request, payload: Option<&JsValue>, transfer: Option<&Array>) {
        if let Some(link) = self.link.borrow().as_ref() {
            link.send(request, payload, transfer);
        }
    }

    fn start(&self, device: DeviceChoice) {
        let dispatch = self.dispatch.clone();
        let on_response = Callback::from(move |(response, payload): (Response, JsValue)| {
            on_response(&dispatch, response, &payload)
        });
        let dispatch = self.dispatch.clone();
        let on_crash =
            Callback::from(move |message: String| dispatch.dispatch(Action::WorkerDied(message)));
        // Drop (terminate) the old worker first.
        self.link.borrow_mut().take();
        match WorkerLink::spawn(on_response, on_crash) {
            Ok(link) => {
                link.send(&Request::Init { device }, None, None);
                link.send(&Request::CacheInfo, None, None);
                *self.link.borrow_mut() = Some(link);
            }
            Err(e) => self.dispatch.dispatch(Action::WorkerDied(e)),
        }
    }

    fn load_url(&self, url: &str, quant: Scheme) {
        let id = self.next_id();
        // The worker resolves relative URLs against its own script, not this page.
        let source = ModelSource::Url {
            url: absolute(url),
            quant,
        };
        self.send(&Request::LoadModel { id, source }, None, None);
        self.dispatch.dispatch(Action::ModelRequested {
            id,
            name: url.to_string(),
        });
    }

    fn load_files(&self, files: Vec<File>, quant: Scheme) {
        let id = self.next_id();
        let names: Vec<String> = files.iter().map(File::name).collect();
        let payload: Array = files.iter().collect();
        let name = names.join(" + ");
        self.send(
            &Request::LoadModel {
                id,
                source: ModelSource::Files { names, quant },
            },
            Some(&payload),
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

    fn open_url(&self, url: String) {
        let engine = self.clone();
        spawn_local(async move {
            match dom::fetch_bytes(&url).await {
                Ok(bytes) => {
                    let name = url.rsplit('/').next().unwrap_or(&url).to_string();
                    engine.set_image(bytes, name);
                }
                Err(e) => engine.dispatch.dispatch(Action::ImageFailed(e)),
            }
        });
    }

    fn open_file(&self, file: File) {
        let engine = self.clone();
        spawn_local(async move {
            match dom::blob_bytes(&file).await {
                Ok(bytes) => engine.set_image(bytes, file.name()),
                Err(e) => engine.dispatch.dispatch(Action::ImageFailed(e)),
            }
        });
    }

    fn explain(&self, s: &State) {
        let refuse = |why: &str| self.dispatch.dispatch(Action::RunRefused(why.into()));
        let Some(query) = s.params.query() else {
            return refuse("Nothing to explain: type a text, or at least one label.");
        };
        let Some(image) = &s.image else {
            return refuse("Pick an image first.");
        };
        if s.model_info().is_none() {
            return refuse("Load a model first.");
        }
        let id = self.next_id();
        let p = &s.params;
        let request = ExplainRequest {
            id,
            image: image.id,
            query,
            size: p.size,
            method: p.method,
            compare: p.compare,
        };
        self.send(&Request::Explain(request), None, None);
        self.dispatch.dispatch(Action::RunRequested {
            id,
            image: image.id,
        });
    }
}

fn on_response(dispatch: &UseReducerDispatcher<State>, response: Response, payload: &JsValue) {
    if let Response::Image {
        id,
        width,
        height,
        original_hw,
    } = response
    {
        let pixels = Uint8Array::new(payload).to_vec();
        match Picture::new(width, height, pixels) {
            Some(picture) => {
                let thumb = Rc::new(picture.thumbnail(THUMB_SIDE));
                dispatch.dispatch(Action::ImageReady {
                    id,
                    picture: Rc::new(picture),
                    thumb,
                    original_hw,
                });
            }
            None => dispatch.dispatch(Action::Worker(Response::Failed {
                id,
                scope: Scope::Image,
                message: "the decoded image arrived damaged".into(),
            })),
        }
        return;
    }
    dispatch.dispatch(Action::Worker(response));
}

/// `url` resolved against the page's address.
fn absolute(url: &str) -> String {
    web_sys::window()
        .and_then(|w| w.location().href().ok())
        .and_then(|base| web_sys::Url::new_with_base(url, &base).ok())
        .map(|u| u.href())
        .unwrap_or_else(|| url.to_string())
}

/// Whether Cache Storage holds `model` (as downloaded, as a pack, or as the worker's
/// conversion to `quant`).
fn is_cached(model: &str, quant: Scheme, cached: &[String]) -> bool {
    let weights = absolute(&model_urls(model).1);
    [
        converted_url(&weights, quant, MANIFEST),
        absolute(&dir_manifest_url(model)),
        absolute(model),
        weights,
    ]
    .iter()
    .any(|url| cached.contains(url))
}

/// Each scheme's size for the loaded model, or for the default (ViT-B/16) before one loads —
/// computed once, not on every render (each walks the model's ~400 tensor specs).
fn sizes(model: &ModelState) -> (Vec<(Scheme, f64)>, bool) {
    thread_local! {
        static DEFAULT: Vec<(Scheme, f64)> = {
            let config = ClipConfig::vit_b_16();
            Scheme::ALL.map(|s| (s, s.pack_bytes(&config) as f64)).to_vec()
        };
    }
    match model {
        ModelState::Ready(info) => (info.sizes.clone(), true),
        _ => (DEFAULT.with(Clone::clone), false),
    }
}

/// The app.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer_eq(|| {
        let (params, warnings) = dom::read_params();
        State::new(params, warnings)
    });
    let engine = Engine {
        link: use_mut_ref(|| None),
        ids: (*use_state(|| Rc::new(Cell::new(0)))).clone(),
        last_image: use_mut_ref(|| None),
        dispatch: state.dispatcher(),
    };
    let model_asked = use_mut_ref(|| false);

    // The worker, for the app's lifetime.
    {
        let (engine, device, image) = (
            engine.clone(),
            state.params.device,
            state.params.image.clone(),
        );
        use_effect_with((), move |_| {
            engine.start(device);
            match image {
                Some(url) => engine.open_url(url),
                None => engine.open_url(SAMPLES[0].0.to_string()),
            }
            let link = engine.link.clone();
            move || drop(link.borrow_mut().take())
        });
    }
    // The address bar follows the controls.
    use_effect_with(state.params.clone(), dom::write_params);
    // Load the model by itself when the address asks for it or the cache holds it; otherwise
    // wait for a click (the default is a 600 MB download).
    {
        let (engine, s, asked) = (engine.clone(), state.clone(), model_asked.clone());
        let ready = matches!(s.device, DeviceState::Ready { .. });
        use_effect_with((ready, s.cache.known), move |&(ready, known)| {
            if ready && known && !*asked.borrow() && s.model == ModelState::Idle {
                *asked.borrow_mut() = true;
                let p = &s.params;
                if p.model != DEFAULT_MODEL
                    || s.autorun
                    || is_cached(&p.model, p.quant, &s.cache.urls)
                {
                    engine.load_url(&p.model, p.quant);
                }
            }
        });
    }
    // Run when armed (URL contract, or a new image after a run) and everything is ready.
    {
        let (engine, s) = (engine.clone(), state.clone());
        let key = (s.autorun, s.can_run(), s.image.as_ref().map(|i| i.id));
        use_effect_with(key, move |&(autorun, can_run, _)| {
            if autorun && can_run && s.run == RunState::Idle {
                engine.explain(&s);
            }
        });
    }
    // Automation API.
    use_effect_with(state.result.clone(), |result| {
        if let Some(run) = result {
            dom::publish_result(run);
        }
    });
    use_effect_with(state.last_error.clone(), |error| {
        if let Some((_, message)) = error {
            dom::publish_error(message);
        }
    });
    // Paste an image anywhere.
    {
        let engine = engine.clone();
        use_effect_with((), move |_| {
            let on_paste = Closure::<dyn FnMut(ClipboardEvent)>::new(move |e: ClipboardEvent| {
                let file = e
                    .clipboard_data()
                    .and_then(|d| d.files())
                    .and_then(|f| f.get(0));
                if let Some(file) = file.filter(|f| f.type_().starts_with("image/")) {
                    e.prevent_default();
                    engine.open_file(file);
                }
            });
            let document = web_sys::window().and_then(|w| w.document());
            if let Some(d) = &document {
                let _ =
                    d.add_event_listener_with_callback("paste", on_paste.as_ref().unchecked_ref());
            }
            move || {
                if let Some(d) = document {
                    let _ = d.remove_event_listener_with_callback(
                        "paste",
                        on_paste.as_ref().unchecked_ref(),
                    );
                }
            }
        });
    }

    let set_params = {
        let dispatch = engine.dispatch.clone();
        Callback::from(move |p: Params| dispatch.dispatch(Action::SetParams(p)))
    };
    let on_load_url = {
        let (engine, params) = (engine.clone(), state.params.clone());
        Callback::from(move |url: String| {
            let url = if url.is_empty() {
                DEFAULT_MODEL.to_string()
            } else {
                url
            };
            engine.dispatch.dispatch(Action::SetParams(Params {
                model: url.clone(),
                ..params.clone()
            }));
            engine.load_url(&url, params.quant);
        })
    };
    let on_quant = {
        let (engine, s) = (engine.clone(), state.clone());
        Callback::from(move |quant: Scheme| {
            engine.dispatch.dispatch(Action::SetParams(Params {
                quant,
                ..s.params.clone()
            }));
            // A model from this address reloads at the new precision; files wait for a pick.
            if let ModelState::Ready(info) = &s.model
                && info.name == absolute(&s.params.model)
            {
                engine.load_url(&s.params.model, quant);
            }
        })
    };
    let on_model_files = {
        let (engine, quant) = (engine.clone(), state.params.quant);
        Callback::from(move |files: Vec<File>| engine.load_files(files, quant))
    };
    let on_clear_cache = {
        let engine = engine.clone();
        Callback::from(move |_| engine.send(&Request::ClearCache, None, None))
    };
    let on_image_url = {
        let (engine, params) = (engine.clone(), state.params.clone());
        Callback::from(move |url: String| {
            engine.dispatch.dispatch(Action::SetParams(Params {
                image: Some(url.clone()),
                ..params.clone()
            }));
            engine.open_url(url);
        })
    };
    let on_image_file = {
        let (engine, params) = (engine.clone(), state.params.clone());
        Callback::from(move |file: File| {
            // A local file cannot be part of a share link.
            engine.dispatch.dispatch(Action::SetParams(Params {
                image: None,
                ..params.clone()
            }));
            engine.open_file(file);
        })
    };
    let on_image_bytes = {
        let (engine, params) = (engine.clone(), state.params.clone());
        Callback::from(move |(bytes, name): (ArrayBuffer, String)| {
            engine.dispatch.dispatch(Action::SetParams(Params {
                image: None,
                ..params.clone()
            }));
            engine.set_image(bytes, name);
        })
    };
    let on_image_error = {
        let dispatch = engine.dispatch.clone();
        Callback::from(move |e: String| dispatch.dispatch(Action::ImageFailed(e)))
    };
    let on_run = {
        let (engine, s) = (engine.clone(), state.clone());
        Callback::from(move |_| engine.explain(&s))
    };
    let on_select = {
        let dispatch = engine.dispatch.clone();
        Callback::from(move |i| dispatch.dispatch(Action::Select(i)))
    };
    let on_restart = {
        let (engine, s) = (engine.clone(), state.clone());
        Callback::from(move |_: MouseEvent| {
            engine.start(s.params.device);
            engine.dispatch.dispatch(Action::WorkerRestarted);
            engine.load_url(&s.params.model, s.params.quant);
            let last = engine.last_image.borrow().clone();
            if let Some((bytes, name)) = last {
                engine.set_image(bytes, name);
            }
        })
    };
    // Drop files anywhere: weights load as the model, anything else as the image.
    let on_drop = {
        let (engine, quant) = (engine.clone(), state.params.quant);
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(list) = e.data_transfer().and_then(|d| d.files()) else {
                return;
            };
            let files: Vec<File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
            let is_model = |f: &File| {
                let name = f.name();
                name.ends_with(".safetensors") || name == MANIFEST || name.ends_with(".bin")
            };
            if files.iter().any(is_model) {
                engine.load_files(files, quant);
            } else if let Some(file) = files.into_iter().next() {
                engine.open_file(file);
            }
        })
    };
    let on_drag_over = Callback::from(|e: DragEvent| e.prevent_default());

    let s = &*state;
    let result = s
        .result
        .clone()
        .filter(|_| s.image.as_ref().is_some_and(|i| i.id == s.result_image));
    let running = match &s.run {
        RunState::Running { progress, .. } => Some(progress.clone()),
        RunState::Idle => None,
    };
    let results = html! {
        <Results image={s.image.clone()} result={result} params={s.params.clone()} on_params={set_params.clone()}
            selected={s.selected} on_select={on_select} running={running} embed={s.params.embed} />
    };
    let worker_banner = s.worker_error.as_ref().map(|e| {
        html! {
            <div class="banner error" role="alert">
                { e.clone() }
                <button type="button" onclick={on_restart}>{ "Restart the engine" }</button>
            </div>
        }
    });
    if s.params.embed {
        // Canvas and minimal controls, for iframes; status and errors still show.
        let status = match &s.model {
            ModelState::Loading { progress, .. } => {
                html! { <ProgressBar progress={progress.clone()} /> }
            }
            _ => html! {},
        };
        let errors = [&s.model_error, &s.image_error, &s.run_error]
            .into_iter()
            .flatten()
            .map(|e| html! { <p class="error" role="alert">{ e.clone() }</p> });
        return html! {
            <main class="embed" ondrop={on_drop} ondragover={on_drag_over}>
                { worker_banner.unwrap_or_default() }
                { status }
                { for errors }
                { results }
            </main>
        };
    }
    let device_badge = match &s.device {
        DeviceState::Starting => {
            html! { <span class="badge" data-device="starting">{ "Starting…" }</span> }
        }
        DeviceState::Ready { kind, .. } => html! {
            <span class="badge ok" data-device={kind.label().to_lowercase()} title="Where CLIP runs">{ kind.label() }</span>
        },
        DeviceState::Failed(_) => {
            html! { <span class="badge bad" data-device="none">{ "No device" }</span> }
        }
    };
    let device_note = match &s.device {
        DeviceState::Ready {
            note: Some(note), ..
        } => Some(html! { <div class="banner note" role="status">{ note.clone() }</div> }),
        DeviceState::Failed(e) => {
            Some(html! { <div class="banner error" role="alert">{ e.clone() }</div> })
        }
        _ => None,
    };
    let warnings = (!s.warnings.is_empty()).then(|| {
        let dispatch = engine.dispatch.clone();
        html! {
            <div class="banner note" role="status">
                <ul>{ for s.warnings.iter().map(|w| html! { <li>{ w.clone() }</li> }) }</ul>
                <button type="button" class="link" onclick={Callback::from(move |_| dispatch.dispatch(Action::DismissWarnings))}>
                    { "Dismiss" }
                </button>
            </div>
        }
    });
    let (model_sizes, sizes_known) = sizes(&s.model);
    let hint = if s.model_info().is_none() {
        Some("Load a model first.")
    } else if s.image.is_none() {
        Some("Pick an image first.")
    } else {
        None
    };
    html! {
        <div class="app" ondrop={on_drop} ondragover={on_drag_over}>
            <header class="top">
                <div>
                    <h1>{ "CLIP " }<span>{ "Surgery" }</span></h1>
                    <p class="tagline">{ "See what CLIP looks at — computed in your browser, nothing uploaded." }</p>
                </div>
                { device_badge }
            </header>
            { worker_banner.unwrap_or_default() }
            { device_note.unwrap_or_default() }
            { warnings.unwrap_or_default() }
            <div class="layout">
                <div class="controls">
                    <ModelPanel url={s.params.model.clone()} model={s.model.clone()}
                        quant={s.params.quant} sizes={model_sizes} sizes_known={sizes_known} on_quant={on_quant}
                        error={s.model_error.clone().map(AttrValue::from)} cache={s.cache.clone()}
                        on_load_url={on_load_url} on_files={on_model_files} on_clear_cache={on_clear_cache} />
                    <QueryPanel params={s.params.clone()} on_params={set_params} on_run={on_run}
                        ready={s.can_run()} hint={hint.map(AttrValue::from)}
                        error={s.run_error.clone().map(AttrValue::from)} />
                    <ImagePanel url={s.params.image.clone().unwrap_or_default()}
                        current={s.image.as_ref().map(|i| AttrValue::from(i.name.clone()))}
                        busy={s.image_pending.is_some()} error={s.image_error.clone().map(AttrValue::from)}
                        on_file={on_image_file} on_url={on_image_url} on_bytes={on_image_bytes} on_error={on_image_error} />
                </div>
                { results }
            </div>
            <footer>
                <p>
                    { "Implements " }
                    <a href="https://arxiv.org/abs/2304.05653">{ "CLIP Surgery" }</a>
                    { " (Li et al., 2023): v-v attention in the last six blocks and feature surgery. \
                       Images never leave this device; only the app, the model files and image URLs you enter are fetched." }
                </p>
            </footer>
        </div>
    }
}
