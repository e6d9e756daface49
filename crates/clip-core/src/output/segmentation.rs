//! Open-vocabulary semantic segmentation from per-label patch scores (paper §5.2, the author's
//! protocol): every label's scores are bilinearly upsampled (`align_corners=False`) from the
//! patch grid to the image, and each pixel takes the label with the highest score. Optionally
//! a background rule marks pixels [`BACKGROUND`]: extra background words that compete with the
//! labels, and/or a floor on the winner's probability, as the later training-free papers do for
//! VOC and PASCAL Context.
//!
//! Host side and device-free: the CLI and the page share it. Pixels are computed row by row from
//! the patch grid — the upsampled score planes (`H·W·labels` floats: 2 GB for a 12 MP photo and
//! COCO-Stuff's 171 labels) are never held.

use serde::{Deserialize, Serialize};

use image::RgbImage;

use crate::error::{ClipError, Result};
use crate::output::colormap::blend;
use crate::output::maps::bilinear_taps;

/// The mask value of a pixel no label claims (the VOC "void" index).
pub const BACKGROUND: u8 = 255;

/// At most this many labels fit a byte mask beside [`BACKGROUND`].
pub const MAX_LABELS: usize = BACKGROUND as usize;

/// A segmentation: the CLI's `segment --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmentation {
    /// The labels; mask value `i` is `labels[i]`.
    pub labels: Vec<String>,
    /// `[height, width]` of the mask: the (EXIF-oriented) image's.
    pub hw: [usize; 2],
    /// One label index per pixel, row-major; [`BACKGROUND`] where no label wins.
    pub mask: Vec<u8>,
    /// The fraction of all pixels each label covers.
    pub area: Vec<f32>,
}

/// The per-patch score the labels compete with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// `cos(token, t_k)`: the author's protocol.
    #[default]
    Cosine,
    /// Feature surgery, label-set mode (Eq. 9), over the labels and background words.
    FeatureSurgery,
}

impl std::str::FromStr for Score {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "feature-surgery" => Ok(Self::FeatureSurgery),
            other => Err(format!("unknown score `{other}` (cosine, feature-surgery)")),
        }
    }
}

/// What makes a pixel background instead of its best label.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BackgroundRule {
    /// The last `words` score columns are background words: a pixel they win is background.
    pub words: usize,
    /// A pixel whose winning column has a probability below this is background. The
    /// probability is `softmax(scale · scores)` over all columns at that pixel.
    pub threshold: Option<f32>,
    /// The softmax scale of `threshold` (CLIP's logit scale, 100, for cosine scores).
    pub scale: f32,
}

/// Per-patch scores of every column (labels, then background words), patch tokens only.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchScores {
    /// Patch grid `[gh, gw]`.
    pub grid: [usize; 2],
    /// Columns per patch.
    pub columns: usize,
    /// `[gh · gw, columns]`, row-major over the grid.
    pub values: Vec<f32>,
}

/// Segments `scores` at `hw` (`[height, width]`): per pixel, the argmax over the bilinearly
/// upsampled columns, then `rule`. `labels` names the first `columns − rule.words` columns.
pub fn segment(
    scores: &PatchScores,
    labels: &[String],
    hw: [usize; 2],
    rule: &BackgroundRule,
) -> Result<Segmentation> {
    let columns = scores.columns;
    let [gh, gw] = scores.grid;
    if labels.is_empty() {
        return Err(ClipError::EmptyQuery);
    }
    if labels.len() > MAX_LABELS {
        return Err(ClipError::TooManyLabels {
            given: labels.len(),
            max: MAX_LABELS,
        });
    }
    if labels.len() + rule.words != columns || scores.values.len() != gh * gw * columns {
        return Err(ClipError::Device(format!(
            "{} labels and {} background words do not fit {columns} score columns over a {gh}×{gw} grid",
            labels.len(),
            rule.words
        )));
    }
    if let Some(t) = rule.threshold {
        check_threshold(t)?;
    }
    let [h, w] = hw;
    let rows = bilinear_taps(gh, h);
    let cols = bilinear_taps(gw, w);
    let mut mask = Vec::with_capacity(h * w);
    let mut counts = vec![0usize; labels.len()];
    // One output row's scores interpolated vertically, `[gw, columns]`, then per pixel the
    // two horizontal taps: 2·columns products a pixel.
    let mut line = vec![0.0f32; gw * columns];
    let mut pixel = vec![0.0f32; columns];
    for &(y0, y1, wy0, wy1) in &rows {
        let (top, bottom) = (
            &scores.values[y0 * gw * columns..(y0 + 1) * gw * columns],
            &scores.values[y1 * gw * columns..(y1 + 1) * gw * columns],
        );
        for ((l, &a), &b) in line.iter_mut().zip(top).zip(bottom) {
            *l = wy0 * a + wy1 * b;
        }
        for &(x0, x1, wx0, wx1) in &cols {
            let (left, right) = (
                &line[x0 * columns..(x0 + 1) * columns],
                &line[x1 * columns..(x1 + 1) * columns],
            );
            for ((p, &a), &b) in pixel.iter_mut().zip(left).zip(right) {
                *p = wx0 * a + wx1 * b;
            }
            let label = decide(&pixel, labels.len(), rule);
            if let Some(count) = counts.get_mut(usize::from(label)) {
                *count += 1;
            }
            mask.push(label);
        }
    }
    let pixels = (h * w).max(1) as f32;
    Ok(Segmentation {
        labels: labels.to_vec(),
        hw,
        mask,
        area: counts.iter().map(|&c| c as f32 / pixels).collect(),
    })
}

