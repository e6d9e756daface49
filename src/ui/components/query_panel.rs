//! What to explain and how: a text ("a+b" allowed) or a label set (with dataset presets),
//! input size, method, and the Run button (Ctrl+Enter in the text fields).

use clip_core::Method;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::params::{Mode, Params, SIZES, format_size, parse_size};
use crate::presets::PRESETS;

/// Props of [`QueryPanel`].
#[derive(Properties, PartialEq)]
pub struct QueryPanelProps {
    /// Current values.
    pub params: Params,
    /// New values.
    pub on_params: Callback<Params>,
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
    // Each control edits a copy of the params.
    let edit = |f: fn(&mut Params, String)| {
        let (params, cb) = (p.clone(), props.on_params.clone());
        move |value: String| {
            let mut next = params.clone();
            f(&mut next, value);
            cb.emit(next);
        }
    };
    let input_value = |f: fn(&mut Params, String)| {
        let set = edit(f);
        Callback::from(move |e: InputEvent| {
            set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let select_value = |f: fn(&mut Params, String)| {
        let set = edit(f);
        Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()))
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
    let on_labels = {
        let set = edit(|p, v| p.labels = v);
        Callback::from(move |e: InputEvent| {
            set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let on_text_keys = {
        let run = props.on_run.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                run.emit(());
            }
        })
    };
    let custom = !SIZES.iter().any(|&s| p.size == [s, s]);
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
                        onchange={select_mode(p, &props.on_params, Mode::Labels)} />{ "Label set" }</label>
                    <label><input type="radio" name="mode" checked={p.mode == Mode::Text}
                        onchange={select_mode(p, &props.on_params, Mode::Text)} />{ "One text" }</label>
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
                                <select onchange={select_value(|p, v| {
                                    if let Some(preset) = PRESETS.iter().find(|x| x.name == v) {
                                        p.labels = preset.labels.join(", ");
                                    }
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
                            <input type="text" value={p.text.clone()} oninput={input_value(|p, v| p.text = v)}
                                onkeydown={on_text_keys} spellcheck="false" />
                        </label>
                    },
                } }
                <div class="row">
                    <label>
                        <span>{ "Input size" }</span>
                        <select onchange={select_value(|p, v| {
                            if let Some(size) = parse_size(&v) { p.size = size } else { p.size = [p.size[0] + 16, p.size[0] + 16] }
                        })}>
                            { for SIZES.iter().map(|&s| html! {
                                <option value={s.to_string()} selected={p.size == [s, s]}>
                                    { format!("{s} px{}", if s == 512 { " (paper's demo)" } else { "" }) }
                                </option>
                            }) }
                            <option value="custom" selected={custom}>{ "Custom…" }</option>
                        </select>
                    </label>
                    { if custom { html! {
                        <label>
                            <span>{ "Custom size (H or HxW)" }</span>
                            <input type="text" inputmode="numeric" value={format_size(p.size)}
                                onchange={select_value(|p, v| if let Some(size) = parse_size(&v) { p.size = size })} />
                        </label>
                    } } else { html! {} } }
                    <label>
                        <span>{ "Method" }</span>
                        <select onchange={select_value(|p, v| if let Ok(m) = v.parse() { p.method = m })}>
                            <option value="surgery" selected={p.method == Method::Surgery}>{ "CLIP Surgery" }</option>
                            <option value="raw" selected={p.method == Method::Raw}>{ "Raw CLIP" }</option>
                        </select>
                    </label>
                </div>
                <label class="check">
                    <input type="checkbox" checked={p.compare} disabled={p.method == Method::Raw}
                        onchange={{
                            let (params, cb) = (p.clone(), props.on_params.clone());
                            Callback::from(move |e: Event| {
                                let mut next = params.clone();
                                next.compare = e.target_unchecked_into::<HtmlInputElement>().checked();
                                cb.emit(next);
                            })
                        }} />
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

fn select_mode(p: &Params, cb: &Callback<Params>, mode: Mode) -> Callback<Event> {
    let (params, cb) = (p.clone(), cb.clone());
    Callback::from(move |_| {
        let mut next = params.clone();
        next.mode = mode;
        cb.emit(next);
    })
}
