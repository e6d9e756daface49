//! The output: the heatmap over the image (raw CLIP beside it on request), colormap and
//! opacity, Text2Points markers, a thumbnail and CLS score per label, stage timings, PNG export.

use std::rc::Rc;

use clip_core::input::query::Method;
use clip_core::output::colormap::Colormap;
use clip_protocol::RunResult;
use web_sys::{HtmlCanvasElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::params::{Edit, PRESENCE_RANGE, Params, format_presence};
use crate::render::{Picture, markers};
use crate::ui::components::heatmap::{Heatmap, MapLayer};
use crate::ui::components::progress::ProgressBar;
use crate::ui::dom::{self, download_png};
use crate::ui::state::{LoadedImage, Progress};

/// Props of [`Results`].
#[derive(Properties, PartialEq)]
pub struct ResultsProps {
    /// The image shown.
    pub image: Option<Rc<LoadedImage>>,
    /// The result for that image, if any.
    pub result: Option<Rc<RunResult>>,
    /// Colormap, opacity.
    pub params: Params,
    /// A control changed.
    pub on_edit: Callback<Edit>,
    /// Label shown large.
    pub selected: usize,
    /// Select a label.
    pub on_select: Callback<usize>,
    /// A run in flight.
    pub running: Option<Progress>,
    /// Minimal controls (iframes).
    #[prop_or_default]
    pub embed: bool,
}

/// One label's layer from a run (its raw-CLIP comparison when `raw`).
fn layer(
    run: &Rc<RunResult>,
    raw: bool,
    i: usize,
    params: &Params,
    picture: &Picture,
    points: bool,
) -> MapLayer {
    let explanation = if raw {
        run.raw.as_ref()
    } else {
        Some(&run.explanation)
    };
    let pts = explanation
        .and_then(|e| e.points_of(i))
        .filter(|_| points)
        .map(|p| markers(p, run.original_hw, picture))
        .unwrap_or_default();
    MapLayer {
        run: run.clone(),
        raw,
        label: i,
        colormap: params.colormap,
        opacity: params.opacity,
        markers: Rc::new(pts),
    }
}

/// The results section.
#[function_component(Results)]
pub fn results(props: &ResultsProps) -> Html {
    let canvas = use_node_ref();
    let show_points = use_state(|| true);
    let Some(image) = &props.image else {
        return html! {
            <section class="stage empty" aria-label="Result">
                <p>{ "Pick a sample, open a photo, or drop one here." }</p>
            </section>
        };
    };
    let p = &props.params;
    let run = props.result.as_ref();
    let result = props.result.as_deref();
    let selected = props.selected;
    let label = result
        .and_then(|r| r.explanation.labels.get(selected))
        .cloned();
    let main_layer = run.map(|r| layer(r, false, selected, p, &image.picture, *show_points));
    let method_name = |m: Method| match m {
        Method::Surgery => "CLIP Surgery",
        Method::Raw => "Raw CLIP",
    };
    let main_label = match (&label, result) {
        (Some(l), Some(r)) => format!(
            "{} similarity map for “{l}” over {}",
            method_name(r.method),
            image.name
        ),
        _ => format!("The image {}", image.name),
    };
    let raw_view = run.filter(|r| r.raw.is_some()).map(|r| {
        let l = layer(r, true, selected, p, &image.picture, *show_points);
        html! {
            <figure>
                <Heatmap picture={image.picture.clone()} layer={Some(l)}
                    label={format!("Raw CLIP similarity map for “{}”", label.clone().unwrap_or_default())} />
                <figcaption>{ "Raw CLIP" }</figcaption>
            </figure>
        }
    });
    let on_colormap = {
        let cb = props.on_edit.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let Ok(c) = value.parse::<Colormap>() {
                cb.emit(Edit::Colormap(c));
            }
        })
    };
    let on_opacity = {
        let cb = props.on_edit.clone();
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(o) = value.parse::<f32>() {
                cb.emit(Edit::Opacity(o));
            }
        })
    };
    let on_points = {
        let show = show_points.clone();
        Callback::from(move |e: Event| {
            show.set(e.target_unchecked_into::<HtmlInputElement>().checked())
        })
    };
    let on_download = {
        let (canvas, label) = (canvas.clone(), label.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(c) = canvas.cast::<HtmlCanvasElement>() {
                let name = label
                    .as_deref()
                    .unwrap_or("image")
                    .replace(|c: char| !c.is_alphanumeric(), "-");
                download_png(&c, &format!("clip-surgery-{name}.png"));
            }
        })
    };
    let label_choice = result.filter(|r| r.explanation.labels.len() > 1).map(|r| {
        let cb = props.on_select.clone();
        html! {
            <label>
                <span>{ "Label" }</span>
                <select onchange={Callback::from(move |e: Event| {
                    if let Ok(i) = e.target_unchecked_into::<HtmlSelectElement>().value().parse() { cb.emit(i) }
                })}>
                    { for r.explanation.labels.iter().enumerate().map(|(i, l)| html! {
                        <option value={i.to_string()} selected={i == selected}>{ l.clone() }</option>
                    }) }
                </select>
            </label>
        }
    });
    let toolbar = html! {
        <div class="toolbar">
            { if props.embed { label_choice.clone().unwrap_or_default() } else { html! {} } }
            <label>
                <span>{ "Colormap" }</span>
                <select onchange={on_colormap}>
                    { for Colormap::ALL.iter().map(|c| html! {
                        <option value={c.name()} selected={*c == p.colormap}>{ c.name() }</option>
                    }) }
                </select>
            </label>
            <label class="grow">
                <span>{ format!("Opacity {:.0} %", p.opacity * 100.0) }</span>
                <input type="range" min="0" max="1" step="0.05" value={p.opacity.to_string()} oninput={on_opacity} />
            </label>
            { if props.embed { html! {} } else { html! {
                <>
                    <label class="check"><input type="checkbox" checked={*show_points} onchange={on_points} />{ "Points" }</label>
                    <button type="button" onclick={on_download} disabled={result.is_none()}>{ "Download PNG" }</button>
                </>
            } } }
        </div>
    };
    let busy = props.running.as_ref().map(|progress| {
        html! {
            <div class="busy">
                <span class="spinner" aria-hidden="true"></span>
                <ProgressBar progress={progress.clone()} />
            </div>
        }
    });
    html! {
        <section class="stage" aria-label="Result">
            { toolbar }
            <div class={classes!("figures", raw_view.is_some().then_some("pair"))}>
                <figure>
                    <Heatmap picture={image.picture.clone()} layer={main_layer} label={main_label}
                        canvas={Some(canvas.clone())} class="main" />
                    { for result.filter(|_| raw_view.is_some()).map(|r| html! { <figcaption>{ method_name(r.method) }</figcaption> }) }
                </figure>
                { raw_view.unwrap_or_default() }
            </div>
            { busy.unwrap_or_default() }
            { if props.embed { html! {} } else { run.map(|r| details(r, image, p, selected, &props.on_select, &props.on_edit)).unwrap_or_default() } }
        </section>
    }
}

