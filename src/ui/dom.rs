//! The page's few dealings with the browser outside Yew: the address bar, the automation
//! API (`window.clipSurgery`), fetching bytes, downloads.

use js_sys::{ArrayBuffer, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CanvasRenderingContext2d, CustomEvent, CustomEventInit, Element, HtmlCanvasElement, Window,
};

use clip_core::input::query::Method;
use clip_core::output::document::Provenance;
use clip_core::output::explanation::Explanation;
use clip_core::output::segmentation::Segmentation;
use clip_protocol::{DeviceKind, RunResult, Timings, js_message};

use crate::params::{KEYS, Params};
use crate::render::Picture;

fn window() -> Option<Window> {
    web_sys::window()
}

/// Parameters from the address bar.
pub fn read_params() -> (Params, Vec<String>) {
    let search = window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let Ok(query) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return (Params::default(), Vec::new());
    };
    Params::from_pairs(KEYS.iter().filter_map(|&k| query.get(k).map(|v| (k, v))))
}

/// Writes the parameters into the address bar (no navigation, no history entry), so the
/// address is always a share link.
pub fn write_params(params: &Params) {
    let Some(window) = window() else { return };
    let query: Vec<String> = params
        .to_pairs()
        .into_iter()
        .map(|(k, v)| {
            // `,` `/` `:` are legal in a query and keep labels and URLs readable.
            let v = String::from(js_sys::encode_uri_component(&v))
                .replace("%2C", ",")
                .replace("%2F", "/")
                .replace("%3A", ":");
            format!("{k}={v}")
        })
        .collect();
    let path = window.location().pathname().unwrap_or_default();
    let url = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// `window.clipSurgery.last`: the CLI's `--json` plus where and how fast it ran.
#[derive(Serialize)]
struct Last<'a> {
    #[serde(flatten)]
    explanation: &'a Explanation,
    method: Method,
    input_hw: [usize; 2],
    device: Option<DeviceKind>,
    timings_ms: &'a Timings,
    texts_encoded: usize,
    memory_bytes: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
}

fn api() -> Option<JsValue> {
    let window = window()?;
    let existing = Reflect::get(&window, &"clipSurgery".into()).ok()?;
    if existing.is_object() {
        return Some(existing);
    }
    let api: JsValue = js_sys::Object::new().into();
    Reflect::set(&window, &"clipSurgery".into(), &api).ok()?;
    Some(api)
}

fn announce(key: &str, event: &str, value: &JsValue) {
    let (Some(window), Some(api)) = (window(), api()) else {
        return;
    };
    let _ = Reflect::set(&api, &key.into(), value);
    let init = CustomEventInit::new();
    init.set_detail(value);
    if let Ok(event) = CustomEvent::new_with_event_init_dict(event, &init) {
        let _ = window.dispatch_event(&event);
    }
}

/// Publishes a result for automation: sets `window.clipSurgery.last`, dispatches
/// `clipsurgery:result`.
pub fn publish_result(run: &RunResult) {
    let last = Last {
        explanation: &run.explanation,
        method: run.method,
        input_hw: run.input_hw,
        device: run.device,
        timings_ms: &run.timings_ms,
        texts_encoded: run.texts_encoded,
        memory_bytes: run.memory_bytes,
        provenance: run.provenance.as_ref(),
    };
    let Ok(json) = serde_json::to_string(&last) else {
        return;
    };
    if let Ok(value) = js_sys::JSON::parse(&json) {
        announce("last", "clipsurgery:result", &value);
    }
}

/// Publishes the segmentation shown: sets `window.clipSurgery.segmentation` (the CLI's
/// `segment --json`, at the picture's size), dispatches `clipsurgery:segmentation`.
pub fn publish_segmentation(segmentation: &Segmentation) {
    let Ok(json) = serde_json::to_string(segmentation) else {
        return;
    };
    if let Ok(value) = js_sys::JSON::parse(&json) {
        announce("segmentation", "clipsurgery:segmentation", &value);
    }
}

/// Publishes a failure: sets `window.clipSurgery.lastError`, dispatches `clipsurgery:error`.
pub fn publish_error(message: &str) {
    announce(
        "lastError",
        "clipsurgery:error",
        &JsValue::from_str(message),
    );
}

/// Whether the browser says it has a network (`navigator.onLine`; true where unknown).
pub fn online() -> bool {
    window().is_none_or(|w| w.navigator().on_line())
}

/// The content of the page's `<meta name="{name}">`, if it has one.
pub fn meta(name: &str) -> Option<String> {
    window()?
        .document()?
        .query_selector(&format!("meta[name=\"{name}\"]"))
        .ok()??
        .get_attribute("content")
}

/// `url` resolved against the page's address.
pub fn absolute(url: &str) -> String {
    window()
        .and_then(|w| w.location().href().ok())
        .and_then(|base| web_sys::Url::new_with_base(url, &base).ok())
        .map(|u| u.href())
        .unwrap_or_else(|| url.to_string())
}

/// Fetches `url` (an image the user named) as bytes.
pub async fn fetch_bytes(url: &str) -> Result<ArrayBuffer, String> {
    let window = window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| {
            format!(
                "could not fetch {url} ({}); the server must allow cross-origin requests (CORS)",
                js_message(&e)
            )
        })?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("{url} answered HTTP {}", response.status()));
    }
    let buffer = response.array_buffer().map_err(|e| js_message(&e))?;
    Ok(JsFuture::from(buffer)
        .await
        .map_err(|e| js_message(&e))?
        .unchecked_into())
}

