//! The messages between the web app's page and its model worker — a crate of its own, so that
//! the worker links neither Yew nor the page, and the page links no model.
//!
//! ```text
//!  page (Yew, src/)                     worker (crates/clip-worker)          clip-core
//!  ────────────────                     ───────────────────────────          ─────────
//!  Init { device }            ───────►  device: WebGPU adapter, or CPU
//!                             ◄───────  Device { kind, note, threads }
//!  LoadModel { id, source }   ───────►  loading: ModelFiles = fetch + ──►  weights::load
//!      (payload: picked Files)          Cache Storage (or the Files)        (pack? checkpoint?
//!                             ◄───────  Progress { id, task, … }…           quantize on load)
//!                             ◄───────  ModelReady { id, info }        ──►  Clip::from_weights
//!  SetImage { id }            ───────►  image: decode, keep the original ──► input::preprocess
//!      (payload: bytes, moved)◄───────  Image { id, … } (payload: preview pixels, moved)
//!  Explain(ExplainRequest)    ───────►  jobs: one at a time, the newest ──► surgery::explain
//!                             ◄───────  Progress…, Result { id, run }       (Explanation)
//!  any request that fails     ◄───────  Failed { id, scope, message }
//!  (the GPU goes away)        ◄───────  DeviceLost { reason }
//! ```
//!
//! Each message is `{ json, payload }` ([`pack`], [`unpack`]): `json` is one of the serde enums
//! below, `payload` the bulky part that must not go through JSON — image bytes, picked `File`s,
//! preview pixels — moved as transferable objects (or, for `File`, passed by reference: the
//! worker reads the weights itself, so hundreds of megabytes are never copied through the page).
//!
//! Why not `yew-agent`: its reactor agents serialise every message with bincode and offer
//! neither a transfer list nor a way to pass a `File` through, so image bytes would be copied
//! and picked weights read by the page first (copying hundreds of megabytes into a worker is
//! what ran wllama out of memory); and an agent is a Yew component, which would put Yew into
//! the worker. Hand-rolled, the protocol is these enums plus two functions.

pub use clip_core::input::query::AttentionAt;
use clip_core::input::query::Method;
use clip_core::output::document::{ExplainDocument, Provenance};
use clip_core::output::explanation::Explanation;
use clip_core::weights::pack::Scheme;
use js_sys::Reflect;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

/// Where the user wants inference to run (`?device=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// WebGPU when the browser offers an adapter, else the CPU (with a visible note).
    #[default]
    Auto,
    /// The CPU backend (burn flex; on several threads where the page is cross-origin isolated).
    Cpu,
    /// WebGPU or an error: no silent fallback.
    Webgpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    /// The URL value: `auto`, `cpu` or `webgpu`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "webgpu" => Ok(Self::Webgpu),
            other => Err(format!("unknown device `{other}` (cpu, webgpu)")),
        }
    }
}

impl DeviceChoice {
    /// The URL value (`None` for the default).
    pub fn param(self) -> Option<&'static str> {
        match self {
            Self::Auto => None,
            Self::Cpu => Some("cpu"),
            Self::Webgpu => Some("webgpu"),
        }
    }
}

/// The device inference actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// WebGPU through burn-wgpu.
    Webgpu,
    /// burn's flex CPU backend.
    Cpu,
}

impl DeviceKind {
    /// Human name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Webgpu => "WebGPU",
            Self::Cpu => "CPU",
        }
    }
}

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A Hugging Face-format directory URL (`config.json` + `model.safetensors`), or the URL of
    /// one `.safetensors` file (its `config.json` is looked for beside it).
    Url {
        /// Directory or file URL.
        url: String,
        /// Precision for a plain checkpoint (a pack keeps its own).
        quant: Scheme,
    },
    /// Local files (payload: an array of `File`): `model.safetensors` and optionally
    /// `config.json`, or a pack's `manifest.json` and shards.
    Files {
        /// File names, for messages.
        names: Vec<String>,
        /// Precision for a plain checkpoint.
        quant: Scheme,
    },
}

