//! The whole explanation, from preprocessed pixels and a query to the numbers the CLI writes
//! with `--json` and the app draws: similarities, CLS scores and points.
//!
//! Device work is queued first and read back once at the end with `into_data_async`, so the
//! same code runs in a browser (where synchronous read-back is impossible) and natively.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};

use crate::error::{ClipError, Result};
use crate::input::preprocess::Preprocessed;
use crate::input::query::{AttentionAt, Method, Query, split_target};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::{Clip, l2_normalize};
use crate::output::explanation::{AttentionRows, Explanation, Redundancy, TokenMap};
use crate::output::maps::{column, combine_min_max};
use crate::output::points::{
    POINT_DOWNSAMPLE, POINT_THRESHOLD, combined_points, similarity_to_points,
};
use crate::surgery::bank::TextBank;
use crate::surgery::feature::{
    cls_scores, feature_surgery, feature_surgery_single, raw_similarity, redundant_feature,
};
use crate::surgery::prompts::TextFeatures;

/// Progress of an explanation, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Encoding prompt ensembles: `(texts done, texts total)`.
    Text(usize, usize),
    /// Running the image tower.
    Image,
    /// Running the image tower on windows (the sliding-window protocol): `(done, total)`.
    Windows(usize, usize),
    /// Reading results back and building maps and points.
    Finish,
}

/// Uploads preprocessed pixels as a `[1, 3, H, W]` tensor.
pub fn pixels_tensor(model: &Clip, image: &Preprocessed) -> Tensor<4> {
    let [h, w] = image.input_hw;
    Tensor::from_data(
        TensorData::new(image.pixels.clone(), [1, 3, h, w]),
        model.device(),
    )
}

/// Reads a float tensor back to the host.
pub async fn read_back<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| ClipError::Device(format!("{e:?}")))?;
    data.try_into_vec::<f32>()
        .map_err(|e| ClipError::Device(format!("{e:?}")))
}

/// The texts `query` needs encoded under `method` with `extras`, and how many of them each
/// result column combines. The ensemble of `""` comes last where it is needed: single-text
/// surgery's redundant feature (raw CLIP does without: 85 more prompts) and the redundancy
/// view.
pub fn query_texts(query: &Query, method: Method, extras: &Extras) -> (Vec<String>, Vec<usize>) {
    let (mut texts, parts_per_label) = match query {
        Query::Labels(labels) => (labels.clone(), vec![1; labels.len()]),
        Query::Text(text) => {
            let parts = split_target(text);
            let n = parts.len();
            (parts, vec![n])
        }
    };
    let empty = match query {
        Query::Text(_) => method == Method::Surgery,
        Query::Labels(_) => extras.redundancy,
    };
    if empty {
        texts.push(String::new());
    }
    (texts, parts_per_label)
}

/// Explains `query` on `image`. Text features come from `bank`, which encodes what it lacks
/// (keep one bank per model to never encode a text twice).
pub async fn explain(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &Preprocessed,
    query: &Query,
    method: Method,
    bank: &mut TextBank,
    progress: impl FnMut(Stage),
) -> Result<Explanation> {
    let extras = Extras::default();
    explain_with(
        model, tokenizer, image, query, method, bank, extras, progress,
    )
    .await
}

/// What [`explain_with`] adds to an explanation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    /// A single text's per-token maps ([`Explanation::tokens`], the multimodal view).
    pub tokens: bool,
    /// One patch's attention rows ([`Explanation::attention`]).
    pub attention: Option<AttentionAt>,
    /// A label set's redundancy maps ([`Explanation::redundancy`]; one more text, `""`).
    pub redundancy: bool,
}

impl Extras {
    /// Refuses extras that `query` cannot have.
    fn check(&self, query: &Query) -> Result<()> {
        match query {
            Query::Labels(_) if self.tokens => Err(ClipError::TokensNeedText),
            Query::Text(_) if self.redundancy => Err(ClipError::RedundancyNeedsLabels),
            _ => Ok(()),
        }
    }
}