/// A probability floor must be one: in [0, 1].
pub fn check_threshold(threshold: f32) -> Result<()> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(ClipError::BadThreshold(threshold))
    }
}

/// The mask value of one pixel's scores.
fn decide(scores: &[f32], labels: usize, rule: &BackgroundRule) -> u8 {
    // The first maximum wins ties, as `argmax` does in PyTorch.
    let (best, top) =
        scores
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            });
    if best >= labels {
        return BACKGROUND;
    }
    if let Some(threshold) = rule.threshold {
        // p(best) = 1 / Σ exp(scale·(s − top)): no overflow, whatever the scale.
        let sum: f32 = scores.iter().map(|&s| (rule.scale * (s - top)).exp()).sum();
        if 1.0 / sum < threshold {
            return BACKGROUND;
        }
    }
    best as u8
}

/// The PASCAL VOC palette (`bitget` construction of the VOC devkit): index 0 black, 1 dark
/// red, … 255 cream — so a mask PNG opens with the colours every segmentation tool uses.
pub fn voc_palette() -> [[u8; 3]; 256] {
    let mut palette = [[0u8; 3]; 256];
    for (i, colour) in palette.iter_mut().enumerate() {
        let mut c = i;
        for bit in 0..8 {
            for (channel, value) in colour.iter_mut().enumerate() {
                *value |= (((c >> channel) & 1) as u8) << (7 - bit);
            }
            c >>= 3;
        }
    }
    palette
}

/// The colour of each mask value, for overlays, legends and the mask PNG's palette: VOC's
/// palette shifted by one, so that label 0 is not black and the 20 VOC classes, given in VOC
/// order (background left to the background rule), get their VOC colours; [`BACKGROUND`] keeps
/// VOC's "void" cream, and the 255th label, which VOC has no colour left for, is grey.
pub fn mask_palette() -> [[u8; 3]; 256] {
    let voc = voc_palette();
    let mut palette = [[0u8; 3]; 256];
    palette[..254].copy_from_slice(&voc[1..255]);
    palette[254] = [128, 128, 128];
    palette[255] = voc[255];
    palette
}