/// What to explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerySpec {
    /// One text, possibly "a+b".
    Text(String),
    /// A label set.
    Labels(Vec<String>),
}

/// Page → worker. Every enum of the protocol is externally tagged (`{"explain": {…}}`): an
/// internally tagged one (`{"type": "explain", …}`) is read through serde's buffering
/// `Content` path, which cost the page 10.6 KB of its 230 KB of gzipped wasm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Pick the device; must come first (answered by [`Response::Device`]).
    Init {
        /// The user's choice.
        device: DeviceChoice,
    },
    /// Download (or read from Cache Storage) and upload a model; supersedes an earlier load.
    LoadModel {
        /// Request id, echoed in progress and results.
        id: u64,
        /// Where from.
        source: ModelSource,
    },
    /// Decode an image (payload: its bytes as an `ArrayBuffer`) and make it the current one.
    SetImage {
        /// Request id; later explanations name the image by it.
        id: u64,
    },
    /// Explain the current image; supersedes any queued explanation.
    Explain(ExplainRequest),
    /// Report what Cache Storage holds.
    CacheInfo,
    /// Delete the cached downloads.
    ClearCache,
}

impl Request {
    /// The request's id (0 for those that have none) and the scope its failures are reported
    /// under: the one place a failure is tied to what the user asked for.
    pub fn failure(&self) -> (u64, Scope) {
        match self {
            Request::Init { .. } => (0, Scope::Device),
            Request::LoadModel { id, .. } => (*id, Scope::Model),
            Request::SetImage { id } => (*id, Scope::Image),
            Request::Explain(job) => (job.id, Scope::Explain),
            Request::CacheInfo | Request::ClearCache => (0, Scope::Cache),
        }
    }
}

/// One explanation to run (the worker queues these as they are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainRequest {
    /// Request id.
    pub id: u64,
    /// Id of the image (from [`Request::SetImage`]) this is about.
    pub image: u64,
    /// Text or labels.
    pub query: QuerySpec,
    /// Network input `[height, width]`.
    pub size: [usize; 2],
    /// Surgery or raw CLIP.
    pub method: Method,
    /// Also compute raw CLIP, for the side-by-side view.
    pub compare: bool,
    /// The attention view: one patch's attention rows.
    #[serde(default)]
    pub attention: Option<AttentionAt>,
    /// The redundancy view (a label set): the empty text's map and Eq. 9's shared term.
    #[serde(default)]
    pub redundancy: bool,
}

/// A unit of work with a progress bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Downloading (or reading from the cache) a file; bytes.
    Download(String),
    /// Downloading a plain checkpoint and quantizing it as it arrives; bytes.
    Convert(Scheme),
    /// Parsing the weights and uploading them to the device.
    Upload,
    /// Encoding the prompt ensembles; texts.
    Text,
    /// Running the image tower.
    Image,
    /// Reading results back, maps and points.
    Finish,
}

/// The model that is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// URL or file name it came from.
    pub name: String,
    /// e.g. "ViT-B/16".
    pub architecture: String,
    /// Bytes of weights as loaded (the pack's size when quantized).
    pub bytes: f64,
    /// How the weights are stored and run.
    pub scheme: Scheme,
    /// The size of this model in every scheme, largest first.
    pub sizes: Vec<(Scheme, f64)>,
    /// Whether the weights came from Cache Storage.
    pub cached: bool,
    /// Milliseconds to download/read the files.
    pub download_ms: f64,
    /// Milliseconds to parse and upload the weights.
    pub upload_ms: f64,
    /// The model's patch size: input sides must be multiples of it.
    pub patch: usize,
    /// Blocks of the image tower (the attention view's choice of block).
    pub blocks: usize,
    /// The largest square input side this device can run with this model (a multiple of
    /// `patch`): attention's scores must fit the device's buffers and memory.
    pub max_side: usize,
    /// Bytes of wasm memory after loading (the peak so far: wasm memory never shrinks).
    pub memory_bytes: f64,
}

