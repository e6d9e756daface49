//! ftfy 6.3.1's mojibake repair (`fix_encoding`): text that was UTF-8 but was decoded with a
//! single-byte codec (`cafÃ©`) is encoded back and decoded as UTF-8, when a heuristic says it
//! looks like mojibake. A port of `fix_encoding_and_explain` and
//! `_fix_encoding_one_step_and_explain` (`ftfy/__init__.py`), `badness.is_bad`,
//! `chardata.py`'s codecs and regexes, `fixes.restore_byte_a0`, `replace_lossy_sequences`,
//! `decode_inconsistent_utf8`, `fix_c1_controls` and `bad_codecs/`, step for step; ftfy's
//! regexes are written out as character classes.

use std::sync::LazyLock;

use tokenizers::utils::SysRegex;

use super::chars::{is_py_space, windows_1252_c1};

/// `fix_encoding`: one repair step after another until the text stops changing.
pub(super) fn fix_encoding(text: &str) -> String {
    let mut text = text.to_owned();
    // A step that changes the text decodes or replaces characters; the bound only keeps
    // a bug from becoming a hang.
    for _ in 0..=text.len() {
        match fix_step(&text) {
            Some(fixed) if fixed != text => text = fixed,
            _ => break,
        }
    }
    text
}

/// `_fix_encoding_one_step_and_explain`, `None` where it returns the text unchanged.
fn fix_step(text: &str) -> Option<String> {
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    // UTF-8 read through a single-byte codec: encode it back, then decode it as UTF-8.
    for codec in &CODECS {
        let Some(mut bytes) = codec.encode(text) else {
            continue;
        };
        // Not for MacRoman, whose en dash (D0) before a space would pass for a broken
        // sequence.
        if codec.name != "macroman" && find(&bytes, 0, ALTERED_UTF8).is_some() {
            bytes = restore_byte_a0(&bytes);
        }
        if codec.sloppy {
            bytes = replace(&bytes, LOSSY_UTF8, |_, out| {
                out.extend("\u{fffd}".as_bytes())
            });
        }
        let fixed = if bytes.contains(&0xed) || bytes.contains(&0xc0) {
            decode_utf8_variants(&bytes)
        } else {
            String::from_utf8(bytes).ok()
        };
        if fixed.is_some() {
            return fixed;
        }
    }
    let fixed = decode_inconsistent_utf8(text);
    if fixed != text {
        return Some(fixed);
    }
    // ftfy next tries `encode("latin-1").decode("windows-1252")`, which, where it works,
    // gives what `fix_c1_controls` gives; where it fails (0x81, 0x8D, 0x8F, 0x90, 0x9D),
    // ftfy goes on to `fix_c1_controls`.
    text.contains(is_c1).then(|| {
        text.chars()
            .map(|c| windows_1252_c1(c).unwrap_or(c))
            .collect()
    })
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

// --- Codecs ----------------------------------------------------------------------------

/// A single-byte codec ftfy tries: the characters of bytes 0x80–0xFF (the bytes below
/// are ASCII in all of them).
struct Codec {
    name: &'static str,
    /// `None` for Latin-1, where byte and code point are equal.
    upper: Option<&'static str>,
    /// ftfy's "sloppy" codecs decode the bytes the real codec leaves undefined as Latin-1
    /// (the tables spell those out) and byte 0x1A as U+FFFD, so that text in which a
    /// decoder put U+FFFD still encodes; U+001A itself does not.
    sloppy: bool,
}

impl Codec {
    /// `c.encode(codec)`, if `c` is in the codec.
    fn byte(&self, c: char) -> Option<u8> {
        match (c, self.upper) {
            ('\u{1a}', _) if self.sloppy => None,
            ('\u{fffd}', _) if self.sloppy => Some(0x1a),
            ('\0'..='\u{7f}', _) | (_, None) => u8::try_from(u32::from(c)).ok(),
            (_, Some(upper)) => u8::try_from(0x80 + upper.chars().position(|u| u == c)?).ok(),
        }
    }

    /// `text.encode(codec)`; `None` where `chardata.possible_encoding` is false.
    fn encode(&self, text: &str) -> Option<Vec<u8>> {
        text.chars().map(|c| self.byte(c)).collect()
    }
}

/// `chardata.CHARMAP_ENCODINGS`, in ftfy's order (tables from Python's codecs).
const CODECS: [Codec; 10] = [
    Codec {
        name: "latin-1",
        upper: None,
        sloppy: false,
    },
    Codec {
        name: "sloppy-windows-1252",
        upper: Some(
            "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}Ž\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}žŸ\
             \u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿\
             ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ",
        ),
        sloppy: true,
    },
    Codec {
        name: "sloppy-windows-1251",
        upper: Some(
            "ЂЃ‚ѓ„…†‡€‰Љ‹ЊЌЋЏђ‘’“”•–—\u{98}™љ›њќћџ\
             \u{a0}ЎўЈ¤Ґ¦§Ё©Є«¬\u{ad}®Ї°±Ііґµ¶·ё№є»јЅѕї\
             АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдежзийклмнопрстуфхцчшщъыьэюя",
        ),
        sloppy: true,
    },
    Codec {
        name: "sloppy-windows-1250",
        upper: Some(
            "€\u{81}‚\u{83}„…†‡\u{88}‰Š‹ŚŤŽŹ\u{90}‘’“”•–—\u{98}™š›śťžź\
             \u{a0}ˇ˘Ł¤Ą¦§¨©Ş«¬\u{ad}®Ż°±˛ł´µ¶·¸ąş»Ľ˝ľż\
             ŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢßŕáâăäĺćçčéęëěíîďđńňóôőö÷řůúűüýţ˙",
        ),
        sloppy: true,
    },
    Codec {
        name: "sloppy-windows-1253",
        upper: Some(
            "€\u{81}‚ƒ„…†‡\u{88}‰\u{8a}‹\u{8c}\u{8d}\u{8e}\u{8f}\
             \u{90}‘’“”•–—\u{98}™\u{9a}›\u{9c}\u{9d}\u{9e}\u{9f}\
             \u{a0}΅Ά£¤¥¦§¨©ª«¬\u{ad}®―°±²³΄µ¶·ΈΉΊ»Ό½ΎΏ\
             ΐΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡÒΣΤΥΦΧΨΩΪΫάέήίΰαβγδεζηθικλμνξοπρςστυφχψωϊϋόύώÿ",
        ),
        sloppy: true,
    },
    Codec {
        name: "sloppy-windows-1254",
        upper: Some(
            "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}\u{8e}\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}\u{9e}Ÿ\
             \u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿\
             ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏĞÑÒÓÔÕÖ×ØÙÚÛÜİŞßàáâãäåæçèéêëìíîïğñòóôõö÷øùúûüışÿ",
        ),
        sloppy: true,
    },
    Codec {
        name: "sloppy-windows-1257",
        upper: Some(
            "€\u{81}‚\u{83}„…†‡\u{88}‰\u{8a}‹\u{8c}¨ˇ¸\u{90}‘’“”•–—\u{98}™\u{9a}›\u{9c}¯˛\u{9f}\
             \u{a0}¡¢£¤¥¦§Ø©Ŗ«¬\u{ad}®Æ°±²³´µ¶·ø¹ŗ»¼½¾æ\
             ĄĮĀĆÄÅĘĒČÉŹĖĢĶĪĻŠŃŅÓŌÕÖ×ŲŁŚŪÜŻŽßąįāćäåęēčéźėģķīļšńņóōõö÷ųłśūüżž˙",
        ),
        sloppy: true,
    },
    Codec {
        name: "iso-8859-2",
        upper: Some(
            "\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\
             \u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}\
             \u{90}\u{91}\u{92}\u{93}\u{94}\u{95}\u{96}\u{97}\
             \u{98}\u{99}\u{9a}\u{9b}\u{9c}\u{9d}\u{9e}\u{9f}\
             \u{a0}Ą˘Ł¤ĽŚ§¨ŠŞŤŹ\u{ad}ŽŻ°ą˛ł´ľśˇ¸šşťź˝žż\
             ŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢßŕáâăäĺćçčéęëěíîďđńňóôőö÷řůúűüýţ˙",
        ),
        sloppy: false,
    },
    Codec {
        name: "macroman",
        upper: Some(
            "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø\
             ¿¡¬√ƒ≈∆«»…\u{a0}ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{f8ff}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ",
        ),
        sloppy: false,
    },
    Codec {
        name: "cp437",
        upper: Some(
            "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐\
             └┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}",
        ),
        sloppy: false,
    },
];

/// ftfy's `utf-8-variants` codec: UTF-8, plus CESU-8 surrogate pairs and Java's `C0 80`
/// for U+0000. It scans as the Python codec does, whose special-sequence regexes end in
/// `$`, and `$` also matches before a final `\n`: so a final `C0 0A` decodes to U+0000,
/// and a surrogate pair cut short by a final `\n` takes the `\n` as its last byte.
fn decode_utf8_variants(bytes: &[u8]) -> Option<String> {
    let len = bytes.len();
    let end = |k: usize| k == len || (k + 1 == len && bytes[k] == b'\n');
    let is = |k: usize, lo: u8, hi: u8| bytes.get(k).is_some_and(|b| (lo..=hi).contains(b));
    // NULL_EXPR | CESU8_EXPR | SURROGATE_EXPR; any CESU-8 match is a surrogate match.
    let special = |k: usize| match bytes[k] {
        0xc0 => end(k + 1) || is(k + 1, 0x80, 0x80),
        0xed => end(k + 1) || (is(k + 1, 0xa0, 0xbf) && (is(k + 2, 0x80, 0xbf) || end(k + 2))),
        _ => false,
    };
    let utf8 = |part: &[u8]| std::str::from_utf8(part).ok().map(str::to_owned);
    let mut out = String::with_capacity(len);
    let mut pos = 0;
    while pos < len {
        let Some(k) = (pos..len).find(|&k| special(k)) else {
            out += &utf8(&bytes[pos..])?;
            break;
        };
        if k > pos {
            out += &utf8(&bytes[pos..k])?;
            pos = k;
            continue;
        }
        let rest = &bytes[pos..];
        if rest[0] == 0xc0 {
            // `C0 80`, or `C0` before a final `\n`.
            if rest.len() < 2 {
                return None;
            }
            out.push('\0');
            pos += 2;
        } else if rest.len() < 6 {
            out += &utf8(rest)?;
            break;
        } else if is(pos + 1, 0xa0, 0xaf)
            && is(pos + 2, 0x80, 0xbf)
            && rest[3] == 0xed
            && is(pos + 4, 0xb0, 0xbf)
            && (is(pos + 5, 0x80, 0xbf) || end(pos + 5))
        {
            let cp = (u32::from(rest[1] & 0x0f) << 16)
                + (u32::from(rest[2] & 0x3f) << 10)
                + (u32::from(rest[4] & 0x0f) << 6)
                + u32::from(rest[5] & 0x3f)
                + 0x10000;
            out.push(char::from_u32(cp)?);
            pos += 6;
        } else {
            // `ED A0..BF` that is no pair: a lone surrogate, which UTF-8 refuses.
            return None;
        }
    }
    Some(out)
}

// --- Byte-level fixes ------------------------------------------------------------------

/// A set of bytes.
type ByteClass = fn(u8) -> bool;

/// A regex alternative over bytes: one class per byte.
type Pattern = &'static [ByteClass];

/// The length of the first of `patterns` that matches at `bytes[i..]`, as an
/// alternation does.
fn match_at(bytes: &[u8], i: usize, patterns: &[Pattern]) -> Option<usize> {
    patterns
        .iter()
        .find(|p| {
            p.iter()
                .enumerate()
                .all(|(k, class)| bytes.get(i + k).is_some_and(|&b| class(b)))
        })
        .map(|p| p.len())
}

/// Where `patterns` first match, from `start` on (`re.search`).
fn find(bytes: &[u8], start: usize, patterns: &[Pattern]) -> Option<(usize, usize)> {
    (start..bytes.len()).find_map(|i| match_at(bytes, i, patterns).map(|n| (i, i + n)))
}

/// `re.sub`: each match, left to right and not overlapping, replaced by `replacement`.
fn replace(
    bytes: &[u8],
    patterns: &[Pattern],
    replacement: impl Fn(&[u8], &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while let Some((start, end)) = find(bytes, pos, patterns) {
        out.extend_from_slice(&bytes[pos..start]);
        replacement(&bytes[start..end], &mut out);
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    out
}

/// `chardata.ALTERED_UTF8_RE`: UTF-8 sequences that would be valid if a program had not
/// turned their byte A0 into a space (only lead bytes of likely characters).
#[rustfmt::skip]
const ALTERED_UTF8: &[Pattern] = &[
    &[|b| matches!(b, 0xc2 | 0xc3 | 0xc5 | 0xce | 0xd0 | 0xd9), space],
    &[|b| matches!(b, 0xe2 | 0xe3), space, cont_not_a0_85],
    &[|b| matches!(b, 0xe0..=0xe3), cont_not_a0_85, space],
    &[|b| b == 0xf0, space, cont, cont],
    &[|b| b == 0xf0, cont, space, cont],
    &[|b| b == 0xf0, cont, cont, space],
];

/// `chardata.LOSSY_UTF8_RE`: UTF-8 (and CESU-8) sequences in which a sloppy codec's 0x1A
/// (a byte lost to U+FFFD) or, at most once, a `?` stands for bytes.
#[rustfmt::skip]
const LOSSY_UTF8: &[Pattern] = &[
    &[|b| matches!(b, 0xc2..=0xdf), lost],
    &[|b| matches!(b, 0xc2 | 0xc3), |b| b == b'?'],
    &[ed, surrogate_high, lost_q, ed, surrogate_low, lost_q_cont],
    &[ed, surrogate_high, lost_q_cont, ed, surrogate_low, lost_q],
    &[lead3, lost_q, lost_cont],
    &[lead3, lost_cont, lost_q],
    &[lead4, lost_q, lost_cont, lost_cont],
    &[lead4, lost_cont, lost_q, lost_cont],
    &[lead4, lost_cont, lost_cont, lost_q],
    &[lost],
];

// Byte classes of those patterns.
fn space(b: u8) -> bool {
    b == b' '
}
fn cont(b: u8) -> bool {
    matches!(b, 0x80..=0xbf)
}
fn cont_not_a0_85(b: u8) -> bool {
    cont(b) && b != 0xa0 && b != 0x85
}
fn ed(b: u8) -> bool {
    b == 0xed
}
fn surrogate_high(b: u8) -> bool {
    matches!(b, 0xa0..=0xaf)
}
fn surrogate_low(b: u8) -> bool {
    matches!(b, 0xb0..=0xbf)
}
fn lead3(b: u8) -> bool {
    matches!(b, 0xe0..=0xef)
}
fn lead4(b: u8) -> bool {
    matches!(b, 0xf0..=0xf4)
}
fn lost(b: u8) -> bool {
    b == 0x1a
}
fn lost_q(b: u8) -> bool {
    lost(b) || b == b'?'
}
fn lost_cont(b: u8) -> bool {
    lost(b) || cont(b)
}
fn lost_q_cont(b: u8) -> bool {
    lost_q(b) || cont(b)
}

/// `fixes.restore_byte_a0`: byte A0 back where a space broke a UTF-8 sequence. `C3 20`
/// first gets both (`Ã la` is `à la`, not `àla`), except before a space and in the
/// Portuguese `às`, `àquele`, `àquela`, `àquilo`.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    let mut a_grave = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let next = bytes.get(i + 2..).unwrap_or_default();
        let word = [&b" "[..], b"quele", b"quela", b"quilo", b"s "];
        if b == 0xc3 && bytes.get(i + 1) == Some(&b' ') && !word.iter().any(|w| next.starts_with(w))
        {
            a_grave.extend_from_slice(b"\xc3\xa0 ");
            i += 2;
        } else {
            a_grave.push(b);
            i += 1;
        }
    }
    replace(&a_grave, ALTERED_UTF8, |m, out| {
        out.extend(m.iter().map(|&b| if b == b' ' { 0xa0 } else { b }));
    })
}

// --- Badness ---------------------------------------------------------------------------

// `badness.MOJIBAKE_CATEGORIES`, as bits.
const COMMON: u16 = 1;
const C1: u16 = 1 << 1;
const BAD: u16 = 1 << 2;
const LAW: u16 = 1 << 3;
const CURRENCY: u16 = 1 << 4;
const START: u16 = 1 << 5;
const END: u16 = 1 << 6;
const NUMERIC: u16 = 1 << 7;
const KAOMOJI: u16 = 1 << 8;
const UPPER_ACCENTED: u16 = 1 << 9;
const LOWER_ACCENTED: u16 = 1 << 10;
const UPPER_COMMON: u16 = 1 << 11;
const LOWER_COMMON: u16 = 1 << 12;
const BOX: u16 = 1 << 13;

/// The categories of the few hundred characters that UTF-8 mojibake is made of.
fn category(c: char) -> u16 {
    match c {
        '\u{a0}' | '\u{ad}' | '´' | '·' | '–'..='―' | '’' | '…' => COMMON,
        '\u{80}'..='\u{9f}' => C1,
        '¤' | '¦' | '¨' | 'ª' | '¬' | '¯' | '¸' | 'º' | 'ƒ' | 'ˆ' | 'ˇ' | '˘' | '˛' | '˜' | '†'
        | '‡' | '‰' | '⌐' | '◊' | '\u{fffd}' => BAD,
        '§' | '¶' => LAW,
        '¢' | '£' | '¥' | '₧' | '€' => CURRENCY,
        '¡' | '©' | '«' | '¿' | '΄' | '΅' | '‘' | '‚' | '“' | '„' | '•' | '‹' | '\u{f8ff}' => {
            START
        }
        '®' | '»' | '˝' | '”' | '›' | '™' => END,
        '±'..='³'
        | 'µ'
        | '¹'
        | '¼'..='¾'
        | '×'
        | '÷'
        | '⁄'
        | '№'
        | '∂'
        | '∆'
        | '∏'
        | '∑'
        | '√'
        | '∞'
        | '∩'
        | '∫'
        | '≈'
        | '≠'
        | '≡'
        | '≤'
        | '≥' => NUMERIC,
        '°' | 'Ò'..='Ö' | 'Ù'..='Û' | 'ò'..='ö' | 'ø'..='û' | 'Ō' | 'Ő' | 'Ū' | 'Ų' => {
            KAOMOJI
        }
        'Ü' => KAOMOJI | UPPER_ACCENTED,
        'ü' => KAOMOJI | LOWER_ACCENTED,
        'À'..='Ñ'
        | 'Ø'
        | 'Ý'
        | 'Ā'
        | 'Ă'
        | 'Ą'
        | 'Ć'
        | 'Č'
        | 'Ď'
        | 'Đ'
        | 'Ē'
        | 'Ė'
        | 'Ę'
        | 'Ě'
        | 'Ğ'
        | 'Ģ'
        | 'Ī'
        | 'İ'
        | 'Ķ'
        | 'Ĺ'
        | 'Ļ'
        | 'Ľ'
        | 'Ł'
        | 'Ń'
        | 'Ņ'
        | 'Ň'
        | 'Œ'
        | 'Ř'
        | 'Ś'
        | 'Ş'
        | 'Š'
        | 'Ţ'
        | 'Ť'
        | 'Ů'
        | 'Ű'
        | 'Ÿ'
        | 'Ź'
        | 'Ż'
        | 'Ž'
        | 'Ґ' => UPPER_ACCENTED,
        'ß'..='ñ'
        | 'ā'
        | 'ă'
        | 'ą'
        | 'ć'
        | 'č'
        | 'ď'
        | 'đ'
        | 'ē'
        | 'ė'
        | 'ę'
        | 'ě'
        | 'ğ'
        | 'ģ'
        | 'ī'
        | 'į'
        | 'ķ'
        | 'ĺ'
        | 'ļ'
        | 'ľ'
        | 'ł'
        | 'œ'
        | 'ŕ'
        | 'ś'
        | 'ş'
        | 'š'
        | 'ť'
        | 'ź'
        | 'ż'
        | 'ž'
        | 'ґ'
        | 'ﬁ'
        | 'ﬂ' => LOWER_ACCENTED,
        'Þ' | 'Ά' | 'Έ'..='Ί' | 'Ό' | 'Ύ' | 'Ώ' | 'Α'..='Ϋ' | 'Ё'..='Я' => UPPER_COMMON,
        'ά'..='ω' | 'а'..='џ' => LOWER_COMMON,
        '│'
        | '┌'
        | '┐'
        | '┘'
        | '├'
        | '┤'
        | '┬'
        | '┼'
        | '═'..='╬'
        | '▀'
        | '▄'
        | '█'
        | '▌'
        | '▐'..='▓' => BOX,
        _ => 0,
    }
}

/// `badness.is_bad`: does `BADNESS_RE` match anywhere?
pub(super) fn is_bad(text: &str) -> bool {
    let chars: Vec<(char, u16)> = text.chars().map(|c| (c, category(c))).collect();
    (0..chars.len()).any(|i| bad_at(&chars[i..], i == 0))
}

/// Does an alternative of `BADNESS_RE` match at the start of `s` (characters with their
/// categories)? One line per alternative, in the regex's order.
fn bad_at(s: &[(char, u16)], text_start: bool) -> bool {
    let at = |k: usize| s.get(k).map(|&(c, _)| c);
    let is = |k: usize, class: u16| s.get(k).is_some_and(|&(_, cat)| cat & class != 0);
    let one_of = |k: usize, set: &str| at(k).is_some_and(|c| set.chars().any(|x| x == c));
    let test = |k: usize, f: fn(&char) -> bool| at(k).is_some_and(|c| f(&c));
    let accented = LOWER_ACCENTED | UPPER_ACCENTED;
    let odd = accented | BOX | START | END | CURRENCY | NUMERIC | LAW;
    let arabic = |k: usize| is(k, COMMON | CURRENCY | BAD | NUMERIC | START) || one_of(k, "ŸŠ®°µ»");
    let space = |k: usize| at(k).is_some_and(is_py_space);
    let starts = |prefix: &str| prefix.chars().enumerate().all(|(k, p)| at(k) == Some(p));
    is(0, C1)
        || is(0, BAD | odd) && is(1, BAD)
        || test(0, char::is_ascii_alphabetic) && is(1, LOWER_COMMON | UPPER_COMMON) && is(2, BAD)
        || is(0, BAD) && is(1, odd)
        || is(
            0,
            LOWER_ACCENTED | LOWER_COMMON | BOX | END | CURRENCY | NUMERIC,
        ) && is(1, UPPER_ACCENTED)
        || is(0, BOX | END | CURRENCY | NUMERIC) && is(1, LOWER_ACCENTED)
        || is(0, LOWER_ACCENTED | BOX | END) && is(1, CURRENCY)
        || space(0) && is(1, UPPER_ACCENTED) && is(2, CURRENCY)
        || is(0, UPPER_ACCENTED | BOX) && is(1, NUMERIC | LAW)
        || is(0, accented | BOX | CURRENCY | END) && is(1, START) && is(2, NUMERIC)
        || is(0, accented | CURRENCY | NUMERIC | BOX | LAW) && is(1, END) && is(2, START)
        || is(0, CURRENCY | NUMERIC | BOX) && is(1, START)
        || test(0, char::is_ascii_lowercase) && is(1, UPPER_ACCENTED) && is(2, START | CURRENCY)
        || is(0, BOX) && is(1, KAOMOJI)
        || is(0, accented | CURRENCY | NUMERIC | START | END | LAW) && is(1, BOX)
        || is(0, BOX) && is(1, END)
        || is(0, accented) && is(1, START | END) && at(2).is_some_and(is_word)
        || one_of(0, "Œœ") && at(1).is_some_and(|c| !c.is_ascii_alphabetic())
        || is(0, UPPER_ACCENTED) && one_of(1, "°")
        || one_of(0, "ÂÃÎÐ") && (one_of(1, "€œŠš¢£Ÿž\u{a0}\u{ad}®©°·»–—´") || is(1, START | END))
        || one_of(0, "×") && one_of(1, "²³")
        || one_of(0, "ØÙ") && arabic(1) && one_of(2, "ØÙ") && arabic(3)
        || one_of(0, "à") && one_of(1, "²µ¹¼½¾")
        || one_of(0, "√") && one_of(1, "±∂†≠®™´≤≥¥µø")
        || one_of(0, "≈") && one_of(1, "°¢")
        || starts("‚Ä") && one_of(2, "ìîïòôúùû†°¢π")
        || one_of(0, "‚") && one_of(1, "âó") && one_of(2, "àä°ê")
        || starts("вЂ")
        || one_of(0, "ВГРС")
            && (is(1, C1 | BAD | START | END | CURRENCY) || one_of(1, "°µ"))
            && one_of(2, "ВГРС")
        || starts("ГўВЂВ")
            && at(5).is_some_and(|c| c != '\n')
            && (test(6, char::is_ascii_alphabetic) || one_of(6, " "))
        || one_of(0, "Ã") && one_of(1, "\u{a0}¡")
        || test(0, char::is_ascii_lowercase)
            && (one_of(1, "ÃÂ") && one_of(2, " ") || space(1) && one_of(2, "ÃÂ") && one_of(3, " "))
        || text_start && one_of(0, "ÃÂ") && one_of(1, " ")
        || (test(0, char::is_ascii_lowercase) || one_of(0, ".,?!") || is(0, END))
            && one_of(1, "Â")
            && (one_of(2, " ") || is(2, START | END))
        || starts("β€") && one_of(2, "™\u{a0}Ά\u{ad}®°")
        || one_of(0, "ΒΓΞΟ")
            && (is(1, C1 | BAD | START | END | CURRENCY) || one_of(1, "°"))
            && one_of(2, "ΒΓΞΟ")
        || starts("ā€")
}

/// Python's `\w`: letters, numbers and `_` (Unicode categories L and N; the regex
/// engine's tables are newer than Python 3.11's Unicode 14, so letters assigned since
/// differ).
fn is_word(c: char) -> bool {
    static WORD: LazyLock<SysRegex> =
        LazyLock::new(|| SysRegex::new(r"^[\p{L}\p{N}_]").expect("constant regex"));
    WORD.find_iter(c.encode_utf8(&mut [0; 4])).next().is_some()
}

// --- Inconsistent mojibake -------------------------------------------------------------

/// `fixes.decode_inconsistent_utf8`: where the text as a whole does not decode, fix each
/// run that looks like UTF-8 mojibake on its own, if it is shorter than the text and bad.
fn decode_inconsistent_utf8(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while pos < chars.len() {
        let end = utf8_run_end(&chars, pos);
        if end == pos {
            out.push(chars[pos]);
            pos += 1;
            continue;
        }
        let run: String = chars[pos..end].iter().collect();
        if end - pos < chars.len() && is_bad(&run) {
            out += &fix_encoding(&run);
        } else {
            out += &run;
        }
        pos = end;
    }
    out
}

/// The end of the `chardata.UTF8_DETECTOR_RE` match at `s[i..]` (`i` if none): not after
/// a strict continuation character, then as many sequences of a lead character and its
/// continuation characters as follow.
fn utf8_run_end(s: &[char], i: usize) -> usize {
    if i > 0 && s.get(i - 1).is_some_and(|&c| is_continuation(c, true)) {
        return i;
    }
    let leads: [(ByteClass, usize); 3] = [
        (|b| matches!(b, 0xc2..=0xdf), 2),
        (|b| matches!(b, 0xe0..=0xef), 3),
        (|b| matches!(b, 0xf0 | 0xf3), 4),
    ];
    let mut end = i;
    while let Some(&(_, n)) = leads.iter().find(|&&(lead, n)| {
        s.get(end).is_some_and(|&c| clue(c, lead))
            && (1..n).all(|k| s.get(end + k).is_some_and(|&c| is_continuation(c, false)))
    }) {
        end += n;
    }
    end
}

/// Whether `c` stands for a byte `byte` accepts in one of the Latin-1-like codecs
/// (the first seven): how ftfy built `chardata.UTF8_CLUES`.
fn clue(c: char, byte: ByteClass) -> bool {
    CODECS[..7]
        .iter()
        .any(|codec| codec.byte(c).is_some_and(byte))
}

/// `utf8_continuation` (which takes a space for a lost A0) or, `strict`,
/// `utf8_continuation_strict` (no spaces, dashes, quotes, bullet or ellipsis).
fn is_continuation(c: char, strict: bool) -> bool {
    if strict {
        !"–—―‘’‚“”„•…".contains(c) && clue(c, cont)
    } else {
        c == ' ' || clue(c, cont)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_tables_are_byte_for_byte() {
        for codec in &CODECS {
            let Some(upper) = codec.upper else { continue };
            assert_eq!(upper.chars().count(), 128, "{}", codec.name);
            for (b, c) in (0x80..=0xff).zip(upper.chars()) {
                assert_eq!(codec.byte(c), Some(b), "{} {c:?}", codec.name);
            }
        }
        assert_eq!(CODECS[0].byte('ÿ'), Some(0xff));
        assert_eq!(CODECS[1].encode("\u{fffd}\u{81}"), Some(vec![0x1a, 0x81]));
        assert_eq!(
            (CODECS[1].byte('\u{1a}'), CODECS[0].byte('\u{fffd}')),
            (None, None)
        );
    }

    #[test]
    fn utf8_variants() {
        let decode = decode_utf8_variants;
        assert_eq!(
            decode(b"caf\xc3\xa9\xc0\x80").as_deref(),
            Some("caf\u{e9}\0")
        );
        assert_eq!(
            decode(b"\xed\xa0\xbd\xed\xb8\x8ax").as_deref(),
            Some("\u{1f60a}x")
        );
        // Python's `$` matches before a final newline, and the codec takes it in.
        assert_eq!(decode(b"a\xc0\n").as_deref(), Some("a\0"));
        assert_eq!(
            decode(b"\xed\xa0\xbd\xed\xb8\n").as_deref(),
            Some("\u{1f60a}")
        );
        for bad in [
            &b"\xed\xa0\x80x"[..],
            b"\xc0",
            b"\xc0\x81",
            b"\xed\xa0\xbd\xed\xb8",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn byte_fixes() {
        assert_eq!(restore_byte_a0(b"\xc3 la"), b"\xc3\xa0 la");
        assert_eq!(restore_byte_a0(b"\xc3 s x"), b"\xc3\xa0s x");
        assert_eq!(restore_byte_a0(b"x\xe2\x80 y"), b"x\xe2\x80\xa0y");
        let lossy = |b: &[u8]| replace(b, LOSSY_UTF8, |_, out| out.push(b'#'));
        assert_eq!(lossy(b"\xe2\x80\x1a \xc3? \x1a ?"), b"# # # ?");
    }

    #[test]
    fn badness() {
        for bad in ["cafÃ©", "Ã la", "â€œ", "Î»Î»", "\u{93}"] {
            assert!(is_bad(bad), "{bad:?}");
        }
        for good in ["café", "x Ã", "λλ", "‘quoted’", "°C", "© 2024"] {
            assert!(!is_bad(good), "{good:?}");
        }
        assert!(is_word('\u{e9}') && is_word('7') && !is_word('\u{93e}') && !is_word('-'));
    }

    #[test]
    fn fix_encoding_steps() {
        let cases = [
            ("sÃ³", "só"),
            ("voilÃ le travail", "voilà le travail"),
            ("caf√©", "café"),
            ("РџСЂРёРІРµС‚", "Привет"),
            ("Ã©tÃ© 日本", "été 日本"),
            ("â€œxâ€\u{fffd}", "“x\u{fffd}"),
            ("\u{80}\u{81}", "€\u{81}"),
            ("café", "café"),
            ("РџСЂ", "РџСЂ"),
        ];
        for (input, expected) in cases {
            assert_eq!(fix_encoding(input), expected, "{input:?}");
        }
    }
}
