//! The URL contract: the query string is the app's shareable state, and docs sites and tests
//! drive the app through it (`model`, `image`, `text` | `labels`, `size`, `method`, `device`,
//! `colormap`, `opacity`, `embed`, plus `compare`, `threads`, `simd`, `view`, `threshold` and
//! `presence`). Values
//! equal to the defaults are left out of the address the app writes back, so share links stay
//! short.

use std::sync::OnceLock;

use clip_core::error::ClipError;
use clip_core::input::query::{Method, Query, split_labels};
use clip_core::output::colormap::Colormap;
use clip_core::weights::pack::Scheme;
use clip_protocol::{AttentionAt, DeviceChoice, QuerySpec};

/// The query-string keys of the contract, in the order share links write them.
#[rustfmt::skip]
pub const KEYS: [&str; 20] = [
    "model",
    "quant",
    "image",
    "result",
    "text",
    "labels",
    "size",
    "method",
    "compare",
    "device",
    "threads",
    "simd",
    "view",
    "at",
    "block",
    "colormap",
    "opacity",
    "threshold",
    "presence",
    "embed",
];

/// Bounds of the presence threshold on the multi-label score (Eq. 9 on the CLS token, whose
/// values lie within a few hundredths of 0 for CLIP).
pub const PRESENCE_RANGE: (f32, f32) = (-0.1, 0.1);

/// More blocks than any CLIP image tower has (ViT-bigG: 48).
const MAX_BLOCKS: usize = 64;

/// Most CPU threads the worker runs (browsers report at most this many cores usefully, and
/// each thread is a Web Worker with its own stack).
pub const MAX_THREADS: usize = 16;

/// Precision when the address names none: int8 keeps surgery maps at r ≥ 0.99 of f32 (see the
/// README's fidelity table) at a quarter of the download and device memory.
pub const DEFAULT_QUANT: Scheme = Scheme::Int8;

/// The public OpenAI ViT-B/16 on the Hugging Face hub. Its safetensors file lives on the
/// `refs/pr/10` revision (the hub's "safetensors" PR), which also holds `config.json`; `resolve`
/// URLs answer with CORS headers, so a page on any origin can fetch them.
pub const HUB_MODEL: &str =
    "https://huggingface.co/openai/clip-vit-base-patch16/resolve/refs%2Fpr%2F10";

/// A weight pack bundled with the deploy (`cargo xtask build --bundle-model`), set once at
/// start from the page's `clip-surgery-model` meta tag.
static BUNDLED_MODEL: OnceLock<String> = OnceLock::new();

/// Makes `url` the default model (an offline demo's bundled pack). Only the first call counts.
pub fn bundle_model(url: String) {
    let _ = BUNDLED_MODEL.set(url);
}

/// The bundled pack, if the deploy has one.
pub fn bundled_model() -> Option<&'static str> {
    BUNDLED_MODEL.get().map(String::as_str)
}

/// The model loaded when the address names none: the bundled pack, else [`HUB_MODEL`].
pub fn default_model() -> &'static str {
    bundled_model().unwrap_or(HUB_MODEL)
}
/// Labels offered before the user types any (they suit the astronaut sample).
pub const DEFAULT_LABELS: &str = "person, flag, rocket, sky, ground";
/// Heat weight of the overlay; the paper's figures use 0.6.
pub const DEFAULT_OPACITY: f32 = 0.6;
/// Square input sides offered in the size menu when the model's patch divides them (the
/// official demo uses 512; /14 models get 224, 336, 448; /32 models 224, 448, 512).
pub const SIZES: [usize; 4] = [224, 336, 448, 512];
/// The patch of the default model (ViT-B/16), for the size menu before a model loads.
pub const DEFAULT_PATCH: usize = 16;
/// The default input: ViT-B/16's native 224 px — fast everywhere, also on the CPU fallback.
pub const DEFAULT_SIZE: [usize; 2] = [224, 224];

/// A single text or a label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One text (possibly "a+b"); single-text feature surgery.
    Text,
    /// A label set; label-set feature surgery and CLS scores.
    #[default]
    Labels,
}

