//! The reference's text cleaning: `whitespace_clean(basic_clean(text)).lower()`, where
//! `basic_clean` is ftfy's `fix_text` (6.3.1, default config), Python's `html.unescape` twice,
//! and `strip` — written out here because `tokenizers` has no normaliser that does any of it.

use std::sync::LazyLock;

use tokenizers::utils::SysRegex;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use super::chars::{is_py_space, windows_1252_c1};
use super::mojibake;

/// The official cleaning: ftfy-style fixes, HTML-unescape twice, whitespace collapse,
/// lower-case.
///
/// That is `whitespace_clean(basic_clean(text)).lower()` with `basic_clean` =
/// [`fix_text`] (`ftfy.fix_text`), `html.unescape(html.unescape(·))`, `strip`.
pub fn clean_text(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    // Python's whitespace, joined by single spaces: `regex`'s `\s+` (the reference's
    // `whitespace_clean`) is `str.isspace()` minus U+001C–U+001F, which ftfy has removed.
    let words: Vec<&str> = unescaped
        .split(is_py_space)
        .filter(|w| !w.is_empty())
        .collect();
    // `str::to_lowercase` and Python's `str.lower` both use the full Unicode mapping with the
    // final-sigma rule.
    words.join(" ").to_lowercase()
}

/// ftfy fixes text in segments: lines, cut at this many characters when longer.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// `ftfy.fix_text` (6.3.1) with the default config: mojibake repair, HTML entities, C1
/// controls, ligatures, character width, quotes, line breaks, terminal escapes, control
/// characters and NFC, line by line.
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // `unescape_html="auto"`: from the first segment that contains '<' on (the text looks like
    // HTML whose entities are meant), ftfy stops unescaping, for the rest of the text.
    let mut unescape = true;
    for line in text.split_inclusive('\n') {
        for segment in char_chunks(line, MAX_DECODE_LENGTH) {
            unescape &= !segment.contains('<');
            out.push_str(&fix_segment(segment, unescape));
        }
    }
    out
}

/// `text` in pieces of at most `n` characters.
fn char_chunks(text: &str, n: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// ftfy's `fix_and_explain`: its fixers in its order, repeated until nothing changes (so
/// `&amp;amp;` unescapes fully, full-width `＆ａｍｐ；` becomes `&`, and `&Atilde;&copy;`
/// becomes `Ã©` and then `é`).
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_owned();
    // A pass after the first changes something only when the one before made an entity or
    // mojibake (or a C1 control) appear; the bound only keeps a bug from becoming a hang.
    for _ in 0..=segment.len() + 1 {
        let mut next = if unescape {
            ftfy_unescape(&text)
        } else {
            text.clone()
        };
        next = mojibake::fix_encoding(&next);
        next = fix_chars(&next);
        next = fix_line_breaks(&next);
        next = remove_terminal_escapes(&next);
        next.retain(|c| !is_removed_control(c));
        if is_nfc_quick(next.chars()) != IsNormalized::Yes {
            next = next.nfc().collect();
        }
        if next == text {
            break;
        }
        text = next;
    }
    text
}

/// The character-wise fixers, in ftfy's order: `fix_c1_controls`, `fix_latin_ligatures`,
/// `fix_character_width`, `uncurl_quotes`.
fn fix_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = windows_1252_c1(c).unwrap_or(c);
        match latin_ligature(c) {
            Some(letters) => letters.chars().for_each(|c| push_fixed_width(&mut out, c)),
            None => push_fixed_width(&mut out, c),
        }
    }
    out
}

/// `fix_latin_ligatures`: typographic ligatures and the legacy digraphs (ftfy's table; `æ`
/// and other letters in their own right stay).
fn latin_ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// `fix_character_width` then `uncurl_quotes`: U+3000 becomes a space and the half-/full-width
/// forms U+FF01–U+FFEF their NFKC (ftfy builds exactly this table with
/// `unicodedata.normalize("NFKC", ·)`).
fn push_fixed_width(out: &mut String, c: char) {
    match c {
        '\u{3000}' => out.push(' '),
        '\u{ff01}'..='\u{ffef}' => out.extend(std::iter::once(c).nfkc().map(uncurl_quote)),
        _ => out.push(uncurl_quote(c)),
    }
}

