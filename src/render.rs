//! The pixels the canvases show, as pure functions (tested natively): the preview image with a
//! label's similarity map or the segmentation blended over it, thumbnails, and point markers in
//! preview pixels.

use clip_core::output::colormap::{blend, colorize};
use clip_core::output::points::Points;
use clip_core::output::segmentation::{BACKGROUND, mask_palette};
use image::RgbaImage;

/// An RGBA picture (the preview the worker sends, or a thumbnail of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 4` bytes, row-major.
    pub rgba: Vec<u8>,
}

impl Picture {
    /// Wraps RGBA bytes; `None` when the length does not match the size.
    pub fn new(width: u32, height: u32, rgba: Vec<u8>) -> Option<Self> {
        (rgba.len() == width as usize * height as usize * 4).then_some(Self {
            width,
            height,
            rgba,
        })
    }

    /// A copy at most `max_side` pixels on its longer side (area-averaged).
    pub fn thumbnail(&self, max_side: u32) -> Self {
        let scale = max_side as f32 / self.width.max(self.height).max(1) as f32;
        if scale >= 1.0 {
            return self.clone();
        }
        let w = ((self.width as f32 * scale).round() as u32).max(1);
        let h = ((self.height as f32 * scale).round() as u32).max(1);
        let Some(image) = RgbaImage::from_raw(self.width, self.height, self.rgba.clone()) else {
            return self.clone();
        };
        let small = image::imageops::thumbnail(&image, w, h);
        Self {
            width: w,
            height: h,
            rgba: small.into_raw(),
        }
    }
}

/// The picture with one label's map over it, as the paper draws it: `map` (values in [0, 1],
/// the picture's size — from `Explanation::map`, the rule the CLI's overlays use too) is
/// coloured with `lut` and blended with weight `opacity` (0 = the plain picture, 1 = the heatmap
/// alone). Alpha stays opaque.
pub fn overlay(picture: &Picture, map: &[f32], lut: &[[u8; 3]], opacity: f32) -> Vec<u8> {
    let heat = colorize(map, lut);
    let mut out = picture.rgba.clone();
    for (pixel, color) in out.chunks_exact_mut(4).zip(heat) {
        for (channel, heat) in pixel.iter_mut().zip(color) {
            *channel = blend(*channel, heat, opacity);
        }
        pixel[3] = 255;
    }
    out
}

/// The picture with each labelled pixel of `mask` (the picture's size, one label index a pixel)
/// blended towards its label's colour with weight `alpha` — the colours of the CLI's overlays
/// and mask PNGs. Background pixels keep the picture, and so do all but `isolate`'s when one
/// label is isolated.
pub fn overlay_segmentation(
    picture: &Picture,
    mask: &[u8],
    alpha: f32,
    isolate: Option<usize>,
) -> Vec<u8> {
    let palette = mask_palette();
    let mut out = picture.rgba.clone();
    for (pixel, &label) in out.chunks_exact_mut(4).zip(mask) {
        pixel[3] = 255;
        let shown = label != BACKGROUND && isolate.is_none_or(|i| i == usize::from(label));
        if shown {
            for (channel, c) in pixel.iter_mut().zip(palette[usize::from(label)]) {
                *channel = blend(*channel, c, alpha);
            }
        }
    }
    out
}

/// The colour of label `i` in segmentations, as CSS.
pub fn segment_colour(i: usize) -> String {
    let [r, g, b] = mask_palette()[i.min(255)];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A point marker in picture pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    /// Horizontal position (pixel centre).
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Object (true) or background (false).
    pub positive: bool,
}

