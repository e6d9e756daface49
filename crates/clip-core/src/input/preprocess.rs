//! Image preprocessing as in the official demo: decode, honour EXIF orientation, RGB, resize to
//! exactly H×W with PIL's bicubic filter (no crop: the map must cover the whole picture), then
//! `ToTensor` + `Normalize` with CLIP's mean and std.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{ClipError, Result};

/// Largest accepted width or height. A 10 000 × 10 000 photo would need 400 MB as RGBA in a
/// browser tab before we even resize it; 8192 covers every camera-phone photo.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// CLIP's per-channel mean (RGB), as `torchvision.transforms.Normalize` receives it.
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation (RGB).
// torchvision's literals verbatim; they round to the same f32 values torch uses.
#[allow(clippy::excessive_precision)]
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Decodes png/jpeg/webp/gif (first frame) with size limits, applies the EXIF orientation and
/// converts to 8-bit RGB.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ClipError::Image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ClipError::Image("not a png, jpeg, webp or gif file".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(ClipError::EmptyImage);
    }
    // A broken EXIF block should not cost the user their picture: fall back to "upright".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn image_error(e: image::ImageError) -> ClipError {
    match e {
        image::ImageError::Limits(l) => ClipError::ImageTooLarge(format!(
            "{l}; the limit is {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels"
        )),
        other => ClipError::Image(other.to_string()),
    }
}