/// `uncurl_quotes`: U+02BC and U+2018–U+201B to `'`, U+201C–U+201F to `"`.
fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

/// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 to `\n`.
fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// `remove_terminal_escapes`: ANSI sequences such as `ESC[1;31m`.
fn remove_terminal_escapes(text: &str) -> String {
    // ftfy's pattern, `\033\[((?:\d|;)*)([a-zA-Z])`. Its `\d` is any Unicode decimal digit
    // (Nd), in Python's `re` as in the regex engine `tokenizers` brings along.
    static ANSI: LazyLock<SysRegex> =
        LazyLock::new(|| SysRegex::new(r"\x1b\[[\d;]*[a-zA-Z]").expect("constant regex"));
    if !text.contains('\u{1b}') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in ANSI.find_iter(text) {
        out.push_str(&text[last..start]);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// `remove_control_chars`: C0 controls except `\t \n \f \r`, DEL, the deprecated Arabic
/// format controls, the BOM and the interlinear annotation / object replacement characters.
fn is_removed_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// ftfy's `unescape_html`: only `&…;` references (of at most 24 ASCII letters and digits),
/// HTML5 names, all-caps versions of the lower-case names (`&EACUTE;` → `É`), and numeric
/// references that Python's `html.unescape` decodes completely.
fn ftfy_unescape(text: &str) -> String {
    replace_refs(text, |rest| {
        let bytes = rest.as_bytes();
        let start = if bytes.get(1) == Some(&b'#') { 2 } else { 1 };
        let run = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if !(1..=24).contains(&run) || bytes.get(start + run) != Some(&b';') {
            return None;
        }
        let reference = &rest[..start + run + 1];
        let decoded = if start == 2 {
            Some(html_unescape(reference)).filter(|d| !d.contains(';'))
        } else {
            entity(reference)
                .map(str::to_owned)
                .or_else(|| upper_case_entity(reference))
        };
        Some((
            decoded.unwrap_or_else(|| reference.to_owned()),
            reference.len(),
        ))
    })
}

/// ftfy also decodes `&NAME;` when `&name;` is an HTML5 entity with an all-lower-case name
/// and `&NAME;` means nothing to `html.unescape`, as `char.upper()` of the entity.
fn upper_case_entity(reference: &str) -> Option<String> {
    if reference.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let value = entity(&reference.to_ascii_lowercase())?;
    (html_unescape(reference) == reference).then(|| value.to_uppercase())
}

/// The HTML5 named character reference `&name;` or legacy `&name`, if it is one.
fn entity(reference: &str) -> Option<&'static str> {
    htmlize::ENTITIES
        .get(reference.as_bytes())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Python's `html.unescape`, exactly: every `&name;`, legacy `&name` (longest prefix) and
/// numeric reference, with its invalid-code-point rules.
fn html_unescape(text: &str) -> String {
    replace_refs(text, |rest| {
        if let Some(number) = rest.strip_prefix("&#") {
            let (hex, digits) = match number.strip_prefix(['x', 'X']) {
                Some(h) if h.starts_with(|c: char| c.is_ascii_hexdigit()) => (true, h),
                _ => (false, number),
            };
            let radix = if hex { 16 } else { 10 };
            let len = digits
                .bytes()
                .take_while(|b| (*b as char).is_digit(radix))
                .count();
            if len == 0 {
                return None;
            }
            let semicolon = usize::from(digits[len..].starts_with(';'));
            let consumed = rest.len() - digits.len() + len + semicolon;
            Some((numeric_reference(&digits[..len], radix), consumed))
        } else {
            // `&([^\t\n\f <&#;]{1,32};?)`
            let name_end = rest[1..]
                .char_indices()
                .take_while(|&(_, c)| {
                    !matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';')
                })
                .take(32)
                .last()
                .map(|(i, c)| 1 + i + c.len_utf8())?;
            let end = name_end + usize::from(rest[name_end..].starts_with(';'));
            let reference = &rest[..end];
            if let Some(value) = entity(reference) {
                return Some((value.to_owned(), end));
            }
            // The longest legacy name (no `;`) that is a prefix, of at least two characters.
            let shortest = reference
                .char_indices()
                .nth(3)
                .map_or(reference.len(), |(i, _)| i);
            let prefix = reference
                .char_indices()
                .rev()
                .map(|(i, _)| i)
                .take_while(|&i| i >= shortest)
                .find_map(|i| entity(&reference[..i]).map(|v| (v, i)));
            Some(match prefix {
                Some((value, i)) => (format!("{value}{}", &reference[i..]), end),
                None => (reference.to_owned(), end),
            })
        }
    })
}

/// A decoded numeric reference, by `html._replace_charref`'s rules.
fn numeric_reference(digits: &str, radix: u32) -> String {
    // Saturates: any number past U+10FFFF decodes the same way.
    let n = digits.chars().fold(0u32, |n, d| {
        n.saturating_mul(radix)
            .saturating_add(d.to_digit(radix).unwrap_or(0))
    });
    match n {
        0 => '\u{fffd}'.to_string(),
        0x0d => '\r'.to_string(),
        0x80..=0x9f => char::from_u32(n)
            .and_then(windows_1252_c1)
            .map(String::from)
            .unwrap_or_default(),
        0xd800..=0xdfff | 0x11_0000.. => '\u{fffd}'.to_string(),
        0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        _ if n & 0xfffe == 0xfffe => String::new(),
        _ => char::from_u32(n).map(String::from).unwrap_or_default(),
    }
}

/// Rewrites `text`, offering each `&` position to `decode`, which returns the replacement
/// and how many bytes it consumed, or `None` to keep the `&` and move on (a regex `sub`).
fn replace_refs(text: &str, decode: impl Fn(&str) -> Option<(String, usize)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match decode(rest) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &rest[consumed..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_unescape_matches_python() {
        let cases = [
            ("no entities", "no entities"),
            ("&amp; &lt;&gt; &quot;x&quot; &#39;", "& <> \"x\" '"),
            ("&amp;amp;", "&amp;"),
            ("&amp", "&"),
            ("AT&amp T", "AT& T"),
            ("&copy2024", "©2024"),
            ("&notit; &notin;", "¬it; ∉"),
            ("&ampamp;", "&amp;"),
            ("&nbsp;", "\u{a0}"),
            ("&#x263A; &#X263a &#9786;", "☺ ☺ ☺"),
            ("&#128; &#x9d; &#150;", "€ \u{9d} –"),
            ("&#0; &#13; &#1;x &#x0b;", "\u{fffd} \r x "),
            (
                "&#xD800; &#1114112; &#99999999999999999999;",
                "\u{fffd} \u{fffd} \u{fffd}",
            ),
            ("&#xFFFE;&#x10FFFF;&#xFDD0;.", "."),
            ("&#0000065;", "A"),
            ("&#; &#x; &# &; & &&amp;", "&#; &#x; &# &; & &&"),
            ("&EACUTE; &AMP; &Eacute;", "&EACUTE; & É"),
            ("&café; &x", "&café; &x"),
        ];
        for (input, expected) in cases {
            assert_eq!(html_unescape(input), expected, "{input:?}");
        }
    }

    #[test]
    fn ftfy_unescape_is_stricter() {
        let cases = [
            ("&amp; &amp &copy2024", "& &amp &copy2024"),
            (
                "&EACUTE;T&EACUTE; STRA&SZLIG;E &NTILDE; &nTILDE;",
                "ÉTÉ STRASSE Ñ &nTILDE;",
            ),
            ("&LTRI; &Jscr;", "&LTRI; 𝒥"),
            ("&#x263A; &#12a; &#xZZ;", "☺ &#12a; &#xZZ;"),
            ("&abcdefghijklmnopqrstuvwxy;", "&abcdefghijklmnopqrstuvwxy;"),
        ];
        for (input, expected) in cases {
            assert_eq!(ftfy_unescape(input), expected, "{input:?}");
        }
    }

    #[test]
    fn fix_text_fixers() {
        let cases = [
            ("ﬁsh ﬂower ﬃ ŉ", "fish flower ffi 'n"),
            ("‘single’ “double” ‚low„", "'single' \"double\" 'low\""),
            ("ＬＯＵＤ　ＮＯＩＳＥＳ ｶﾞ", "LOUD NOISES ガ"),
            ("a\r\nb\rc\u{2028}d", "a\nb\nc\nd"),
            ("a\u{85}b\u{91}c\u{81}", "a…b'c\u{81}"),
            ("\u{1b}[1;31mred\u{1b}[0m", "red"),
            ("a\u{0}b\u{7}c\u{7f}d\u{feff}e\u{c}f\tg", "abcde\u{c}f\tg"),
            ("cafe\u{301}", "café"),
            ("&amp;amp;amp; &lsquo;x&rsquo; &#xFB01;", "& 'x' fi"),
            ("＆ａｍｐ；", "&"),
        ];
        for (input, expected) in cases {
            assert_eq!(fix_text(input), expected, "{input:?}");
        }
    }

    #[test]
    fn fix_text_stops_unescaping_at_markup() {
        // ftfy leaves entities alone from the first line with a '<' on.
        assert_eq!(fix_text("&amp;\n<b>&amp;\n&amp;"), "&\n<b>&amp;\n&amp;");
        assert_eq!(fix_text("&lsquo; <i>"), "&lsquo; <i>");
    }

    #[test]
    fn clean_text_pipeline() {
        assert_eq!(clean_text(""), "");
        assert_eq!(clean_text(" \t\r\n\u{3000}\u{a0}"), "");
        assert_eq!(clean_text("  Hello,\n\tWORLD  "), "hello, world");
        assert_eq!(clean_text("&lsquo;Hi&rsquo; <b>"), "‘hi’ <b>");
        assert_eq!(clean_text("a\u{1c}b"), "ab");
        assert_eq!(clean_text("ΟΔΟΣ ΣΟΦΟΣ"), "οδος σοφος");
        assert_eq!(clean_text("İ"), "i\u{307}");
        assert_eq!(clean_text("Tom &amp;amp; Jerry"), "tom & jerry");
    }

    #[test]
    fn clean_text_survives_odd_input() {
        let odd = [
            "&",
            "&#",
            "&#x",
            "&#xFFFFFFFFFFFFFFFFFFFF;",
            "\u{1b}",
            "\u{1b}[",
            "&\u{301};",
            "\u{10ffff}&\u{10ffff}",
            "&amp;\u{0}&amp;",
            &"&amp;".repeat(1000),
            "À",
            "À\n",
            "í\u{a0}",
            "í\u{a0}½í¸\n",
            "\u{1a}Ã\u{fffd}",
            &"Ã ".repeat(500),
            &"Ã©".repeat(1000),
            &"Ã©x中\n".repeat(200),
        ];
        for text in odd {
            let _ = clean_text(text);
        }
        assert_eq!(clean_text(&"&amp;amp;".repeat(100)), "&".repeat(100));
    }

    #[test]
    fn entity_table_is_whatwg() {
        // Python's html.entities.html5 has 2231 keys (names with and without ';').
        assert_eq!(htmlize::ENTITIES.len(), 2231);
        assert_eq!(entity("&amp"), Some("&"));
        assert_eq!(entity("&NotNestedGreaterGreater;"), Some("⪢\u{338}"));
        assert_eq!(entity("&amp;x"), None);
    }

    #[test]
    fn char_chunks_split_on_characters() {
        let parts: Vec<&str> = char_chunks("aéb€c", 2).collect();
        assert_eq!(parts, ["aé", "b€", "c"]);
        assert_eq!(char_chunks("", 2).count(), 0);
    }
}
