//! Shard files: a 32-byte header — `CLIPPACK`, the 16-byte model id, the shard's index and the
//! shard count (`u32` little-endian each) — then the next slice of the payload.

use sha2::{Digest, Sha256};

/// Bytes of a shard header.
pub(crate) const HEADER: usize = 32;
const MAGIC: &[u8; 8] = b"CLIPPACK";

/// The header of shard `index` of `count` of the pack `model_id`.
pub(crate) fn header(model_id: &[u8; 16], index: usize, count: usize) -> [u8; HEADER] {
    let mut header = [0; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..24].copy_from_slice(model_id);
    header[24..28].copy_from_slice(&(index as u32).to_le_bytes());
    header[28..32].copy_from_slice(&(count as u32).to_le_bytes());
    header
}

/// What a shard's header says: `model <id> shard <i>/<count>` (1-based), or that it is no
/// shard at all — the words [`crate::error::ClipError::ForeignShard`] reports.
pub(crate) fn describe(bytes: &[u8]) -> String {
    match bytes.get(..HEADER) {
        Some(h) if h[..8] == MAGIC[..] => {
            let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            format!(
                "model {} shard {}/{}",
                hex(&h[8..24]),
                u64::from(word(24)) + 1,
                word(28)
            )
        }
        _ => "something that is not a pack shard".to_string(),
    }
}

/// The header [`describe`] expects of shard `index` of `count` in pack `model_id` (hex).
pub(crate) fn expected(model_id: &str, index: usize, count: usize) -> String {
    format!("model {model_id} shard {}/{count}", index + 1)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_describe_themselves() {
        let h = header(&[0xab; 16], 2, 5);
        assert_eq!(describe(&h), expected(&hex(&[0xab; 16]), 2, 5));
        assert_eq!(describe(b"CLIPPACK"), "something that is not a pack shard");
        // The largest index a header can claim still prints (no u32 overflow).
        let mut h = header(&[0; 16], 0, 1);
        h[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(describe(&h).contains("shard 4294967296/1"));
    }
}