/// PIL's bicubic kernel (`a = -0.5`, support 2).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point precision of PIL's 8-bit resampler (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Per output pixel: the first input index and the fixed-point weights (PIL's
/// `precompute_coeffs` + `normalize_coeffs_8bpc`): the filter is stretched by the
/// down-scaling factor, which is what makes PIL's resize antialiased.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    // PIL multiplies by the reciprocal; dividing instead can flip a fixed-point rounding.
    let inv_scale = 1.0 / filter_scale;
    (0..out_size)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let min = ((center - support + 0.5) as isize).max(0) as usize;
            let max = ((center + support + 0.5) as isize).min(in_size as isize) as usize;
            let weights: Vec<f64> = (min..max)
                .map(|i| bicubic((i as f64 - center + 0.5) * inv_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if scaled < 0.0 {
                        scaled - 0.5
                    } else {
                        scaled + 0.5
                    }) as i32
                })
                .collect();
            (min, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One separable pass over interleaved RGB rows: resamples along x when `horizontal`, else y.
fn pass(src: &[u8], [h, w]: [usize; 2], out_len: usize, horizontal: bool) -> Vec<u8> {
    let (out_h, out_w) = if horizontal {
        (h, out_len)
    } else {
        (out_len, w)
    };
    let coeffs = coefficients(if horizontal { w } else { h }, out_len);
    let mut out = vec![0u8; out_h * out_w * 3];
    for y in 0..out_h {
        for x in 0..out_w {
            let (start, weights) = &coeffs[if horizontal { x } else { y }];
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (k, &wt) in weights.iter().enumerate() {
                    let (sy, sx) = if horizontal {
                        (y, start + k)
                    } else {
                        (start + k, x)
                    };
                    acc += i64::from(src[(sy * w + sx) * 3 + c]) * i64::from(wt);
                }
                out[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Resizes to `height × width` exactly as `PIL.Image.resize(size, BICUBIC)` does for RGB:
/// horizontal pass first, 8-bit fixed-point accumulation, rounding between passes. An
/// unchanged axis is not resampled (PIL skips it too), so a same-size "resize" is a copy.
pub fn resize_bicubic(image: &RgbImage, height: usize, width: usize) -> RgbImage {
    let (w0, h0) = (image.width() as usize, image.height() as usize);
    let mut data = image.as_raw().clone();
    let mut cur_w = w0;
    if width != w0 {
        data = pass(&data, [h0, w0], width, true);
        cur_w = width;
    }
    if height != h0 {
        data = pass(&data, [h0, cur_w], height, false);
    }
    RgbImage::from_raw(width as u32, height as u32, data).expect("buffer sized by construction")
}

/// `ToTensor` + `Normalize`: `[3, H, W]` planar floats, `(v/255 − mean)/std` in f32 exactly as
/// torchvision computes it.
pub fn normalize(image: &RgbImage) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    let mut out = vec![0.0; 3 * h * w];
    for c in 0..3 {
        for i in 0..h * w {
            out[c * h * w + i] = (f32::from(raw[i * 3 + c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    out
}

/// A decoded picture ready for the vision tower.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// `[3, H, W]` normalised pixels.
    pub pixels: Vec<f32>,
    /// Model input size `[H, W]`.
    pub input_hw: [usize; 2],
    /// Size of the decoded (oriented) original `[height, width]`: maps and points refer to it.
    pub original_hw: [usize; 2],
}

/// Largest model input side. 2048 px is a 128×128 grid for /16 models (16k tokens, a 1 GB
/// attention matrix per head batch); beyond that no browser or laptop finishes.
pub const MAX_INPUT_SIDE: usize = 2048;

/// Decode + resize + normalise.
pub fn preprocess(bytes: &[u8], input_hw: [usize; 2]) -> Result<(RgbImage, Preprocessed)> {
    check_input_size(input_hw)?;
    let image = decode_image(bytes)?;
    let pre = preprocess_image(&image, input_hw)?;
    Ok((image, pre))
}

fn check_input_size([height, width]: [usize; 2]) -> Result<()> {
    if height == 0 || width == 0 || height > MAX_INPUT_SIDE || width > MAX_INPUT_SIDE {
        return Err(ClipError::BadInputSize {
            height,
            width,
            patch: 0,
            max: MAX_INPUT_SIDE,
        });
    }
    Ok(())
}

/// Resize + normalise an already decoded image.
pub fn preprocess_image(image: &RgbImage, input_hw: [usize; 2]) -> Result<Preprocessed> {
    check_input_size(input_hw)?;
    let resized = resize_bicubic(image, input_hw[0], input_hw[1]);
    Ok(Preprocessed {
        pixels: normalize(&resized),
        input_hw,
        original_hw: [image.height() as usize, image.width() as usize],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_weights_sum_to_one_in_fixed_point() {
        for (n_in, n_out) in [(512, 224), (224, 512), (7, 3), (3, 1), (600, 224)] {
            for (_, w) in coefficients(n_in, n_out) {
                let sum: i64 = w.iter().map(|&v| i64::from(v)).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= w.len() as i64,
                    "{n_in}->{n_out}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant_and_same_size_is_a_copy() {
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 250]));
        let r = resize_bicubic(&flat, 64, 50);
        assert!(r.pixels().all(|p| p.0 == [10, 128, 250]));
        let mut noisy = RgbImage::new(5, 4);
        noisy
            .pixels_mut()
            .enumerate()
            .for_each(|(i, p)| p.0 = [(i * 37 % 256) as u8; 3]);
        assert_eq!(resize_bicubic(&noisy, 4, 5), noisy);
    }

    #[test]
    fn normalize_is_torchvision_arithmetic() {
        let px = RgbImage::from_pixel(1, 1, image::Rgb([0, 255, 128]));
        let n = normalize(&px);
        assert_eq!(n[0], (0.0 / 255.0 - MEAN[0]) / STD[0]);
        assert_eq!(n[1], (1.0 - MEAN[1]) / STD[1]);
        assert_eq!(n[2], (128.0f32 / 255.0 - MEAN[2]) / STD[2]);
    }

    #[test]
    fn garbage_and_empty_are_errors() {
        assert!(matches!(
            decode_image(b"definitely not an image"),
            Err(ClipError::Image(_))
        ));
        assert!(matches!(decode_image(&[]), Err(ClipError::Image(_))));
        // A PNG signature with a truncated body.
        assert!(matches!(
            decode_image(b"\x89PNG\r\n\x1a\n\0\0"),
            Err(ClipError::Image(_))
        ));
    }
}
