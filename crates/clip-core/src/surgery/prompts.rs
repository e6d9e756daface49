//! Text features: the official 85-template prompt ensemble, "a+b" targets, and the empty-string
//! redundant feature used by single-text feature surgery.

use burn::tensor::Tensor;

use crate::error::{ClipError, Result};
use crate::input::tokenizer::ClipTokenizer;
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

/// The ensemble feature of each text: encode all 85 prompts, L2-normalise each, average,
/// L2-normalise the mean (official `encode_text_with_prompt_ensemble`). `progress` is called
/// after each text with (done, total).
pub fn encode_ensembles(
    model: &Clip,
    tokenizer: &ClipTokenizer,
    texts: &[String],
    mut progress: impl FnMut(usize, usize),
) -> Result<TextFeatures> {
    if texts.is_empty() {
        return Err(ClipError::EmptyQuery);
    }
    let mut rows = Vec::with_capacity(texts.len());
    let mut truncated = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let prompts = prompts(text);
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let tokens = tokenizer.encode_batch(&refs)?;
        if tokens.iter().any(|t| t.truncated) {
            truncated.push(text.clone());
        }
        let features = l2_normalize(model.encode_text(&tokens)?); // [85, E]
        rows.push(l2_normalize(features.mean_dim(0))); // [1, E]
        progress(i + 1, texts.len());
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
