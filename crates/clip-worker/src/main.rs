//! The model worker (built by trunk as `data-type="worker"`): one dedicated Web Worker owns the
//! device, the tokenizer, the model and the current image, so inference never blocks the page. It fetches its own weights (copying
//! hundreds of megabytes from the page into a worker is what runs browsers out of memory).
//!
//! Requests are handled as they arrive; explanations run one at a time, and a newer one
//! replaces whatever is queued (stale results are dropped, never shown).

mod net;

use std::cell::RefCell;
use std::rc::Rc;

use clip_core::burn::tensor::Device;
use clip_core::preprocess::{decode_image, preprocess_image};
use clip_core::{Clip, ClipConfig, ClipTokenizer, Method, Query, Stage, explain};
use image::RgbImage;
use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use clip_core::pack::{MANIFEST, Manifest, Pack, Scheme};
use clip_surgery_web::params::{
    converted_url, dir_manifest_url, is_file_url, is_manifest_url, model_urls, sibling_url,
};
use clip_surgery_web::protocol::{
    DeviceChoice, DeviceKind, ExplainRequest as Job, ModelInfo, ModelSource, PREVIEW_MAX_SIDE,
    QuerySpec, Request, Response, RunResult, Scope, Task, Timings, pack, unpack,
};

/// The tokenizer ships with the app (CLIP's BPE is the same for every checkpoint). Relative
/// URLs here resolve against the worker's script, `www/worker_loader.js`; the page sends
/// model URLs absolute.
const TOKENIZER_URL: &str = "tokenizer.json";

#[derive(Default)]
struct Engine {
    device: Option<(Device, DeviceKind)>,
    /// Why no device could be had.
    device_error: Option<String>,
    tokenizer: Option<Rc<ClipTokenizer>>,
    model: Option<Rc<Clip>>,
    /// The newest model request: an older load that finishes later is discarded.
    model_request: u64,
    image: Option<(u64, Rc<RgbImage>)>,
    /// The newest explanation request.
    latest: u64,
    running: bool,
    queued: Option<Job>,
}

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::default());
}

fn engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with_borrow_mut(f)
}

fn main() {
    console_error_panic_hook::set_once();
    listen();
}

/// Handle requests from the page.
fn listen() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match unpack::<Request>(&event.data()) {
            Ok((request, payload)) => spawn_local(handle(request, payload)),
            Err(e) => fail(0, Scope::Protocol, format!("unreadable request: {e}")),
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&Response::Listening, None);
}

async fn handle(request: Request, payload: JsValue) {
    match request {
        Request::Init { device } => init(device).await,
        Request::LoadModel { id, source } => load_model(id, source, payload).await,
        Request::SetImage { id } => set_image(id, &payload),
        Request::Explain(job) => enqueue(job).await,
        Request::CacheInfo => cache_info().await,
        Request::ClearCache => {
            if let Err(e) = net::clear().await {
                fail(0, Scope::Cache, format!("could not clear the cache: {e}"));
            }
            cache_info().await;
        }
    }
}

fn post(response: &Response, payload: Option<(&JsValue, &Array)>) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let message = match pack(response, payload.map(|(p, _)| p)) {
        Ok(message) => message,
        Err(e) => {
            let failed = Response::Failed {
                id: 0,
                scope: Scope::Protocol,
                message: format!("unsendable response: {e}"),
            };
            return post(&failed, None);
        }
    };
    let sent = match payload {
        Some((_, transfer)) => scope.post_message_with_transfer(&message, transfer),
        None => scope.post_message(&message),
    };
    if let Err(e) = sent {
        web_sys::console::error_2(&"worker: postMessage failed".into(), &e);
    }
}

fn fail(id: u64, scope: Scope, message: String) {
    post(&Response::Failed { id, scope, message }, None);
}

fn progress(id: u64, task: Task, done: f64, total: f64) {
    post(
        &Response::Progress {
            id,
            task,
            done,
            total,
        },
        None,
    );
}

fn now() -> f64 {
    js_sys::Date::now()
}

// ---- device ----------------------------------------------------------------------------------