/// Everything the address can say.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Model directory or `.safetensors` URL, or a weight pack (directory or `manifest.json`).
    pub model: String,
    /// Precision for a plain checkpoint: quantized in the worker right after download, and
    /// cached quantized. A weight pack keeps the scheme it was converted to.
    pub quant: Scheme,
    /// Image URL.
    pub image: Option<String>,
    /// URL of a result file (`explain --json`) to show without a model, over `image`.
    pub result: Option<String>,
    /// Which of `text` and `labels` is active.
    pub mode: Mode,
    /// The single text.
    pub text: String,
    /// Comma-separated labels, as typed.
    pub labels: String,
    /// Network input `[height, width]`.
    pub size: [usize; 2],
    /// Surgery or raw CLIP.
    pub method: Method,
    /// Also show raw CLIP beside surgery.
    pub compare: bool,
    /// Device preference.
    pub device: DeviceChoice,
    /// At most this many CPU threads (`None`: one per core, up to [`MAX_THREADS`]). Threads
    /// need a cross-origin isolated page; the WebGPU path does not use them.
    pub threads: Option<usize>,
    /// Which build of the threaded CPU worker runs (`None`: relaxed SIMD where the browser
    /// has it, else baseline SIMD; www/worker_loader.js decides).
    pub simd: Option<Simd>,
    /// What the result shows: a label's heatmap, the label set's segmentation, one patch's
    /// attention, or what the labels' maps share.
    pub view: View,
    /// The attention view's query patch `[row, col]` (a click on the picture sets it).
    pub at: Option<[usize; 2]>,
    /// The attention view's block (`None`: the last).
    pub block: Option<usize>,
    /// Heatmap colours.
    pub colormap: Colormap,
    /// Heat (or segment colour) weight in [0, 1].
    pub opacity: f32,
    /// Segmentation: a pixel whose best label's probability (softmax over the labels of
    /// CLIP's scaled cosines) is below this is background; 0 keeps every pixel.
    pub threshold: f32,
    /// A label counts as present where its multi-label score exceeds this.
    pub presence: f32,
    /// Canvas and minimal controls only (iframes).
    pub embed: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            model: default_model().into(),
            quant: DEFAULT_QUANT,
            image: None,
            result: None,
            mode: Mode::Labels,
            text: String::new(),
            labels: DEFAULT_LABELS.into(),
            size: DEFAULT_SIZE,
            method: Method::Surgery,
            compare: false,
            device: DeviceChoice::Auto,
            threads: None,
            simd: None,
            view: View::Heatmap,
            at: None,
            block: None,
            colormap: Colormap::Jet,
            opacity: DEFAULT_OPACITY,
            threshold: 0.0,
            presence: 0.0,
            embed: false,
        }
    }
}

/// The threaded CPU worker's two builds (`simd=`): wasm's baseline SIMD, or relaxed SIMD
/// (a fused multiply-add in the f32 products), which not every browser has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// `simd=baseline`.
    Baseline,
    /// `simd=relaxed`.
    Relaxed,
}

impl Simd {
    /// The parameter's value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Relaxed => "relaxed",
        }
    }
}

/// What the result area shows (`view=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// One label's similarity map over the photo.
    Heatmap,
    /// The label set's open-vocabulary segmentation (argmax over the labels per pixel).
    Segmentation,
    /// One patch's attention, q-k beside v-v (paper Fig. 1).
    Attention,
    /// What a label set's maps share: the empty text's map and Eq. 9's subtracted term
    /// beside each label's cosine (paper Fig. 2).
    Redundancy,
}

impl View {
    /// All, in the switch's order.
    pub const ALL: [Self; 4] = [
        Self::Heatmap,
        Self::Segmentation,
        Self::Attention,
        Self::Redundancy,
    ];

    /// The parameter's value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Heatmap => "heatmap",
            Self::Segmentation => "segmentation",
            Self::Attention => "attention",
            Self::Redundancy => "redundancy",
        }
    }

    /// The switch's caption.
    pub fn title(self) -> &'static str {
        match self {
            Self::Heatmap => "Heatmap",
            Self::Segmentation => "Segmentation",
            Self::Attention => "Attention",
            Self::Redundancy => "Redundancy",
        }
    }
}

/// One control changed: what the user did, applied by the reducer to the current parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// The precision for a plain checkpoint.
    Quant(Scheme),
    /// Label set or single text.
    Mode(Mode),
    /// The single text, as typed.
    Text(String),
    /// The labels, as typed.
    Labels(String),
    /// The network input.
    Size([usize; 2]),
    /// Surgery or raw CLIP.
    Method(Method),
    /// Raw CLIP beside surgery.
    Compare(bool),
    /// Heatmap, segmentation or attention.
    View(View),
    /// The attention view's query patch.
    AttentionAt([usize; 2]),
    /// The attention view's block (`None`: the last).
    Block(Option<usize>),
    /// Heatmap colours.
    Colormap(Colormap),
    /// Heat weight (clamped to [0, 1]).
    Opacity(f32),
    /// Segmentation's background threshold (clamped to [0, 1]).
    Threshold(f32),
    /// Presence threshold (clamped to [`PRESENCE_RANGE`]).
    Presence(f32),
}

