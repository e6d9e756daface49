//! The output: the heatmap over the image (raw CLIP beside it on request), colormap and
//! opacity, Text2Points markers, or a label set's segmentation with its legend; a thumbnail and
//! scores per label, stage timings, PNG export.

use std::rc::Rc;

use clip_core::input::query::Method;
use clip_core::output::colormap::Colormap;
use clip_core::output::points::Points;
use clip_protocol::RunResult;
use web_sys::{HtmlCanvasElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::params::{Edit, PRESENCE_RANGE, Params, View, format_presence};
use crate::render::{Picture, markers};
use crate::ui::components::heatmap::{Heatmap, MapLayer, Source};
use crate::ui::components::progress::ProgressBar;
use crate::ui::components::segmentation::{
    Legend, SegmentationCanvas, segmentable, use_segmentation,
};
use crate::ui::dom::{self, download_figures, download_png};
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
    /// Blocks of the loaded model's image tower (the attention view's block picker; 0: none).
    #[prop_or_default]
    pub blocks: usize,
    /// A result file is shown: this leaves it for a live run (the model loads).
    #[prop_or_default]
    pub on_live: Option<Callback<()>>,
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
        source: Source::Label(i),
        colormap: params.colormap,
        opacity: params.opacity,
        markers: Rc::new(pts),
    }
}