/// Per-label thumbnails with CLS scores, most likely present first (by the multi-label score
/// of a label set, with its presence threshold), the timings, truncation notes.
fn details(
    r: &Rc<RunResult>,
    image: &LoadedImage,
    p: &Params,
    selected: usize,
    on_select: &Callback<usize>,
    on_edit: &Callback<Edit>,
) -> Html {
    let e = &r.explanation;
    let order = e.ranking();
    let multi_label = !e.cls_surgery.is_empty();
    let on_presence = {
        let cb = on_edit.clone();
        Callback::from(move |ev: InputEvent| {
            let value = ev.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(t) = value.parse::<f32>() {
                cb.emit(Edit::Presence(t));
            }
        })
    };
    let present = order
        .iter()
        .filter(|&&i| e.present(i, p.presence) == Some(true))
        .count();
    let t = &r.timings_ms;
    let mut stages = vec![
        ("Preprocess", t.preprocess),
        ("Text", t.text),
        ("Image", t.image),
        ("Read-back & maps", t.finish),
    ];
    if let Some(raw) = t.raw {
        stages.push(("Raw CLIP", raw));
    }
    stages.push(("Total", t.total));
    html! {
        <>
            { if multi_label { html! {
                <div class="toolbar presence">
                    <label class="grow">
                        <span>{ format!("Presence threshold {}", format_presence(p.presence)) }</span>
                        <input type="range" min={PRESENCE_RANGE.0.to_string()} max={PRESENCE_RANGE.1.to_string()}
                            step="0.001" value={p.presence.to_string()} oninput={on_presence} />
                    </label>
                    <span class="muted" aria-live="polite">{ format!("{present} of {} labels present", order.len()) }</span>
                </div>
            } } else { html! {} } }
            <ul class="labels" aria-label={if multi_label { "Labels by multi-label score" } else { "Labels by CLS score" }}>
                { for order.into_iter().map(|i| {
                    let score = e.cls_scores.get(i).copied().unwrap_or(0.0);
                    let present = e.present(i, p.presence);
                    let cb = on_select.clone();
                    let thumb = layer(r, false, i, p, &image.thumb, false);
                    html! {
                        <li class={classes!((present == Some(false)).then_some("absent"))}>
                            <button type="button" class={classes!("label", (i == selected).then_some("selected"))}
                                aria-pressed={(i == selected).to_string()}
                                onclick={Callback::from(move |_| cb.emit(i))}>
                                <Heatmap picture={image.thumb.clone()} layer={Some(thumb)} label={format!("thumbnail for {}", e.labels[i])} />
                                <span class="name">{ e.labels[i].clone() }</span>
                                { if e.labels.len() > 1 { html! {
                                    <>
                                        <meter min="0" max="1" value={score.to_string()} aria-label="CLS score" />
                                        <span class="score">{ format!("{:.1} %", score * 100.0) }</span>
                                    </>
                                } } else { html! {} } }
                                { match (e.cls_surgery.get(i), present) {
                                    (Some(s), Some(here)) => html! {
                                        <span class="surgery" data-score={s.to_string()}>
                                            { format!("{s:+.4} · {}", if here { "present" } else { "absent" }) }
                                        </span>
                                    },
                                    _ => html! {},
                                } }
                            </button>
                        </li>
                    }
                }) }
            </ul>
            <dl class="timings" aria-label="Timings">
                <dt>{ "Device" }</dt><dd>{ r.device.label() }</dd>
                <dt>{ "Input" }</dt><dd>{ format!("{}×{} px, grid {}×{}", r.input_hw[1], r.input_hw[0], e.grid[1], e.grid[0]) }</dd>
                { for stages.into_iter().map(|(name, ms)| html! { <><dt>{ name }</dt><dd>{ format!("{ms:.0} ms") }</dd></> }) }
                <dt>{ "Prompt ensembles" }</dt><dd>{ encoded_texts(r.texts_encoded) }</dd>
                <dt>{ "Worker memory" }</dt><dd data-memory={r.memory_bytes.to_string()}>{ dom::format_bytes(r.memory_bytes) }</dd>
            </dl>
            { if e.truncated.is_empty() { html! {} } else { html! {
                <p class="muted">{ format!("Prompts longer than CLIP's 77 tokens were truncated for: {}", e.truncated.join(", ")) }</p>
            } } }
        </>
    }
}

/// How many of the run's prompt ensembles were encoded rather than reused.
fn encoded_texts(n: usize) -> String {
    match n {
        0 => "none encoded: all reused".into(),
        n => format!("{n} encoded"),
    }
}
