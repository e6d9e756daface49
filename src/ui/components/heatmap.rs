//! A canvas showing the picture with one label's map over it (or the plain picture).

use std::f64::consts::TAU;
use std::rc::Rc;

use clip_core::colormap::Colormap;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::render::{Marker, Picture, overlay};

/// A map over a picture.
#[derive(Debug, Clone, PartialEq)]
pub struct MapLayer {
    /// Patch similarities of one label (row-major over `grid`).
    pub patches: Rc<Vec<f32>>,
    /// Patch grid `[gh, gw]`.
    pub grid: [usize; 2],
    /// Colours.
    pub colormap: Colormap,
    /// Heat weight.
    pub opacity: f32,
    /// Text2Points markers, in picture pixels.
    pub markers: Rc<Vec<Marker>>,
}

/// Props of [`Heatmap`].
#[derive(Properties, PartialEq)]
pub struct HeatmapProps {
    /// The picture.
    pub picture: Rc<Picture>,
    /// The map, if any.
    #[prop_or_default]
    pub layer: Option<MapLayer>,
    /// What the canvas shows, for screen readers.
    pub label: AttrValue,
    /// The canvas, for callers that read it (download).
    #[prop_or_default]
    pub canvas: Option<NodeRef>,
    /// CSS class.
    #[prop_or_default]
    pub class: Classes,
}

/// Draws [`HeatmapProps::picture`] with its layer; redraws only when they change.
#[function_component(Heatmap)]
pub fn heatmap(props: &HeatmapProps) -> Html {
    let own = use_node_ref();
    let node = props.canvas.clone().unwrap_or(own);
    {
        let node = node.clone();
        use_effect_with(
            (props.picture.clone(), props.layer.clone()),
            move |(picture, layer)| {
                if let Some(canvas) = node.cast::<HtmlCanvasElement>() {
                    draw(&canvas, picture, layer.as_ref());
                }
            },
        );
    }
    html! {
        <canvas ref={node} class={props.class.clone()} role="img" aria-label={props.label.clone()} />
    }
}

fn draw(canvas: &HtmlCanvasElement, picture: &Picture, layer: Option<&MapLayer>) {
    canvas.set_width(picture.width);
    canvas.set_height(picture.height);
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let usable =
        layer.filter(|l| l.patches.len() == l.grid[0] * l.grid[1] && !l.patches.is_empty());
    let pixels = match usable {
        Some(l) => overlay(picture, &l.patches, l.grid, &l.colormap.lut(), l.opacity),
        None => picture.rgba.clone(),
    };
    if let Ok(data) =
        ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), picture.width, picture.height)
    {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
    let Some(layer) = usable else { return };
    let radius = (f64::from(picture.width.max(picture.height)) / 90.0).clamp(3.0, 12.0);
    ctx.set_line_width(radius / 3.0);
    ctx.set_stroke_style_str("#fff");
    for m in layer.markers.iter() {
        ctx.begin_path();
        let _ = ctx.arc(m.x, m.y, radius, 0.0, TAU);
        ctx.set_fill_style_str(if m.positive { "#16a34a" } else { "#dc2626" });
        ctx.fill();
        ctx.stroke();
    }
}
