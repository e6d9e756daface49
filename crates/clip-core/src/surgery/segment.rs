//! Open-vocabulary semantic segmentation with the model (paper §5.2). The default is the
//! author's protocol: the cosine of the surgery path's patch tokens with each label's 85-template
//! ensemble — *no* feature surgery — then [`segment`](crate::output::segmentation::segment):
//! bilinear upsampling to the image and an argmax over labels.
//!
//! [`segment_sliding`] runs the sliding-window protocol of the later training-free papers
//! instead of one input.
//!
//! Feature surgery's scores ([`Score::FeatureSurgery`]) can give another argmax: Eq. 9 subtracts
//! a term shared by all classes (which cannot change a per-pixel ranking) but also multiplies
//! each class by its own weight `w_k` from the image's CLS token, which can.

use crate::error::{ClipError, Result};
use image::RgbImage;

use crate::input::preprocess::{Preprocessed, normalize, resize_bicubic};
use crate::input::query::{Method, Query};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::Clip;
use crate::output::maps::bilinear_taps;
pub use crate::output::segmentation::Score;
use crate::output::segmentation::{
    BackgroundRule, MAX_LABELS, PatchScores, Segmentation, check_threshold, segment,
};
use crate::surgery::bank::TextBank;
use crate::surgery::explain::{Stage, pixels_tensor, read_back};
use crate::surgery::feature::{feature_surgery, raw_similarity};

/// What to segment and how.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentQuery {
    /// The labels (mask values 0, 1, …).
    pub labels: Vec<String>,
    /// Background words: texts that compete with the labels; pixels they win are background.
    pub background: Vec<String>,
    /// Surgery (the v-v path's tokens) or raw CLIP's tokens.
    pub method: Method,
    /// Cosine or feature surgery.
    pub score: Score,
    /// Pixels whose winner's probability, `softmax(logit scale · scores)`, is below this are
    /// background.
    pub threshold: Option<f32>,
}

impl SegmentQuery {
    /// Labels then background words, checked as one label set (none empty, none twice), and
    /// the rest of the query — before any work is done.
    pub fn texts(&self) -> Result<Vec<String>> {
        if self.labels.is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        if self.labels.len() > MAX_LABELS {
            return Err(ClipError::TooManyLabels {
                given: self.labels.len(),
                max: MAX_LABELS,
            });
        }
        if let Some(t) = self.threshold {
            check_threshold(t)?;
        }
        let all: Vec<String> = self
            .labels
            .iter()
            .chain(&self.background)
            .cloned()
            .collect();
        match Query::label_set(all)? {
            Query::Labels(all) => Ok(all),
            Query::Text(_) => Err(ClipError::EmptyQuery),
        }
    }
}

/// The per-patch scores of `query`'s labels and background words on `image` (patch tokens
/// only, `[gh·gw, texts]`).
pub async fn patch_scores(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &Preprocessed,
    query: &SegmentQuery,
    bank: &mut TextBank,
    mut progress: impl FnMut(Stage),
) -> Result<PatchScores> {
    let texts = query.texts()?;
    let grid = model
        .vision_model
        .grid_for(image.input_hw[0], image.input_hw[1])?;
    let text = bank
        .features(model, tokenizer, &texts, |done, total| {
            progress(Stage::Text(done, total))
        })
        .await?
        .features;
    progress(Stage::Image);
    let tokens = model.encode_image(pixels_tensor(model, image), query.method)?; // [1, N+1, E]
    let [_, n1, e] = tokens.dims();
    let tokens = tokens.reshape([n1, e]);
    let scores = match query.score {
        Score::Cosine => raw_similarity(tokens, text),
        Score::FeatureSurgery => feature_surgery(tokens, text),
    };
    progress(Stage::Finish);
    let columns = texts.len();
    let values = read_back(scores.slice([1..n1, 0..columns])).await?;
    Ok(PatchScores {
        grid,
        columns,
        values,
    })
}

/// Segments `image` at its original size.
pub async fn segment_image(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &Preprocessed,
    query: &SegmentQuery,
    bank: &mut TextBank,
    progress: impl FnMut(Stage),
) -> Result<Segmentation> {
    let scores = patch_scores(model, tokenizer, image, query, bank, progress).await?;
    let rule = BackgroundRule {
        words: query.background.len(),
        threshold: query.threshold,
        scale: model.logit_scale.exp(),
    };
    segment(&scores, &query.labels, image.original_hw, &rule)
}