/// The results section.
#[function_component(Results)]
pub fn results(props: &ResultsProps) -> Html {
    let canvas = use_node_ref();
    let sheet = use_node_ref();
    let show_points = use_state(|| true);
    let isolate = use_state(|| None::<usize>);
    let token = use_state(|| None::<usize>);
    {
        // A new result starts with the text's own map and every label shown.
        let (token, isolate) = (token.clone(), isolate.clone());
        let run = props.result.as_ref().map(|r| Rc::as_ptr(r) as usize);
        use_effect_with(run, move |_| {
            token.set(None);
            isolate.set(None);
        });
    }
    let hover = use_state(|| None::<u8>);
    let p = &props.params;
    let can_segment = props.result.as_deref().is_some_and(segmentable);
    let segmenting = can_segment && p.view == View::Segmentation;
    let picture = props.image.as_ref().map(|i| i.picture.clone());
    let seg = use_segmentation(
        props.result.clone(),
        false,
        picture.clone(),
        p.threshold,
        segmenting,
    );
    let raw_seg = use_segmentation(
        props.result.clone(),
        true,
        picture,
        p.threshold,
        segmenting && p.compare,
    );
    use_effect_with(seg.clone(), |seg| {
        if let Some(seg) = seg {
            dom::publish_segmentation(seg);
        }
    });
    // An isolated label belongs to one label set.
    let isolated = (*isolate).filter(|&i| seg.as_ref().is_some_and(|s| i < s.labels.len()));
    let Some(image) = &props.image else {
        return html! {
            <section class="stage empty" aria-label="Result">
                <p>{ "Pick a sample, open a photo, or drop one here." }</p>
            </section>
        };
    };
    let run = props.result.as_ref();
    let result = props.result.as_deref();
    let selected = props.selected;
    let label = result
        .and_then(|r| r.explanation.labels.get(selected))
        .cloned();
    // A token's map (the multimodal view) replaces the text's while one is chosen.
    let chosen_token = (*token).filter(|&t| result.is_some_and(|r| t < r.explanation.tokens.len()));
    let main_layer = run.map(|r| {
        let mut l = layer(
            r,
            false,
            selected,
            p,
            &image.picture,
            *show_points && chosen_token.is_none(),
        );
        if let Some(t) = chosen_token {
            l.source = Source::Token(t);
        }
        l
    });
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
    let on_hover = {
        let hover = hover.clone();
        Callback::from(move |v: Option<u8>| hover.set(v))
    };
    let raw_view = run.filter(|r| r.raw.is_some()).map(|r| {
        if let (true, Some(s)) = (segmenting, &raw_seg) {
            return html! {
                <figure>
                    <SegmentationCanvas picture={image.picture.clone()} segmentation={s.clone()}
                        opacity={p.opacity} isolate={isolated} on_hover={on_hover.clone()}
                        label="Raw CLIP segmentation" />
                    <figcaption>{ "Raw CLIP" }</figcaption>
                </figure>
            };
        }
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
    let on_threshold = {
        let cb = props.on_edit.clone();
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(t) = value.parse::<f32>() {
                cb.emit(Edit::Threshold(t));
            }
        })
    };
    let attending = p.view == View::Attention && result.is_some();
    let can_share = result.is_some_and(label_set);
    let sharing = can_share && p.view == View::Redundancy;
    let on_download = {
        let (canvas, sheet, label) = (canvas.clone(), sheet.clone(), label.clone());
        let view = if segmenting || attending || sharing {
            Some(p.view)
        } else {
            None
        };
        Callback::from(move |_: MouseEvent| {
            let name = match view {
                Some(v) => v.name().to_string(),
                None => label
                    .as_deref()
                    .unwrap_or("image")
                    .replace(|c: char| !c.is_alphanumeric(), "-"),
            };
            let file = format!("clip-surgery-{name}.png");
            // A view of several maps downloads them all, captioned, on one sheet.
            match (view, sheet.cast::<web_sys::Element>()) {
                (Some(View::Attention | View::Redundancy), Some(figures)) => {
                    download_figures(&figures, &file)
                }
                _ => {
                    if let Some(c) = canvas.cast::<HtmlCanvasElement>() {
                        download_png(&c, &file);
                    }
                }
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
    let offered = |v: View| match v {
        View::Segmentation => can_segment,
        View::Redundancy => can_share,
        View::Heatmap | View::Attention => true,
    };
    let view_switch = result.is_some().then(|| {
        html! {
            <div class="switch" role="group" aria-label="View">
                { for View::ALL.into_iter().filter(|&v| offered(v)).map(|v| {
                    let cb = props.on_edit.clone();
                    html! {
                        <button type="button" aria-pressed={(p.view == v).to_string()}
                            onclick={Callback::from(move |_| cb.emit(Edit::View(v)))}>{ v.title() }</button>
                    }
                }) }
            </div>
        }
    });
    let threshold_text = if p.threshold > 0.0 {
        format!("Background below {:.0} %", p.threshold * 100.0)
    } else {
        "Background below: off".into()
    };
    let toolbar = html! {
        <div class="toolbar">
            { view_switch.unwrap_or_default() }
            { if props.embed && !segmenting { label_choice.clone().unwrap_or_default() } else { html! {} } }
            { if attending && props.blocks > 0 { block_choice(p, props.blocks, &props.on_edit) } else { html! {} } }
            { if segmenting { html! {
                <label class="grow">
                    <span>{ threshold_text }</span>
                    <input type="range" min="0" max="1" step="0.05" value={p.threshold.to_string()} oninput={on_threshold}
                        title="A pixel is background where its best label's probability is below this" />
                </label>
            } } else { html! {
                <label>
                    <span>{ "Colormap" }</span>
                    <select onchange={on_colormap}>
                        { for Colormap::ALL.iter().map(|c| html! {
                            <option value={c.name()} selected={*c == p.colormap}>{ c.name() }</option>
                        }) }
                    </select>
                </label>
            } } }
            <label class="grow">
                <span>{ format!("Opacity {:.0} %", p.opacity * 100.0) }</span>
                <input type="range" min="0" max="1" step="0.05" value={p.opacity.to_string()} oninput={on_opacity} />
            </label>
            { if props.embed { html! {} } else { html! {
                <>
                    { if segmenting || attending || sharing { html! {} } else { html! {
                        <label class="check"><input type="checkbox" checked={*show_points} onchange={on_points} />{ "Points" }</label>
                    } } }
                    <button type="button" onclick={on_download} disabled={result.is_none()}>{ "Download PNG" }</button>
                </>
            } } }
            // Embedded too: a docs page's iframe opens on a file and goes live on demand.
            { for props.on_live.clone().map(|cb| html! {
                <button type="button" class="live" onclick={Callback::from(move |_| cb.emit(()))}
                    title="Download the model and compute this here, then change anything">{ "Run live" }</button>
            }) }
        </div>
    };
    // A result file has only the numbers it was made with until a live run.
    let file = props.on_live.is_some();
    let figures = if attending {
        attention_figures(run, image, p, &canvas, &props.on_edit, file)
    } else if sharing {
        redundancy_figures(run, image, p, &canvas, file)
    } else {
        None
    };
    let main_view = match (&seg, segmenting) {
        (Some(s), true) => html! {
            <SegmentationCanvas picture={image.picture.clone()} segmentation={s.clone()}
                opacity={p.opacity} isolate={isolated} on_hover={on_hover}
                label={format!("{} segmentation of {} into {}", result.map(|r| method_name(r.method)).unwrap_or_default(), image.name, s.labels.join(", "))}
                canvas={Some(canvas.clone())} class="main" />
        },
        _ => html! {
            <Heatmap picture={image.picture.clone()} layer={main_layer} label={main_label}
                canvas={Some(canvas.clone())} class="main" />
        },
    };
    let token_row = result
        .filter(|r| !r.explanation.tokens.is_empty() && !segmenting)
        .map(|r| {
            let e = &r.explanation;
            let top = e.top_tokens(3);
            html! {
                <div class="tokens" role="group" aria-label="Tokens: show a token's map">
                    { for e.tokens.iter().enumerate().map(|(i, t)| {
                        let pressed = chosen_token == Some(i);
                        let state = token.clone();
                        let rank = top.iter().position(|&j| j == i);
                        html! {
                            <button type="button" aria-pressed={pressed.to_string()}
                                class={classes!("token", rank.map(|_| "top"))}
                                title={format!("cosine with the image {:+.4}{}", t.score, rank.map(|k| format!(", top {}", k + 1)).unwrap_or_default())}
                                data-score={t.score.to_string()}
                                onclick={Callback::from(move |_| state.set((!pressed).then_some(i)))}>
                                { t.text.clone() }
                            </button>
                        }
                    }) }
                </div>
            }
        });
    let legend = seg.clone().filter(|_| segmenting).map(|s| {
        let isolate = isolate.clone();
        html! {
            <Legend segmentation={s} isolate={isolated} hover={*hover}
                on_isolate={Callback::from(move |i| isolate.set(i))} />
        }
    });
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
            { figures.map(|f| html! { <div ref={sheet.clone()}>{ f }</div> }).unwrap_or_else(|| html! {
                <div class={classes!("figures", raw_view.is_some().then_some("pair"))}>
                    <figure>
                        { main_view }
                        { for result.filter(|_| raw_view.is_some()).map(|r| html! { <figcaption>{ method_name(r.method) }</figcaption> }) }
                    </figure>
                    { raw_view.unwrap_or_default() }
                </div>
            }) }
            { legend.unwrap_or_default() }
            { token_row.unwrap_or_default() }
            { busy.unwrap_or_default() }
            { if props.embed { html! {} } else { run.map(|r| details(r, image, p, selected, &props.on_select, &props.on_edit)).unwrap_or_default() } }
        </section>
    }
}

/// The attention view's block picker: the last block by default.
fn block_choice(p: &Params, blocks: usize, on_edit: &Callback<Edit>) -> Html {
    let cb = on_edit.clone();
    let onchange = Callback::from(move |e: Event| {
        let value = e.target_unchecked_into::<HtmlSelectElement>().value();
        cb.emit(Edit::Block(value.parse().ok()));
    });
    html! {
        <label>
            <span>{ "Block" }</span>
            <select {onchange}>
                <option value="" selected={p.block.is_none()}>{ format!("last ({})", blocks - 1) }</option>
                { for (0..blocks).map(|b| html! {
                    <option value={b.to_string()} selected={p.block == Some(b)}>{ b.to_string() }</option>
                }) }
            </select>
        </label>
    }
}

/// The attention view (paper Fig. 1): the chosen patch's attention row over the picture, q-k
/// (raw CLIP's) beside v-v (CLIP Surgery's), the patch marked; a click picks another patch.
/// Before a patch is picked: the picture and how to pick one.
fn attention_figures(
    run: Option<&Rc<RunResult>>,
    image: &LoadedImage,
    p: &Params,
    canvas: &NodeRef,
    on_edit: &Callback<Edit>,
    file: bool,
) -> Option<Html> {
    let r = run?;
    let grid = r.explanation.grid;
    let pick = {
        let cb = on_edit.clone();
        Callback::from(move |[x, y]: [f64; 2]| {
            let cell = |f: f64, n: usize| ((f * n as f64) as usize).min(n.saturating_sub(1));
            cb.emit(Edit::AttentionAt([cell(y, grid[0]), cell(x, grid[1])]));
        })
    };
    let Some(rows) = r.explanation.attention.as_ref() else {
        return Some(html! {
            <div class="figures">
                <figure>
                    <Heatmap picture={image.picture.clone()} label={format!("The image {}: click a patch", image.name)}
                        canvas={Some(canvas.clone())} class="main pick" on_click={Some(pick)} />
                    <figcaption>{ if file {
                        "Attention needs the model: Run live, then click a patch"
                    } else {
                        "Click a patch: its attention to every patch, q-k beside v-v"
                    } }</figcaption>
                </figure>
            </div>
        });
    };
    // The query patch's centre, in original-image pixels (where markers live).
    let [row, col] = rows.query;
    let [h, w] = r.original_hw;
    let centre = Points {
        xy: vec![[
            (((col as f64 + 0.5) * w as f64 / grid[1] as f64) as u32).min(w as u32 - 1),
            (((row as f64 + 0.5) * h as f64 / grid[0] as f64) as u32).min(h as u32 - 1),
        ]],
        positive: vec![true],
    };
    let marker = Rc::new(markers(&centre, r.original_hw, &image.picture));
    let figure = |vv: bool, caption: &str, main: bool| {
        let layer = MapLayer {
            run: r.clone(),
            raw: false,
            source: Source::Attention { vv },
            colormap: p.colormap,
            opacity: p.opacity,
            markers: marker.clone(),
        };
        html! {
            <figure>
                <Heatmap picture={image.picture.clone()} layer={Some(layer)}
                    label={format!("{caption} attention of patch {row}, {col} in block {}", rows.block)}
                    canvas={main.then(|| canvas.clone())} class={classes!(main.then_some("main"), "pick")}
                    on_click={Some(pick.clone())} />
                <figcaption>{ caption.to_string() }</figcaption>
            </figure>
        }
    };
    Some(html! {
        <div class="figures pair" data-block={rows.block.to_string()} data-query={format!("{row},{col}")}>
            { figure(false, "q-k (raw CLIP)", true) }
            { figure(true, "v-v (CLIP Surgery)", false) }
        </div>
    })
}

/// Whether a run explained a label set (not a single text): only those have classes whose
/// maps can share anything.
fn label_set(run: &RunResult) -> bool {
    !run.explanation.cls_surgery.is_empty()
}

/// The redundancy view (paper Fig. 2): what a label set's maps share — the cosine with the
/// empty text `""` and the term Eq. 9 subtracts from every label — beside each label's cosine
/// before feature surgery, all from the method's tokens (raw CLIP's are the paper's figure).
/// Before the run that computes them: the picture and what is coming.
fn redundancy_figures(
    run: Option<&Rc<RunResult>>,
    image: &LoadedImage,
    p: &Params,
    canvas: &NodeRef,
    file: bool,
) -> Option<Html> {
    let r = run?;
    let e = &r.explanation;
    if e.redundancy.is_none() {
        let coming = if file {
            "The empty text's map and Eq. 9's shared term need the model: Run live"
        } else {
            "The empty text's map and Eq. 9's shared term come with the next run"
        };
        return Some(html! {
            <div class="figures">
                <figure>
                    <Heatmap picture={image.picture.clone()} label={format!("The image {}", image.name)}
                        canvas={Some(canvas.clone())} class="main" />
                    <figcaption>{ coming }</figcaption>
                </figure>
            </div>
        });
    }
    let tokens = match r.method {
        Method::Surgery => "CLIP Surgery's dense tokens",
        Method::Raw => "raw CLIP's tokens (the paper's Fig. 2)",
    };
    let figure = |source: Source, caption: String, main: bool| {
        let layer = MapLayer {
            run: r.clone(),
            raw: false,
            source,
            colormap: p.colormap,
            opacity: p.opacity,
            markers: Rc::default(),
        };
        html! {
            <figure>
                <Heatmap picture={image.picture.clone()} layer={Some(layer)}
                    label={format!("{caption} over {}", image.name)}
                    canvas={main.then(|| canvas.clone())} class={classes!(main.then_some("main"))} />
                <figcaption>{ caption }</figcaption>
            </figure>
        }
    };
    Some(html! {
        <>
            <p class="muted">{ format!(
                "Cosines with {tokens}, before feature surgery, each map scaled to its own range. \
                 Hot spots shared by every label and by the empty text are what feature surgery removes."
            ) }</p>
            <div class="figures sheet" data-maps={(e.labels.len() + 2).to_string()}>
                { figure(Source::Empty, "\"\" (the empty text)".into(), true) }
                { figure(Source::Shared, "Eq. 9's shared term".into(), false) }
                { for e.labels.iter().enumerate().map(|(i, label)| figure(Source::Cosine(i), label.clone(), false)) }
            </div>
        </>
    })
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
            { match (&r.provenance, r.device) {
                (Some(file), _) => html! {
                    <dl class="timings" aria-label="Result file">
                        <dt>{ "Computed by" }</dt><dd>{ "clip-surgery explain (a result file: no model here)" }</dd>
                        <dt>{ "Model" }</dt><dd data-model={file.model.clone()}>{ format!("{} ({}, {})", file.model, file.architecture, file.quant) }</dd>
                        <dt>{ "Image" }</dt><dd>{ format!("{}, {}×{} px", file.image, r.original_hw[1], r.original_hw[0]) }</dd>
                        <dt>{ "Input" }</dt><dd>{ format!("{}×{} px, grid {}×{}", r.input_hw[1], r.input_hw[0], e.grid[1], e.grid[0]) }</dd>
                    </dl>
                },
                (None, device) => html! {
                    <dl class="timings" aria-label="Timings">
                        <dt>{ "Device" }</dt><dd>{ device.map_or("—", |d| d.label()) }</dd>
                        <dt>{ "Input" }</dt><dd>{ format!("{}×{} px, grid {}×{}", r.input_hw[1], r.input_hw[0], e.grid[1], e.grid[0]) }</dd>
                        { for stages.into_iter().map(|(name, ms)| html! { <><dt>{ name }</dt><dd>{ format!("{ms:.0} ms") }</dd></> }) }
                        <dt>{ "Prompt ensembles" }</dt><dd>{ encoded_texts(r.texts_encoded) }</dd>
                        <dt>{ "Worker memory" }</dt><dd data-memory={r.memory_bytes.to_string()}>{ dom::format_bytes(r.memory_bytes) }</dd>
                    </dl>
                },
            } }
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
