//! A canvas showing the picture with one label's map over it (or the plain picture).

use std::f64::consts::TAU;
use std::rc::Rc;

use clip_core::output::colormap::Colormap;
use clip_core::output::explanation::Explanation;
use clip_core::output::maps::similarity_map;
use clip_protocol::RunResult;
use wasm_bindgen::Clamped;
use web_sys::{HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::render::{Marker, Picture, overlay};
use crate::ui::dom;

/// A map over a picture.
#[derive(Debug, Clone)]
pub struct MapLayer {
    /// The run the map comes from (shared, not copied, by every canvas drawing it).
    pub run: Rc<RunResult>,
    /// Its raw-CLIP comparison rather than its main explanation.
    pub raw: bool,
    /// Which of the explanation's maps.
    pub source: Source,
    /// Colours.
    pub colormap: Colormap,
    /// Heat weight.
    pub opacity: f32,
    /// Text2Points markers, in picture pixels.
    pub markers: Rc<Vec<Marker>>,
}

/// Which of an explanation's per-patch maps a layer draws; each is min-maxed and resized by
/// the rule of [`Explanation::map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A label's map (the heatmap).
    Label(usize),
    /// A label's cosine before feature surgery (the redundancy view).
    Cosine(usize),
    /// A token's map (the multimodal view of a single text).
    Token(usize),
    /// An attention row: q-k, or v-v when `vv` (the attention view).
    Attention {
        /// The v-v row.
        vv: bool,
    },
    /// The cosine with the empty text's ensemble (the redundancy view).
    Empty,
    /// The term Eq. 9 subtracts from every label (the redundancy view).
    Shared,
}

impl Source {
    /// The map at `hw`; `None` where `e` does not have it (or its size does not fit the grid).
    pub fn map(self, e: &Explanation, hw: [usize; 2]) -> Option<Vec<f32>> {
        let [gh, gw] = e.grid;
        let patches: Vec<f32> = match self {
            Self::Label(i) if i < e.labels.len() && e.similarity.len() == gh * gw => {
                return Some(e.map(i, hw));
            }
            Self::Label(_) => return None,
            Self::Cosine(i) => e.logit_column(i)?,
            Self::Token(t) => e.tokens.get(t)?.similarity.clone(),
            Self::Attention { vv } => {
                let rows = e.attention.as_ref()?;
                let row = if vv { &rows.vv } else { &rows.qk };
                row.get(1..)?.to_vec()
            }
            Self::Empty => e.redundancy.as_ref()?.empty.clone(),
            Self::Shared => e.redundancy.as_ref()?.term.clone(),
        };
        (patches.len() == gh * gw).then(|| similarity_map(&patches, e.grid, hw))
    }
}

/// Equal when it draws the same: the same explanation (by identity: comparing its numbers on
/// every render would cost more than drawing), map and look.
impl PartialEq for MapLayer {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.run, &other.run)
            && self.raw == other.raw
            && self.source == other.source
            && self.colormap == other.colormap
            && self.opacity == other.opacity
            && self.markers == other.markers
    }
}

impl MapLayer {
    /// The explanation drawn.
    pub fn explanation(&self) -> Option<&Explanation> {
        if self.raw {
            self.run.raw.as_ref()
        } else {
            Some(&self.run.explanation)
        }
    }
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
    /// A click on the picture, at `[x, y]` as fractions of its width and height.
    #[prop_or_default]
    pub on_click: Option<Callback<[f64; 2]>>,
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
    let onclick = props.on_click.clone().map(|cb| {
        let node = node.clone();
        Callback::from(move |e: MouseEvent| {
            if let Some(canvas) = node.cast::<HtmlCanvasElement>() {
                let rect = canvas.get_bounding_client_rect();
                let fraction = |offset: i32, size: f64| {
                    (f64::from(offset) / size.max(1.0)).clamp(0.0, 0.999_999)
                };
                cb.emit([
                    fraction(e.offset_x(), rect.width()),
                    fraction(e.offset_y(), rect.height()),
                ]);
            }
        })
    });
    html! {
        <canvas ref={node} class={props.class.clone()} role="img" aria-label={props.label.clone()} {onclick} />
    }
}

fn draw(canvas: &HtmlCanvasElement, picture: &Picture, layer: Option<&MapLayer>) {
    canvas.set_width(picture.width);
    canvas.set_height(picture.height);
    let Some(ctx) = dom::context_2d(canvas) else {
        return;
    };
    let hw = [picture.height as usize, picture.width as usize];
    let drawn = layer.and_then(|l| Some((l, l.source.map(l.explanation()?, hw)?)));
    let pixels = match &drawn {
        Some((l, map)) => overlay(picture, map, &l.colormap.lut(), l.opacity),
        None => picture.rgba.clone(),
    };
    if let Ok(data) =
        ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), picture.width, picture.height)
    {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
    let Some((layer, _)) = drawn else { return };
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