/// [`explain`] with `extras` (one image encode for all of it).
#[allow(clippy::too_many_arguments)]
pub async fn explain_with(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &Preprocessed,
    query: &Query,
    method: Method,
    bank: &mut TextBank,
    extras: Extras,
    mut progress: impl FnMut(Stage),
) -> Result<Explanation> {
    extras.check(query)?;
    let grid = model
        .vision_model
        .grid_for(image.input_hw[0], image.input_hw[1])?;
    // Text first: the ensembles are the long part on CPU and report progress per text.
    let (all, parts_per_label) = query_texts(query, method, &extras);
    let single = matches!(query, Query::Text(_));
    let n_texts = parts_per_label.iter().sum();
    let TextFeatures {
        features,
        truncated,
    } = bank
        .features(model, tokenizer, &all, |done, total| {
            progress(Stage::Text(done, total))
        })
        .await?;
    let e = model.config.embed_dim;
    // `""`'s ensemble, where the query needs it, follows the query's texts.
    let empty = || features.clone().slice([n_texts..n_texts + 1, 0..e]);

    progress(Stage::Image);
    let tokens = model.encode_image(pixels_tensor(model, image), method)?; // [1, N+1, E]
    let [_, n1, _] = tokens.dims();
    let tokens = tokens.reshape([n1, e]);
    let text = features.clone().slice([0..n_texts, 0..e]);
    let similarity = match (method, single) {
        (Method::Raw, _) => raw_similarity(tokens.clone(), text.clone()),
        (Method::Surgery, false) => feature_surgery(tokens.clone(), text.clone()),
        (Method::Surgery, true) => feature_surgery_single(tokens.clone(), text.clone(), empty()),
    };
    let attention = match extras.attention {
        Some(AttentionAt {
            block,
            patch: [row, col],
        }) => {
            let block = block.unwrap_or(model.config.vision.tower.layers.saturating_sub(1));
            let [gh, gw] = grid;
            if row >= gh || col >= gw {
                return Err(ClipError::BadAttentionQuery {
                    block,
                    blocks: model.config.vision.tower.layers,
                    query: 1 + row * gw + col,
                    tokens: 1 + gh * gw,
                });
            }
            let pixels = pixels_tensor(model, image);
            let rows = model
                .vision_model
                .attention_rows(pixels, block, 1 + row * gw + col)?;
            Some((block, [row, col], rows))
        }
        None => None,
    };
    let token_maps = match query {
        Query::Text(text) if extras.tokens => {
            Some(token_maps(model, tokenizer, &tokens, text, method)?)
        }
        _ => None,
    };
    // Fig. 2: the empty text's cosines and Eq. 9's shared term, side by side ([N+1, 2]).
    let redundancy = extras.redundancy.then(|| {
        let shared = redundant_feature(&tokens, text.clone());
        raw_similarity(tokens.clone(), Tensor::cat(vec![empty(), shared], 0))
    });
    // The cosines of the dense tokens before feature surgery: the segmentation scores.
    let logits = match method {
        Method::Raw => None,
        Method::Surgery => Some(raw_similarity(tokens.clone(), text.clone())),
    };
    // A single text has nothing to be compared with: its score is 1 by definition.
    let scores = (!single).then(|| cls_scores(tokens.clone(), text.clone(), model.logit_scale));
    // Eq. 9 on the CLS row alone (its weights come from that row): the CLS token is the
    // original path's under both methods, so this is the surgery similarity's first row.
    let cls_surgery = (!single).then(|| feature_surgery(tokens.slice([0..1, 0..e]), text));

    progress(Stage::Finish);
    let similarity = read_back(similarity).await?; // [N+1, T], row-major
    let logits = match logits {
        Some(l) => read_back(l).await?,
        None => similarity.clone(), // raw CLIP's similarity is the cosine already
    };
    let cls_scores = match scores {
        Some(scores) => read_back(scores).await?,
        None => vec![1.0],
    };
    let cls_surgery = match cls_surgery {
        Some(s) => read_back(s).await?,
        None => vec![],
    };
    let tokens = match token_maps {
        Some(pending) => pending.read(grid).await?,
        None => vec![],
    };
    let redundancy = match redundancy {
        Some(both) => {
            let both = read_back(both).await?; // [N+1, 2]
            let patches = &both[2..];
            Some(Redundancy {
                empty: column(patches, 2, 0),
                term: column(patches, 2, 1),
            })
        }
        None => None,
    };
    let attention = match attention {
        Some((block, query, rows)) => {
            let rows = read_back(rows).await?;
            let (qk, vv) = rows.split_at(rows.len() / 2);
            Some(AttentionRows {
                block,
                query,
                qk: qk.to_vec(),
                vv: vv.to_vec(),
            })
        }
        None => None,
    };
    let patches = &similarity[n_texts..]; // drop the class token row
    let [gh, gw] = grid;
    debug_assert_eq!(patches.len(), gh * gw * n_texts);

    let labels = query.display_labels();
    let mut columns = Vec::with_capacity(labels.len());
    let mut points = BTreeMap::new();
    let mut first = 0;
    for (label, &n_parts) in labels.iter().zip(&parts_per_label) {
        let parts: Vec<Vec<f32>> = (first..first + n_parts)
            .map(|t| column(patches, n_texts, t))
            .collect();
        first += n_parts;
        let (values, label_points) = if n_parts == 1 {
            let p = similarity_to_points(
                &parts[0],
                grid,
                image.original_hw,
                POINT_THRESHOLD,
                POINT_DOWNSAMPLE,
            );
            (parts.into_iter().next().unwrap_or_default(), p)
        } else {
            let mean = combine_min_max(&parts);
            let p = combined_points(&parts, &mean, grid, image.original_hw);
            (mean, p)
        };
        columns.push(values);
        points.insert(label.clone(), label_points);
    }
    let similarity = (0..gh * gw)
        .map(|i| columns.iter().map(|c| c[i]).collect())
        .collect();
    let logits = logits[n_texts..]
        .chunks_exact(n_texts)
        .map(<[f32]>::to_vec)
        .collect();
    Ok(Explanation {
        labels,
        grid,
        similarity,
        logits,
        logit_scale: model.logit_scale.exp(),
        cls_scores,
        cls_surgery,
        points,
        combined: query.is_combined(),
        truncated,
        tokens,
        attention,
        redundancy,
    })
}