impl Params {
    /// Applies one edit.
    pub fn apply(&mut self, edit: Edit) {
        match edit {
            Edit::Quant(q) => self.quant = q,
            Edit::Mode(m) => self.mode = m,
            Edit::Text(t) => self.text = t,
            Edit::Labels(l) => self.labels = l,
            Edit::Size(s) => self.size = s,
            Edit::Method(m) => self.method = m,
            Edit::Compare(c) => self.compare = c,
            Edit::Colormap(c) => self.colormap = c,
            Edit::View(v) => self.view = v,
            Edit::AttentionAt(at) => self.at = Some(at),
            Edit::Block(b) => self.block = b,
            Edit::Opacity(o) => self.opacity = o.clamp(0.0, 1.0),
            Edit::Threshold(t) => self.threshold = t.clamp(0.0, 1.0),
            Edit::Presence(t) => self.presence = t.clamp(PRESENCE_RANGE.0, PRESENCE_RANGE.1),
        }
    }

    /// Reads query-string pairs (already percent-decoded). Unknown keys are ignored; values
    /// that cannot be used keep the default and produce a warning for the user.
    pub fn from_pairs<I, K, V>(pairs: I) -> (Self, Vec<String>)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut p = Self::default();
        let mut warnings = Vec::new();
        let mut text = None;
        let mut labels = None;
        let flag = |key: &str, value: &str, warnings: &mut Vec<String>| match value {
            "1" | "true" => true,
            "0" | "false" => false,
            other => {
                warnings.push(format!("{key}={other} is not 1 or 0; using 0"));
                false
            }
        };
        for (key, value) in pairs {
            let value = value.as_ref().trim();
            match key.as_ref() {
                "model" | "image" | "result" if value.is_empty() => {
                    warnings.push(format!("{}= is empty; using the default", key.as_ref()));
                }
                "model" => p.model = value.to_string(),
                "quant" => match value.parse::<Scheme>() {
                    Ok(scheme) => p.quant = scheme,
                    Err(_) => warnings.push(format!(
                        "quant={value} is not one of f32, f16, int8, q4; using {}",
                        p.quant
                    )),
                },
                "image" => p.image = Some(value.to_string()),
                "result" => p.result = Some(value.to_string()),
                "text" => text = Some(value.to_string()),
                "labels" => labels = Some(value.to_string()),
                "size" => match parse_size(value) {
                    Some(size) => p.size = size,
                    None => warnings.push(format!(
                        "size={value} is not a size (use e.g. 224 or 224x320); using {}",
                        format_size(p.size)
                    )),
                },
                "method" => match value.parse() {
                    Ok(m) => p.method = m,
                    Err(e) => warnings.push(e),
                },
                "device" => match value.parse() {
                    Ok(d) => p.device = d,
                    Err(e) => warnings.push(format!("{e}; using WebGPU where available")),
                },
                "threads" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_THREADS).contains(&n) => p.threads = Some(n),
                    _ => warnings.push(format!(
                        "threads={value} is not a whole number from 1 to {MAX_THREADS}; using one per core"
                    )),
                },
                "simd" => match value {
                    "baseline" => p.simd = Some(Simd::Baseline),
                    "relaxed" => p.simd = Some(Simd::Relaxed),
                    _ => warnings.push(format!(
                        "simd={value} is neither baseline nor relaxed; using relaxed SIMD where the browser has it"
                    )),
                },
                "view" => match View::ALL.into_iter().find(|v| v.name() == value) {
                    Some(v) => p.view = v,
                    None => warnings.push(format!(
                        "view={value} is not heatmap, segmentation, attention or redundancy; showing the heatmap"
                    )),
                },
                "at" => match parse_pair(value) {
                    Some(at) => p.at = Some(at),
                    None => warnings.push(format!(
                        "at={value} is not a patch row,col (e.g. 3,5); click the picture to pick one"
                    )),
                },
                "block" => match value.parse::<usize>() {
                    Ok(b) if b < MAX_BLOCKS => p.block = Some(b),
                    _ => warnings.push(format!("block={value} is not a block number; using the last")),
                },
                "threshold" => match value.parse::<f32>() {
                    Ok(t) if (0.0..=1.0).contains(&t) => p.threshold = t,
                    _ => warnings.push(format!("threshold={value} must be between 0 and 1")),
                },
                "colormap" => match value.parse() {
                    Ok(c) => p.colormap = c,
                    Err(e) => warnings.push(e),
                },
                "opacity" => match value.parse::<f32>() {
                    Ok(o) if (0.0..=1.0).contains(&o) => p.opacity = o,
                    _ => warnings.push(format!("opacity={value} must be between 0 and 1")),
                },
                "presence" => match value.parse::<f32>() {
                    Ok(t) if (PRESENCE_RANGE.0..=PRESENCE_RANGE.1).contains(&t) => p.presence = t,
                    _ => warnings.push(format!(
                        "presence={value} must be between {} and {}",
                        PRESENCE_RANGE.0, PRESENCE_RANGE.1
                    )),
                },
                "embed" => p.embed = flag("embed", value, &mut warnings),
                "compare" => p.compare = flag("compare", value, &mut warnings),
                _ => {}
            }
        }
        // `text` wins when both are given: a single text is the more specific request.
        if let Some(text) = text {
            p.mode = Mode::Text;
            p.text = text;
        } else if let Some(labels) = labels {
            p.labels = labels;
        }
        if let Some(Err(e)) = p.query() {
            warnings.push(e);
        }
        (p, warnings)
    }

    /// The pairs that differ from the defaults, in a stable order.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let d = Self::default();
        let mut out = Vec::new();
        if self.model != d.model {
            out.push(("model", self.model.clone()));
        }
        if self.quant != d.quant {
            out.push(("quant", self.quant.name().into()));
        }
        if let Some(image) = &self.image {
            out.push(("image", image.clone()));
        }
        if let Some(result) = &self.result {
            out.push(("result", result.clone()));
        }
        match self.mode {
            Mode::Text => out.push(("text", self.text.clone())),
            Mode::Labels if split_labels(&self.labels) != split_labels(&d.labels) => {
                out.push(("labels", split_labels(&self.labels).join(",")));
            }
            Mode::Labels => {}
        }
        if self.size != d.size {
            out.push(("size", format_size(self.size)));
        }
        if self.method != d.method {
            out.push(("method", self.method.name().into()));
        }
        if self.compare {
            out.push(("compare", "1".into()));
        }
        if let Some(device) = self.device.param() {
            out.push(("device", device.into()));
        }
        if let Some(threads) = self.threads {
            out.push(("threads", threads.to_string()));
        }
        if let Some(simd) = self.simd {
            out.push(("simd", simd.name().into()));
        }
        if self.view != d.view {
            out.push(("view", self.view.name().into()));
        }
        if let Some([row, col]) = self.at {
            out.push(("at", format!("{row},{col}")));
        }
        if let Some(block) = self.block {
            out.push(("block", block.to_string()));
        }
        if self.colormap != d.colormap {
            out.push(("colormap", self.colormap.name().into()));
        }
        if (self.opacity - d.opacity).abs() > 1e-6 {
            out.push(("opacity", format_opacity(self.opacity)));
        }
        if (self.threshold - d.threshold).abs() > 1e-6 {
            out.push(("threshold", format_opacity(self.threshold)));
        }
        if (self.presence - d.presence).abs() > 1e-6 {
            out.push(("presence", format_presence(self.presence)));
        }
        if self.embed {
            out.push(("embed", "1".into()));
        }
        out
    }

    /// The attention rows the worker should compute: in the attention view, once a patch is
    /// chosen.
    pub fn attention(&self) -> Option<AttentionAt> {
        let patch = self.at.filter(|_| self.view == View::Attention)?;
        Some(AttentionAt {
            block: self.block,
            patch,
        })
    }

    /// Whether the worker should compute the redundancy maps: in the redundancy view, for a
    /// label set (a single text has no classes to share anything).
    pub fn redundancy(&self) -> bool {
        self.view == View::Redundancy && self.mode == Mode::Labels
    }

    /// The active query: `None` when it is empty, an error (for the user) when clip-core's
    /// rules refuse it — the same rules as the CLI's (e.g. a label given twice).
    pub fn query(&self) -> Option<Result<QuerySpec, String>> {
        let checked = match self.mode {
            Mode::Text => Query::text(&self.text),
            Mode::Labels => Query::labels(&self.labels),
        };
        match checked {
            Ok(Query::Text(text)) => Some(Ok(QuerySpec::Text(text))),
            Ok(Query::Labels(labels)) => Some(Ok(QuerySpec::Labels(labels))),
            Err(ClipError::EmptyQuery) => None,
            // Worded here rather than with the error's `Display`, which would bring every
            // message of the core (and its formatting) into the page's wasm.
            Err(ClipError::DuplicateLabel(label)) => Some(Err(format!(
                "The label \"{label}\" is given twice; each label may appear once."
            ))),
            Err(_) => Some(Err("This query cannot be explained.".into())),
        }
    }
}

