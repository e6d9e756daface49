//! The segmentation view: a canvas with each label's pixels in its colour over the picture,
//! reporting the label under the pointer, and the legend (colour, label, area) whose entries
//! isolate a label.

use std::rc::Rc;

use clip_core::output::segmentation::{BACKGROUND, Segmentation};
use clip_protocol::RunResult;
use wasm_bindgen::Clamped;
use web_sys::{HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::render::{Picture, overlay_segmentation, segment_colour};
use crate::ui::dom;

/// Props of [`SegmentationCanvas`].
#[derive(Properties, PartialEq)]
pub struct SegmentationCanvasProps {
    /// The picture.
    pub picture: Rc<Picture>,
    /// Its segmentation, at the picture's size.
    pub segmentation: Rc<Segmentation>,
    /// Colour weight.
    pub opacity: f32,
    /// Only this label coloured.
    #[prop_or_default]
    pub isolate: Option<usize>,
    /// What the canvas shows, for screen readers.
    pub label: AttrValue,
    /// The canvas, for callers that read it (download).
    #[prop_or_default]
    pub canvas: Option<NodeRef>,
    /// CSS class.
    #[prop_or_default]
    pub class: Classes,
    /// The mask value under the pointer (`None`: the pointer left).
    #[prop_or_default]
    pub on_hover: Callback<Option<u8>>,
}

/// Draws the segmentation over the picture; redraws only when they or the look change.
#[function_component(SegmentationCanvas)]
pub fn segmentation_canvas(props: &SegmentationCanvasProps) -> Html {
    let own = use_node_ref();
    let node = props.canvas.clone().unwrap_or(own);
    {
        let node = node.clone();
        let look = (props.opacity.to_bits(), props.isolate);
        use_effect_with(
            (props.picture.clone(), props.segmentation.clone(), look),
            move |(picture, segmentation, (opacity, isolate))| {
                if let Some(canvas) = node.cast::<HtmlCanvasElement>() {
                    draw(
                        &canvas,
                        picture,
                        segmentation,
                        f32::from_bits(*opacity),
                        *isolate,
                    );
                }
            },
        );
    }
    let on_move = {
        let (node, seg, hover) = (
            node.clone(),
            props.segmentation.clone(),
            props.on_hover.clone(),
        );
        Callback::from(move |e: MouseEvent| {
            let Some(canvas) = node.cast::<HtmlCanvasElement>() else {
                return;
            };
            let rect = canvas.get_bounding_client_rect();
            let [h, w] = seg.hw;
            // CSS pixels to mask pixels (the canvas may be drawn scaled).
            let x = (f64::from(e.offset_x()) * w as f64 / rect.width().max(1.0)) as usize;
            let y = (f64::from(e.offset_y()) * h as f64 / rect.height().max(1.0)) as usize;
            hover.emit(
                seg.mask
                    .get(y.min(h.saturating_sub(1)) * w + x.min(w.saturating_sub(1)))
                    .copied(),
            );
        })
    };
    let on_leave = {
        let hover = props.on_hover.clone();
        Callback::from(move |_: MouseEvent| hover.emit(None))
    };
    html! {
        <canvas ref={node} class={props.class.clone()} role="img" aria-label={props.label.clone()}
            onmousemove={on_move} onmouseleave={on_leave} />
    }
}

fn draw(
    canvas: &HtmlCanvasElement,
    picture: &Picture,
    segmentation: &Segmentation,
    opacity: f32,
    isolate: Option<usize>,
) {
    canvas.set_width(picture.width);
    canvas.set_height(picture.height);
    let Some(ctx) = dom::context_2d(canvas) else {
        return;
    };
    let fits = segmentation.hw == [picture.height as usize, picture.width as usize];
    let pixels = if fits {
        overlay_segmentation(picture, &segmentation.mask, opacity, isolate)
    } else {
        picture.rgba.clone()
    };
    if let Ok(data) =
        ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), picture.width, picture.height)
    {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
}

