//! Character classes the reference's Python cleaning and ftfy's repairs share.

/// Python's `str.isspace`: Unicode `White_Space` plus the information separators U+001C–U+001F.
pub(super) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A C1 control character read as Windows-1252, as browsers do (ftfy's `fix_c1_controls`
/// and `html.unescape`'s numeric references). The five bytes Windows-1252 leaves undefined
/// stay themselves (ftfy's "sloppy" codec).
pub(super) fn windows_1252_c1(c: char) -> Option<char> {
    const TABLE: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    let i = u32::from(c).checked_sub(0x80)?;
    TABLE.get(i as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        for c in [
            '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1c}', '\u{1f}', ' ', '\u{85}', '\u{a0}',
            '\u{1680}', '\u{2000}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
            '\u{3000}',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{180e}', '\u{feff}', 'a', '\u{0}'] {
            assert!(!is_py_space(c), "{c:?}");
        }
    }
}