/// The square sides the size menu offers for a model with `patch`, up to `max_side`.
pub fn size_options(patch: usize, max_side: usize) -> Vec<usize> {
    SIZES
        .into_iter()
        .filter(|s| patch > 0 && s.is_multiple_of(patch) && *s <= max_side)
        .collect()
}

/// Checks a size typed into the form against the model's patch and the device's limit.
pub fn check_size([h, w]: [usize; 2], patch: usize, max_side: usize) -> Result<(), String> {
    if patch == 0 || !h.is_multiple_of(patch) || !w.is_multiple_of(patch) {
        return Err(format!(
            "Use multiples of {patch} (this model's patch size)."
        ));
    }
    if h.max(w) > max_side {
        return Err(format!(
            "At most {max_side} px per side here: larger inputs do not fit this device."
        ));
    }
    Ok(())
}

/// `"512"` → `[512, 512]`; `"224x320"` → height 224, width 320. Zero is refused; whether a
/// size fits the model's patch grid is the worker's call (it knows the model).
pub fn parse_size(s: &str) -> Option<[usize; 2]> {
    let side = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match s.split_once(['x', 'X', '×']) {
        Some((h, w)) => Some([side(h)?, side(w)?]),
        None => side(s).map(|n| [n, n]),
    }
}

/// Inverse of [`parse_size`].
pub fn format_size([h, w]: [usize; 2]) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("{h}x{w}")
    }
}