async fn init(choice: DeviceChoice) {
    let chosen = match choice {
        DeviceChoice::Cpu => Ok((clip_core::device::cpu(), DeviceKind::Cpu, None)),
        DeviceChoice::Webgpu => webgpu()
            .await
            .map(|d| (d, DeviceKind::Webgpu, None))
            .map_err(|e| format!("WebGPU was asked for (device=webgpu) but is not available: {e}")),
        DeviceChoice::Auto => Ok(match webgpu().await {
            Ok(d) => (d, DeviceKind::Webgpu, None),
            Err(e) => (
                clip_core::device::cpu(),
                DeviceKind::Cpu,
                Some(format!(
                    "WebGPU is not available ({e}), so CLIP runs on the CPU — slower."
                )),
            ),
        }),
    };
    match chosen {
        Ok((device, kind, note)) => {
            engine(|e| e.device = Some((device, kind)));
            post(&Response::Device { kind, note }, None);
        }
        Err(message) => {
            engine(|e| e.device_error = Some(message.clone()));
            fail(0, Scope::Device, message);
        }
    }
}

/// The device, once `Init` has chosen it (a load may arrive while it is still starting).
async fn device_ready() -> Result<Device, String> {
    loop {
        match engine(|e| (e.device.clone(), e.device_error.clone())) {
            (Some((device, _)), _) => return Ok(device),
            (None, Some(error)) => return Err(error),
            (None, None) => sleep(20).await,
        }
    }
}

async fn sleep(ms: i32) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = JsFuture::from(Promise::new(&mut |resolve, _| {
        let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    }))
    .await;
}

/// Asks the browser for an adapter before burn does: burn's initialisation cannot report a
/// missing adapter without aborting, and an abort kills the worker.
async fn webgpu() -> Result<Device, String> {
    let navigator =
        Reflect::get(&js_sys::global(), &"navigator".into()).map_err(|_| "no navigator")?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not offer WebGPU".into());
    }
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("navigator.gpu.requestAdapter is missing")?;
    let adapter = match request.call0(&gpu).map(|p| p.dyn_into::<Promise>()) {
        Ok(Ok(p)) => JsFuture::from(p).await.unwrap_or(JsValue::NULL),
        _ => JsValue::NULL,
    };
    if adapter.is_null() || adapter.is_undefined() {
        return Err("the browser has no WebGPU adapter for this page".into());
    }
    clip_core::device::wgpu().await.map_err(|e| e.to_string())
}

// ---- model -----------------------------------------------------------------------------------

async fn load_model(id: u64, source: ModelSource, payload: JsValue) {
    engine(|e| e.model_request = id);
    let result = load(id, &source, &payload).await;
    if engine(|e| e.model_request) != id {
        return; // a newer load superseded this one
    }
    match result {
        Ok((model, info)) => {
            engine(|e| e.model = Some(Rc::new(model)));
            post(&Response::ModelReady { id, info }, None);
        }
        Err(message) => fail(id, Scope::Model, message),
    }
    cache_info().await;
}

async fn tokenizer(id: u64) -> Result<Rc<ClipTokenizer>, String> {
    if let Some(t) = engine(|e| e.tokenizer.clone()) {
        return Ok(t);
    }
    let file = net::fetch_cached(TOKENIZER_URL, &mut |done, total| {
        progress(id, Task::Download("tokenizer.json".into()), done, total)
    })
    .await
    .map_err(|e| e.to_string())?;
    let tokenizer = match ClipTokenizer::from_bytes(&file.bytes) {
        Ok(t) => Rc::new(t),
        Err(e) => {
            net::forget(&[TOKENIZER_URL]).await;
            return Err(e.to_string());
        }
    };
    engine(|e| e.tokenizer = Some(tokenizer.clone()));
    Ok(tokenizer)
}

/// Weights as obtained, before they go to the device.
enum Weights {
    /// A weight pack (fetched, picked, cached, or converted here).
    Pack(Pack),
    /// A plain safetensors checkpoint, kept at f32.
    Checkpoint(Vec<u8>, Option<ClipConfig>),
}

/// Weights plus where they came from.
struct Obtained {
    weights: Weights,
    name: String,
    cached: bool,
    /// Cache keys to drop if the weights prove unusable.
    urls: Vec<String>,
}

