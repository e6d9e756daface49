//! `manifest.json`: what a page reads before it downloads anything — format, model id, scheme,
//! config, shards with their sizes and SHA-256, and where each tensor sits in the payload.
//! Everything in it comes from a server, so it is checked against the model it claims to
//! describe before any shard is fetched, and no claim in it can make a reader panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::weights::pack::scheme::{Encoding, Scheme, stored_shape};
use crate::weights::pack::shards::{self, HEADER};
use crate::weights::source::check_shape;
use crate::weights::tree::{ClipTensors, Role};

/// `format` of every manifest.
pub const FORMAT: &str = "clip-surgery-pack";
/// The manifest version this code writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The file name of a pack's precomputed text features ([`crate::surgery::bank::StoredBank`]).
pub const TEXT_BANK: &str = "text-bank.bin";

/// One shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the manifest.
    pub file: String,
    /// File size, header included.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
}

/// One tensor's place in the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// How its bytes encode values.
    pub encoding: Encoding,
    /// Shape as stored (matrices `[in, out]`).
    pub shape: Vec<usize>,
    /// Whether the checkpoint's `[out, in]` matrix was transposed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transposed: bool,
    /// Byte offset in the payload (the shards' contents after their headers, concatenated).
    pub offset: u64,
    /// Byte length.
    pub bytes: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// 32 hex digits: digest of scheme, config and payload; repeated in every shard header.
    pub model_id: String,
    /// How matrices are stored.
    pub scheme: Scheme,
    /// What the pack was converted from (a file name or URL).
    pub source: String,
    /// Model sizes and surgery depth.
    pub config: ClipConfig,
    /// Shard files in payload order.
    pub shards: Vec<ShardInfo>,
    /// Every tensor by Hugging Face name.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Precomputed text features (`clip-surgery convert --text-bank`), if the pack has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_bank: Option<ShardInfo>,
}

/// Largest text bank file: [`crate::surgery::bank::TextBank::CAPACITY`] features of the widest
/// model with their texts fit in far less.
const MAX_TEXT_BANK_BYTES: u64 = 64 << 20;