/// Opacity with at most two decimals (`0.5`, `0.35`).
pub fn format_opacity(o: f32) -> String {
    let s = format!("{:.2}", o);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `"3,5"` → `[3, 5]`.
fn parse_pair(value: &str) -> Option<[usize; 2]> {
    let (a, b) = value.split_once(',')?;
    Some([a.trim().parse().ok()?, b.trim().parse().ok()?])
}

/// The presence threshold with at most three decimals (`0.01`, `-0.005`).
pub fn format_presence(t: f32) -> String {
    let s = format!("{t:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_write_an_empty_query() {
        assert!(Params::default().to_pairs().is_empty());
    }

    #[test]
    fn every_parameter_round_trips() {
        let pairs = [
            ("model", "http://127.0.0.1:9/m"),
            ("quant", "q4"),
            ("image", "http://127.0.0.1:9/a.png"),
            ("result", "results/a.json"),
            ("labels", "cat, dog ,, bird"),
            ("size", "224x320"),
            ("method", "raw"),
            ("compare", "1"),
            ("device", "cpu"),
            ("threads", "2"),
            ("simd", "baseline"),
            ("view", "attention"),
            ("at", "3,5"),
            ("block", "7"),
            ("colormap", "viridis"),
            ("opacity", "0.35"),
            ("threshold", "0.4"),
            ("presence", "-0.015"),
            ("embed", "1"),
        ];
        let (p, warnings) = Params::from_pairs(pairs);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(p.size, [224, 320]);
        assert_eq!(p.method, Method::Raw);
        assert_eq!(p.device, DeviceChoice::Cpu);
        assert_eq!(p.threads, Some(2));
        assert_eq!(p.simd, Some(Simd::Baseline));
        assert_eq!(p.colormap, Colormap::Viridis);
        assert!(p.embed && p.compare);
        assert_eq!(
            p.query(),
            Some(Ok(QuerySpec::Labels(vec![
                "cat".into(),
                "dog".into(),
                "bird".into()
            ])))
        );
        let written = p.to_pairs();
        assert!(written.contains(&("labels", "cat,dog,bird".into())));
        assert!(written.contains(&("opacity", "0.35".into())));
        assert!(written.contains(&("presence", "-0.015".into())));
        assert!(written.contains(&("threshold", "0.4".into())));
        assert_eq!(p.view, View::Attention);
        assert_eq!((p.at, p.block), (Some([3, 5]), Some(7)));
        assert!(written.contains(&("at", "3,5".into())));
        // Labels come back normalised (trimmed, blanks dropped); everything else unchanged.
        let (again, _) = Params::from_pairs(written);
        assert_eq!(
            again,
            Params {
                labels: "cat,dog,bird".into(),
                ..p
            }
        );
    }

    #[test]
    fn redundancy_is_asked_for_a_label_set_in_its_view_only() {
        let (p, _) = Params::from_pairs([("labels", "cat,dog"), ("view", "redundancy")]);
        assert!(p.redundancy());
        assert_eq!(
            p.to_pairs(),
            [("labels", "cat,dog".into()), ("view", "redundancy".into())]
        );
        let (p, _) = Params::from_pairs([("text", "a cat"), ("view", "redundancy")]);
        assert!(!p.redundancy());
        let (p, _) = Params::from_pairs([("labels", "cat,dog"), ("view", "segmentation")]);
        assert!(!p.redundancy());
    }

    #[test]
    fn written_keys_are_the_contract_keys() {
        let (p, _) = Params::from_pairs([("text", "a"), ("size", "512"), ("embed", "1")]);
        assert!(p.to_pairs().iter().all(|(k, _)| KEYS.contains(k)));
    }

    #[test]
    fn text_wins_over_labels_and_blank_queries_are_none() {
        let (p, _) = Params::from_pairs([("labels", "a,b"), ("text", "cat+dog")]);
        assert_eq!(p.mode, Mode::Text);
        assert_eq!(p.query(), Some(Ok(QuerySpec::Text("cat+dog".into()))));
        let (p, _) = Params::from_pairs([("text", " + ")]);
        assert_eq!(p.query(), None);
        let (p, _) = Params::from_pairs([("labels", " , ,")]);
        assert_eq!(p.query(), None);
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let (p, warnings) = Params::from_pairs([
            ("size", "0"),
            ("opacity", "3"),
            ("colormap", "rainbow"),
            ("method", "magic"),
            ("presence", "0.5"),
            ("view", "pie"),
            ("threshold", "-1"),
            ("at", "3"),
            ("block", "x"),
        ]);
        assert_eq!(warnings.len(), 9, "{warnings:?}");
        assert_eq!(p, Params::default());
    }

    #[test]
    fn every_bad_value_warns_including_device_embed_and_compare() {
        let (p, warnings) = Params::from_pairs([
            ("device", "gpu"),
            ("embed", "yes"),
            ("compare", "2"),
            ("model", ""),
            ("image", " "),
            ("threads", "0"),
            ("threads", "17"),
            ("threads", "two"),
            ("simd", "avx"),
        ]);
        assert_eq!(warnings.len(), 9, "{warnings:?}");
        assert!(warnings[5].contains("threads=0"), "{warnings:?}");
        assert!(warnings[8].contains("simd=avx"), "{warnings:?}");
        assert!(warnings[0].contains("unknown device `gpu`"), "{warnings:?}");
        assert!(warnings[1].contains("embed=yes"), "{warnings:?}");
        assert_eq!(p, Params::default());
        let (_, warnings) = Params::from_pairs([("embed", "0"), ("compare", "true")]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn duplicate_labels_are_refused_as_the_cli_refuses_them() {
        let (p, warnings) = Params::from_pairs([("labels", "cat, dog, cat")]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let refused = p.query().unwrap().unwrap_err();
        assert!(refused.contains("\"cat\" is given twice"), "{refused}");
    }

    #[test]
    fn sizes_follow_the_patch_and_the_device() {
        assert_eq!(size_options(16, 2048), [224, 336, 448, 512]);
        assert_eq!(size_options(14, 2048), [224, 336, 448]);
        assert_eq!(size_options(32, 2048), [224, 448, 512]);
        assert_eq!(size_options(16, 448), [224, 336, 448]);
        assert!(check_size([224, 320], 16, 640).is_ok());
        assert!(
            check_size([250, 224], 16, 640)
                .unwrap_err()
                .contains("multiples of 16")
        );
        assert!(
            check_size([672, 672], 14, 640)
                .unwrap_err()
                .contains("At most 640")
        );
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("512"), Some([512, 512]));
        assert_eq!(parse_size("224×320"), Some([224, 320]));
        assert_eq!(parse_size("224x"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(format_size([224, 320]), "224x320");
        assert_eq!(format_opacity(0.5), "0.5");
        assert_eq!(format_opacity(1.0), "1");
        assert_eq!(format_presence(0.01), "0.01");
        assert_eq!(format_presence(-0.0001), "0");
        assert_eq!(format_presence(-0.005), "-0.005");
    }
}
