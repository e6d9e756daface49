#!/usr/bin/env python3
"""CLIP's BPE tokenizer as a ``tokenizer.json``, plus goldens from OpenAI's tokenizer and ftfy.

Run from the repository root (CPU only, a few seconds), in the environment of
``requirements.txt`` (``cargo xtask fixtures`` makes one and runs this script):

    python tests/reference/make_tokenizer.py

The reference is the tokenizer the official CLIP Surgery code runs: OpenAI's
``clip/simple_tokenizer.py`` and ``clip.tokenize(texts, context_length=77, truncate=True)``,
from the ``openai-clip`` package. What it writes:

* ``www/tokenizer.json``: OpenAI CLIP's byte-level BPE (the ``bpe_simple_vocab_16e6.txt.gz``
  merges that ship inside the ``clip`` package, MIT) in Hugging Face ``tokenizers`` format,
  compact, since it ships to browsers. It holds the pre-tokenizer and the BPE model only: no
  normalizer and no post-processor, because text cleaning (ftfy + html.unescape + whitespace +
  lower-case), SOT/EOT, truncation and padding are done in Rust
  (``crates/clip-core/src/tokenizer.rs``), where they can follow the reference exactly.
* ``tests/fixtures/goldens/tokens.json``: ``[{"text", "clean", "length", "ids"}]`` where
  ``ids`` are the 77 ids of ``clip.tokenize`` (the reference), ``clean`` is the text as the
  reference cleans it (``whitespace_clean(basic_clean(text)).lower()``, to tell a cleaning bug
  from a BPE bug) and ``length`` the number of BPE tokens before SOT/EOT and truncation.
* ``tests/fixtures/goldens/mojibake.json``: ``[{"kind", "text", "fixed"}]`` where
  ``fixed`` is ``ftfy.fix_text(text)``, for text cleaning alone: classic mojibake, text
  garbled through each codec ftfy tries, mixtures, lossy and altered variants, well-formed
  text in many scripts, and random strings over the characters that mojibake is made of.

The vocabulary is built exactly as ``SimpleTokenizer.__init__`` builds it (256 byte
characters, the same with ``</w>``, the first 48894 merges joined, two special tokens:
49408 ids), and the pre-tokenizer is OpenAI's regex, which lists the special strings
``<|startoftext|>`` and ``<|endoftext|>`` first: where the regex starts a match on one of them
(``"a<|endoftext|>b"``, not ``"!<|endoftext|>"``, which is punctuation to it) the reference
gives it its id, 49406 or 49407. The reference's ``encode_text`` reads the text feature at
``argmax`` of the ids, so at the *first* 49407. Two quirks of the reference are kept on purpose
(see ``PATTERN``). open_clip names the special tokens ``<start_of_text>``/``<end_of_text>``
instead, so texts that contain any of these four strings tokenize differently there; the
goldens include such texts. Its cleaning is otherwise the same: ``regex``'s ``\\s+`` in
``whitespace_clean`` misses only U+001C-U+001F of ``str.split()``'s whitespace, and ftfy has
removed those by then.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path

import ftfy
import regex
from clip import tokenize
from clip.clip import _tokenizer as REFERENCE
from clip.simple_tokenizer import basic_clean, bytes_to_unicode, default_bpe, whitespace_clean
from tokenizers import AddedToken, Regex, Tokenizer, pre_tokenizers
from tokenizers.models import BPE

from make_fixtures import PROMPT_TEMPLATES

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_JSON = REPO / "www" / "tokenizer.json"
GOLDEN_DIR = REPO / "tests" / "fixtures" / "goldens"
TOKENS_JSON = GOLDEN_DIR / "tokens.json"
MOJIBAKE_JSON = GOLDEN_DIR / "mojibake.json"

CONTEXT_LENGTH = 77
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408

# OpenAI's pre-tokenizer regex (``SimpleTokenizer.pat``), compiled by the `regex` module with
# IGNORECASE. The text is already lower-cased, so IGNORECASE only matters through case
# folding, in exactly two places (found by scanning every code point, see
# ``check_pattern_folding``), and we spell both out so that the pattern needs no (?i), whose
# folding rules differ between regex engines:
# * `'s` also matches `'ſ` (U+017F LATIN SMALL LETTER LONG S folds to s), and so does the
#   `s` of `<|startoftext|>` (`<|ſtartoftext|>` is a match, but no special token: plain BPE);
# * U+0345 COMBINING GREEK YPOGEGRAMMENI folds to a letter, so the negated class
#   `[^\s\p{L}\p{N}]` rejects it, while `[\p{L}]` does not take it either: no alternative
#   matches it and the reference silently drops it. We drop it the same way.
# The Split below keeps the matches and drops the rest (whitespace, and U+0345), like
# ``re.findall``.
PATTERN = (
    r"<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+"
)
REFERENCE_PATTERN = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)


def check_pattern_folding() -> None:
    """Asserts the claims of the ``PATTERN`` comment against the `regex` module itself."""
    assert REFERENCE.pat.pattern == REFERENCE_PATTERN and REFERENCE.pat.flags & regex.IGNORECASE
    every = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    for cls, folded in [(r"[\p{L}]", ""), (r"[\p{N}]", ""), (r"[^\s\p{L}\p{N}]", "\u0345")]:
        with_i, without = set(regex.findall(cls, every, regex.I)), set(regex.findall(cls, every))
        assert "".join(sorted(with_i ^ without)) == folded, cls
    # Only lower-case text reaches the regex: which characters match the literal characters?
    lower = "".join(c for c in every if c.lower() == c)
    assert set(regex.findall(r"[<|>tarofendxvmld]", lower, regex.I)) == set("<|>tarofendxvmld")
    assert set(regex.findall("s", lower, regex.I)) == {"s", "ſ"}


def reference_clean(text: str) -> str:
    """The cleaning inside ``SimpleTokenizer.encode``."""
    return whitespace_clean(basic_clean(text)).lower()


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
    # special-token text: OpenAI's strings are special where the regex starts a match on them
    # (and the feature is read at the first end-of-text); open_clip's are plain text here
    "<|endoftext|>",
    "<|startoftext|>hello<|endoftext|>",
    "a photo of a cat<|endoftext|>dog",
    "a photo of a cat <|endoftext|> a photo of a dog <|endoftext|>",
    "<|endoftext|><|endoftext|>",
    "!<|endoftext|>",
    "cat!<|endoftext|>dog",
    "<|endoftext|>!",
    "<|ENDOFTEXT|>",
    "<|StartOfText|>a cat",
    "<|ſtartoftext|>",
    "x<|endoftext|>'s",
    "&lt;|endoftext|&gt; from entities",
    "＜｜ｅｎｄｏｆｔｅｘｔ｜＞ full width",
    "<| endoftext |> <|endoftext <endoftext|> <|end of text|>",
    "<|endoftext|>" * 40,
    "<start_of_text>",
    "x<end_of_text>y",
    "!<end_of_text>",
    "<start_of_text><end_of_text>",
    "<START_OF_TEXT>",
    "<ſtart_of_text>",
    "a <end_of_text>'s",
    "a photo of a cat<end_of_text>dog",
    # mojibake, repaired by ftfy before tokenizing (many more in mojibake.json)
    "cafÃ© crÃ¨me",
    "â€œquotedâ€\x9d and Ã¢â‚¬Å“doubleÃ¢â‚¬\x9d",
    "РџСЂРёРІРµС‚ мир",
    "voilÃ le travail, Ã la mode",
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
    " ".join(["a photo of a cat"] * 19) + " <|endoftext|> dog",
]


# ---------------------------------------------------------------------------
# Mojibake goldens: ftfy.fix_text, whose `fix_encoding` step is the hardest part to port
# ---------------------------------------------------------------------------

# The codecs ftfy's fix_encoding tries (chardata.CHARMAP_ENCODINGS), in its order; the
# sloppy ones are registered by importing ftfy.
CODECS = [
    "latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250",
    "sloppy-windows-1253", "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2",
    "macroman", "cp437",
]

# Well-formed text that ftfy should leave alone; each also appears garbled below.
SAMPLES = [
    "café crème brûlée",
    "naïve Zürich, Ångström",
    "São Paulo, coração, às vezes",
    "¿Qué tal? ¡Olé! ñandú, pingüino",
    "Straße über Öl, Ä Ö Ü ä ö ü ß",
    "Čeština, Łódź, Kraków, Žižkov",
    "Türkçe: İstanbul, ğüşöç",
    "Ελληνικά: καλημέρα κόσμε",
    "Привет, мир! Ёжик",
    "Українська: їжак, ґанок",
    "Lietuvių, latviešu: ąčęėįšųūž āēīķļņ",
    "Magyar: őrült tűz",
    "Română: ăâîșț",
    "Tiếng Việt có dấu",
    "Français: œuvre, cœur, Œdipe, à la carte",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी भाषा",
    "ภาษาไทย",
    "中文测试：你好",
    "日本語のテキスト",
    "한국어 텍스트",
    "emoji 😊👍🏽🇯🇵",
    "“smart quotes” and ‘single’ — dashes – and … ellipsis",
    "€100, £50, ¥20, ©2024, ®, ™, 5°C, ±5, ½, 3µm",
    "• bullet · dot ¶ § † ‡ ‰",
    "non\xa0breaking\xa0space",
    "¯\\_(ツ)_/¯ (╯°□°)╯︵ ┻━┻",
    "x² + y³ = z¹, ¼ × ¾ ÷ ½",
]

# Hand-picked cases: the textbook ones, ftfy's documented quirks, its sub-fixers.
CLASSIC = [
    "cafÃ©",
    "Ã¡Ã©Ã­Ã³Ãº",
    "â€œquotedâ€\x9d",
    "â€œquotedâ€",
    "â€œ like this â€�",
    "Ã¢â‚¬Å“",
    "Ã¢â‚¬Å“double-encodedÃ¢â‚¬\x9d",
    "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.",
    "âœ” No problems",
    "&macr;\\_(ã\x83\x84)_/&macr;",
    "sÃ³",
    "schÃ¶n",
    "ÄŒeÅ¡tina",
    "ÄŚeĹˇtina",
    "РџСЂРёРІРµС‚ РјРёСЂ",
    "Ξ•Ξ»Ξ»Ξ·Ξ½ΞΉΞΊΞ¬",
    "caf√©",
    "caf├⌐",
    "Ã‰tÃ©",
    "Â£100",
    "10Â°C",
    "Â¡Hola!",
    "Â\xa0",
    "Â ",
    "x Â y",
    "dogÂ Â»",
    # restore_byte_a0 and its à-word exceptions
    "voilÃ le travail",
    "voilÃ\xa0le travail",
    "Ã la mode",
    "fÃ cil",
    "Ã s vezes",
    "Ã quele tempo, Ã quela, Ã quilo",
    "Ã  la",
    "cÃ´tÃ© Ã ",
    "â€” em dash â€“ en dash",
    "â€ dagger",
    "ðŸ˜Š smile",
    "ðŸ ˜Š",
    "ð Ÿ˜Š",
    "ðŸ˜ ",
    # replace_lossy_sequences: lost bytes, '?' stand-ins
    "Ã?",
    "cafÃ? crÃ?me",
    "â€\ufffd",
    "\ufffd\ufffd",
    "ðŸ\ufffd\ufffd",
    "Ã\ufffd",
    "\x1a â€œ",
    # utf-8-variants: CESU-8 and Java's two-byte NUL, the `$` of their regexes
    "í\xa0½í¸\x8a",
    "í\xa0½í¸\x8a smile í\xa0½í¸\x8a",
    "í\xa0½í¸\n",
    "cafÃ©À\x80",
    "cafÃ©À\n",
    "cafÃ©À",
    "í\xa0½",
    "Ã©í\xa0½í¸",
    "Ã©í\x95\x9c",
    # C1 controls: whole text and piecewise
    "\x93quoted\x94",
    "a\x81b\x80c",
    "\x80\x9d\x81",
    "Ã©\x81",
    # inconsistent mixtures: decode_inconsistent_utf8
    "Ã©tÃ© and 日本",
    "cafÃ© and café",
    "naÃ¯ve – Ã©tÃ© – 中文",
    "“Ã©tÃ©” said the ÐŸÑ€Ð¸Ð²ÐµÑ‚",
    "ÐŸÑ€Ð¸Ð²ÐµÑ‚ Привет",
    "Ã©Ã© 😊 Ã©Ã©",
    "â€œÃ©â€\x9d ∂",
    # several lines: each its own segment
    "cafÃ©\nnaïve\nÃ©tÃ©\n",
    "line with <b>tag</b>\ncafÃ© &amp;\n",
    "&Atilde;&copy; from entities",
    # well-formed text with mojibake-looking characters
    "ÀÉÎÕÜ àéîõü",
    "Ω ≈ √2, ∑ ∫ ∞",
    "Â is a letter",
    "№ 5 ©",
    "Ø Ù Ø Ù",
    "×²",
    "œuvre œ1",
    "Ã",
    "Ã\n",
    "",
    " ",
    "ascii only",
]


def garble(text: str, codec: str) -> str:
    return text.encode("utf-8").decode(codec)


def mojibake_texts() -> list[tuple[str, str]]:
    """(kind, text) pairs, deterministic."""
    out = [("classic", t) for t in CLASSIC]
    out += [("well-formed", t) for t in SAMPLES]
    for s in SAMPLES:
        out += [("garbled", garble(s, c)) for c in CODECS]
        w1252 = garble(s, "sloppy-windows-1252")
        out += [
            ("double", garble(w1252, "sloppy-windows-1252")),
            ("double", garble(garble(s, "sloppy-windows-1251"), "sloppy-windows-1252")),
            ("altered", w1252.replace("\xa0", " ")),
            ("lossy", s.encode("utf-8").decode("windows-1252", errors="replace")),
        ]
    for a, b in zip(SAMPLES, SAMPLES[1:] + SAMPLES[:1]):
        out += [
            ("mixed", a + " " + garble(b, "sloppy-windows-1252")),
            ("mixed", garble(a, "sloppy-windows-1251") + " | " + garble(b, "sloppy-windows-1252")),
        ]
    rng = random.Random(20250101)
    # The characters mojibake is made of: every codec's upper half, plus some ASCII.
    alphabet = sorted(set("".join(bytes(range(0x80, 0x100)).decode(c) for c in CODECS)))
    alphabet += list("aeost AEST.,?!'\n") + ["\ufffd", "\x1a", "😊", "中"]
    for _ in range(300):
        out.append(("random", "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))))
    # Random UTF-8, sometimes damaged, read through a random codec.
    pools = [(0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x3FF), (0x400, 0x45F), (0x2010, 0x2044),
             (0x4E00, 0x4E80), (0x1F600, 0x1F64F)]
    for _ in range(200):
        text = "".join(chr(rng.randint(*rng.choice(pools))) for _ in range(rng.randint(1, 6)))
        data = bytearray(text.encode("utf-8"))
        damage = rng.random()
        if damage < 0.2:
            data = data.replace(b"\xa0", b" ")
        elif damage < 0.3 and len(data) > 1:
            del data[rng.randrange(len(data))]
        out.append(("random-utf8", bytes(data).decode(rng.choice(CODECS))))
    seen, unique = set(), []
    for kind, text in out:
        if text not in seen:
            seen.add(text)
            unique.append((kind, text))
    return unique


def golden_texts() -> list[str]:
    templates = [t.format(WORDS[i % len(WORDS)]) for i, t in enumerate(PROMPT_TEMPLATES)]
    texts = VARIED + templates + SPECIAL + boundary_strings() + LONG
    assert len(VARIED) == 40 and all("\x00" not in t and not t.startswith("-") for t in VARIED)
    assert len(set(texts)) == len(texts), "duplicate golden strings"
    return texts


def write_lines(path: Path, rows: list[dict], ensure_ascii: bool = True) -> None:
    """One JSON object a line. Mojibake stays readable as such (``ensure_ascii=False``);
    control characters are escaped either way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=ensure_ascii) for r in rows) + "\n]\n")


