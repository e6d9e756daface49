#!/usr/bin/env python3
"""CLIP's BPE tokenizer as a ``tokenizer.json``, plus token-id goldens from open_clip.

Run from the repository root (CPU only, a few seconds):

    /work/refvenv/bin/python tests/reference/make_tokenizer.py

What it writes:

* ``www/tokenizer.json``: OpenAI CLIP's byte-level BPE (the ``bpe_simple_vocab_16e6.txt.gz``
  merges that ship inside the ``open_clip`` package, MIT) in Hugging Face ``tokenizers``
  format, compact, since it ships to browsers. It holds the pre-tokenizer and the BPE model
  only: no normalizer and no post-processor, because text cleaning (ftfy + html.unescape +
  whitespace + lower-case), SOT/EOT, truncation and padding are done in Rust
  (``crates/clip-core/src/tokenizer.rs``), where they can follow the reference exactly.
* ``tests/fixtures/goldens/tokens.json``: ``[{"text", "clean", "length", "ids"}]`` where
  ``ids`` are the 77 ids of ``open_clip.tokenize(texts, context_length=77)`` (the reference),
  ``clean`` is open_clip's cleaned text (to tell a cleaning bug from a BPE bug) and
  ``length`` the number of BPE tokens before SOT/EOT and truncation.

The vocabulary is built exactly as ``SimpleTokenizer.__init__`` builds it (256 byte
characters, the same with ``</w>``, the first 48894 merges joined, two special tokens:
49408 ids), and the pre-tokenizer is open_clip's regex. Two quirks of the reference are kept
on purpose (see ``PATTERN``), and its special tokens keep open_clip's names
``<start_of_text>``/``<end_of_text>``: the reference recognises those two strings *in the
text* (they become ids 49406/49407), while OpenAI's ``<|endoftext|>`` is plain text to it.

Out of scope, and so absent from the goldens: ftfy's mojibake repair (``fix_encoding``,
statistical guessing of mis-decoded UTF-8) -- the script asserts that no golden string
triggers it.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import ftfy
import open_clip
import regex
from open_clip.tokenizer import _tokenizer as REFERENCE
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from tokenizers import AddedToken, Regex, Tokenizer, pre_tokenizers
from tokenizers.models import BPE

from make_fixtures import PROMPT_TEMPLATES

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_JSON = REPO / "www" / "tokenizer.json"
GOLDEN_JSON = REPO / "tests" / "fixtures" / "goldens" / "tokens.json"

CONTEXT_LENGTH = 77
SOT, EOT = "<start_of_text>", "<end_of_text>"
VOCAB_SIZE = 49408

# open_clip's pre-tokenizer regex (``SimpleTokenizer.pat``), compiled by the `regex` module with
# IGNORECASE. The text is already lower-cased, so IGNORECASE only matters through case
# folding, in exactly two places (found by scanning every code point, see
# ``check_pattern_folding``), and we spell both out so that the pattern needs no (?i), whose
# folding rules differ between regex engines:
# * `'s` also matches `'ſ` (U+017F LATIN SMALL LETTER LONG S folds to s), and so does the
#   `s` of `<start_of_text>`;
# * U+0345 COMBINING GREEK YPOGEGRAMMENI folds to a letter, so the negated class
#   `[^\s\p{L}\p{N}]` rejects it, while `[\p{L}]` does not take it either: no alternative
#   matches it and the reference silently drops it. We drop it the same way.
# The Split below keeps the matches and drops the rest (whitespace, and U+0345), like
# ``re.findall``.
PATTERN = (
    r"<[sſ]tart_of_text>|<end_of_text>|'[sſ]|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+"
)
REFERENCE_PATTERN = (
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)


def check_pattern_folding() -> None:
    """Asserts the claims of the ``PATTERN`` comment against the `regex` module itself."""
    assert REFERENCE.pat.pattern == REFERENCE_PATTERN and REFERENCE.pat.flags & regex.IGNORECASE
    every = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    for cls, folded in [(r"[\p{L}]", ""), (r"[\p{N}]", ""), (r"[^\s\p{L}\p{N}]", "\u0345")]:
        with_i, without = set(regex.findall(cls, every, regex.I)), set(regex.findall(cls, every))
        assert "".join(sorted(with_i ^ without)) == folded, cls
    # Only lower-case text reaches the regex: which characters match the literal letters?
    lower = "".join(c for c in every if c.lower() == c)
    assert set(regex.findall("[tarofendxvmld]", lower, regex.I)) == set("tarofendxvmld")
    assert set(regex.findall("s", lower, regex.I)) == {"s", "ſ"}


def build_tokenizer() -> Tokenizer:
    merges_txt = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in merges_txt[1 : 49152 - 256 - 2 + 1]]
    assert all(len(m) == 2 for m in merges)
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(tokens) == len(vocab) == VOCAB_SIZE, "duplicate vocabulary entries"
    assert vocab == REFERENCE.encoder and merges == list(REFERENCE.bpe_ranks)

    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (SOT, EOT)])
    assert tokenizer.token_to_id(SOT) == 49406 and tokenizer.token_to_id(EOT) == 49407
    return tokenizer


def encode_like_rust(tokenizer: Tokenizer, clean: str) -> list[int]:
    """Pre-tokenizer, then the model on each piece, except the two special-token pieces.

    This is what the Rust side does (``Tokenizer.encode`` would also cut added tokens out of
    the middle of a punctuation run, which the reference regex does not).
    """
    specials = {SOT: 49406, EOT: 49407}
    ids = []
    for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(clean):
        ids += [specials[piece]] if piece in specials else [t.id for t in tokenizer.model.tokenize(piece)]
    return ids


# ---------------------------------------------------------------------------
# Golden strings
# ---------------------------------------------------------------------------

WORDS = ["cat", "dog", "person", "traffic light", "teddy bear", "hot dog", "coffee cup", "sky",
         "fire hydrant", "Cat", "t-shirt", "cat+dog", "café", "CD player", "mother-in-law", "猫"]

# The first 40 are passed as command-line arguments by the CLI test: no NUL, no leading '-'.
VARIED = [
    "a photo of a cat.",
    "",
    "cat+dog",
    "Hello, World! How are you?",
    "It's a dog's life; they're sure we've seen what I'm told you'll know he'd do.",
    "IT'S A DOG'S LIFE",
    "Café &amp; Rock'n'Roll",
    "naïve café in Zürich, São Paulo",
    "一只猫的照片",
    "猫の写真とカタカナ、ひらがな",
    "고양이 사진",
    "a photo of a 🐶 and a 🐱",
    "👨‍👩‍👧‍👦 family 👍🏽 👋🏿",
    "&lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; it&#39;s &#x263A;",
    "&amp;amp; double &amp;lt;escaped&amp;gt;",
    "AT&amp T &copy2024",
    "‘single’ and “double” curly quotes",
    "ﬁsh ﬂower ﬀ ﬃ ﬄ",
    "ＡＢＣ１２３　ｆｕｌｌ　ｗｉｄｔｈ",
    "line one\r\nline two\rline three\tand\ttabs",
    "non\u00a0breaking\u2003em\u3000ideographic\u2028line\u2029para",
    "   leading and trailing   ",
    "2024 is 3.14159 and 1,000,000",
    "a <|endoftext|> b",
    "HeLLo WoRLD iPhone McDonald's NASA",
    "a+b c++ 1+1=2 rock&roll black-and-white",
    "résumé crème brûlée Ångström",
    "ΟΔΟΣ ΣΟΦΟΣ Σ",
    "İstanbul",
    "Привет мир",
    "हिन्दी",
    "مرحبا بالعالم",
    "สวัสดี",
    "Tiếng Việt",
    "e-mail: user@example.com, path/to/file.txt #tag @name $100.00 50% off",
    "...!!!???",
    "🏳️‍🌈 ❤️ 1️⃣ 🇯🇵",
    "&EACUTE;T&EACUTE; P&EACUTE;REZ STRA&SZLIG;E",
    "x &lt; y",
    "rock 'n' roll o'clock 'sup",
]

SPECIAL = [
    # apostrophes and contractions: 's 't 're 've 'm 'll 'd, upper-case too
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "dogs' bowls'",
    "''s '''",
    "it’s don’t",
    "it'ſ",
    "x\u0345y -\u0345- \u0345",
    "ʼn ŉ",
    # accents, decomposed input (NFC), other scripts
    "cafe\u0301 nai\u0308ve Zu\u0308rich",
    "\u0301abc",
    "Ελληνικά ΆΈΉ",
    "עברית",
    "ÆØÅ æøå ß ẞ ĳ Ĳssel ǅ ǈ",
    # full-width / half-width
    "ＬＯＵＤ　ＮＯＩＳＥＳ",
    "ｈｅｌｌｏ，ｗｏｒｌｄ！ ＂ｑ＂",
    "ｶﾀｶﾅ ﾊﾟﾝ ｶﾞ",
    "\uffe0\uffe1\uffe5 \uff5f\uff60",
    # HTML entities, as ftfy and html.unescape treat them
    "&amp;",
    "&amp",
    "&ampamp;",
    "&nbsp;&nbsp;x&nbsp;",
    "&notit; &not &notin;",
    "&frac12; &hellip; &mdash; &#8212; &#x2014;",
    "&#128; &#150; &#x80; &#x9d; &#x81;",
    "&#0; &#1; &#x0b; &#13;x &#65; &#0000065; &#xD800; &#1114112; &#x110000;",
    "&#x1F600; &#128512;",
    "&lsquo;hi&rsquo; &ldquo;there&rdquo; &#xFB01;sh &#xFF21;",
    "&lsquo;hi&rsquo; &ldquo;there&rdquo; &#xFB01;sh &#xFF21; <b>",
    "&amp;amp;amp; &EACUTE; &LTRI;",
    "&amp;amp;amp; &EACUTE; &LTRI; <i>",
    "a &amp; b\n<i>&amp;&lsquo;</i>\n&lsquo;&amp;",
    "&lsquo;&amp;\nfirst line has no tag\n<p>&lsquo;",
    "&Jscr;ohn &HilbertSpace;ancock &checkmark;",
    "&#12a; &#xZZ; &# &; &&amp;",
    "&abcdefghijklmnopqrstuvwxyz0123456789;",
    "&ＡＭＰ；",
    "＆ａｍｐ；ｌｔ；",
    "&amp;nbsp;x",
    # whitespace, line breaks and control characters
    "a\r\nb",
    "a\rb",
    "a\tb\x0bc\x0cd",
    "a\u2028b\u2029c\u0085d",
    "a\x1cb\x1dc\x1ed\x1ff",
    "a\u200bb\u200cc\u200dd\u200fe\u202ef",
    "a\ufeffb\ufffcc\ufff9d\u206ae",
    "a\x00b\x07c\x1b[31mred\x1b[0m\x7fd",
    "\x1b[1;32mgreen\x1b[m\x1b[K",
    "a\x80b\x81c\x9dd\x9fe",
    "\u1680a\u2000b\u200ac\u202fd\u205fe\u180ef",
    "   ",
    "\n\t \r\n\u3000\u00a0",
    "\u3000",
    "\x00",
    # digits: each digit is its own token
    "0",
    "1234567890",
    "٣٤٥ ²³ Ⅻ ½ ⑦",
    "v1.2.3-rc4",
    # special-token text
    "<|endoftext|>",
    "<|startoftext|>hello<|endoftext|>",
    "<start_of_text>",
    "x<end_of_text>y",
    "!<end_of_text>",
    "<start_of_text><end_of_text>",
    "<START_OF_TEXT>",
    "<ſtart_of_text>",
    "a <end_of_text>'s",
    # symbols and emoji
    "∑∫√∞ ≠ ≤ ≥ °C µ Ω",
    "Ⓐⓑ ⅰⅱ",
    "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f Wales",
    "🧑🏽‍🚀 👩‍❤️‍👨 🫠",
    "(╯°□°)╯︵ ┻━┻",
    "¯\\_(ツ)_/¯",
    "~`^|\\{}[]<>",
    "C#, F# & C++",
]


def boundary_strings() -> list[str]:
    """Texts with exactly 75, 76 and 77 content tokens around the 77-token context."""
    words = "a photo of the big red cat on my mat and dog".split()
    assert all(len(REFERENCE.encode(w)) == 1 for w in words)
    out = []
    for n in (74, 75, 76, 77):
        text = " ".join(words[i % len(words)] for i in range(n))
        assert len(REFERENCE.encode(text)) == n
        out.append(text)
    return out


LONG = [
    "A very long caption that describes a sunny day at the beach, where a small brown dog with a "
    "red collar chases a bright yellow frisbee thrown by a child in a blue swimsuit, while seagulls "
    "circle above the waves, people read under striped umbrellas, and an ice-cream vendor pushes "
    "his squeaky cart along the boardwalk past the lifeguard tower and the old wooden pier, "
    "just as the sun begins to set behind the distant lighthouse on the rocky headland.",
    "supercalifragilisticexpialidocious" * 12,
    "1234567890" * 10,
    "猫が好きです。" * 20,
    "&amp; " * 100,
    "🐱" * 90,
]


def golden_texts() -> list[str]:
    templates = [t.format(WORDS[i % len(WORDS)]) for i, t in enumerate(PROMPT_TEMPLATES)]
    texts = VARIED + templates + SPECIAL + boundary_strings() + LONG
    assert len(VARIED) == 40 and all("\x00" not in t and not t.startswith("-") for t in VARIED)
    assert len(set(texts)) == len(texts), "duplicate golden strings"
    return texts


def main() -> None:
    check_pattern_folding()
    tokenizer = build_tokenizer()
    TOKENIZER_JSON.parent.mkdir(parents=True, exist_ok=True)
    TOKENIZER_JSON.write_text(tokenizer.to_str(pretty=False), encoding="utf-8")

    texts = golden_texts()
    for t in texts:
        assert ftfy.fix_text(t) == ftfy.fix_text(t, fix_encoding=False), f"mojibake repair: {t!r}"
    ids = open_clip.tokenize(texts, context_length=CONTEXT_LENGTH).tolist()
    cleans = [REFERENCE.clean_fn(t) for t in texts]

    # Self-check of the JSON: reload it, run it the way the Rust side does, compare.
    reloaded = Tokenizer.from_file(str(TOKENIZER_JSON))
    for text, clean in zip(texts, cleans):
        assert encode_like_rust(reloaded, clean) == REFERENCE.encode(text), text

    lengths = [len(REFERENCE.encode(t)) for t in texts]
    goldens = [
        {"text": t, "clean": c, "length": n, "ids": i} for t, c, n, i in zip(texts, cleans, lengths, ids)
    ]
    GOLDEN_JSON.parent.mkdir(parents=True, exist_ok=True)
    with GOLDEN_JSON.open("w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(g) for g in goldens) + "\n]\n")

    truncated = sum(n + 2 > CONTEXT_LENGTH for n in lengths)
    print(f"{TOKENIZER_JSON.relative_to(REPO)}: {TOKENIZER_JSON.stat().st_size} bytes")
    print(f"{GOLDEN_JSON.relative_to(REPO)}: {len(goldens)} strings, {truncated} truncated")


if __name__ == "__main__":
    sys.exit(main())
