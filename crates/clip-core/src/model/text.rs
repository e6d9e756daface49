//! The causal text transformer.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::TextConfig;
use crate::error::{ClipError, Result};
use crate::input::tokenizer::Tokenized;
use crate::model::cpu;
use crate::model::encoder::EncoderLayer;
use crate::model::nn::{LayerNorm, upload};
use crate::weights::source::{Matrix, WeightSource};
use crate::weights::tree::TextTensors;

/// Additive mask value for future positions: large enough that `exp` underflows to exactly 0,
/// finite so that no backend has to handle infinities in its softmax.
const MASKED: f32 = -1e9;

/// Hugging Face `CLIPTextTransformer`, pooled at the end-of-text token.
#[derive(Debug, Clone)]
pub struct TextTransformer {
    /// Sizes.
    pub config: TextConfig,
    /// Token embedding `[V, W]`, kept on the host (quantized if the weights are): token ids
    /// are host data, so the lookup is a row copy, and a 49 408-row table never has to fit a GPU
    /// binding (ViT-L's is 152 MB in f32).
    pub token_embedding: Matrix,
    /// Position embedding `[context, W]`.
    pub position_embedding: Tensor<2>,
    /// Residual attention blocks (causal).
    pub layers: Vec<EncoderLayer>,
    /// Final LayerNorm (`ln_final`).
    pub final_layer_norm: LayerNorm,
}

impl TextTransformer {
    /// Whether its products run as integers (a quantized pack on the CPU).
    pub fn is_integer(&self) -> bool {
        self.layers.first().is_some_and(|l| l.mlp.fc1.is_integer())
    }

