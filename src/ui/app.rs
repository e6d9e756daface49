//! The root component: the state, the hooks that act on it, and the components that show it.
//! Callbacks only dispatch what the user did; the reducer ([`crate::ui::state`]) decides and the
//! hooks ([`crate::ui::hooks`]) act.

use std::rc::Rc;

use clip_core::config::ClipConfig;
use clip_core::weights::pack::{MANIFEST, Scheme};
use js_sys::ArrayBuffer;
use web_sys::{DragEvent, File};
use yew::prelude::*;

use crate::params::Edit;
use crate::ui::components::header::header;
use crate::ui::components::image_panel::{ImagePanel, SAMPLES};
use crate::ui::components::model_panel::ModelPanel;
use crate::ui::components::notices::notices;
use crate::ui::components::progress::ProgressBar;
use crate::ui::components::query_panel::QueryPanel;
use crate::ui::components::results::Results;
use crate::ui::dom;
use crate::ui::hooks::{
    use_address_bar, use_autoload, use_automation, use_online, use_paste, use_worker,
};
use crate::ui::state::{Action, ImageSource, ModelState, RunState, State};

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

/// Dropped files: weights load as the model, anything else opens as the image.
fn dropped(e: DragEvent) -> Option<Action> {
    e.prevent_default();
    let list = e.data_transfer()?.files()?;
    let files: Vec<File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
    let is_model = |f: &File| {
        let name = f.name();
        name.ends_with(".safetensors") || name == MANIFEST || name.ends_with(".bin")
    };
    if files.iter().any(is_model) {
        Some(Action::LoadModelFiles(Rc::new(files)))
    } else {
        let file = files.into_iter().next()?;
        Some(Action::OpenImage(ImageSource::File(file)))
    }
}

/// The app.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer_eq(|| {
        let (params, warnings) = dom::read_params();
        State::new(params, warnings, SAMPLES[0].0)
    });
    let client = use_worker(&state);
    use_autoload(&state);
    use_address_bar(&state.params);
    use_automation(&state);
    use_paste(state.dispatcher());
    let online = use_online();

    let dispatch = state.dispatcher();
    let act = |f: fn() -> Action| {
        let dispatch = dispatch.clone();
        Callback::from(move |()| dispatch.dispatch(f()))
    };
    let on_edit = {
        let dispatch = dispatch.clone();
        Callback::from(move |edit: Edit| dispatch.dispatch(Action::Edit(edit)))
    };
    let on_select = {
        let dispatch = dispatch.clone();
        Callback::from(move |i| dispatch.dispatch(Action::Select(i)))
    };
    let on_drop = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            if let Some(action) = dropped(e) {
                dispatch.dispatch(action);
            }
        })
    };
    let on_drag_over = Callback::from(|e: DragEvent| e.prevent_default());

    let s = &*state;
    let running = match &s.run {
        RunState::Running { progress, .. } => Some(progress.clone()),
        RunState::Idle | RunState::Wanted => None,
    };
    let (patch, max_side) = s.input_limits();
    let results = html! {
        <Results image={s.image.clone()} result={s.shown_result()} params={s.params.clone()}
            on_edit={on_edit.clone()} selected={s.selected} on_select={on_select}
            running={running} embed={s.params.embed}
            blocks={s.model_info().map_or(0, |i| i.blocks)}
            on_live={s.viewer.is_some().then(|| act(|| Action::RunLive))} />
    };
    let notices = notices(
        s,
        online,
        act(|| Action::RestartWorker),
        act(|| Action::DismissWarnings),
    );
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
                { notices }
                { status }
                { for errors }
                { results }
            </main>
        };
    }
    let (model_sizes, sizes_known) = sizes(&s.model);
    let hint = if s.model_info().is_none() {
        Some("Load a model first.")
    } else if s.image.is_none() {
        Some("Pick an image first.")
    } else {
        None
    };
    let on_load_url = {
        let dispatch = dispatch.clone();
        Callback::from(move |url: String| dispatch.dispatch(Action::LoadModelUrl(url)))
    };
    let on_model_files = {
        let dispatch = dispatch.clone();
        Callback::from(move |files: Vec<File>| {
            dispatch.dispatch(Action::LoadModelFiles(Rc::new(files)))
        })
    };
    let on_quant = on_edit.reform(Edit::Quant);
    let on_size_text = {
        let dispatch = dispatch.clone();
        Callback::from(move |text: String| dispatch.dispatch(Action::TypeSize(text)))
    };
    let on_clear_cache = Callback::from(move |()| client.clear_cache());
    let open = |source: fn(File) -> ImageSource| {
        let dispatch = dispatch.clone();
        Callback::from(move |file: File| dispatch.dispatch(Action::OpenImage(source(file))))
    };
    let on_image_url = {
        let dispatch = dispatch.clone();
        Callback::from(move |url: String| {
            dispatch.dispatch(Action::OpenImage(ImageSource::Url(url)))
        })
    };
    let on_image_bytes = {
        let dispatch = dispatch.clone();
        Callback::from(move |(bytes, name): (ArrayBuffer, String)| {
            dispatch.dispatch(Action::OpenImage(ImageSource::Bytes(bytes, name)))
        })
    };
    let on_image_error = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: String| dispatch.dispatch(Action::ImageFailed(e)))
    };
    html! {
        <div class="app" ondrop={on_drop} ondragover={on_drag_over}>
            { header(&s.device, s.viewer.is_some()) }
            { notices }
            <div class="layout">
                <div class="controls">
                    <ModelPanel url={s.params.model.clone()} model={s.model.clone()}
                        quant={s.params.quant} sizes={model_sizes} sizes_known={sizes_known} on_quant={on_quant}
                        error={s.model_error.clone().map(AttrValue::from)} cache={s.cache.clone()}
                        on_load_url={on_load_url} on_files={on_model_files} on_clear_cache={on_clear_cache} />
                    <QueryPanel params={s.params.clone()} on_edit={on_edit} on_run={act(|| Action::Run)}
                        patch={patch} max_side={max_side} on_size_text={on_size_text}
                        size_error={s.size_error.clone().map(AttrValue::from)}
                        ready={s.can_run()} hint={hint.map(AttrValue::from)}
                        error={s.run_error.clone().map(AttrValue::from)} />
                    <ImagePanel url={s.params.image.clone().unwrap_or_default()}
                        current={s.image.as_ref().map(|i| AttrValue::from(i.name.clone()))}
                        busy={s.image_pending.is_some()} error={s.image_error.clone().map(AttrValue::from)}
                        on_file={open(ImageSource::File)} on_url={on_image_url} on_bytes={on_image_bytes}
                        on_error={on_image_error} />
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
