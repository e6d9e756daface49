//! Text features kept on the host, so that a label is encoded once per model: the same labels
//! on a new image, "compare" (raw CLIP beside surgery) and, through a persisted copy the
//! caller keeps (the worker's Cache Storage), the next visit.
//!
//! A bank belongs to one model (the caller makes a new one per model); [`text_model_id`] names
//! that model for persisted copies, and [`entry_key`] names one text's entry. A weight pack may
//! ship features made by the converter ([`StoredBank`], `clip-surgery convert --text-bank`), so
//! that its labels are never encoded at all where the arithmetic is the converter's.

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

/// A pack's precomputed features: [`BANK_FILE`] beside its shards, listed (size and SHA-256)
/// in its manifest.
///
/// Layout, little-endian: the magic `CSTB`, [`FORMAT`] (u32), the templates' digest (16 ASCII
/// hex digits, as in [`entry_key`]), whether integer products made them (u8), the embedding
/// size `E` (u32), the number of texts (u32); then per text its UTF-8 length (u32), the text,
/// and [`Ensemble::to_bytes`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBank {
    /// Made with the CPU's integer products (a quantized pack): such features are used where
    /// the model runs the same way, a float model's elsewhere ([`TextBank::with_stored`]).
    pub integer: bool,
    /// Texts and their features, in the order asked for.
    pub entries: Vec<(String, Ensemble)>,
}

/// A pack's [`StoredBank`] file.
pub use crate::weights::pack::TEXT_BANK as BANK_FILE;
const MAGIC: &[u8; 4] = b"CSTB";
/// Longest text a stored bank may hold (a label is a few words; this is a sanity bound).
const MAX_TEXT_BYTES: usize = 4096;

impl StoredBank {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let e = self.entries.first().map_or(0, |(_, x)| x.feature.len());
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(templates_digest().as_bytes());
        out.push(u8::from(self.integer));
        out.extend_from_slice(&(e as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (text, ensemble) in &self.entries {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&ensemble.to_bytes());
        }
        out
    }

    /// Reads [`Self::to_bytes`] for a model of embedding size `embed_dim`. The file came from
    /// a server: anything else (another layout, model size or template set, a feature that is
    /// not a unit vector, a text twice) is an error, never a panic.
    pub fn from_bytes(bytes: &[u8], embed_dim: usize) -> Result<Self> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(bad("not a text bank"));
        }
        if r.u32()? != FORMAT as usize {
            return Err(bad("another format version"));
        }
        if r.take(16)? != templates_digest().as_bytes() {
            return Err(bad("made with other prompt templates"));
        }
        let integer = match r.take(1)? {
            [0] => false,
            [1] => true,
            _ => return Err(bad("bad arithmetic flag")),
        };
        if r.u32()? != embed_dim {
            return Err(bad("made for a model of another embedding size"));
        }
        let count = r.u32()?;
        if count > TextBank::CAPACITY {
            return Err(bad("more texts than a bank holds"));
        }
        let mut entries: Vec<(String, Ensemble)> = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()?;
            if len > MAX_TEXT_BYTES {
                return Err(bad("a text longer than any label"));
            }
            let text = std::str::from_utf8(r.take(len)?)
                .map_err(|_| bad("a text that is not UTF-8"))?
                .to_string();
            let ensemble = Ensemble::from_bytes(r.take(embed_dim * 4 + 1)?, embed_dim)
                .ok_or_else(|| bad("a feature that is not an ensemble feature"))?;
            if entries.iter().any(|(t, _)| *t == text) {
                return Err(bad("a text twice"));
            }
            entries.push((text, ensemble));
        }
        if !r.0.is_empty() {
            return Err(bad("bytes after the last text"));
        }
        Ok(Self { integer, entries })
    }
}

fn bad(why: &str) -> ClipError {
    ClipError::Pack(format!("{BANK_FILE}: {why}"))
}

