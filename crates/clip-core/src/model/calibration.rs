//! What calibrated 4-bit rounding ([`crate::weights::gptq`]) needs from a model: the second
//! moments of the text tower's layer inputs over prompts like the ones the product runs —
//! CLIP Surgery's 85 templates, each filled with a set of calibration words.
//!
//! The words are everyday objects and scenes that the app's defaults, the README's evaluation
//! labels and the tests never use, so that a fidelity figure measured on those labels is a
//! held-out one.
//!
//! Only the layers that tolerate 4 bits once calibrated are calibrated ([`CALIBRATED`]): on
//! full-size random-init ViT-B/16 with 16 held-out labels (lowest map correlation against f32;
//! vision tower and token table 4-bit throughout), q/k/fc1 4-bit 0.979 at 95.3 MB, q/k/fc2 0.965,
//! every text layer 0.935 at 85.9 MB — and the same every-layer 4-bit rounded to the nearest
//! code 0.666. The value and output projections carry what distinguishes one label from another
//! (feature surgery keeps only that), and stay int8.

use std::collections::HashMap;

use burn::tensor::Tensor;

use crate::error::{ClipError, Result};
use crate::input::tokenizer::ClipTokenizer;
use crate::model::Clip;
use crate::model::text::Site;
use crate::surgery::prompts::TEMPLATES;
use crate::weights::gptq::Gram;
use crate::weights::tree::ClipTensors;

/// Calibration words (see the module docs).
pub const WORDS: [&str; 16] = [
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "chair", "horse", "sheep", "sofa",
    "train", "tree", "building", "road", "mountain", "book",
];

/// The text layers stored at 4 bits when calibrated: their inputs' [`Site`] (see the module
/// docs for why these).
pub const CALIBRATED: [Site; 2] = [Site::Attention, Site::Mlp];

/// Input moments of the text tower's calibrated layers, by weight name.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    grams: HashMap<String, Gram>,
}

impl Calibration {
    /// No calibration: every weight is rounded to its nearest code.
    pub fn none() -> Self {
        Self::default()
    }

    /// The text tower of `model` (the full-precision one) on the 85 templates, each filled
    /// with every one of `words`. `progress(done, total)` counts templates.
    pub fn text(
        model: &Clip,
        tokenizer: &ClipTokenizer,
        words: &[&str],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let text = &model.text_model;
        let width = text.config.tower.width;
        let mut grams: Vec<[Gram; CALIBRATED.len()]> = text
            .layers
            .iter()
            .map(|_| CALIBRATED.map(|_| Gram::new(width)))
            .collect();
        let mut failed = None;
        for (done, template) in TEMPLATES.iter().enumerate() {
            let prompts: Vec<String> = words
                .iter()
                .map(|w| template.replacen("{}", w, 1))
                .collect();
            let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let batch = tokenizer.encode_batch(&prompts)?;
            text.observe_inputs(&batch, model.device(), &mut |layer, site, x| {
                let Some(i) = CALIBRATED.iter().position(|&s| s == site) else {
                    return;
                };
                if let Err(e) = add_moment(&mut grams[layer][i], x) {
                    failed.get_or_insert(e);
                }
            })?;
            if let Some(e) = failed.take() {
                return Err(e);
            }
            progress(done + 1, TEMPLATES.len());
        }
        let tensors = ClipTensors::new(&model.config);
        let mut named = HashMap::new();
        for (layer, [attention, mlp]) in tensors.text.layers.iter().zip(grams) {
            named.insert(layer.q_proj.weight.name.clone(), attention.clone());
            named.insert(layer.k_proj.weight.name.clone(), attention);
            named.insert(layer.fc1.weight.name.clone(), mlp);
        }
        Ok(Self { grams: named })
    }

    /// The input moment of the layer whose weight is `name`, if calibrated.
    pub fn gram(&self, name: &str) -> Option<&Gram> {
        self.grams.get(name)
    }
}

/// Adds `xᵀx` of the inputs `x` (`[T, in]`) to `gram`.
fn add_moment(gram: &mut Gram, x: Tensor<2>) -> Result<()> {
    let rows = x.dims()[0];
    let xtx = x.clone().transpose().matmul(x).into_data();
    let xtx = xtx
        .try_to_vec::<f32>()
        .map_err(|e| ClipError::Config(format!("an input moment: {e:?}")))?;
    gram.add(&xtx, rows)
}
