//! Model choice: a URL (Hugging Face-format directory, a `.safetensors` file, or a weight
//! pack) or local files; the precision with each variant's size; load progress; what Cache
//! Storage holds.

use std::rc::Rc;

use clip_core::weights::pack::Scheme;
use web_sys::{File, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::params::default_model;
use crate::ui::components::progress::ProgressBar;
use crate::ui::components::url_field::UrlField;
use crate::ui::dom::format_bytes;
use crate::ui::state::{CacheState, ModelState};

/// Props of [`ModelPanel`].
#[derive(Properties, PartialEq)]
pub struct ModelPanelProps {
    /// The model URL in the controls.
    pub url: AttrValue,
    /// Model status.
    pub model: ModelState,
    /// Precision asked for.
    pub quant: Scheme,
    /// Size of the model in each scheme.
    pub sizes: Vec<(Scheme, f64)>,
    /// Whether `sizes` are the loaded model's (else the default ViT-B/16's).
    pub sizes_known: bool,
    /// Pick a precision.
    pub on_quant: Callback<Scheme>,
    /// Last error.
    pub error: Option<AttrValue>,
    /// Cache Storage.
    pub cache: CacheState,
    /// Load from a URL.
    pub on_load_url: Callback<String>,
    /// Load local files.
    pub on_files: Callback<Vec<File>>,
    /// Empty the cache.
    pub on_clear_cache: Callback<()>,
}

/// The model section.
#[function_component(ModelPanel)]
pub fn model_panel(props: &ModelPanelProps) -> Html {
    let on_files = {
        let cb = props.on_files.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(list) = input.files() {
                cb.emit((0..list.length()).filter_map(|i| list.get(i)).collect());
            }
            input.set_value("");
        })
    };
    let on_quant = {
        let cb = props.on_quant.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            if let Ok(scheme) = select.value().parse() {
                cb.emit(scheme);
            }
        })
    };
    let loading = matches!(
        props.model,
        ModelState::Loading { .. } | ModelState::Wanted(_)
    );
    let option = |&(scheme, bytes): &(Scheme, f64)| {
        let what = match scheme {
            Scheme::F32 => "unquantized",
            Scheme::F16 => "half",
            Scheme::Int8 => "8-bit, recommended",
            Scheme::Q4 => "4-bit vision",
        };
        html! {
            <option value={scheme.name()} selected={scheme == props.quant}>
                { format!("{scheme} — {} ({what})", format_bytes(bytes)) }
            </option>
        }
    };
    let status = match &props.model {
        ModelState::Idle => html! {
            <p class="muted">{ "No model loaded. CLIP ViT-B/16 is about 600 MB, downloaded once and then cached." }</p>
        },
        ModelState::Wanted(_) => {
            html! { <p class="muted" role="status">{ "Starting the download…" }</p> }
        }
        ModelState::Loading { name, progress, .. } => html! {
            <>
                <p class="muted">{ format!("Loading {}", short(name)) }</p>
                <ProgressBar progress={progress.clone()} />
            </>
        },
        ModelState::Ready(info) => html! {
            <p class="ok" data-testid="model-ready" data-scheme={info.scheme.name()}
                data-memory={info.memory_bytes.to_string()} data-cached={info.cached.to_string()}
                data-download-ms={info.download_ms.to_string()} data-upload-ms={info.upload_ms.to_string()}>
                { format!("{} {} ready — {} ", info.architecture, info.scheme, format_bytes(info.bytes)) }
                { if info.cached { "from the cache" } else { "downloaded" } }
                { format!(", loaded in {:.1} s", (info.download_ms + info.upload_ms) / 1000.0) }
            </p>
        },
    };
    let clear = props.on_clear_cache.reform(|_: MouseEvent| ());
    html! {
        <section class="panel" aria-labelledby="model-h">
            <h2 id="model-h">{ "Model" }</h2>
            <UrlField label="Model URL" value={props.url.clone()} placeholder={default_model()}
                button="Load" disabled={loading} on_submit={props.on_load_url.clone()} />
            <label class="file">
                <span>{ "…or open local files (model.safetensors + config.json, or a pack's manifest.json + shards)" }</span>
                <input type="file" multiple=true accept=".safetensors,.json,.bin" onchange={on_files} />
            </label>
            <label>
                <span>{ if props.sizes_known { "Precision" } else { "Precision (sizes for ViT-B/16)" } }</span>
                <select onchange={on_quant} disabled={loading}>{ for props.sizes.iter().map(option) }</select>
            </label>
            { status }
            { for props.error.as_ref().map(|e| html! { <p class="error" role="alert">{ e.clone() }</p> }) }
            <p class="cache muted">
                { if props.cache.known {
                    format!("Cached: {} in {} file{}", format_bytes(props.cache.bytes), props.cache.urls.len(),
                        if props.cache.urls.len() == 1 { "" } else { "s" })
                } else { "Cached: …".into() } }
                <button type="button" class="link" onclick={clear}
                    disabled={props.cache.urls.is_empty() || loading}>{ "Clear cache" }</button>
            </p>
        </section>
    }
}

/// The tail of a long URL, for status lines.
fn short(name: &str) -> Rc<str> {
    let tail: String = name
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.len() < name.len() {
        format!("…{tail}").into()
    } else {
        name.into()
    }
}