    /// Loads the text tower.
    pub fn load(
        weights: &dyn WeightSource,
        tensors: &TextTensors,
        config: &TextConfig,
        device: &Device,
    ) -> Result<Self> {
        let eps = config.tower.layer_norm_eps;
        let layers = tensors
            .layers
            .iter()
            .map(|layer| EncoderLayer::load(weights, layer, &config.tower, device))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            token_embedding: weights.table(&tensors.token_embedding)?,
            position_embedding: upload(weights.float(&tensors.position_embedding)?, device),
            layers,
            final_layer_norm: LayerNorm::load(weights, &tensors.final_layer_norm, eps, device)?,
        })
    }

    /// Pooled text states `[B, W]` (final LayerNorm applied, not projected).
    pub fn forward(&self, batch: &[Tokenized], device: &Device) -> Result<Tensor<2>> {
        self.forward_continued(batch, None, device)
    }

    /// Runs `prefixes` (token ids each, SOT first, no EOT) and keeps every layer's keys and
    /// values: what [`Self::forward_continued`] needs to run only the rest of prompts that
    /// start with them.
    pub fn prefix_states(&self, prefixes: Vec<Vec<u32>>, device: &Device) -> Result<PrefixStates> {
        let sequences: Vec<Sequence> = prefixes
            .iter()
            .map(|ids| Sequence {
                prefix: None,
                ids,
                start: 0,
            })
            .collect();
        let (_, layers) = self.run(&sequences, None, true, None, device)?;
        let mut offsets = Vec::with_capacity(prefixes.len());
        let mut next = 0;
        for ids in &prefixes {
            offsets.push(next);
            next += ids.len();
        }
        Ok(PrefixStates {
            ids: prefixes,
            offsets,
            layers,
        })
    }

    /// Pooled text states `[B, W]` of `batch`, where prompt `i` may continue prefix
    /// `continues[i]` of `prefixes`: its tokens are checked to start with the prefix's, and then
    /// only the tokens after it run, attending to the prefix's kept keys and values. With a
    /// causal mask no position sees a later one, so this is the same computation as running the
    /// whole prompt (up to float summation order); a prompt whose tokens do not start with its
    /// prefix runs whole.
    ///
    /// Only the positions up to each prompt's end-of-text token run, and prompts are packed
    /// without padding for every matrix product (only attention, a small part of the work,
    /// sees a padded layout): a template prompt of CLIP Surgery's ensemble has ~3 tokens of its
    /// own after a shared prefix of ~6, against the 77 of the reference.
    pub fn forward_continued(
        &self,
        batch: &[Tokenized],
        prefixes: Option<(&PrefixStates, &[usize])>,
        device: &Device,
    ) -> Result<Tensor<2>> {
        if batch.is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        let sequences: Vec<Sequence> = batch
            .iter()
            .enumerate()
            .map(|(i, tokens)| {
                let whole = &tokens.ids[..=tokens.eot.min(tokens.ids.len() - 1)];
                let continued = prefixes.and_then(|(states, which)| {
                    let p = *which.get(i)?;
                    let prefix = states.ids.get(p)?;
                    let rest = whole.strip_prefix(prefix.as_slice())?;
                    (!rest.is_empty()).then_some(Sequence {
                        prefix: Some(p),
                        ids: rest,
                        start: prefix.len(),
                    })
                });
                continued.unwrap_or(Sequence {
                    prefix: None,
                    ids: whole,
                    start: 0,
                })
            })
            .collect();
        let states = prefixes.map(|(states, _)| states);
        let (x, _) = self.run(&sequences, states, false, None, device)?;
        let mut last = 0;
        let eot_rows: Vec<i64> = sequences
            .iter()
            .map(|s| {
                last += s.ids.len();
                (last - 1) as i64
            })
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(eot_rows, [batch.len()]), device);
        Ok(self.final_layer_norm.forward(x.select(0, rows)))
    }

    /// Every token's final state `[T, W]` (final LayerNorm applied, not projected) for one
    /// text, SOT to its first EOT: the per-token features of the paper's multimodal
    /// visualisation (§5.6). Under the causal mask token `i` sees tokens `0..=i` only, so the
    /// EOT row is [`Self::forward`]'s pooled state.
    pub fn token_states(&self, tokens: &Tokenized, device: &Device) -> Result<Tensor<2>> {
        let sequence = Sequence {
            prefix: None,
            ids: &tokens.ids[..=tokens.eot.min(tokens.ids.len() - 1)],
            start: 0,
        };
        let (x, _) = self.run(&[sequence], None, false, None, device)?;
        Ok(self.final_layer_norm.forward(x))
    }

    /// Runs `batch` whole and hands `observe` the input of every linear product, `[T, in]`
    /// over the T tokens up to each prompt's end-of-text (the only ones its feature reads):
    /// what calibrated rounding ([`crate::weights::gptq`]) weighs errors by.
    pub fn observe_inputs(
        &self,
        batch: &[Tokenized],
        device: &Device,
        observe: &mut dyn FnMut(usize, Site, Tensor<2>),
    ) -> Result<()> {
        let sequences: Vec<Sequence> = batch
            .iter()
            .map(|tokens| Sequence {
                prefix: None,
                ids: &tokens.ids[..=tokens.eot.min(tokens.ids.len() - 1)],
                start: 0,
            })
            .collect();
        self.run(&sequences, None, false, Some(observe), device)?;
        Ok(())
    }

    /// The tower on packed sequences: returns the last layer's states `[T, W]` (T = all
    /// tokens of all sequences, in order) and, when `record`, each layer's keys and values.
    /// `observe(layer, site, input)` sees the inputs of the layers' products.
    fn run(
        &self,
        sequences: &[Sequence],
        prefixes: Option<&PrefixStates>,
        record: bool,
        mut observe: Option<&mut dyn FnMut(usize, Site, Tensor<2>)>,
        device: &Device,
    ) -> Result<(Tensor<2>, Vec<(Tensor<2>, Tensor<2>)>)> {
        let w = self.config.tower.width;
        let vocab = self.config.vocab_size;
        let context = self.config.context_length;
        let packing = Packing::new(sequences, prefixes, context, device)?;
        let t = packing.tokens;
        let mut embedded = Vec::with_capacity(t * w);
        let mut positions = Vec::with_capacity(t);
        for sequence in sequences {
            for (j, &id) in sequence.ids.iter().enumerate() {
                let id = id as usize;
                if id >= vocab {
                    return Err(ClipError::Config(format!(
                        "token id {id} is outside the {vocab}-token vocabulary"
                    )));
                }
                self.token_embedding.extend_row(id, &mut embedded);
                positions.push((sequence.start + j) as i64);
            }
        }
        let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [t]), device);
        let mut x = Tensor::<2>::from_data(TensorData::new(embedded, [t, w]), device)
            + self.position_embedding.clone().select(0, positions);
        let mut recorded = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let attn = &layer.self_attn;
            let mut seen = |site, input: &Tensor<2>| {
                if let Some(observe) = observe.as_mut() {
                    observe(l, site, input.clone());
                }
            };
            let h = layer.layer_norm1.forward(x.clone());
            seen(Site::Attention, &h);
            let q = attn.q_proj.forward(h.clone());
            let k = attn.k_proj.forward(h.clone());
            let v = attn.v_proj.forward(h);
            if record {
                recorded.push((k.clone(), v.clone()));
            }
            let kept = prefixes.and_then(|p| p.layers.get(l));
            let out = packing.attend(q, k, v, kept, attn.heads);
            seen(Site::Mixed, &out);
            x = x + attn.out_proj.forward(out);
            let h = layer.layer_norm2.forward(x.clone());
            seen(Site::Mlp, &h);
            let hidden = layer.mlp.hidden(h);
            seen(Site::Hidden, &hidden);
            x = x + layer.mlp.fc2.forward(hidden);
        }
        Ok((x, recorded))
    }
}

/// Where in a block an input of a linear product is seen ([`TextTransformer::observe_inputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// `ln_1`'s output: the input of `q_proj`, `k_proj` and `v_proj`.
    Attention,
    /// The heads' mixed values: the input of `out_proj`.
    Mixed,
    /// `ln_2`'s output: the input of `fc1`.
    Mlp,
    /// The activation after `fc1`: the input of `fc2`.
    Hidden,
}