/// Stage times of one run, in milliseconds. On WebGPU, device work is queued and waited for
/// at the read-back, so GPU time shows up in `finish`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Decoding-free preprocessing (bicubic resize + normalisation).
    pub preprocess: f64,
    /// Prompt ensembles.
    pub text: f64,
    /// Image tower + feature surgery.
    pub image: f64,
    /// Read-back, maps and points.
    pub finish: f64,
    /// The raw-CLIP comparison, when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<f64>,
    /// Everything.
    pub total: f64,
}

impl Timings {
    /// Stage times from the moments (ms) a run reached each stage: `[start, preprocessed,
    /// image encoder started, read-back started, explained, end]`. `compared`: a raw-CLIP
    /// comparison ran between "explained" and "end" (only then is there a `raw` time).
    pub fn from_marks(marks: [f64; 6], compared: bool) -> Self {
        let [start, preprocessed, image, finish, explained, end] = marks;
        Self {
            preprocess: preprocessed - start,
            text: image - preprocessed,
            image: finish - image,
            finish: explained - finish,
            raw: compared.then_some(end - explained),
            total: end - start,
        }
    }
}

/// One finished explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The result for the requested method.
    pub explanation: Explanation,
    /// Raw CLIP on the same input, when `compare` was asked for.
    pub raw: Option<Explanation>,
    /// The method of `explanation`.
    pub method: Method,
    /// Network input `[height, width]`.
    pub input_hw: [usize; 2],
    /// The (EXIF-oriented) image `[height, width]`; points are in these pixels.
    pub original_hw: [usize; 2],
    /// Where it ran; `None` for a result file shown as it is (see `provenance`).
    pub device: Option<DeviceKind>,
    /// Stage times.
    pub timings_ms: Timings,
    /// Prompt ensembles encoded by this run; the query's other texts came from the worker's
    /// memory, Cache Storage or the pack's text bank.
    pub texts_encoded: usize,
    /// Bytes of the worker's wasm memory after the run: its peak so far (wasm memory never
    /// shrinks). Device buffers of WebGPU are not in it.
    pub memory_bytes: f64,
    /// What produced a result file (`explain --json`) shown without a model; `None` for a
    /// run of this page's worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl RunResult {
    /// A result file, to be shown as it is: no device, no timings.
    pub fn precomputed(document: ExplainDocument) -> Self {
        Self {
            method: document.provenance.method,
            input_hw: document.size,
            original_hw: document.image_hw,
            explanation: document.explanation,
            raw: None,
            device: None,
            timings_ms: Timings::default(),
            texts_encoded: 0,
            memory_bytes: 0.0,
            provenance: Some(document.provenance),
        }
    }
}

/// Which request a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Device initialisation.
    Device,
    /// Model download or loading.
    Model,
    /// Image decoding.
    Image,
    /// An explanation.
    Explain,
    /// Cache Storage.
    Cache,
    /// A message the worker could not read.
    Protocol,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The worker listens now. A message posted before this would be lost (a worker drops
    /// events that arrive before its handler exists, and the wasm loads asynchronously), so
    /// the page holds its requests until then.
    Listening,
    /// The active device.
    Device {
        /// Which one.
        kind: DeviceKind,
        /// Why it is not the one asked for or preferred (e.g. no WebGPU adapter), and why the
        /// CPU runs on one thread when it does.
        note: Option<String>,
        /// Threads the CPU backend runs on (1 on WebGPU).
        threads: u32,
    },
    /// The GPU device was lost (driver reset, a backgrounded tab, `destroy()`); the model on it
    /// is gone. The next run re-creates the device and uploads the weights again.
    DeviceLost {
        /// What the browser said.
        reason: String,
    },
    /// Progress of request `id`.
    Progress {
        /// Request id.
        id: u64,
        /// What is progressing.
        task: Task,
        /// Units done (bytes, texts).
        done: f64,
        /// Units in all (0 when unknown).
        total: f64,
    },
    /// A model is loaded.
    ModelReady {
        /// Request id.
        id: u64,
        /// About it.
        info: ModelInfo,
    },
    /// An image is decoded (payload: preview RGBA pixels as an `ArrayBuffer`).
    Image {
        /// Request id.
        id: u64,
        /// Preview width (the image, scaled down to at most [`PREVIEW_MAX_SIDE`]).
        width: u32,
        /// Preview height.
        height: u32,
        /// The image `[height, width]`.
        original_hw: [usize; 2],
    },
    /// An explanation is done.
    Result {
        /// Request id.
        id: u64,
        /// Everything the UI shows.
        run: Box<RunResult>,
    },
    /// Request `id` failed.
    Failed {
        /// Request id (0 when none).
        id: u64,
        /// What failed.
        scope: Scope,
        /// For the user.
        message: String,
    },
    /// Cache Storage contents.
    Cache {
        /// Bytes held.
        bytes: f64,
        /// Their URLs.
        urls: Vec<String>,
    },
}