/// A file name from a manifest becomes a URL and a path next to the manifest: nothing that
/// climbs out.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Manifest {
    /// [`Self::parse`] for the file's bytes as fetched or read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let json = std::str::from_utf8(bytes)
            .map_err(|_| ClipError::Pack(format!("{MANIFEST} is not UTF-8 text")))?;
        Self::parse(json)
    }

    /// Parses and checks a manifest against the model it describes: every tensor present,
    /// shaped and sized as the config demands, inside the payload — before any shard is
    /// fetched.
    pub fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ClipError::Pack(format!("the manifest is not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ClipError::Pack(format!(
                "not a {FORMAT} manifest (its `format` is {})",
                value.get("format").unwrap_or(&serde_json::Value::Null)
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            v => {
                return Err(ClipError::Pack(format!(
                    "manifest version {v:?}; this build reads version {VERSION}"
                )));
            }
        }
        // An unknown scheme or encoding is most likely a newer converter: say so, rather than
        // the generic "bad manifest" serde would give.
        let scheme = value.get("scheme").and_then(|s| s.as_str()).unwrap_or("");
        scheme.parse::<Scheme>()?;
        if let Some(tensors) = value.get("tensors").and_then(|t| t.as_object()) {
            for (name, entry) in tensors {
                let encoding = entry.get("encoding").and_then(|e| e.as_str()).unwrap_or("");
                if Encoding::from_name(encoding).is_none() {
                    return Err(ClipError::UnknownScheme(format!(
                        "{encoding} (encoding of tensor {name})"
                    )));
                }
            }
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| ClipError::Pack(format!("{MANIFEST}: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if self.model_id.len() != 32 || !self.model_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClipError::Pack(format!("bad model id {:?}", self.model_id)));
        }
        if self.shards.is_empty() {
            return Err(ClipError::Pack("the manifest lists no shards".into()));
        }
        for shard in &self.shards {
            if !safe_file_name(&shard.file) || shard.bytes <= HEADER as u64 {
                return Err(ClipError::Pack(format!(
                    "bad shard entry {:?} ({} bytes)",
                    shard.file, shard.bytes
                )));
            }
        }
        if let Some(bank) = &self.text_bank {
            let named_apart = self.shards.iter().all(|s| s.file != bank.file);
            if !safe_file_name(&bank.file)
                || !named_apart
                || bank.bytes == 0
                || bank.bytes > MAX_TEXT_BANK_BYTES
            {
                return Err(ClipError::Pack(format!(
                    "bad text bank entry {:?} ({} bytes)",
                    bank.file, bank.bytes
                )));
            }
        }
        let payload = self.payload_len().ok_or_else(|| {
            ClipError::Pack("the shard sizes add up to more than 2⁶⁴ bytes".into())
        })?;
        for spec in ClipTensors::new(&self.config).all() {
            let entry = self
                .tensors
                .get(&spec.name)
                .ok_or_else(|| ClipError::MissingTensor(spec.name.clone()))?;
            // Only a linear weight is ever stored transposed; a claim on anything else (a
            // vector, the scalar temperature) is refused here rather than trusted later.
            if entry.transposed && spec.role != Role::Matrix {
                return Err(ClipError::Pack(format!(
                    "tensor {} is marked transposed, but it is not a matrix",
                    spec.name
                )));
            }
            let expected_shape = if entry.transposed {
                stored_shape(spec)
            } else {
                spec.shape.clone()
            };
            check_shape(&spec.name, &expected_shape, &entry.shape)?;
            let len = entry.encoding.stored_len(&entry.shape).map(|l| l as u64);
            let end = entry.offset.checked_add(entry.bytes);
            if len != Some(entry.bytes) || end.is_none_or(|end| end > payload) {
                return Err(ClipError::Pack(format!(
                    "tensor {} claims {} bytes at offset {} as {}, which does not fit its shape \
                     or the {payload}-byte payload",
                    spec.name,
                    entry.bytes,
                    entry.offset,
                    entry.encoding.name()
                )));
            }
        }
        Ok(())
    }

    /// The payload: every shard without its header (`None` if the claimed sizes overflow).
    pub(crate) fn payload_len(&self) -> Option<u64> {
        self.shards.iter().try_fold(0u64, |sum, s| {
            sum.checked_add(s.bytes.checked_sub(HEADER as u64)?)
        })
    }

    /// Total download: every shard.
    pub fn total_bytes(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.bytes))
    }

    /// Checks the text bank file's size and digest against the manifest's entry.
    pub fn check_text_bank(&self, bytes: &[u8]) -> Result<()> {
        let info = self
            .text_bank
            .as_ref()
            .ok_or_else(|| ClipError::Pack("the manifest lists no text bank".into()))?;
        info.check_length(bytes)?;
        info.check_digest(bytes)
    }

    /// Checks shard `index` as received: length, then header (model and place), then SHA-256
    /// — so each failure is named by its most likely cause.
    pub fn check_shard(&self, index: usize, bytes: &[u8]) -> Result<()> {
        let info = self.shards.get(index).ok_or_else(|| {
            ClipError::Pack(format!(
                "no shard {index} in a {}-shard pack",
                self.shards.len()
            ))
        })?;
        info.check_length(bytes)?;
        let expected = shards::expected(&self.model_id, index, self.shards.len());
        let found = shards::describe(bytes);
        if found != expected {
            return Err(ClipError::ForeignShard {
                file: info.file.clone(),
                expected,
                found,
            });
        }
        info.check_digest(bytes)
    }
}

impl ShardInfo {
    /// The file as received is as long as listed (a shorter one is a truncated download).
    fn check_length(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != self.bytes {
            return Err(ClipError::ShardLength {
                file: self.file.clone(),
                expected: self.bytes,
                found: bytes.len() as u64,
            });
        }
        Ok(())
    }

    /// The file as received has the listed SHA-256.
    fn check_digest(&self, bytes: &[u8]) -> Result<()> {
        let digest = shards::sha256_hex(bytes);
        if digest != self.sha256 {
            return Err(ClipError::ShardChecksum {
                file: self.file.clone(),
                expected: self.sha256.clone(),
                found: digest,
            });
        }
        Ok(())
    }
}