/// The sliding-window protocol of SCLIP, ClearCLIP and NACLIP (mmseg's `slide_inference`): the
/// image's short side resized to `short_side` (aspect kept, sides rounded to nearest; the same
/// bicubic resize as every input), square windows of `window` pixels every `stride` pixels —
/// the last one in each direction flush with the edge —, each window's patch scores bilinearly
/// upsampled to the window and averaged where windows overlap; then, as for one input, resized
/// to the image and argmaxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slide {
    /// The resized image's short side.
    pub short_side: usize,
    /// Window side.
    pub window: usize,
    /// Step between windows.
    pub stride: usize,
}

impl Default for Slide {
    /// The papers' ViT-B/16 setting for PASCAL Context and COCO (336 short side, 224 windows,
    /// stride 112).
    fn default() -> Self {
        Self {
            short_side: 336,
            window: 224,
            stride: 112,
        }
    }
}

impl Slide {
    /// The resized image's `[height, width]` for an image of `hw`.
    pub fn resized(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let scale = self.short_side as f64 / h.min(w).max(1) as f64;
        let side = |x: usize| ((x as f64 * scale + 0.5) as usize).max(1);
        [side(h), side(w)]
    }

    /// The windows' `[y1, x1, y2, x2]` over a resized image of `hw`, row by row.
    pub fn windows(&self, [h, w]: [usize; 2]) -> Vec<[usize; 4]> {
        let starts = |len: usize| {
            let n = (len + self.stride).saturating_sub(self.window + 1) / self.stride + 1;
            (0..n).map(move |i| {
                let end = (i * self.stride + self.window).min(len);
                (end.saturating_sub(self.window), end)
            })
        };
        starts(h)
            .flat_map(|(y1, y2)| starts(w).map(move |(x1, x2)| [y1, x1, y2, x2]))
            .collect()
    }

    fn check(&self, patch: usize) -> Result<()> {
        let fits = self.window > 0
            && self.window.is_multiple_of(patch)
            && (1..=self.window).contains(&self.stride)
            && self.short_side >= self.window;
        if fits {
            Ok(())
        } else {
            Err(ClipError::BadSlide {
                short_side: self.short_side,
                window: self.window,
                stride: self.stride,
                patch,
            })
        }
    }
}

/// Segments `image` by sliding windows ([`Slide`]), at its original size.
pub async fn segment_sliding(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &RgbImage,
    query: &SegmentQuery,
    slide: Slide,
    bank: &mut TextBank,
    progress: impl FnMut(Stage),
) -> Result<Segmentation> {
    let scores = sliding_scores(model, tokenizer, image, query, slide, bank, progress).await?;
    let rule = BackgroundRule {
        words: query.background.len(),
        threshold: query.threshold,
        scale: model.logit_scale.exp(),
    };
    let original_hw = [image.height() as usize, image.width() as usize];
    segment(&scores, &query.labels, original_hw, &rule)
}

/// The averaged window scores of [`segment_sliding`] over the resized image: a "grid" of
/// pixels, `[h·w, texts]`, which [`segment`] resizes to the image like patch scores.
pub async fn sliding_scores(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &RgbImage,
    query: &SegmentQuery,
    slide: Slide,
    bank: &mut TextBank,
    mut progress: impl FnMut(Stage),
) -> Result<PatchScores> {
    slide.check(model.config.vision.patch_size)?;
    let texts = query.texts()?;
    let original_hw = [image.height() as usize, image.width() as usize];
    if original_hw.contains(&0) {
        return Err(ClipError::EmptyImage);
    }
    let [h, w] = slide.resized(original_hw);
    let resized = resize_bicubic(image, h, w);
    let windows = slide.windows([h, w]);
    let columns = texts.len();
    // Running sums of the windows' upsampled scores per pixel, `[h·w, columns]`, and how many
    // windows cover each pixel.
    let mut sums = vec![0.0f32; h * w * columns];
    let mut count = vec![0u32; h * w];
    for (done, &[y1, x1, y2, x2]) in windows.iter().enumerate() {
        progress(Stage::Windows(done, windows.len()));
        let crop = image::imageops::crop_imm(
            &resized,
            x1 as u32,
            y1 as u32,
            (x2 - x1) as u32,
            (y2 - y1) as u32,
        )
        .to_image();
        let pre = Preprocessed {
            pixels: normalize(&crop),
            input_hw: [y2 - y1, x2 - x1],
            original_hw: [y2 - y1, x2 - x1],
        };
        // Text features come from the bank after the first window.
        let scores = patch_scores(model, tokenizer, &pre, query, bank, |stage| {
            if let Stage::Text(..) = stage {
                progress(stage)
            }
        })
        .await?;
        add_upsampled(&scores, [y2 - y1, x2 - x1], [y1, x1], w, &mut sums);
        for y in y1..y2 {
            count[y * w + x1..y * w + x2]
                .iter_mut()
                .for_each(|c| *c += 1);
        }
    }
    progress(Stage::Windows(windows.len(), windows.len()));
    progress(Stage::Finish);
    for (pixel, &n) in sums.chunks_exact_mut(columns).zip(&count) {
        let n = n.max(1) as f32;
        pixel.iter_mut().for_each(|v| *v /= n);
    }
    Ok(PatchScores {
        grid: [h, w],
        columns,
        values: sums,
    })
}

