//! CLIP's text tokenizer, token for token the one the reference runs: OpenAI's
//! `clip/simple_tokenizer.py` and `clip.tokenize(…, truncate=True)`, as the official CLIP
//! Surgery code uses them.
//!
//! The pipeline is `text → clean_text → regex split → byte-level → BPE → SOT … EOT`, padded
//! with zeros to [`CONTEXT_LENGTH`]. The split and the BPE come from `www/tokenizer.json`
//! (written by `tests/reference/make_tokenizer.py`); the cleaning is ours, because
//! `tokenizers` has no normaliser that does what ftfy and Python's `html.unescape` do. The
//! goldens in `tests/fixtures/goldens/` pin all of it to the reference: token ids in
//! `tokens.json`, ftfy's repairs in `mojibake.json`.

pub mod clean;

mod chars;
mod mojibake;

use tokenizers::{
    Model, ModelWrapper, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    PreTokenizerWrapper, Token, Tokenizer,
};

use crate::input::tokenizer::clean::clean_text;

/// Token positions the text encoder sees (every CLIP model).
pub const CONTEXT_LENGTH: usize = 77;
/// Start-of-text id (`<|startoftext|>`).
pub const SOT: u32 = 49406;
/// End-of-text id (`<|endoftext|>`); the text feature is read at its first position.
pub const EOT: u32 = 49407;
/// 256 byte symbols, the same with `</w>`, 48894 merges, SOT and EOT.
const VOCAB_SIZE: usize = 49408;

/// Why a tokenizer could not be loaded or could not encode.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The bytes are not a CLIP `tokenizer.json` as `make_tokenizer.py` writes it.
    #[error("invalid tokenizer.json: {0}")]
    InvalidJson(String),
    /// `tokenizers` failed while splitting or applying BPE.
    #[error("tokenization failed: {0}")]
    Encode(String),
}

/// One text as the text encoder takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// `SOT, tokens…, EOT, 0…`: always [`CONTEXT_LENGTH`] ids.
    pub ids: Vec<u32>,
    /// Index of the first [`EOT`] in `ids`, where the text feature is read: the reference
    /// reads it at `ids.argmax()`, and a text that contains `<|endoftext|>` has more than one.
    pub eot: usize,
    /// The text had more than `CONTEXT_LENGTH - 2` tokens and its tail was cut.
    pub truncated: bool,
}

/// CLIP's BPE tokenizer with the reference's text cleaning, truncation and padding.
#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    pre_tokenizer: PreTokenizerWrapper,
    model: ModelWrapper,
    /// `(text, id)` of the special tokens; the split regex isolates them.
    specials: Vec<(String, u32)>,
}

