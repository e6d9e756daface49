//! Text features kept on the host, so that a label is encoded once per model: the same labels
//! on a new image, "compare" (raw CLIP beside surgery) and, through a persisted copy the
//! caller keeps (the worker's Cache Storage), the next visit.
//!
//! A bank belongs to one model (the caller makes a new one per model); [`text_model_id`] names
//! that model for persisted copies, and [`entry_key`] names one text's entry.

use std::collections::{HashMap, VecDeque};

use burn::tensor::{Tensor, TensorData};
use sha2::{Digest, Sha256};

use crate::error::{ClipError, Result};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::Clip;
use crate::model::text::PrefixStates;
use crate::surgery::explain::read_back;
use crate::surgery::prompts::{TEMPLATES, TextFeatures, encode_ensembles_with, template_states};
use crate::weights::load::Weights;

/// Version of [`Ensemble::to_bytes`]'s layout and of the key scheme: a change makes every
/// persisted entry a miss, never a misread.
pub const FORMAT: u32 = 1;

/// One text's prompt-ensembled feature, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// `E` values, L2-normalised.
    pub feature: Vec<f32>,
    /// At least one of its prompts was cut at the 77-token context.
    pub truncated: bool,
}

impl Ensemble {
    /// Little-endian f32s, then one byte: truncated or not.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.feature.len() * 4 + 1);
        for v in &self.feature {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.push(u8::from(self.truncated));
        bytes
    }

    /// Reads [`Self::to_bytes`] back for a model of embedding size `embed_dim`; `None` for
    /// anything else (a persisted copy is only a hint: a bad one is encoded again).
    pub fn from_bytes(bytes: &[u8], embed_dim: usize) -> Option<Self> {
        let (values, flag) = bytes.split_at_checked(embed_dim.checked_mul(4)?)?;
        let truncated = match flag {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        let feature: Vec<f32> = values
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let norm = feature.iter().map(|v| v * v).sum::<f32>().sqrt();
        // Ensemble features are unit vectors; anything else was not written by this code.
        ((norm - 1.0).abs() < 1e-3).then_some(Self { feature, truncated })
    }
}

/// Ensemble features by text for one model, at most [`TextBank::CAPACITY`] (the oldest go
/// first; each is `4·E` bytes, 2 KB for ViT-B).
#[derive(Debug, Default)]
pub struct TextBank {
    rows: HashMap<String, Ensemble>,
    order: VecDeque<String>,
    /// The model's template prefix states, made with the first text encoded.
    states: Option<PrefixStates>,
}

impl TextBank {
    /// Texts kept (8 MB for ViT-B/16: every label preset of the app several times over).
    pub const CAPACITY: usize = 4096;

    /// An empty bank.
    pub fn new() -> Self {
        Self::default()
    }

    /// Texts held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The feature of `text`, if held.
    pub fn get(&self, text: &str) -> Option<&Ensemble> {
        self.rows.get(text)
    }

    /// Keeps `ensemble` as `text`'s feature.
    pub fn insert(&mut self, text: String, ensemble: Ensemble) {
        if self.rows.insert(text.clone(), ensemble).is_none() {
            self.order.push_back(text);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.rows.remove(&old);
            }
        }
    }

    /// The texts of `texts` not held, each once, in order.
    pub fn missing(&self, texts: &[String]) -> Vec<String> {
        let mut missing: Vec<String> = Vec::new();
        for text in texts {
            if !self.rows.contains_key(text) && !missing.contains(text) {
                missing.push(text.clone());
            }
        }
        missing
    }