/// Adds `scores`, bilinearly upsampled (`align_corners=False`) to `window_hw`, into the
/// row-major `[_, width, columns]` sums at `origin`.
fn add_upsampled(
    scores: &PatchScores,
    window_hw: [usize; 2],
    [y0, x0]: [usize; 2],
    width: usize,
    sums: &mut [f32],
) {
    let [gh, gw] = scores.grid;
    let c = scores.columns;
    let rows = bilinear_taps(gh, window_hw[0]);
    let cols = bilinear_taps(gw, window_hw[1]);
    let at = |y: usize, x: usize, k: usize| scores.values[(y * gw + x) * c + k];
    for (dy, &(r0, r1, wr0, wr1)) in rows.iter().enumerate() {
        for (dx, &(q0, q1, wq0, wq1)) in cols.iter().enumerate() {
            let out = ((y0 + dy) * width + x0 + dx) * c;
            for (k, sum) in sums[out..out + c].iter_mut().enumerate() {
                let top = wq0 * at(r0, q0, k) + wq1 * at(r0, q1, k);
                let bottom = wq0 * at(r1, q0, k) + wq1 * at(r1, q1, k);
                *sum += wr0 * top + wr1 * bottom;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_mmseg_slide_inference() {
        let slide = Slide::default();
        // chelsea (300×451) at short side 336: 336×505 (505.1 rounds down).
        assert_eq!(slide.resized([300, 451]), [336, 505]);
        // Rows: ceil((336 − 224) / 112) + 1 = 2; columns: ceil((505 − 224) / 112) + 1 = 4,
        // the last flush with the right edge.
        let windows = slide.windows([336, 505]);
        assert_eq!(windows.len(), 8);
        assert_eq!(windows[0], [0, 0, 224, 224]);
        assert_eq!(windows[3], [0, 281, 224, 505]);
        assert_eq!(windows[7], [112, 281, 336, 505]);
        // One window when the image is the window.
        assert_eq!(slide.windows([224, 224]), vec![[0, 0, 224, 224]]);
        // A side one pixel longer needs a second, flush window.
        assert_eq!(slide.windows([224, 225]).len(), 2);
    }

    #[test]
    fn bad_slides_are_refused() {
        let ok = Slide::default();
        assert!(ok.check(16).is_ok());
        for bad in [
            Slide { window: 230, ..ok },
            Slide { stride: 0, ..ok },
            Slide { stride: 300, ..ok },
            Slide {
                short_side: 200,
                ..ok
            },
        ] {
            assert!(
                matches!(bad.check(16), Err(ClipError::BadSlide { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upsampled_windows_add_at_their_origin() {
        // A 1×1 grid upsamples to a constant window.
        let scores = PatchScores {
            grid: [1, 1],
            columns: 2,
            values: vec![1.0, 2.0],
        };
        let mut sums = vec![0.0; 3 * 3 * 2];
        add_upsampled(&scores, [2, 2], [1, 1], 3, &mut sums);
        add_upsampled(&scores, [1, 1], [2, 2], 3, &mut sums);
        let first: Vec<f32> = sums.iter().step_by(2).copied().collect();
        assert_eq!(first, vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 2.0]);
    }
}
