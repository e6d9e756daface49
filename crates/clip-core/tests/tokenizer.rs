//! The shipped `www/tokenizer.json` plus our cleaning reproduce the token ids of OpenAI's
//! tokenizer (the official CLIP Surgery code's) exactly on `tests/fixtures/goldens/tokens.json`,
//! and our `fix_text` reproduces ftfy's on `tests/fixtures/goldens/mojibake.json` (both written
//! by `tests/reference/make_tokenizer.py`).

use std::path::PathBuf;

use clip_core::input::tokenizer::clean::{clean_text, fix_text};
use clip_core::input::tokenizer::{CONTEXT_LENGTH, ClipTokenizer, EOT, SOT, TokenizerError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    text: String,
    /// The reference's cleaned text (`whitespace_clean(basic_clean(text)).lower()`).
    clean: String,
    /// How many BPE tokens the reference made of it, before SOT/EOT and truncation.
    length: usize,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Mojibake {
    /// Which family of `make_tokenizer.py`'s corpus the text comes from.
    kind: String,
    text: String,
    /// `ftfy.fix_text(text)`.
    fixed: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tokenizer() -> ClipTokenizer {
    let json = std::fs::read(repo().join("www/tokenizer.json")).expect("www/tokenizer.json");
    ClipTokenizer::from_bytes(&json).expect("valid tokenizer.json")
}

fn read_json<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = repo().join("tests/fixtures/goldens").join(name);
    serde_json::from_slice(&std::fs::read(path).expect(name)).expect(name)
}

fn goldens() -> Vec<Golden> {
    read_json("tokens.json")
}

#[test]
fn every_golden_matches_the_reference() {
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
    let (mut truncated, mut inner_eot) = (0, 0);
    for (t, g) in batch.iter().zip(&goldens) {
        assert_eq!(t.ids.len(), CONTEXT_LENGTH, "{:?}", g.text);
        assert_eq!(t.ids[0], SOT, "{:?}", g.text);
        // The framing EOT follows the tokens, then zeros.
        let last = g.length.min(CONTEXT_LENGTH - 2) + 1;
        assert_eq!(t.ids[last], EOT, "{:?}", g.text);
        assert!(
            t.ids[last + 1..].iter().all(|&id| id == 0),
            "{:?}: padding",
            g.text
        );
        // The reference reads the feature at `argmax`: the first EOT, earlier where the text
        // holds `<|endoftext|>`.
        let first = g.ids.iter().position(|&id| id == EOT);
        assert_eq!(Some(t.eot), first, "{:?}", g.text);
        assert_eq!(t.truncated, g.length > CONTEXT_LENGTH - 2, "{:?}", g.text);
        truncated += usize::from(t.truncated);
        inner_eot += usize::from(t.eot < last);
    }
    assert!(truncated >= 3, "goldens should exercise truncation");
    assert!(inner_eot >= 5, "goldens should contain <|endoftext|>");
}

#[test]
fn the_feature_is_read_at_the_first_end_of_text() {
    let tokenizer = tokenizer();
    // SOT a photo of a cat EOT dog EOT: OpenAI's special string, where its regex starts a match.
    let t = tokenizer
        .encode("a photo of a cat<|endoftext|>dog")
        .unwrap();
    assert_eq!(&t.ids[5..9], &[2368, EOT, 1929, EOT]);
    assert_eq!((t.eot, t.truncated), (6, false));
    assert_eq!(
        tokenizer
            .encode("A photo of a cat<|ENDOFTEXT|>")
            .unwrap()
            .eot,
        6
    );
    assert_eq!(
        tokenizer.encode("<|startoftext|>").unwrap().ids[..3],
        [SOT, SOT, EOT]
    );
    // Inside a run of punctuation it is plain text; open_clip's names always are.
    for text in [
        "a photo of a cat!<|endoftext|>",
        "a photo of a cat<end_of_text>dog",
    ] {
        let t = tokenizer.encode(text).unwrap();
        assert!(t.eot > 7, "{text:?}");
        assert_eq!(t.ids[..t.eot].iter().filter(|&&id| id == EOT).count(), 0);
    }
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
    // One with open_clip's special tokens (as this project used to ship) tokenizes
    // `<|endoftext|>` unlike the reference.
    let json = std::fs::read_to_string(repo().join("www/tokenizer.json")).unwrap();
    let open_clip = json.replace(
        r#""content":"<|endoftext|>""#,
        r#""content":"<end_of_text>""#,
    );
    assert_ne!(open_clip, json);
    assert!(matches!(
        ClipTokenizer::from_bytes(open_clip.as_bytes()),
        Err(TokenizerError::InvalidJson(_))
    ));
}

#[test]
fn fix_text_matches_ftfy() {
    let goldens: Vec<Mojibake> = read_json("mojibake.json");
    assert!(
        goldens.len() >= 800,
        "only {} mojibake goldens",
        goldens.len()
    );
    let repaired = goldens.iter().filter(|g| g.fixed != g.text).count();
    assert!(repaired >= 400, "only {repaired} goldens change");
    let failures: Vec<String> = goldens
        .iter()
        .filter_map(|g| {
            let fixed = fix_text(&g.text);
            (fixed != g.fixed).then(|| {
                format!(
                    "{} {:?}: ours {fixed:?}, ftfy {:?}",
                    g.kind, g.text, g.fixed
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        goldens.len(),
        failures.join("\n")
    );
}

#[test]
fn mojibake_is_repaired_before_tokenizing() {
    let tokenizer = tokenizer();
    assert_eq!(clean_text("CafÃ© crÃ¨me"), "café crème");
    assert_eq!(
        tokenizer.encode("a photo of a cafÃ©").unwrap(),
        tokenizer.encode("a photo of a café").unwrap()
    );
}

/// Tokens read back as text (the multimodal view's token buttons): words without the
/// end-of-word mark, SOT/EOT by name, byte-level symbols turned back into their characters.
#[test]
fn tokens_read_back_as_their_text() {
    let t = tokenizer();
    let read = |text: &str| {
        let tokens = t.encode(text).unwrap();
        tokens.ids[..=tokens.eot]
            .iter()
            .map(|&id| t.token_text(id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read("A photo of a cat."),
        [
            "<|startoftext|>",
            "a",
            "photo",
            "of",
            "a",
            "cat",
            ".",
            "<|endoftext|>"
        ]
    );
    // Non-ASCII letters are two bytes each, drawn as two byte symbols ("Ã©" for "é").
    let word = read("café");
    assert_eq!(word[1..word.len() - 1].concat(), "café");
    assert_eq!(t.token_text(u32::MAX), format!("<{}>", u32::MAX));
}