/// What is left of a stored bank's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n).ok_or_else(|| bad("cut short"))?;
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
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

    /// A bank for `model` holding a pack's stored features ([`StoredBank`]'s bytes, as
    /// `Loaded::text_bank` gives them) where the model computes features the way the
    /// converter did (integer products or floats); otherwise empty.
    pub fn with_stored(stored: Option<&[u8]>, model: &Clip) -> Result<Self> {
        let mut bank = Self::new();
        if let Some(bytes) = stored {
            let stored = StoredBank::from_bytes(bytes, model.config.embed_dim)?;
            if stored.integer == model.text_model.is_integer() {
                for (text, ensemble) in stored.entries {
                    bank.insert(text, ensemble);
                }
            }
        }
        Ok(bank)
    }

    /// The held features of `texts`, as a pack's [`StoredBank`] (texts not held are left out).
    pub fn stored(&self, texts: &[String], integer: bool) -> StoredBank {
        let mut entries: Vec<(String, Ensemble)> = Vec::new();
        for text in texts {
            if let Some(ensemble) = self.get(text)
                && !entries.iter().any(|(t, _)| t == text)
            {
                entries.push((text.clone(), ensemble.clone()));
            }
        }
        StoredBank { integer, entries }
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
    let templates = templates_digest();
    let text = hex(&Sha256::digest(text.as_bytes())[..16]);
    format!("v{FORMAT}/{model_id}/{templates}/{text}")
}

/// The official [`TEMPLATES`]' digest: 16 hex digits.
fn templates_digest() -> String {
    let mut templates = Sha256::new();
    for t in TEMPLATES {
        templates.update(t.as_bytes());
        templates.update([0]);
    }
    hex(&templates.finalize()[..8])
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
    fn a_stored_bank_round_trips_and_bad_files_are_refused() {
        let ensemble = |i, truncated| Ensemble {
            feature: unit(8, i),
            truncated,
        };
        let stored = StoredBank {
            integer: true,
            entries: vec![
                ("cat".into(), ensemble(1, false)),
                ("日本".into(), ensemble(5, true)),
            ],
        };
        let bytes = stored.to_bytes();
        assert_eq!(StoredBank::from_bytes(&bytes, 8).unwrap(), stored);
        let empty = StoredBank {
            integer: false,
            entries: vec![],
        };
        // An empty bank records no size; it is still refused for a model it cannot describe.
        assert!(StoredBank::from_bytes(&empty.to_bytes(), 8).is_err());
        assert!(
            StoredBank::from_bytes(&bytes, 16).is_err(),
            "another model's size"
        );
        // Every cut is refused, none panics.
        for len in 0..bytes.len() {
            assert!(
                StoredBank::from_bytes(&bytes[..len], 8).is_err(),
                "cut at {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StoredBank::from_bytes(&longer, 8).is_err());
        let edit = |at: usize, value: u8| {
            let mut b = bytes.clone();
            b[at] = value;
            StoredBank::from_bytes(&b, 8)
        };
        assert!(edit(0, b'X').is_err(), "magic");
        assert!(edit(4, 9).is_err(), "version");
        assert!(edit(8, b'!').is_err(), "templates");
        assert!(edit(24, 2).is_err(), "arithmetic flag");
        // magic 0..4, version 4..8, templates 8..24, flag 24, size 25..29, count 29..33, then
        // "cat": its length 33..37, the text 37..40, its feature 40..72 and flag 72.
        assert!(edit(32, 0xff).is_err(), "count beyond the capacity");
        assert!(edit(36, 0xff).is_err(), "text length");
        assert!(edit(37, 0xff).is_err(), "text not UTF-8");
        assert!(
            edit(47, 0x40).is_err(),
            "feature not a unit vector (1.0 → 4.0)"
        );
        assert!(edit(72, 7).is_err(), "truncation flag");
        let twice = StoredBank {
            integer: false,
            entries: vec![
                ("a".into(), ensemble(0, false)),
                ("a".into(), ensemble(1, false)),
            ],
        };
        assert!(StoredBank::from_bytes(&twice.to_bytes(), 8).is_err());
    }

    #[test]
    fn the_bank_exports_what_it_holds_in_the_order_asked() {
        let mut bank = TextBank::new();
        let row = |i| Ensemble {
            feature: unit(4, i),
            truncated: false,
        };
        bank.insert("a".into(), row(0));
        bank.insert("b".into(), row(1));
        let texts: Vec<String> = ["b", "x", "a", "b"].map(String::from).to_vec();
        let stored = bank.stored(&texts, true);
        assert!(stored.integer);
        assert_eq!(
            stored.entries,
            vec![("b".into(), row(1)), ("a".into(), row(0))]
        );
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