async fn load(
    id: u64,
    source: &ModelSource,
    payload: &JsValue,
) -> Result<(Clip, ModelInfo), String> {
    let device = device_ready().await?;
    tokenizer(id).await?;
    let started = now();
    let obtained = match source {
        ModelSource::Url { url, quant } => from_url(id, url, *quant).await?,
        ModelSource::Files { quant, .. } => from_files(id, payload, *quant).await?,
    };
    let downloaded = now();
    progress(id, Task::Upload, 0.0, 1.0);
    let (loaded, bytes, scheme) = match &obtained.weights {
        Weights::Pack(pack) => (
            Clip::from_pack(pack, &device).map_err(|e| e.to_string()),
            pack.manifest.total_bytes() as f64,
            pack.manifest.scheme,
        ),
        Weights::Checkpoint(bytes, config) => (
            Clip::from_safetensors(bytes, config.clone(), &device).map_err(|e| e.to_string()),
            bytes.len() as f64,
            Scheme::F32,
        ),
    };
    let model = match loaded {
        Ok(model) => model,
        Err(e) => {
            // Whatever was cached for this model is unusable: never keep it.
            let urls: Vec<&str> = obtained.urls.iter().map(String::as_str).collect();
            net::forget(&urls).await;
            return Err(e);
        }
    };
    progress(id, Task::Upload, 1.0, 1.0);
    let info = ModelInfo {
        name: obtained.name,
        architecture: architecture(&model.config),
        bytes,
        scheme,
        sizes: Scheme::ALL
            .iter()
            .map(|&s| (s, s.pack_bytes(&model.config) as f64))
            .collect(),
        cached: obtained.cached,
        download_ms: downloaded - started,
        upload_ms: now() - downloaded,
    };
    Ok((model, info))
}

/// A model URL: a pack (its `manifest.json`, or a directory holding one), the worker's cached
/// conversion of a checkpoint, or the checkpoint itself — converted to `quant` here.
async fn from_url(id: u64, url: &str, quant: Scheme) -> Result<Obtained, String> {
    let fetch_manifest = async |url: &str| {
        net::fetch_cached(url, &mut |done, total| {
            progress(id, Task::Download(MANIFEST.into()), done, total)
        })
        .await
    };
    if is_manifest_url(url) {
        let manifest = fetch_manifest(url).await.map_err(|e| e.to_string())?;
        return fetch_pack(id, url, manifest).await;
    }
    let (config_url, weights_url) = model_urls(url);
    if quant != Scheme::F32
        && let Some(pack) = cached_conversion(&weights_url, quant).await
    {
        return Ok(Obtained {
            urls: converted_urls(&weights_url, quant, Some(&pack.manifest)),
            weights: Weights::Pack(pack),
            name: url.to_string(),
            cached: true,
        });
    }
    // A directory may hold a pack; a checkpoint directory answers 404 here.
    if !is_file_url(url) {
        let manifest_url = dir_manifest_url(url);
        if let Ok(manifest) = fetch_manifest(&manifest_url).await {
            return fetch_pack(id, &manifest_url, manifest).await;
        }
    }
    let on_file = |name: &str| {
        let task = Task::Download(name.to_string());
        move |done, total| progress(id, task.clone(), done, total)
    };
    // OpenAI-naming checkpoints carry no config.json: a 404 there is not an error yet.
    let config = match net::fetch_cached(&config_url, &mut on_file("config.json")).await {
        Ok(file) => Some(file.bytes),
        Err(net::FetchError::Status { status: 404, .. }) => None,
        Err(e) => return Err(e.to_string()),
    };
    let weights = net::fetch_cached(&weights_url, &mut on_file("model.safetensors"))
        .await
        .map_err(|e| e.to_string())?;
    let urls = vec![config_url, weights_url.clone()];
    let forget_all =
        async || net::forget(&urls.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let config = match parse_config(config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            forget_all().await;
            return Err(e);
        }
    };
    if quant == Scheme::F32 {
        return Ok(Obtained {
            weights: Weights::Checkpoint(weights.bytes, config),
            name: url.to_string(),
            cached: weights.cached,
            urls,
        });
    }
    let pack = match convert(id, &weights.bytes, config, quant, url) {
        Ok(pack) => pack,
        Err(e) => {
            forget_all().await;
            return Err(e);
        }
    };
    // Keep the small quantized pack, not the checkpoint it came from.
    for (info, shard) in pack.manifest.shards.iter().zip(&pack.shards) {
        net::store(&converted_url(&weights_url, quant, &info.file), shard).await;
    }
    net::store(
        &converted_url(&weights_url, quant, MANIFEST),
        pack.manifest_json().as_bytes(),
    )
    .await;
    forget_all().await;
    Ok(Obtained {
        urls: converted_urls(&weights_url, quant, Some(&pack.manifest)),
        weights: Weights::Pack(pack),
        name: url.to_string(),
        cached: weights.cached,
    })
}