/// Keys and values of token prefixes at every layer ([`TextTransformer::prefix_states`]).
#[derive(Debug, Clone)]
pub struct PrefixStates {
    /// Each prefix's token ids (SOT first, no EOT).
    pub ids: Vec<Vec<u32>>,
    /// Row of each prefix's first token in the kept states.
    offsets: Vec<usize>,
    /// Per layer: keys and values `[P, W]` of all prefixes' tokens, in order.
    layers: Vec<(Tensor<2>, Tensor<2>)>,
}

/// Tokens to run: `ids` at positions `start..`, continuing prefix `prefix` (if any).
struct Sequence<'a> {
    prefix: Option<usize>,
    ids: &'a [u32],
    start: usize,
}

/// Where packed tokens go in the padded layout attention uses: `[B, S]` query slots (each
/// sequence's own tokens) against `[B, P + S]` key slots (its prefix's kept tokens, then its
/// own), with an additive mask for causality and padding.
struct Packing {
    tokens: usize,
    batch: usize,
    /// Longest sequence (own tokens).
    own: usize,
    /// Longest prefix used (0 without prefixes).
    kept: usize,
    /// `[B·S]`: the packed row of each query slot (row 0 for padding, masked).
    slots: Tensor<1, Int>,
    /// `[T]`: the query slot of each packed row.
    rows: Tensor<1, Int>,
    /// `[B·P]`: the kept row of each prefix slot (row 0 for padding, masked).
    kept_rows: Option<Tensor<1, Int>>,
    /// `[B, 1, S, P + S]`.
    mask: Tensor<4>,
}

impl Packing {
    fn new(
        sequences: &[Sequence],
        prefixes: Option<&PrefixStates>,
        context: usize,
        device: &Device,
    ) -> Result<Self> {
        let b = sequences.len();
        let own = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let prefix_len = |s: &Sequence| match (s.prefix, prefixes) {
            (Some(p), Some(states)) => states.ids.get(p).map_or(0, Vec::len),
            _ => 0,
        };
        let kept = sequences.iter().map(prefix_len).max().unwrap_or(0);
        if let Some(s) = sequences.iter().find(|s| s.start + s.ids.len() > context) {
            return Err(ClipError::Config(format!(
                "a prompt needs {} positions, the model has {context}",
                s.start + s.ids.len()
            )));
        }
        let keys = kept + own;
        let mut slots = vec![0i64; b * own];
        let mut rows = Vec::new();
        let mut kept_rows = vec![0i64; b * kept];
        let mut mask = vec![MASKED; b * own * keys];
        for (i, s) in sequences.iter().enumerate() {
            let p = prefix_len(s);
            if let (Some(which), Some(states)) = (s.prefix, prefixes) {
                let offset = states.offsets.get(which).copied().unwrap_or(0);
                for j in 0..p {
                    kept_rows[i * kept + j] = (offset + j) as i64;
                }
            }
            for j in 0..s.ids.len() {
                slots[i * own + j] = rows.len() as i64;
                rows.push((i * own + j) as i64);
                let row = &mut mask[(i * own + j) * keys..][..keys];
                row[..p].fill(0.0);
                row[kept..=kept + j].fill(0.0);
            }
        }
        let tokens = rows.len();
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        Ok(Self {
            tokens,
            batch: b,
            own,
            kept,
            slots: int(slots),
            rows: int(rows),
            kept_rows: (kept > 0).then(|| int(kept_rows)),
            mask: Tensor::<3>::from_data(TensorData::new(mask, [b, own, keys]), device)
                .unsqueeze_dim(1),
        })
    }

    /// Causal multi-head attention of the packed queries `q` over their prefix's kept keys and
    /// values (if any) and their own `k`, `v` (all `[T, W]`); returns `[T, W]`.
    fn attend(
        &self,
        q: Tensor<2>,
        k: Tensor<2>,
        v: Tensor<2>,
        kept: Option<&(Tensor<2>, Tensor<2>)>,
        heads: usize,
    ) -> Tensor<2> {
        let [_, w] = q.dims();
        let (b, s) = (self.batch, self.own);
        let pad = |x: Tensor<2>| x.select(0, self.slots.clone()).reshape([b, s, w]);
        let (mut keys, mut values) = (pad(k), pad(v));
        if let (Some((kept_k, kept_v)), Some(rows)) = (kept, &self.kept_rows) {
            let gather =
                |x: &Tensor<2>| x.clone().select(0, rows.clone()).reshape([b, self.kept, w]);
            keys = Tensor::cat(vec![gather(kept_k), keys], 1);
            values = Tensor::cat(vec![gather(kept_v), values], 1);
        }
        let split = |x: Tensor<3>| {
            let [b, n, w] = x.dims();
            x.reshape([b, n, heads, w / heads]).swap_dims(1, 2)
        };
        let scale = ((w / heads) as f64).powf(-0.5);
        let scores = split(pad(q)).matmul(split(keys).swap_dims(2, 3)) * scale + self.mask.clone();
        let out = cpu::softmax(scores).matmul(split(values)); // [B, H, S, d]
        out.swap_dims(1, 2)
            .reshape([b * s, w])
            .select(0, self.rows.clone())
    }
}