    /// The features of `texts` (`[T, E]`, rows in order), encoding only what the bank lacks.
    /// `progress(done, total)` counts texts, held ones first.
    pub async fn features(
        &mut self,
        model: &Clip,
        tokenizer: &ClipTokenizer,
        texts: &[String],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<TextFeatures> {
        if texts.is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        let missing = self.missing(texts);
        let total = texts.len();
        let held = total - missing.len();
        progress(held, total);
        let mut fresh = HashMap::new();
        if !missing.is_empty() {
            let states = match self.states.take() {
                Some(states) => states,
                None => template_states(model, tokenizer)?,
            };
            let encoded = encode_ensembles_with(model, tokenizer, &missing, &states, |done, _| {
                progress(held + done, total)
            });
            self.states = Some(states);
            let encoded = encoded?;
            let e = model.config.embed_dim;
            let values = read_back(encoded.features).await?;
            for (text, feature) in missing.iter().zip(values.chunks_exact(e)) {
                let truncated = encoded.truncated.contains(text);
                let feature = feature.to_vec();
                fresh.insert(text.clone(), Ensemble { feature, truncated });
            }
        }
        // Rows are read before the new ones are kept: keeping them may push held ones out.
        let e = model.config.embed_dim;
        let mut values = Vec::with_capacity(texts.len() * e);
        let mut truncated = Vec::new();
        for text in texts {
            let row = fresh
                .get(text)
                .or_else(|| self.rows.get(text))
                .ok_or_else(|| ClipError::Device("a text feature went missing".into()))?;
            values.extend_from_slice(&row.feature);
            if row.truncated {
                truncated.push(text.clone());
            }
        }
        for text in missing {
            if let Some(ensemble) = fresh.remove(&text) {
                self.insert(text, ensemble);
            }
        }
        let features = TensorData::new(values, [texts.len(), e]);
        Ok(TextFeatures {
            features: Tensor::from_data(features, model.device()),
            truncated,
        })
    }
}

/// Names a model's text tower for persisted features: the same id means the same weights as
/// loaded (scheme included: an int8 pack's features are not f32's) run with the same
/// arithmetic (the CPU runs a pack's products as integers, a GPU in floats: their features
/// differ in the third digit). A pack is named by its manifest, whose shard digests were
/// checked against the bytes; a checkpoint by the digest of its file.
pub fn text_model_id(weights: &Weights, clip: &Clip) -> String {
    let digest = match weights {
        Weights::Pack(pack) => Sha256::digest(pack.manifest_json().as_bytes()),
        Weights::Checkpoint { bytes, .. } => Sha256::digest(bytes),
    };
    let id = hex(&digest[..16]);
    if clip.text_model.is_integer() {
        id + "-int"
    } else {
        id
    }
}

/// The persisted key of `text`'s feature under model `model_id` with the official
/// [`TEMPLATES`]: `v{FORMAT}/{model}/{templates}/{text}`, the last two as digests.
pub fn entry_key(model_id: &str, text: &str) -> String {
    let mut templates = Sha256::new();
    for t in TEMPLATES {
        templates.update(t.as_bytes());
        templates.update([0]);
    }
    let templates = hex(&templates.finalize()[..8]);
    let text = hex(&Sha256::digest(text.as_bytes())[..16]);
    format!("v{FORMAT}/{model_id}/{templates}/{text}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(e: usize, i: usize) -> Vec<f32> {
        (0..e).map(|j| f32::from(u8::from(j == i))).collect()
    }

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_refused() {
        let a = Ensemble {
            feature: unit(8, 3),
            truncated: true,
        };
        let bytes = a.to_bytes();
        assert_eq!(bytes.len(), 33);
        assert_eq!(Ensemble::from_bytes(&bytes, 8), Some(a.clone()));
        assert_eq!(
            Ensemble::from_bytes(&bytes, 7),
            None,
            "another model's size"
        );
        assert_eq!(Ensemble::from_bytes(&bytes[..32], 8), None, "cut short");
        let mut flag = bytes.clone();
        flag[32] = 2;
        assert_eq!(Ensemble::from_bytes(&flag, 8), None);
        let mut scaled = bytes;
        scaled[12..16].copy_from_slice(&2f32.to_le_bytes());
        assert_eq!(Ensemble::from_bytes(&scaled, 8), None, "not a unit vector");
        let nan = Ensemble {
            feature: vec![f32::NAN; 8],
            truncated: false,
        };
        assert_eq!(Ensemble::from_bytes(&nan.to_bytes(), 8), None);
        assert_eq!(Ensemble::from_bytes(&[], usize::MAX), None);
    }

    #[test]
    fn the_bank_forgets_its_oldest_texts_first() {
        let mut bank = TextBank::new();
        let row = |i| Ensemble {
            feature: unit(4, i % 4),
            truncated: false,
        };
        for i in 0..TextBank::CAPACITY + 2 {
            bank.insert(format!("t{i}"), row(i));
        }
        assert_eq!(bank.len(), TextBank::CAPACITY);
        assert!(bank.get("t0").is_none() && bank.get("t1").is_none());
        assert_eq!(bank.get("t2"), Some(&row(2)));
        // Replacing a held text does not count it twice.
        bank.insert("t2".into(), row(3));
        assert_eq!(bank.len(), TextBank::CAPACITY);
        let texts = ["t5", "new", "t1", "new"].map(String::from);
        assert_eq!(bank.missing(&texts), ["new", "t1"]);
    }

    #[test]
    fn keys_separate_models_and_texts() {
        let a = entry_key("m1", "cat");
        assert!(a.starts_with("v1/m1/"), "{a}");
        assert_ne!(a, entry_key("m2", "cat"));
        assert_ne!(a, entry_key("m1", "cat "));
        assert_eq!(a, entry_key("m1", "cat"));
        // Digests keep any text (slashes, "?", long) out of the key's structure.
        assert_eq!(entry_key("m1", "a/b?c#d").matches('/').count(), 3);
    }
}