/// Quantizes a checkpoint, reporting progress by weights converted.
fn convert(
    id: u64,
    bytes: &[u8],
    config: Option<ClipConfig>,
    quant: Scheme,
    source: &str,
) -> Result<Pack, String> {
    let mut reported = 0;
    Pack::from_checkpoint(bytes, config, quant, source, &mut |done, total| {
        if done == total || (done - reported) * 100 >= total {
            progress(id, Task::Convert(quant), done as f64, total as f64);
            reported = done;
        }
    })
    .map_err(|e| e.to_string())
}

/// The cache keys of a conversion: its manifest, and its shards when known.
fn converted_urls(weights_url: &str, quant: Scheme, manifest: Option<&Manifest>) -> Vec<String> {
    let mut urls = vec![converted_url(weights_url, quant, MANIFEST)];
    if let Some(manifest) = manifest {
        urls.extend(
            manifest
                .shards
                .iter()
                .map(|s| converted_url(weights_url, quant, &s.file)),
        );
    }
    urls
}

/// The worker's earlier conversion, if the cache holds all of it intact; a damaged one is
/// dropped (and converted again from the download).
async fn cached_conversion(weights_url: &str, quant: Scheme) -> Option<Pack> {
    let json = net::cached(&converted_url(weights_url, quant, MANIFEST)).await?;
    let manifest = Manifest::from_bytes(&json).ok();
    let mut shards = Vec::new();
    if let Some(manifest) = &manifest {
        for (i, info) in manifest.shards.iter().enumerate() {
            match net::cached(&converted_url(weights_url, quant, &info.file)).await {
                Some(bytes) if manifest.check_shard(i, &bytes).is_ok() => shards.push(bytes),
                _ => break,
            }
        }
    }
    match manifest {
        Some(manifest) if shards.len() == manifest.shards.len() => {
            Pack::from_checked_shards(manifest, shards).ok()
        }
        manifest => {
            let urls = converted_urls(weights_url, quant, manifest.as_ref());
            net::forget(&urls.iter().map(String::as_str).collect::<Vec<_>>()).await;
            None
        }
    }
}

