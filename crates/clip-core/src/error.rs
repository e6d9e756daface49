//! One error type for the core: every failure a user can cause is a value, never a panic
//! (a panic kills the wasm instance and loses the page's state).

use thiserror::Error;

/// Everything that can go wrong between bytes on disk and a similarity map.
#[derive(Debug, Error)]
pub enum ClipError {
    /// The weights file is not a readable safetensors archive (truncated, corrupt, not one).
    #[error("cannot read the weights: {0} (is the file complete and really .safetensors?)")]
    Safetensors(String),
    /// A tensor the model needs is absent.
    #[error("the weights lack tensor `{0}`")]
    MissingTensor(String),
    /// The key names match neither Hugging Face `CLIPModel` nor OpenAI/open_clip naming.
    #[error(
        "unknown weight naming: expected Hugging Face CLIPModel keys (text_model.…, \
         vision_model.…) or OpenAI/open_clip keys (visual.…, transformer.resblocks.…); \
         found e.g. {0}"
    )]
    UnknownNaming(String),
    /// A tensor has a shape other than the config demands.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}{hint}")]
    ShapeMismatch {
        /// Tensor name in the checkpoint.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
        /// Extra context, e.g. "(does config.json belong to these weights?)".
        hint: &'static str,
    },
    /// A tensor is stored in a dtype we do not read.
    #[error("tensor `{name}` has dtype {dtype}; supported: F32, F16, BF16")]
    UnsupportedDtype {
        /// Tensor name in the checkpoint.
        name: String,
        /// The dtype in the file.
        dtype: String,
    },
    /// `config.json` is unreadable or describes something we cannot run.
    #[error("bad model config: {0}")]
    Config(String),
    /// The image could not be decoded.
    #[error("cannot decode the image: {0}")]
    Image(String),
    /// The image is larger than the decode limits allow (the text says by how much).
    #[error("the image is too large: {0}")]
    ImageTooLarge(String),
    /// The image has no pixels.
    #[error("the image is empty (zero width or height)")]
    EmptyImage,
    /// The requested input size does not fit the model's patch grid (or is 0 or too large:
    /// `patch` is then 0).
    #[error(
        "input size {height}×{width} is not usable: sides must be multiples of the patch size{}, \
         between 1 and {max}",
        if *patch > 0 { format!(" ({patch})") } else { String::new() },
    )]
    BadInputSize {
        /// Requested height.
        height: usize,
        /// Requested width.
        width: usize,
        /// The model's patch size.
        patch: usize,
        /// The largest side accepted at all.
        max: usize,
    },
    /// The input is larger than this device can run: attention's scores for `tokens` tokens
    /// would not fit its memory or its largest buffer.
    #[error(
        "input size {height}×{width} is too large for {device}: its {tokens} tokens need \
         {need_mb} MB for attention alone, more than the {limit_mb} MB {what}; the largest \
         square input here is {max_side}×{max_side}"
    )]
    InputTooLarge {
        /// Requested height.
        height: usize,
        /// Requested width.
        width: usize,
        /// Tokens (patches + class token).
        tokens: usize,
        /// Megabytes the attention scores of one block would take.
        need_mb: u64,
        /// The limit in megabytes.
        limit_mb: u64,
        /// Which limit ("buffer the GPU can bind", "wasm memory left", …).
        what: &'static str,
        /// The device ("WebGPU", "the CPU").
        device: &'static str,
        /// The largest square side (a multiple of the patch) that fits.
        max_side: usize,
    },
    /// No labels or text to explain.
    #[error("nothing to explain: give a text or at least one label")]
    EmptyQuery,
    /// An attention row of a block or token the model does not have.
    #[error("no attention row for token {query} in block {block}: the model has blocks 0–{} and {tokens} tokens", .blocks.saturating_sub(1))]
    BadAttentionQuery {
        /// The block asked for.
        block: usize,
        /// Blocks in the image tower.
        blocks: usize,
        /// The token asked for.
        query: usize,
        /// Tokens of the input (class token included).
        tokens: usize,
    },
    /// The redundancy view was asked for a single text.
    #[error(
        "the redundancy view needs a label set (--labels): Eq. 9's shared term is over its classes"
    )]
    RedundancyNeedsLabels,
    /// Per-token maps were asked for a label set.
    #[error("token maps explain one text (--text), not a label set")]
    TokensNeedText,
    /// A result file of a version this build does not read.
    #[error("{} this build does not know (it reads version {known}); make it again with this version's `clip-surgery`", match .found { Some(v) => format!("a result file of version {v}"), None => "a result file without a version".to_string() })]
    ResultVersion {
        /// Its `version`, if it had one.
        found: Option<u32>,
        /// The version this build reads.
        known: u32,
    },
    /// A result file that is not what `explain --json` or `segment --json` writes.
    #[error("not a result file of `clip-surgery explain --json` or `segment --json`: {0}")]
    BadResult(String),
    /// A result that cannot be segmented: a single text, or one without patch logits.
    #[error(
        "segmentation needs a label set of two or more labels (a single text has nothing to compete with)"
    )]
    NotSegmentable,
    /// A label appears twice in a label set (its map and points would be ambiguous).
    #[error("the label {0:?} is given twice; each label may appear once")]
    DuplicateLabel(String),
    /// More labels than a segmentation mask can index (one byte a pixel, 255 = background).
    #[error("{given} labels are too many to segment: at most {max}")]
    TooManyLabels {
        /// Labels given.
        given: usize,
        /// The most a mask holds.
        max: usize,
    },
    /// A sliding-window setting that cannot run.
    #[error(
        "cannot slide {window}-pixel windows every {stride} pixels over a {short_side}-pixel short side: the window must be a multiple of the patch ({patch}) and at most the short side, the stride between 1 and the window"
    )]
    BadSlide {
        /// Short side of the resized image.
        short_side: usize,
        /// Window side.
        window: usize,
        /// Step.
        stride: usize,
        /// The model's patch.
        patch: usize,
    },
    /// A dataset or mask the evaluation cannot use.
    #[error("evaluation: {0}")]
    Evaluation(String),
    /// A background threshold that is not a probability.
    #[error("the background threshold {0} is not a probability between 0 and 1")]
    BadThreshold(f32),
    /// Tokenizer failure (bad tokenizer file, encoding error).
    #[error(transparent)]
    Tokenizer(#[from] crate::input::tokenizer::TokenizerError),
    /// A weight pack's manifest is unreadable or inconsistent.
    #[error("bad weight pack: {0}")]
    Pack(String),
    /// A weight pack uses a quantization scheme (or tensor encoding) we do not know.
    #[error(
        "unknown quantization scheme {0:?}; known: f32, f16, int8, q4 (made by a newer version?)"
    )]
    UnknownScheme(String),
    /// A shard has another length than its manifest says (usually an interrupted download).
    #[error("shard {file} is {found} bytes, the manifest says {expected}{}", if found < expected { " (truncated download?)" } else { "" })]
    ShardLength {
        /// Shard file name.
        file: String,
        /// Bytes the manifest lists.
        expected: u64,
        /// Bytes received.
        found: u64,
    },
    /// A shard belongs to another model (or another place in this one) than its manifest.
    #[error(
        "shard {file} belongs to {found}, not to this model ({expected}): mixed files from two conversions?"
    )]
    ForeignShard {
        /// Shard file name.
        file: String,
        /// `model <id> shard <i>` the manifest expects.
        expected: String,
        /// What the shard header says.
        found: String,
    },
    /// A shard's SHA-256 differs from its manifest's (corrupted in transit or on disk).
    #[error("shard {file} is corrupt: SHA-256 {found}, the manifest says {expected}")]
    ShardChecksum {
        /// Shard file name.
        file: String,
        /// Hex digest in the manifest.
        expected: String,
        /// Hex digest of the bytes received.
        found: String,
    },
    /// A device read-back or execution failed.
    #[error("the compute device failed: {0}")]
    Device(String),
}

/// Result alias for the core.
pub type Result<T, E = ClipError> = std::result::Result<T, E>;