/// The image with each labelled pixel blended towards its label's colour (`alpha`: the colour's
/// weight); background pixels keep the image. `mask` is `height × width` of the image.
pub fn overlay_mask(image: &RgbImage, mask: &[u8], alpha: f32) -> RgbImage {
    let palette = mask_palette();
    let mut out = image.clone();
    for (pixel, &label) in out.pixels_mut().zip(mask) {
        if label == BACKGROUND {
            continue;
        }
        let colour = palette[usize::from(label)];
        for (channel, c) in pixel.0.iter_mut().zip(colour) {
            *channel = blend(*channel, c, alpha);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("l{i}")).collect()
    }

    #[test]
    fn argmax_of_upsampled_scores() {
        // Two patches side by side, two labels: label 0 on the left, label 1 on the right.
        // At 1×4 the taps are (0, 0, 1), (0, 1, .75/.25), (0, 1, .25/.75), (1, 1, 1): the
        // middle pixels mix; the second one already leans to the right patch.
        let scores = PatchScores {
            grid: [1, 2],
            columns: 2,
            values: vec![0.9, 0.1, 0.2, 0.6],
        };
        let s = segment(&scores, &names(2), [1, 4], &BackgroundRule::default()).unwrap();
        // Pixel 1: 0.75·0.9 + 0.25·0.2 = 0.725 vs 0.75·0.1 + 0.25·0.6 = 0.225 → 0.
        // Pixel 2: 0.25·0.9 + 0.75·0.2 = 0.375 vs 0.25·0.1 + 0.75·0.6 = 0.475 → 1.
        assert_eq!(s.mask, vec![0, 0, 1, 1]);
        assert_eq!(s.area, vec![0.5, 0.5]);
        assert_eq!(s.hw, [1, 4]);
    }

    #[test]
    fn vertical_and_horizontal_taps_agree_with_a_plane_resize() {
        // One label against a constant: the label wins exactly where its upsampled plane,
        // as `resize_bilinear` computes it, exceeds the constant.
        let grid = [3, 4];
        let plane: Vec<f32> = crate::testing::values(12, 7);
        let values = plane.iter().flat_map(|&v| [v, 0.1]).collect();
        let scores = PatchScores {
            grid,
            columns: 2,
            values,
        };
        let hw = [7, 9];
        let s = segment(&scores, &names(2), hw, &BackgroundRule::default()).unwrap();
        let up = crate::output::maps::resize_bilinear(&plane, grid, hw);
        let expected: Vec<u8> = up.iter().map(|&v| u8::from(v <= 0.1)).collect();
        assert_eq!(s.mask, expected);
    }

    #[test]
    fn background_words_and_threshold() {
        // Columns: label, label, background word.
        let scores = PatchScores {
            grid: [1, 3],
            columns: 3,
            values: vec![
                0.30, 0.10, 0.20, // label 0 wins clearly
                0.20, 0.21, 0.20, // label 1 by a hair
                0.10, 0.10, 0.30, // the background word wins
            ],
        };
        let words = BackgroundRule {
            words: 1,
            ..BackgroundRule::default()
        };
        let s = segment(&scores, &names(2), [1, 3], &words).unwrap();
        assert_eq!(s.mask, vec![0, 1, BACKGROUND]);
        assert!((s.area[0] - 1.0 / 3.0).abs() < 1e-6 && (s.area[1] - 1.0 / 3.0).abs() < 1e-6);
        // With scale 100 pixel 1's winner has p = 1 / (1 + 2·e^-1) = 0.576; pixel 0's
        // 1 / (1 + e^-20 + e^-10) ≈ 1.
        let floor = |threshold| BackgroundRule {
            threshold: Some(threshold),
            scale: 100.0,
            ..words
        };
        assert_eq!(
            segment(&scores, &names(2), [1, 3], &floor(0.5))
                .unwrap()
                .mask,
            vec![0, 1, 255]
        );
        assert_eq!(
            segment(&scores, &names(2), [1, 3], &floor(0.6))
                .unwrap()
                .mask,
            vec![0, 255, 255]
        );
    }

    #[test]
    fn bad_shapes_and_too_many_labels_are_errors() {
        let scores = PatchScores {
            grid: [1, 1],
            columns: 2,
            values: vec![0.0, 1.0],
        };
        let rule = BackgroundRule::default();
        assert!(matches!(
            segment(&scores, &[], [1, 1], &rule),
            Err(ClipError::EmptyQuery)
        ));
        assert!(segment(&scores, &names(3), [1, 1], &rule).is_err());
        let many = PatchScores {
            grid: [1, 1],
            columns: 256,
            values: vec![0.0; 256],
        };
        assert!(matches!(
            segment(&many, &names(256), [1, 1], &rule),
            Err(ClipError::TooManyLabels {
                given: 256,
                max: 255
            })
        ));
        let nan = BackgroundRule {
            threshold: Some(f32::NAN),
            ..rule
        };
        assert!(matches!(
            segment(&scores, &names(2), [1, 1], &nan),
            Err(ClipError::BadThreshold(_))
        ));
        // 255 labels fit.
        let most = PatchScores {
            columns: 255,
            values: vec![0.0; 255],
            ..many
        };
        assert!(segment(&most, &names(255), [1, 1], &rule).is_ok());
    }

    #[test]
    fn overlay_colours_labels_and_keeps_background() {
        let image = RgbImage::from_pixel(2, 1, image::Rgb([100, 100, 100]));
        let out = overlay_mask(&image, &[0, BACKGROUND], 0.5);
        // Label 0 is drawn in palette entry 1, (128, 0, 0).
        assert_eq!(out.get_pixel(0, 0).0, [114, 50, 50]);
        assert_eq!(out.get_pixel(1, 0).0, [100, 100, 100]);
    }

    #[test]
    fn voc_palette_known_entries() {
        let p = voc_palette();
        assert_eq!(p[0], [0, 0, 0]);
        assert_eq!(p[1], [128, 0, 0]);
        assert_eq!(p[2], [0, 128, 0]);
        assert_eq!(p[15], [192, 128, 128]); // person
        assert_eq!(p[255], [224, 224, 192]); // void
        let mask = mask_palette();
        assert_eq!(mask[0], [128, 0, 0]); // aeroplane, VOC's class 1
        assert_eq!(mask[14], [192, 128, 128]); // person, VOC's class 15
        assert_eq!(mask[253], p[254]);
        assert_ne!(mask[254], mask[255]);
        assert_eq!(mask[255], [224, 224, 192]);
    }
}
