//! Open-vocabulary semantic segmentation with the model (paper §5.2). The default is the
//! author's protocol: the cosine of the surgery path's patch tokens with each label's 85-template
//! ensemble — *no* feature surgery — then [`segment`](crate::output::segmentation::segment):
//! bilinear upsampling to the image and an argmax over labels.
//!
//! Feature surgery's scores ([`Score::FeatureSurgery`]) can give another argmax: Eq. 9 subtracts
//! a term shared by all classes (which cannot change a per-pixel ranking) but also multiplies
//! each class by its own weight `w_k` from the image's CLS token, which can.

use serde::{Deserialize, Serialize};

use crate::error::{ClipError, Result};
use crate::input::preprocess::Preprocessed;
use crate::input::query::{Method, Query};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::Clip;
use crate::output::segmentation::{
    BackgroundRule, MAX_LABELS, PatchScores, Segmentation, check_threshold, segment,
};
use crate::surgery::bank::TextBank;
use crate::surgery::explain::{Stage, pixels_tensor, read_back};
use crate::surgery::feature::{feature_surgery, raw_similarity};

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
