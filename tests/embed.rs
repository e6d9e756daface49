//! `www/embed.js` (the `<clip-surgery-view>` element) draws with the app's colormaps: its
//! colormap block must be clip-core's `Colormap::lut`, byte for byte. `CLIP_BLESS=1` rewrites the
//! block; otherwise a difference fails with how to fix it. (The browser tests check the element's
//! arithmetic against the app's canvas, pixel for pixel.)

use std::path::PathBuf;

use clip_core::output::colormap::Colormap;

const BEGIN: &str = "const COLORMAPS = {\n";
const END: &str = "};\n// END colormaps";

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_is_the_standard_alphabet_with_padding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
}

#[test]
fn embed_colormaps_are_the_apps() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/embed.js");
    let source = std::fs::read_to_string(&path).unwrap();
    let start = source.find(BEGIN).expect("the colormap block") + BEGIN.len();
    let end = source[start..].find(END).expect("its end") + start;
    let block: String = Colormap::ALL
        .iter()
        .map(|c| {
            let bytes: Vec<u8> = c.lut().concat();
            format!("  {}: '{}',\n", c.name(), base64(&bytes))
        })
        .collect();
    if source[start..end] == block {
        return;
    }
    if std::env::var_os("CLIP_BLESS").is_some() {
        let updated = format!("{}{block}{}", &source[..start], &source[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "www/embed.js's colormaps differ from clip-core's; run `CLIP_BLESS=1 cargo test -p clip-surgery-web embed` to rewrite them"
    );
}