/// Decodes image bytes with the browser (EXIF orientation applied, as the worker's decoder
/// does) into a preview whose longer side is at most `max_side`, opaque like the worker's, and
/// the image's `[height, width]`: how the page shows a result file without a worker.
pub async fn decode_picture(
    bytes: &ArrayBuffer,
    max_side: u32,
) -> Result<(Picture, [usize; 2]), String> {
    let window = window().ok_or("no window")?;
    let blob = web_sys::Blob::new_with_buffer_source_sequence(&js_sys::Array::of1(bytes))
        .map_err(|e| js_message(&e))?;
    let decoding = window
        .create_image_bitmap_with_blob(&blob)
        .map_err(|e| js_message(&e))?;
    let bitmap: web_sys::ImageBitmap = JsFuture::from(decoding)
        .await
        .map_err(|_| "the browser cannot decode this image".to_string())?
        .unchecked_into();
    let (w, h) = (bitmap.width(), bitmap.height());
    let scale = (f64::from(max_side) / f64::from(w.max(h).max(1))).min(1.0);
    let side = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    let (pw, ph) = (side(w), side(h));
    let canvas: HtmlCanvasElement = window
        .document()
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into().ok())
        .ok_or("no canvas")?;
    canvas.set_width(pw);
    canvas.set_height(ph);
    let ctx = context_2d(&canvas).ok_or("no 2D canvas")?;
    ctx.draw_image_with_image_bitmap_and_dw_and_dh(&bitmap, 0.0, 0.0, f64::from(pw), f64::from(ph))
        .map_err(|e| js_message(&e))?;
    bitmap.close();
    let mut rgba = ctx
        .get_image_data(0.0, 0.0, f64::from(pw), f64::from(ph))
        .map_err(|e| js_message(&e))?
        .data()
        .0;
    rgba.chunks_exact_mut(4).for_each(|p| p[3] = 255);
    let picture = Picture::new(pw, ph, rgba).ok_or("the decoded image is damaged")?;
    Ok((picture, [h as usize, w as usize]))
}

/// A blob's (file's) bytes.
pub async fn blob_bytes(blob: &web_sys::Blob) -> Result<ArrayBuffer, String> {
    Ok(JsFuture::from(blob.array_buffer())
        .await
        .map_err(|e| format!("cannot read the file: {}", js_message(&e)))?
        .unchecked_into())
}

/// A canvas's 2D context.
pub fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Saves a canvas as a PNG download.
pub fn download_png(canvas: &HtmlCanvasElement, file_name: &str) {
    let (Some(window), Ok(url)) = (window(), canvas.to_data_url_with_type("image/png")) else {
        return;
    };
    let Some(document) = window.document() else {
        return;
    };
    if let Ok(anchor) = document.create_element("a") {
        let anchor: web_sys::HtmlAnchorElement = anchor.unchecked_into();
        anchor.set_href(&url);
        anchor.set_download(file_name);
        anchor.click();
    }
}

/// Draws the canvas of each `<figure>` in `figures` with its caption below it on one sheet
/// (at most four a row, each at the first canvas's size) and downloads it as a PNG: the views
/// made of several maps are saved whole.
pub fn download_figures(figures: &Element, file_name: &str) {
    let Some(document) = window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(list) = figures.query_selector_all("figure") else {
        return;
    };
    let tiles: Vec<(HtmlCanvasElement, String)> = (0..list.length())
        .filter_map(|i| {
            let figure: Element = list.item(i)?.dyn_into().ok()?;
            let canvas = figure.query_selector("canvas").ok()??.dyn_into().ok()?;
            let caption = figure
                .query_selector("figcaption")
                .ok()
                .flatten()
                .and_then(|c| c.text_content())
                .unwrap_or_default();
            Some((canvas, caption))
        })
        .collect();
    let Some((first, _)) = tiles.first() else {
        return;
    };
    let (w, h) = (f64::from(first.width()), f64::from(first.height()));
    let cols = tiles.len().min(4);
    let rows = tiles.len().div_ceil(cols);
    let gap = (w / 40.0).round().max(4.0);
    let font = (w / 18.0).round().clamp(12.0, 32.0);
    let tile_h = h + (font * 1.6).round();
    let Some(sheet) = document
        .create_element("canvas")
        .ok()
        .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok())
    else {
        return;
    };
    sheet.set_width((gap + cols as f64 * (w + gap)) as u32);
    sheet.set_height((gap + rows as f64 * (tile_h + gap)) as u32);
    let Some(ctx) = context_2d(&sheet) else {
        return;
    };
    ctx.set_fill_style_str("#fff");
    ctx.fill_rect(
        0.0,
        0.0,
        f64::from(sheet.width()),
        f64::from(sheet.height()),
    );
    ctx.set_font(&format!("{font}px sans-serif"));
    ctx.set_text_align("center");
    for (i, (canvas, caption)) in tiles.iter().enumerate() {
        let x = gap + (i % cols) as f64 * (w + gap);
        let y = gap + (i / cols) as f64 * (tile_h + gap);
        let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(canvas, x, y, w, h);
        ctx.set_fill_style_str("#111");
        let _ = ctx.fill_text_with_max_width(caption, x + w / 2.0, y + h + font * 1.2, w);
    }
    download_png(&sheet, file_name);
}

/// "12.3 MB".
pub fn format_bytes(bytes: f64) -> String {
    match bytes {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.0} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}
