//! Text features: the official 85-template prompt ensemble, "a+b" targets, and the empty-string
//! redundant feature used by single-text feature surgery.

use burn::tensor::Tensor;

use crate::error::{ClipError, Result};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::text::PrefixStates;
use crate::model::{Clip, l2_normalize};

/// The official CLIP Surgery prompt templates (`clip/clip.py`): the 80 ImageNet templates of
/// CLIP plus five scene templates — same strings, same order.
pub const TEMPLATES: [&str; 85] = [
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
];

/// Formats every template with `text` (Python's `template.format(text)`).
pub fn prompts(text: &str) -> Vec<String> {
    TEMPLATES
        .iter()
        .map(|t| t.replacen("{}", text, 1))
        .collect()
}

/// Prompt-ensembled text features.
#[derive(Debug, Clone)]
pub struct TextFeatures {
    /// `[T, E]`, one L2-normalised row per text.
    pub features: Tensor<2>,
    /// Texts for which at least one prompt was longer than the 77-token context and was cut.
    pub truncated: Vec<String>,
}

/// Prompts per text-tower forward when ensembles are batched across texts: three labels'
/// 85 prompts.
pub const BATCH_PROMPTS: usize = 3 * TEMPLATES.len();

/// Each template's words before its `{}`, tokenized (SOT first, no EOT): the prefix every
/// prompt made from it starts with.
pub fn template_prefixes(tokenizer: &ClipTokenizer) -> Result<Vec<Vec<u32>>> {
    TEMPLATES
        .iter()
        .map(|t| {
            let head = t.split("{}").next().unwrap_or_default().trim_end();
            let tokens = tokenizer.encode(head)?;
            Ok(tokens.ids[..tokens.eot].to_vec())
        })
        .collect()
}

/// The text tower's kept states of the [`template_prefixes`]: computed once per model, they
/// leave each label's ensemble only its own ~3 tokens per prompt to run.
pub fn template_states(model: &Clip, tokenizer: &ClipTokenizer) -> Result<PrefixStates> {
    model
        .text_model
        .prefix_states(template_prefixes(tokenizer)?, model.device())
}

/// The ensemble feature of each text: encode all 85 prompts, L2-normalise each, average,
/// L2-normalise the mean (official `encode_text_with_prompt_ensemble`). Computes the
/// templates' prefix states first; [`encode_ensembles_with`] reuses them.
pub fn encode_ensembles(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    texts: &[String],
    progress: impl FnMut(usize, usize),
) -> Result<TextFeatures> {
    let states = template_states(model, tokenizer)?;
    encode_ensembles_with(model, tokenizer, texts, &states, progress)
}

/// [`encode_ensembles`] with the [`template_states`] at hand. Texts are batched
/// ([`BATCH_PROMPTS`]); `progress` is called after each batch with (texts done, total).
pub fn encode_ensembles_with(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    texts: &[String],
    states: &PrefixStates,
    mut progress: impl FnMut(usize, usize),
) -> Result<TextFeatures> {
    if texts.is_empty() {
        return Err(ClipError::EmptyQuery);
    }
    let n = TEMPLATES.len();
    let e = model.config.embed_dim;
    let mut rows = Vec::with_capacity(texts.len());
    let mut truncated = Vec::new();
    let mut done = 0;
    for batch in texts.chunks(BATCH_PROMPTS / n) {
        let prompts: Vec<String> = batch.iter().flat_map(|text| prompts(text)).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let tokens = tokenizer.encode_batch(&refs)?;
        for (text, tokens) in batch.iter().zip(tokens.chunks(n)) {
            if tokens.iter().any(|t| t.truncated) {
                truncated.push(text.clone());
            }
        }
        let k = batch.len();
        let templates: Vec<usize> = (0..k * n).map(|i| i % n).collect();
        let features = model.encode_text_continued(&tokens, Some((states, &templates)))?;
        let features = l2_normalize(features); // [k·85, E]
        let mean = features.reshape([k, n, e]).mean_dim(1).reshape([k, e]);
        rows.push(l2_normalize(mean));
        done += k;
        progress(done, texts.len());
    }
    Ok(TextFeatures {
        features: Tensor::cat(rows, 0),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_the_official_list() {
        assert_eq!(TEMPLATES.len(), 85);
        assert_eq!(TEMPLATES[0], "a bad photo of a {}.");
        assert_eq!(TEMPLATES[84], "this is one {} in the scene.");
        assert!(TEMPLATES.iter().all(|t| t.matches("{}").count() == 1));
        assert_eq!(prompts("cat")[35], "a cat in a video game.");
    }
}