/// A text's per-token maps and scores, queued on the device.
struct PendingTokens {
    texts: Vec<String>,
    /// `[N+1, T]`: the class token's row, then the patches'.
    similarity: Tensor<2>,
    /// `[1, T]`.
    scores: Tensor<2>,
}

impl PendingTokens {
    async fn read(self, [gh, gw]: [usize; 2]) -> Result<Vec<TokenMap>> {
        let t = self.texts.len();
        let similarity = read_back(self.similarity).await?;
        let scores = read_back(self.scores).await?;
        let patches = &similarity[t..];
        debug_assert_eq!(patches.len(), gh * gw * t);
        Ok(self
            .texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| TokenMap {
                text,
                similarity: column(patches, t, i),
                score: scores[i],
            })
            .collect())
    }
}

/// The multimodal view of `text` (paper §5.6): every token's feature, SOT to EOT, as the
/// class set of feature surgery against the image's `tokens` (`[N+1, E]`; raw CLIP: the
/// cosine), and each token's cosine with the CLS feature. The text is encoded as it is, not
/// in templates.
fn token_maps(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    tokens: &Tensor<2>,
    text: &str,
    method: Method,
) -> Result<PendingTokens> {
    let encoded = tokenizer.encode(text)?;
    let texts = encoded.ids[..=encoded.eot]
        .iter()
        .map(|&id| tokenizer.token_text(id))
        .collect();
    let features = l2_normalize(model.encode_tokens(&encoded)?); // [T, E]
    let [_, e] = tokens.dims();
    let similarity = match method {
        Method::Surgery => feature_surgery(tokens.clone(), features.clone()),
        Method::Raw => raw_similarity(tokens.clone(), features.clone()),
    };
    let scores = raw_similarity(tokens.clone().slice([0..1, 0..e]), features);
    Ok(PendingTokens {
        texts,
        similarity,
        scores,
    })
}

/// A label set's image-level scores, without maps.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    /// CLIP's `softmax(logit scale · cos(cls, t))`.
    pub clip: Vec<f32>,
    /// The author's multi-label score: feature surgery (Eq. 9) on the CLS token.
    pub surgery: Vec<f32>,
}

/// The `cls_scores` and `cls_surgery` that [`explain`] gives a label set, computed from the
/// CLS token alone — what `eval-multilabel` ranks images by. Both methods share that token
/// (the original path's), so the image tower runs without the surgery path.
pub async fn label_scores(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    image: &Preprocessed,
    labels: &[String],
    bank: &mut TextBank,
) -> Result<LabelScores> {
    model
        .vision_model
        .grid_for(image.input_hw[0], image.input_hw[1])?;
    let text = bank.features(model, tokenizer, labels, |_, _| {}).await?;
    let e = model.config.embed_dim;
    let tokens = model.encode_image(pixels_tensor(model, image), Method::Raw)?;
    let cls = tokens.slice([0..1, 0..1, 0..e]).reshape([1, e]);
    let clip = cls_scores(cls.clone(), text.features.clone(), model.logit_scale);
    let surgery = feature_surgery(cls, text.features);
    Ok(LabelScores {
        clip: read_back(clip).await?,
        surgery: read_back(surgery).await?,
    })
}
