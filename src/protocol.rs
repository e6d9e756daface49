//! Messages between the page and the model worker.
//!
//! Each message is `{ json, payload }` ([`pack`], [`unpack`]): `json` is one of the serde enums below, `payload` the
//! bulky part that must not go through JSON — image bytes, picked `File`s, preview pixels —
//! moved as transferable objects (or, for `File`, passed by reference: the worker reads the
//! weights itself, so hundreds of megabytes are never copied through the page).

use clip_core::pack::Scheme;
use clip_core::{Explanation, Method};
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
    /// The CPU backend (burn flex, single-threaded wasm).
    Cpu,
    /// WebGPU or an error: no silent fallback.
    Webgpu,
}

impl DeviceChoice {
    /// Parses the URL value; anything else means [`DeviceChoice::Auto`].
    pub fn parse(s: &str) -> Self {
        match s {
            "cpu" => Self::Cpu,
            "webgpu" => Self::Webgpu,
            _ => Self::Auto,
        }
    }

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
#[serde(tag = "kind", rename_all = "snake_case")]
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
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum QuerySpec {
    /// One text, possibly "a+b".
    Text(String),
    /// A label set.
    Labels(Vec<String>),
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
}

/// A unit of work with a progress bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", content = "file", rename_all = "snake_case")]
pub enum Task {
    /// Downloading (or reading from the cache) a file; bytes.
    Download(String),
    /// Quantizing a plain checkpoint in the worker; weights.
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
    /// The raw-CLIP comparison, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<f64>,
    /// Everything.
    pub total: f64,
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
    /// Where it ran.
    pub device: DeviceKind,
    /// Stage times.
    pub timings_ms: Timings,
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
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The worker listens now. A message posted before this would be lost (a worker drops
    /// events that arrive before its handler exists, and the wasm loads asynchronously), so
    /// the page holds its requests until then.
    Listening,
    /// The active device.
    Device {
        /// Which one.
        kind: DeviceKind,
        /// Why it is not the one asked for or preferred (e.g. no WebGPU adapter).
        note: Option<String>,
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
            }),
        ];
        for request in requests {
            let json = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        }
    }

    #[test]
    fn device_choice_parses_the_url_values() {
        assert_eq!(DeviceChoice::parse("cpu"), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("webgpu"), DeviceChoice::Webgpu);
        assert_eq!(DeviceChoice::parse("gpu?"), DeviceChoice::Auto);
        assert_eq!(DeviceChoice::Webgpu.param(), Some("webgpu"));
    }
}
