//! The current image: decoded once (EXIF orientation applied) and kept at full size for every
//! explanation; the page gets a preview, moved back as raw RGBA.

use std::rc::Rc;

use clip_core::input::preprocess::decode_image;
use clip_protocol::{PREVIEW_MAX_SIDE, Response};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsValue;

use crate::error::WorkerError;
use crate::post;
use crate::session::session;

/// Decodes the image bytes in `payload` and makes it the current image.
pub fn set_image(id: u64, payload: &JsValue) -> Result<(), WorkerError> {
    let bytes = Uint8Array::new(payload).to_vec();
    let image = decode_image(&bytes)?;
    let (w, h) = image.dimensions();
    let preview = if w.max(h) > PREVIEW_MAX_SIDE {
        let scale = PREVIEW_MAX_SIDE as f32 / w.max(h) as f32;
        let (pw, ph) = (
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
        );
        image::imageops::thumbnail(&image, pw, ph)
    } else {
        image.clone()
    };
    let rgba: Vec<u8> = preview
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    session(|s| s.image = Some((id, Rc::new(image))));
    let pixels = Uint8Array::from(&rgba[..]).buffer();
    post(
        &Response::Image {
            id,
            width: preview.width(),
            height: preview.height(),
            original_hw: [h as usize, w as usize],
        },
        Some((&pixels, &Array::of1(&pixels))),
    );
    Ok(())
}