def main() -> None:
    check_pattern_folding()
    tokenizer = build_tokenizer()
    TOKENIZER_JSON.parent.mkdir(parents=True, exist_ok=True)
    TOKENIZER_JSON.write_text(tokenizer.to_str(pretty=False), encoding="utf-8")

    texts = golden_texts()
    ids = tokenize(texts, context_length=CONTEXT_LENGTH, truncate=True).tolist()
    cleans = [reference_clean(t) for t in texts]

    # Self-check of the JSON: reload it, run it the way the Rust side does, compare.
    reloaded = Tokenizer.from_file(str(TOKENIZER_JSON))
    for text, clean in zip(texts, cleans):
        assert encode_like_rust(reloaded, clean) == REFERENCE.encode(text), text

    lengths = [len(REFERENCE.encode(t)) for t in texts]
    write_lines(TOKENS_JSON, [
        {"text": t, "clean": c, "length": n, "ids": i} for t, c, n, i in zip(texts, cleans, lengths, ids)
    ])
    mojibake = mojibake_texts()
    write_lines(MOJIBAKE_JSON, [
        {"kind": k, "text": t, "fixed": ftfy.fix_text(t)} for k, t in mojibake
    ], ensure_ascii=False)

    truncated = sum(n + 2 > CONTEXT_LENGTH for n in lengths)
    repaired = sum(ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False) for _, t in mojibake)
    print(f"{TOKENIZER_JSON.relative_to(REPO)}: {TOKENIZER_JSON.stat().st_size} bytes")
    print(f"{TOKENS_JSON.relative_to(REPO)}: {len(texts)} strings, {truncated} truncated")
    print(f"{MOJIBAKE_JSON.relative_to(REPO)}: {len(mojibake)} strings, {repaired} need fix_encoding")


if __name__ == "__main__":
    sys.exit(main())