/// The preview shown under the heatmap is at most this many pixels on its longer side.
pub const PREVIEW_MAX_SIDE: u32 = 1024;

/// Packs a message for `postMessage`: `{ json, payload }` (see the module docs).
pub fn pack<T: Serialize>(
    message: &T,
    payload: Option<&JsValue>,
) -> Result<js_sys::Object, String> {
    let json = serde_json::to_string(message).map_err(|e| e.to_string())?;
    let object = js_sys::Object::new();
    let _ = Reflect::set(&object, &"json".into(), &json.into());
    if let Some(payload) = payload {
        let _ = Reflect::set(&object, &"payload".into(), payload);
    }
    Ok(object)
}

/// Unpacks a message made by [`pack`]: the message and its payload (`undefined` if none).
pub fn unpack<T: DeserializeOwned>(data: &JsValue) -> Result<(T, JsValue), String> {
    let payload = Reflect::get(data, &"payload".into()).unwrap_or(JsValue::UNDEFINED);
    let json = Reflect::get(data, &"json".into())
        .ok()
        .and_then(|j| j.as_string())
        .ok_or("a message without JSON")?;
    let message = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    Ok((message, payload))
}

/// A JS exception or rejection as text for the user.
pub fn js_message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_json() {
        let requests = [
            Request::Init {
                device: DeviceChoice::Webgpu,
            },
            Request::LoadModel {
                id: 3,
                source: ModelSource::Url {
                    url: "https://example.org/m".into(),
                    quant: Scheme::Q4,
                },
            },
            Request::Explain(ExplainRequest {
                id: 4,
                image: 2,
                query: QuerySpec::Labels(vec!["cat".into(), "dog".into()]),
                size: [224, 320],
                method: Method::Raw,
                compare: true,
                attention: Some(AttentionAt {
                    block: None,
                    patch: [3, 5],
                }),
                redundancy: true,
            }),
        ];
        for request in requests {
            let json = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        }
    }

    #[test]
    fn raw_time_only_when_a_comparison_ran() {
        let marks = [0.0, 1.0, 3.0, 6.0, 10.0, 15.0];
        let t = Timings::from_marks(marks, false);
        assert_eq!(t.raw, None);
        assert_eq!(
            (t.preprocess, t.text, t.image, t.finish, t.total),
            (1.0, 2.0, 3.0, 4.0, 15.0)
        );
        assert_eq!(Timings::from_marks(marks, true).raw, Some(5.0));
        assert!(!serde_json::to_string(&t).unwrap().contains("raw"));
    }

    #[test]
    fn failures_are_scoped_by_request() {
        assert_eq!(Request::SetImage { id: 4 }.failure(), (4, Scope::Image));
        assert_eq!(Request::ClearCache.failure(), (0, Scope::Cache));
    }

    #[test]
    fn device_choice_parses_the_url_values() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("webgpu".parse(), Ok(DeviceChoice::Webgpu));
        assert!("gpu?".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Webgpu.param(), Some("webgpu"));
    }
}