impl ClipTokenizer {
    /// Loads a `tokenizer.json` made by `tests/reference/make_tokenizer.py`.
    pub fn from_bytes(json: &[u8]) -> Result<Self, TokenizerError> {
        let tokenizer = Tokenizer::from_bytes(json).map_err(invalid)?;
        let size = tokenizer.get_vocab_size(true);
        if size != VOCAB_SIZE {
            return Err(invalid(format!("{size} tokens, CLIP has {VOCAB_SIZE}")));
        }
        // Cleaning, SOT/EOT and padding happen here; a file that also did them would do them
        // twice, so refuse it rather than silently ignore its parts.
        if tokenizer.get_normalizer().is_some() || tokenizer.get_post_processor().is_some() {
            return Err(invalid("expected no normalizer and no post-processor"));
        }
        let pre_tokenizer = tokenizer
            .get_pre_tokenizer()
            .cloned()
            .ok_or_else(|| invalid("no pre-tokenizer"))?;
        let specials: Vec<(String, u32)> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, token)| (token.content, id))
            .collect();
        // OpenAI's names: a file with open_clip's (`<end_of_text>`) would tokenize texts that
        // contain either spelling unlike the reference.
        for (name, id) in [("<|startoftext|>", SOT), ("<|endoftext|>", EOT)] {
            if !specials.iter().any(|(s, i)| s == name && *i == id) {
                return Err(invalid(format!("special token {id} is not {name}")));
            }
        }
        Ok(Self {
            pre_tokenizer,
            model: tokenizer.get_model().clone(),
            specials,
        })
    }

    /// Tokenizes one text: cleaned, BPE-encoded, framed by SOT/EOT, cut and zero-padded to 77.
    pub fn encode(&self, text: &str) -> Result<Tokenized, TokenizerError> {
        Ok(frame(&self.bpe(&clean_text(text))?))
    }

    /// [`ClipTokenizer::encode`] for each text.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Tokenized>, TokenizerError> {
        texts.iter().map(|t| self.encode(t)).collect()
    }

    /// How token `id` reads: its BPE string with the byte-level symbols turned back into text
    /// (lossily where a character spans tokens) and the end-of-word mark `</w>` dropped;
    /// SOT and EOT by name.
    pub fn token_text(&self, id: u32) -> String {
        let Some(symbols) = self.model.id_to_token(id) else {
            return format!("<{id}>");
        };
        if self.specials.iter().any(|&(_, special)| special == id) {
            return symbols;
        }
        let symbols = symbols.strip_suffix("</w>").unwrap_or(&symbols);
        let bytes: Vec<u8> = symbols.chars().filter_map(byte_of_symbol).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// BPE ids of already-cleaned text, without SOT/EOT.
    ///
    /// `Tokenizer::encode` is not used: it cuts added tokens out of the text wherever they
    /// occur, whereas the reference only honours `<|endoftext|>` where its regex starts a
    /// match (`"!<|endoftext|>"` is punctuation to it). Here the split regex, which lists the
    /// two special strings first as the reference's does, decides, and a piece that is exactly
    /// a special token maps to its id (the reference's `cache` entries).
    fn bpe(&self, clean: &str) -> Result<Vec<u32>, TokenizerError> {
        let err = |e: tokenizers::Error| TokenizerError::Encode(e.to_string());
        let mut pieces = PreTokenizedString::from(clean);
        self.pre_tokenizer.pre_tokenize(&mut pieces).map_err(err)?;
        pieces
            .tokenize(|piece| {
                let text = piece.get();
                match self.specials.iter().find(|(s, _)| s == text) {
                    Some(&(_, id)) => Ok(vec![Token::new(id, text.to_owned(), (0, text.len()))]),
                    None => self.model.tokenize(text),
                }
            })
            .map_err(err)?;
        Ok(pieces
            .get_splits(OffsetReferential::Original, OffsetType::None)
            .into_iter()
            .flat_map(|(_, _, tokens)| tokens.iter().flatten().map(|t| t.id))
            .collect())
    }
}

/// The byte a byte-level BPE symbol stands for (GPT-2's and CLIP's `bytes_to_unicode`: the
/// printable Latin-1 bytes are themselves, the other 68 are `U+0100` onwards in byte order).
fn byte_of_symbol(symbol: char) -> Option<u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let code = u32::from(symbol);
    if let Ok(b) = u8::try_from(code)
        && printable(b)
    {
        return Some(b);
    }
    let n = usize::try_from(code.checked_sub(256)?).ok()?;
    (0..=255u8).filter(|&b| !printable(b)).nth(n)
}

fn invalid(msg: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::InvalidJson(msg.to_string())
}

/// `[SOT] + tokens + [EOT]`, cut to 77 with EOT forced last, zero-padded (the official
/// `clip.tokenize(truncate=True)`), and the position of the first EOT.
fn frame(tokens: &[u32]) -> Tokenized {
    let room = CONTEXT_LENGTH - 2;
    let mut ids = Vec::with_capacity(CONTEXT_LENGTH);
    ids.push(SOT);
    ids.extend_from_slice(&tokens[..tokens.len().min(room)]);
    ids.push(EOT);
    let last = ids.len() - 1;
    let eot = ids.iter().position(|&id| id == EOT).unwrap_or(last);
    ids.resize(CONTEXT_LENGTH, 0);
    Tokenized {
        ids,
        eot,
        truncated: tokens.len() > room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_pads_and_truncates() {
        let short = frame(&[1, 2, 3]);
        assert_eq!(&short.ids[..6], &[SOT, 1, 2, 3, EOT, 0]);
        assert_eq!(
            (short.ids.len(), short.eot, short.truncated),
            (CONTEXT_LENGTH, 4, false)
        );

        let exact = frame(&[7; 75]);
        assert_eq!((exact.eot, exact.truncated), (76, false));

        let long = frame(&[7; 76]);
        assert_eq!(
            (long.ids.len(), long.eot, long.truncated),
            (CONTEXT_LENGTH, 76, true)
        );
        assert_eq!(long.ids[76], EOT);

        let empty = frame(&[]);
        assert_eq!((&empty.ids[..3], empty.eot), (&[SOT, EOT, 0][..], 1));
    }
}