/// A pack by URL, from its fetched manifest (checked against the model before any shard is
/// fetched), then each shard, checked as it arrives. A bad file is dropped from the cache with
/// the manifest.
async fn fetch_pack(
    id: u64,
    manifest_url: &str,
    fetched: net::Fetched,
) -> Result<Obtained, String> {
    let mut cached = fetched.cached;
    let manifest = match Manifest::from_bytes(&fetched.bytes).map_err(|e| e.to_string()) {
        Ok(manifest) => manifest,
        Err(e) => {
            net::forget(&[manifest_url]).await;
            return Err(e);
        }
    };
    let count = manifest.shards.len();
    let mut shards = Vec::with_capacity(count);
    let mut urls = vec![manifest_url.to_string()];
    for (i, info) in manifest.shards.iter().enumerate() {
        let url = sibling_url(manifest_url, &info.file);
        urls.push(url.clone());
        let task = Task::Download(format!("{} ({}/{count})", info.file, i + 1));
        let checked = match net::fetch_cached(&url, &mut |done, total| {
            progress(id, task.clone(), done, total)
        })
        .await
        {
            Ok(file) => {
                cached &= file.cached;
                manifest
                    .check_shard(i, &file.bytes)
                    .map(|()| file.bytes)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(bytes) => shards.push(bytes),
            Err(e) => {
                net::forget(&urls.iter().map(String::as_str).collect::<Vec<_>>()).await;
                return Err(e);
            }
        }
    }
    let pack = Pack::from_checked_shards(manifest, shards).map_err(|e| e.to_string())?;
    Ok(Obtained {
        weights: Weights::Pack(pack),
        name: manifest_url.to_string(),
        cached,
        urls,
    })
}

/// Picked files: a pack (`manifest.json` + its shards) or a checkpoint (converted to `quant`).
async fn from_files(id: u64, payload: &JsValue, quant: Scheme) -> Result<Obtained, String> {
    let files: Vec<web_sys::File> = payload
        .dyn_ref::<Array>()
        .map(|a| a.iter().filter_map(|f| f.dyn_into().ok()).collect())
        .unwrap_or_default();
    let on_file = |name: &str| {
        let task = Task::Download(name.to_string());
        move |done, total| progress(id, task.clone(), done, total)
    };
    let read = async |file: &web_sys::File| {
        net::read_file(file, &mut on_file(&file.name()))
            .await
            .map_err(|e| e.to_string())
    };
    if let Some(manifest_file) = files.iter().find(|f| f.name() == MANIFEST) {
        let manifest =
            Manifest::from_bytes(&read(manifest_file).await?).map_err(|e| e.to_string())?;
        let mut shards = Vec::with_capacity(manifest.shards.len());
        for (i, info) in manifest.shards.iter().enumerate() {
            let file = files
                .iter()
                .find(|f| f.name() == info.file)
                .ok_or_else(|| format!("pick all of the pack's files: {} is missing", info.file))?;
            let bytes = read(file).await?;
            manifest.check_shard(i, &bytes).map_err(|e| e.to_string())?;
            shards.push(bytes);
        }
        return Ok(Obtained {
            weights: Weights::Pack(
                Pack::from_checked_shards(manifest, shards).map_err(|e| e.to_string())?,
            ),
            name: MANIFEST.into(),
            cached: false,
            urls: Vec::new(),
        });
    }
    let by_suffix = |s: &str| files.iter().find(|f| f.name().to_lowercase().ends_with(s));
    let weights_file = by_suffix(".safetensors").ok_or(
        "pick a .safetensors weights file (and its config.json for Hugging Face models), or a \
         pack's manifest.json and shards",
    )?;
    let config = match by_suffix(".json") {
        Some(f) => Some(read(f).await?),
        None => None,
    };
    let config = parse_config(config.as_deref())?;
    let bytes = read(weights_file).await?;
    let weights = if quant == Scheme::F32 {
        Weights::Checkpoint(bytes, config)
    } else {
        Weights::Pack(convert(id, &bytes, config, quant, &weights_file.name())?)
    };
    Ok(Obtained {
        weights,
        name: weights_file.name(),
        cached: false,
        urls: Vec::new(),
    })
}

fn parse_config(bytes: Option<&[u8]>) -> Result<Option<ClipConfig>, String> {
    let Some(bytes) = bytes else { return Ok(None) };
    let text =
        std::str::from_utf8(bytes).map_err(|_| "config.json is not UTF-8 text".to_string())?;
    ClipConfig::from_hf_json(text)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// "ViT-B/16"-style name from the tower shapes.
fn architecture(config: &ClipConfig) -> String {
    let v = &config.vision;
    let size = match (v.tower.width, v.tower.layers) {
        (768, 12) => "B".to_string(),
        (1024, 24) => "L".to_string(),
        (1280, 32) => "H".to_string(),
        (w, l) => format!("{l}×{w}"),
    };
    let res = if v.image_size != 224 {
        format!("@{}px", v.image_size)
    } else {
        String::new()
    };
    format!("ViT-{size}/{}{res}", v.patch_size)
}

// ---- image -----------------------------------------------------------------------------------

fn set_image(id: u64, payload: &JsValue) {
    let bytes = Uint8Array::new(payload).to_vec();
    let image = match decode_image(&bytes) {
        Ok(image) => image,
        Err(e) => return fail(id, Scope::Image, e.to_string()),
    };
    let (w, h) = image.dimensions();
    let preview = if w.max(h) > PREVIEW_MAX_SIDE {
        let scale = PREVIEW_MAX_SIDE as f32 / w.max(h) as f32;
        let (pw, ph) = (
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
        );
        image::imageops::thumbnail(&image, pw, ph)
    } else {
        image.clone()
    };
    let rgba: Vec<u8> = preview
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    engine(|e| e.image = Some((id, Rc::new(image))));
    let pixels = Uint8Array::from(&rgba[..]).buffer();
    post(
        &Response::Image {
            id,
            width: preview.width(),
            height: preview.height(),
            original_hw: [h as usize, w as usize],
        },
        Some((&pixels, &Array::of1(&pixels))),
    );
}

// ---- explanations ----------------------------------------------------------------------------

async fn enqueue(job: Job) {
    let start = engine(|e| {
        e.latest = job.id;
        if e.running {
            e.queued = Some(job.clone()); // replaces (supersedes) any queued job
            false
        } else {
            e.running = true;
            true
        }
    });
    if !start {
        return;
    }
    let mut next = Some(job);
    while let Some(job) = next {
        let id = job.id;
        match run(job).await {
            Ok(Some(run)) => post(
                &Response::Result {
                    id,
                    run: Box::new(run),
                },
                None,
            ),
            Ok(None) => {}
            Err(message) => fail(id, Scope::Explain, message),
        }
        next = engine(|e| {
            let next = e.queued.take();
            e.running = next.is_some();
            next
        });
    }
}

fn superseded(id: u64) -> bool {
    engine(|e| e.latest != id)
}

async fn run(job: Job) -> Result<Option<RunResult>, String> {
    let (model, tokenizer, device, image) = engine(|e| {
        (
            e.model.clone(),
            e.tokenizer.clone(),
            e.device.clone(),
            e.image.clone(),
        )
    });
    let (Some(model), Some(tokenizer), Some((_, device))) = (model, tokenizer, device) else {
        return Err("no model is loaded yet".into());
    };
    let image = match image {
        Some((id, image)) if id == job.image => image,
        _ => return Err("the image changed while this was queued; run again".into()),
    };
    let query = match &job.query {
        QuerySpec::Text(text) => Query::text(text),
        QuerySpec::Labels(labels) => Query::labels(&labels.join(",")),
    }
    .map_err(|e| e.to_string())?;
    let started = now();
    let pre = preprocess_image(&image, job.size).map_err(|e| e.to_string())?;
    let preprocessed = now();
    let mut marks = [preprocessed; 2]; // image stage start, finish stage start
    let id = job.id;
    let explanation = explain(
        &model,
        &tokenizer,
        &pre,
        &query,
        job.method,
        |stage| match stage {
            Stage::Text(done, total) => progress(id, Task::Text, done as f64, total as f64),
            Stage::Image => {
                marks[0] = now();
                progress(id, Task::Image, 0.0, 0.0);
            }
            Stage::Finish => {
                marks[1] = now();
                progress(id, Task::Finish, 0.0, 0.0);
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let finished = now();
    if superseded(id) {
        return Ok(None);
    }
    let raw = if job.compare && job.method == Method::Surgery {
        let r = explain(&model, &tokenizer, &pre, &query, Method::Raw, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if superseded(id) {
            return Ok(None);
        }
        Some(r)
    } else {
        None
    };
    let end = now();
    Ok(Some(RunResult {
        explanation,
        raw,
        method: job.method,
        input_hw: job.size,
        original_hw: [image.height() as usize, image.width() as usize],
        device,
        timings_ms: Timings {
            preprocess: preprocessed - started,
            text: marks[0] - preprocessed,
            image: marks[1] - marks[0],
            finish: finished - marks[1],
            raw: job.compare.then_some(end - finished),
            total: end - started,
        },
    }))
}

// ---- cache -----------------------------------------------------------------------------------

async fn cache_info() {
    match net::contents().await {
        Ok((bytes, urls)) => post(&Response::Cache { bytes, urls }, None),
        Err(e) => fail(0, Scope::Cache, format!("cannot read the cache: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_are_named_like_openai_does() {
        let mut c = ClipConfig::vit_b_16();
        assert_eq!(architecture(&c), "ViT-B/16");
        c.vision.image_size = 336;
        c.vision.tower.width = 64;
        assert_eq!(architecture(&c), "ViT-12×64/16@336px");
    }
}