/// Props of [`Legend`].
#[derive(Properties, PartialEq)]
pub struct LegendProps {
    /// The segmentation described.
    pub segmentation: Rc<Segmentation>,
    /// The isolated label.
    pub isolate: Option<usize>,
    /// A click on an entry: isolate it, or show all again when it is isolated already.
    pub on_isolate: Callback<Option<usize>>,
    /// The mask value under the pointer.
    pub hover: Option<u8>,
}

/// The legend: colour, label and area per label (largest first), each a toggle that isolates
/// its label; and the label under the pointer.
#[function_component(Legend)]
pub fn legend(props: &LegendProps) -> Html {
    let s = &props.segmentation;
    let mut order: Vec<usize> = (0..s.labels.len()).collect();
    order.sort_by(|&a, &b| s.area[b].total_cmp(&s.area[a]));
    let background: f32 = 1.0 - s.area.iter().sum::<f32>();
    let under = props.hover.map(|v| match s.labels.get(usize::from(v)) {
        Some(label) => label.clone(),
        None if v == BACKGROUND => "background".into(),
        None => String::new(),
    });
    html! {
        <div class="legend">
            <p class="pointer muted">
                { "Under the pointer: " }
                <strong data-label={under.clone().unwrap_or_default()}>{ under.unwrap_or_else(|| "—".into()) }</strong>
            </p>
            <ul aria-label="Segmentation legend">
                { for order.into_iter().map(|i| {
                    let isolated = props.isolate == Some(i);
                    let cb = props.on_isolate.clone();
                    let next = (!isolated).then_some(i);
                    html! {
                        <li>
                            <button type="button" aria-pressed={isolated.to_string()}
                                class={classes!("entry", props.isolate.is_some_and(|j| j != i).then_some("dimmed"))}
                                title={if isolated { "Show every label" } else { "Show this label alone" }}
                                onclick={Callback::from(move |_| cb.emit(next))}>
                                <svg class="swatch" viewBox="0 0 1 1" aria-hidden="true">
                                    <rect width="1" height="1" fill={segment_colour(i)} />
                                </svg>
                                <span class="name">{ s.labels[i].clone() }</span>
                                <span class="area" data-area={s.area[i].to_string()}>{ format!("{:.1} %", s.area[i] * 100.0) }</span>
                            </button>
                        </li>
                    }
                }) }
                { if background > 0.0005 { html! {
                    <li>
                        <span class="entry background">
                            <svg class="swatch" viewBox="0 0 1 1" aria-hidden="true">
                                <rect width="1" height="1" fill="none" stroke="currentColor" stroke-width="0.2" />
                            </svg>
                            <span class="name">{ "background" }</span>
                            <span class="area">{ format!("{:.1} %", background * 100.0) }</span>
                        </span>
                    </li>
                } } else { html! {} } }
            </ul>
        </div>
    }
}

/// The segmentation of `run`'s explanation (its raw-CLIP comparison when `raw`) at the
/// picture's size, computed on the page from the result's logits — recomputed only when the
/// run (by identity), the picture, the threshold or `on` change. `None` when off or when the
/// result cannot be segmented (a single text).
#[hook]
pub fn use_segmentation(
    run: Option<Rc<RunResult>>,
    raw: bool,
    picture: Option<Rc<Picture>>,
    threshold: f32,
    on: bool,
) -> Option<Rc<Segmentation>> {
    let key = (
        run.as_ref().map(|r| Rc::as_ptr(r) as usize),
        picture.as_ref().map(|p| Rc::as_ptr(p) as usize),
        raw,
        threshold.to_bits(),
        on,
    );
    let memo = use_memo(key, move |_| {
        let (run, picture) = (run?, picture?);
        let e = if raw {
            run.raw.as_ref()?
        } else {
            &run.explanation
        };
        let hw = [picture.height as usize, picture.width as usize];
        let floor = (threshold > 0.0).then_some(threshold);
        on.then(|| e.segment(floor, hw).ok().map(Rc::new)).flatten()
    });
    (*memo).clone()
}

/// Whether `run`'s result can be shown segmented: a label set with its logits.
pub fn segmentable(run: &RunResult) -> bool {
    let e = &run.explanation;
    e.labels.len() >= 2 && !e.combined && !e.logits.is_empty()
}
