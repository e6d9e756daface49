//! What to explain and how: a text ("a+b" allowed) or a label set (with dataset presets),
//! input size (the sizes the model's patch and the device allow), method, and the Run button
//! (Ctrl+Enter in the text fields).

use clip_core::input::query::Method;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::params::{Edit, Mode, Params, format_size, parse_size, size_options};
use clip_core::input::presets::PRESETS;

/// Props of [`QueryPanel`].
#[derive(Properties, PartialEq)]
pub struct QueryPanelProps {
    /// Current values.
    pub params: Params,
    /// A control changed.
    pub on_edit: Callback<Edit>,
    /// The model's patch: sizes must be multiples of it.
    pub patch: usize,
    /// The largest side the device can run.
    pub max_side: usize,
    /// A typed size (`H` or `HxW`).
    pub on_size_text: Callback<String>,
    /// Why the typed size was not taken.
    pub size_error: Option<AttrValue>,
    /// Run now.
    pub on_run: Callback<()>,
    /// Whether a run can start (model and image ready).
    pub ready: bool,
    /// Why not, for the button's hint.
    pub hint: Option<AttrValue>,
    /// Last error.
    pub error: Option<AttrValue>,
}

/// The query section.
#[function_component(QueryPanel)]
pub fn query_panel(props: &QueryPanelProps) -> Html {
    let p = &props.params;
    let input_value = |edit: fn(String) -> Edit| {
        props.on_edit.reform(move |e: InputEvent| {
            edit(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let select_value = |edit: fn(String) -> Option<Edit>| {
        let cb = props.on_edit.clone();
        Callback::from(move |e: Event| {
            if let Some(edit) = edit(e.target_unchecked_into::<HtmlSelectElement>().value()) {
                cb.emit(edit);
            }
        })
    };
    let run_keys = {
        let run = props.on_run.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" && (e.ctrl_key() || e.meta_key()) {
                e.prevent_default();
                run.emit(());
            }
        })
    };
    let on_labels = props.on_edit.reform(|e: InputEvent| {
        Edit::Labels(e.target_unchecked_into::<HtmlTextAreaElement>().value())
    });
    let on_text_keys = {
        let run = props.on_run.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                run.emit(());
            }
        })
    };
    let (patch, max_side) = (props.patch, props.max_side);
    let sizes = size_options(patch, max_side);
    let custom = !sizes.iter().any(|&s| p.size == [s, s]);
    let on_size = {
        let cb = props.on_edit.clone();
        let current = p.size;
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            // "Custom…" starts from the next multiple of the patch above the current size.
            let size = parse_size(&value).unwrap_or_else(|| {
                let side = (current[0] / patch + 1) * patch;
                [side.min(max_side); 2]
            });
            cb.emit(Edit::Size(size));
        })
    };
    let on_submit = {
        let run = props.on_run.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            run.emit(());
        })
    };
    html! {
        <section class="panel" aria-labelledby="query-h">
            <h2 id="query-h">{ "What to look for" }</h2>
            <form onsubmit={on_submit}>
                <fieldset class="segmented">
                    <legend>{ "Query" }</legend>
                    <label><input type="radio" name="mode" checked={p.mode == Mode::Labels}
                        onchange={props.on_edit.reform(|_| Edit::Mode(Mode::Labels))} />{ "Label set" }</label>
                    <label><input type="radio" name="mode" checked={p.mode == Mode::Text}
                        onchange={props.on_edit.reform(|_| Edit::Mode(Mode::Text))} />{ "One text" }</label>
                </fieldset>
                { match p.mode {
                    Mode::Labels => html! {
                        <>
                            <label>
                                <span>{ "Labels (comma-separated)" }</span>
                                <textarea rows="3" value={p.labels.clone()} oninput={on_labels}
                                    onkeydown={run_keys} spellcheck="false" />
                            </label>
                            <label>
                                <span>{ "Preset" }</span>
                                <select onchange={select_value(|v| {
                                    PRESETS.iter().find(|x| x.name == v).map(|x| Edit::Labels(x.labels.join(", ")))
                                })}>
                                    <option value="" selected=true>{ "Choose a dataset's classes…" }</option>
                                    { for PRESETS.iter().map(|x| html! { <option value={x.name}>{ x.name }</option> }) }
                                </select>
                            </label>
                        </>
                    },
                    Mode::Text => html! {
                        <label>
                            <span>{ "Text (use + to combine, e.g. \"person+bench\")" }</span>
                            <input type="text" value={p.text.clone()} oninput={input_value(Edit::Text)}
                                onkeydown={on_text_keys} spellcheck="false" />
                        </label>
                    },
                } }
                <div class="row">
                    <label>
                        <span>{ "Input size" }</span>
                        <select onchange={on_size}>
                            { for sizes.iter().map(|&s| html! {
                                <option value={s.to_string()} selected={p.size == [s, s]}>
                                    { format!("{s} px{}", if s == 512 { " (paper's demo)" } else { "" }) }
                                </option>
                            }) }
                            <option value="custom" selected={custom}>{ "Custom…" }</option>
                        </select>
                    </label>
                    { if custom { html! {
                        <label>
                            <span>{ format!("Custom size (H or HxW, multiples of {patch}, up to {max_side})") }</span>
                            <input type="text" inputmode="numeric" value={format_size(p.size)}
                                aria-invalid={props.size_error.is_some().to_string()}
                                onchange={props.on_size_text.reform(|e: Event| e.target_unchecked_into::<HtmlInputElement>().value())} />
                            { for props.size_error.as_ref().map(|why| html! { <span class="error" role="alert">{ why.clone() }</span> }) }
                        </label>
                    } } else { html! {} } }
                    <label>
                        <span>{ "Method" }</span>
                        <select onchange={select_value(|v| v.parse().ok().map(Edit::Method))}>
                            <option value="surgery" selected={p.method == Method::Surgery}>{ "CLIP Surgery" }</option>
                            <option value="raw" selected={p.method == Method::Raw}>{ "Raw CLIP" }</option>
                        </select>
                    </label>
                </div>
                <label class="check">
                    <input type="checkbox" checked={p.compare} disabled={p.method == Method::Raw}
                        onchange={props.on_edit.reform(|e: Event| {
                            Edit::Compare(e.target_unchecked_into::<HtmlInputElement>().checked())
                        })} />
                    { "Compare with raw CLIP side by side" }
                </label>
                <button type="submit" class="primary" disabled={!props.ready}
                    title={props.hint.clone()}>{ "Explain" }</button>
                { for props.hint.as_ref().filter(|_| !props.ready).map(|h| html! { <p class="muted">{ h.clone() }</p> }) }
                { for props.error.as_ref().map(|e| html! { <p class="error" role="alert">{ e.clone() }</p> }) }
            </form>
        </section>
    }
}
