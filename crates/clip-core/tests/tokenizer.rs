//! The shipped `www/tokenizer.json` plus our cleaning reproduce open_clip's token ids exactly
//! on `tests/fixtures/goldens/tokens.json` (written by `tests/reference/make_tokenizer.py`).

use std::path::PathBuf;

use clip_core::tokenizer::{CONTEXT_LENGTH, ClipTokenizer, EOT, SOT, TokenizerError, clean_text};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    text: String,
    /// open_clip's cleaned text (`_clean_lower`).
    clean: String,
    /// How many BPE tokens the reference made of it, before SOT/EOT and truncation.
    length: usize,
    ids: Vec<u32>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tokenizer() -> ClipTokenizer {
    let json = std::fs::read(repo().join("www/tokenizer.json")).expect("www/tokenizer.json");
    ClipTokenizer::from_bytes(&json).expect("valid tokenizer.json")
}

fn goldens() -> Vec<Golden> {
    let path = repo().join("tests/fixtures/goldens/tokens.json");
    serde_json::from_slice(&std::fs::read(path).expect("tokens.json")).expect("valid tokens.json")
}

#[test]
fn every_golden_matches_open_clip() {
    let tokenizer = tokenizer();
    let goldens = goldens();
    assert!(goldens.len() >= 150, "only {} goldens", goldens.len());
    let mut failures = Vec::new();
    for g in &goldens {
        let clean = clean_text(&g.text);
        let t = tokenizer.encode(&g.text).expect("encode");
        if clean != g.clean {
            failures.push(format!(
                "{:?}: cleaned to {clean:?}, reference {:?}",
                g.text, g.clean
            ));
        } else if t.ids != g.ids {
            failures.push(format!(
                "{:?}: ids\n  ours {:?}\n  ref  {:?}",
                g.text, t.ids, g.ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} goldens differ:\n{}",
        failures.len(),
        goldens.len(),
        failures.join("\n")
    );
}

#[test]
fn eot_and_truncation_agree_with_the_ids() {
    let tokenizer = tokenizer();
    let goldens = goldens();
    let texts: Vec<&str> = goldens.iter().map(|g| g.text.as_str()).collect();
    let batch = tokenizer.encode_batch(&texts).expect("encode_batch");
    assert_eq!(batch.len(), goldens.len());
    let mut truncated = 0;
    for (t, g) in batch.iter().zip(&goldens) {
        assert_eq!(t.ids.len(), CONTEXT_LENGTH, "{:?}", g.text);
        assert_eq!(t.ids[0], SOT, "{:?}", g.text);
        assert_eq!(t.ids[t.eot], EOT, "{:?}", g.text);
        assert!(
            t.ids[t.eot + 1..].iter().all(|&id| id == 0),
            "{:?}: padding",
            g.text
        );
        assert_eq!(t.eot, g.length.min(CONTEXT_LENGTH - 2) + 1, "{:?}", g.text);
        assert_eq!(t.truncated, g.length > CONTEXT_LENGTH - 2, "{:?}", g.text);
        truncated += usize::from(t.truncated);
    }
    assert!(truncated >= 3, "goldens should exercise truncation");
}

#[test]
fn long_input_is_truncated_with_eot_last() {
    let tokenizer = tokenizer();
    let long = "a photo of a cat ".repeat(40);
    let t = tokenizer.encode(&long).unwrap();
    assert!(t.truncated);
    assert_eq!(
        (t.ids.len(), t.eot, t.ids[CONTEXT_LENGTH - 1]),
        (CONTEXT_LENGTH, CONTEXT_LENGTH - 1, EOT)
    );
    assert!(
        t.ids[1..CONTEXT_LENGTH - 1]
            .iter()
            .all(|&id| id != 0 && id != EOT)
    );

    // "a" is one token: 75 of them fill the context exactly, 76 do not fit.
    let fits = tokenizer.encode(&["a"; 75].join(" ")).unwrap();
    assert_eq!((fits.eot, fits.truncated), (CONTEXT_LENGTH - 1, false));
    let spills = tokenizer.encode(&["a"; 76].join(" ")).unwrap();
    assert_eq!((spills.eot, spills.truncated), (CONTEXT_LENGTH - 1, true));
    assert_eq!(fits.ids, spills.ids);
}

#[test]
fn eot_follows_the_text() {
    let tokenizer = tokenizer();
    let empty = tokenizer.encode("").unwrap();
    assert_eq!(
        (&empty.ids[..3], empty.eot, empty.truncated),
        (&[SOT, EOT, 0][..], 1, false)
    );
    // "a photo of a cat." is a, photo, of, a, cat, "." : six tokens.
    let t = tokenizer.encode("A photo of a cat.").unwrap();
    assert_eq!((t.eot, t.truncated), (7, false));
}

#[test]
fn rejects_a_file_that_is_not_a_clip_tokenizer() {
    assert!(matches!(
        ClipTokenizer::from_bytes(b"{"),
        Err(TokenizerError::InvalidJson(_))
    ));
    assert!(matches!(
        ClipTokenizer::from_bytes(b"[]"),
        Err(TokenizerError::InvalidJson(_))
    ));
}