/// Text2Points markers (in original-image pixels) moved onto a picture of another size.
pub fn markers(points: &Points, original_hw: [usize; 2], picture: &Picture) -> Vec<Marker> {
    let sx = f64::from(picture.width) / original_hw[1].max(1) as f64;
    let sy = f64::from(picture.height) / original_hw[0].max(1) as f64;
    points
        .xy
        .iter()
        .zip(&points.positive)
        .map(|(&[x, y], &positive)| Marker {
            x: (f64::from(x) + 0.5) * sx,
            y: (f64::from(y) + 0.5) * sy,
            positive,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clip_core::output::colormap::Colormap;
    use clip_core::output::maps::similarity_map;

    /// The min-maxed map of `patches` at the picture's size.
    fn map(picture: &Picture, patches: &[f32], grid: [usize; 2]) -> Vec<f32> {
        let hw = [picture.height as usize, picture.width as usize];
        similarity_map(patches, grid, hw)
    }

    fn grey(width: u32, height: u32, level: u8) -> Picture {
        let rgba = (0..width * height)
            .flat_map(|_| [level, level, level, 7])
            .collect();
        Picture::new(width, height, rgba).unwrap()
    }

    #[test]
    fn opacity_zero_is_the_picture_and_one_is_the_heatmap() {
        let picture = grey(8, 6, 100);
        let lut = Colormap::Jet.lut();
        // Hot left column of a 2×2 grid, cold right column.
        let patches = [1.0, 0.0, 1.0, 0.0];
        let plain = overlay(&picture, &map(&picture, &patches, [2, 2]), &lut, 0.0);
        assert!(plain.chunks(4).all(|p| p == [100, 100, 100, 255]));
        let heat = overlay(&picture, &map(&picture, &patches, [2, 2]), &lut, 1.0);
        // Corner pixels sit at the grid extremes (half-pixel centres clamp to the edge cells).
        assert_eq!(&heat[..3], &lut[255]);
        let right = (8 - 1) * 4;
        assert_eq!(&heat[right..right + 3], &lut[0]);
        let half = overlay(&picture, &map(&picture, &patches, [2, 2]), &lut, 0.5);
        for c in 0..3 {
            assert_eq!(half[c], blend(100, lut[255][c], 0.5));
        }
    }

    #[test]
    fn a_constant_map_is_uniformly_cold() {
        let picture = grey(4, 4, 50);
        let lut = Colormap::Viridis.lut();
        let out = overlay(&picture, &map(&picture, &[0.3; 4], [2, 2]), &lut, 1.0);
        assert!(out.chunks(4).all(|p| p[..3] == lut[0]));
    }

    #[test]
    fn segments_are_coloured_background_and_isolation_keep_the_picture() {
        let picture = grey(3, 1, 100);
        let mask = [0, 1, BACKGROUND];
        let out = overlay_segmentation(&picture, &mask, 0.5, None);
        let palette = mask_palette();
        for (i, &label) in mask.iter().enumerate() {
            let pixel = &out[i * 4..i * 4 + 4];
            let expected: Vec<u8> = if label == BACKGROUND {
                vec![100; 3]
            } else {
                palette[usize::from(label)]
                    .iter()
                    .map(|&c| blend(100, c, 0.5))
                    .collect()
            };
            assert_eq!(&pixel[..3], &expected[..], "pixel {i}");
            assert_eq!(pixel[3], 255);
        }
        // Label 1 isolated: label 0 goes back to the picture.
        let only = overlay_segmentation(&picture, &mask, 0.5, Some(1));
        assert_eq!(&only[..3], &[100; 3]);
        assert_eq!(&only[4..8], &out[4..8]);
        assert_eq!(
            overlay_segmentation(&picture, &mask, 0.0, None),
            grey(3, 1, 100)
                .rgba
                .iter()
                .enumerate()
                .map(|(i, &v)| if i % 4 == 3 { 255 } else { v })
                .collect::<Vec<_>>()
        );
        assert_eq!(segment_colour(0), "#800000");
    }

    #[test]
    fn thumbnails_keep_the_aspect_and_small_pictures() {
        let picture = grey(400, 100, 9);
        let t = picture.thumbnail(100);
        assert_eq!((t.width, t.height), (100, 25));
        assert_eq!(t.rgba.len(), 100 * 25 * 4);
        assert_eq!(grey(20, 10, 1).thumbnail(100), grey(20, 10, 1));
        assert!(Picture::new(2, 2, vec![0; 15]).is_none());
    }

    #[test]
    fn markers_scale_from_original_to_picture_pixels() {
        let points = Points {
            xy: vec![[0, 0], [199, 99]],
            positive: vec![true, false],
        };
        let m = markers(&points, [100, 200], &grey(100, 50, 0));
        assert_eq!(
            m[0],
            Marker {
                x: 0.25,
                y: 0.25,
                positive: true
            }
        );
        assert_eq!(
            m[1],
            Marker {
                x: 99.75,
                y: 49.75,
                positive: false
            }
        );
    }
}
