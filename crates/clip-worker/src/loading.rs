//! Models: the worker's file access for clip-core's one loading pipeline — fetch + Cache
//! Storage for URLs ([`WebFiles`]), `File` references for picked files ([`PickedFiles`]) — then
//! the upload to the device. Where a model came from is kept, so that after a lost GPU the next
//! run can load it again (from the cache, not the network).

use std::cell::RefCell;
use std::rc::Rc;

use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use clip_core::surgery::bank::{TextBank, text_model_id};
use clip_core::weights::address::{CONFIG, ModelAddress};
use clip_core::weights::load::{LoadProgress, Loaded, ModelFiles, Origin, load};
use clip_core::weights::pack::{MANIFEST, Scheme};
use clip_core::weights::stream::{Collect, Sink};
use clip_protocol::{ModelInfo, ModelSource, Response, Task};
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::device::{self, ActiveDevice};
use crate::error::WorkerError;
use crate::net::{self, FetchError};
use crate::session::{LoadedModel, ModelOrigin, ModelSlot, session};
use crate::{cache_info, now, post, progress};

/// The tokenizer ships with the app (CLIP's BPE is the same for every checkpoint). Relative
/// URLs here resolve against the worker's script, `www/worker_loader.js`; the page sends
/// model URLs absolute.
const TOKENIZER_URL: &str = "tokenizer.json";

/// Model files by URL, through Cache Storage.
struct WebFiles;

impl ModelFiles for WebFiles {
    type Error = FetchError;

    async fn stream(
        &self,
        url: &str,
        keep: bool,
        sink: &mut dyn Sink,
    ) -> Result<Origin, FetchError> {
        net::stream(url, keep, sink).await
    }

    async fn stored(&self, key: &str) -> Option<Vec<u8>> {
        net::cached(key).await
    }

    async fn store(&self, key: &str, bytes: &[u8]) {
        net::store(key, bytes).await
    }

    async fn forget(&self, urls: &[String]) {
        net::forget(urls).await
    }
}

/// Files the user picked or dropped, by name (never cached: they are local already).
struct PickedFiles<'a>(&'a [web_sys::File]);

impl PickedFiles<'_> {
    fn find(&self, name: &str) -> Option<&web_sys::File> {
        let exact = self.0.iter().find(|f| f.name() == name);
        // A checkpoint's config may have been saved under another name: the one other JSON.
        exact.or_else(|| {
            let mut json = self.0.iter().filter(|f| {
                let n = f.name();
                n != MANIFEST && n.to_ascii_lowercase().ends_with(".json")
            });
            match (name == CONFIG, json.next(), json.next()) {
                (true, Some(only), None) => Some(only),
                _ => None,
            }
        })
    }
}

impl ModelFiles for PickedFiles<'_> {
    type Error = FetchError;

    async fn stream(
        &self,
        name: &str,
        _keep: bool,
        sink: &mut dyn Sink,
    ) -> Result<Origin, FetchError> {
        let file = self
            .find(name)
            .ok_or_else(|| FetchError::NotPicked(name.to_string()))?;
        net::read_file(file, sink).await?;
        Ok(Origin::Source)
    }
}

/// Handles `LoadModel`: loads, uploads, and makes it the model unless a newer load superseded
/// it.
pub async fn load_model(id: u64, source: ModelSource, payload: JsValue) -> Result<(), WorkerError> {
    session(|s| s.model_request = id);
    let files = payload
        .dyn_ref::<Array>()
        .map(|a| a.iter().filter_map(|f| f.dyn_into().ok()).collect())
        .unwrap_or_default();
    let origin = Rc::new(ModelOrigin { source, files });
    let result = load_on_device(id, origin).await;
    // The cache changed (downloads, a conversion, dropped files): say so either way.
    cache_info().await.ok();
    if session(|s| s.model_request) != id {
        return Ok(()); // a newer load superseded this one
    }
    let (model, info) = result?;
    session(|s| s.model = ModelSlot::Ready(model));
    post(&Response::ModelReady { id, info }, None);
    Ok(())
}

/// Loads a model again after its device was lost, reporting progress under the run's `id`.
pub async fn reload(id: u64, origin: Rc<ModelOrigin>) -> Result<Rc<LoadedModel>, WorkerError> {
    let (model, _) = load_on_device(id, origin).await?;
    session(|s| s.model = ModelSlot::Ready(model.clone()));
    Ok(model)
}

async fn load_on_device(
    id: u64,
    origin: Rc<ModelOrigin>,
) -> Result<(Rc<LoadedModel>, ModelInfo), WorkerError> {
    let active = device::ready().await?;
    tokenizer(id).await?;
    let started = now();
    let mut report = |p: LoadProgress<'_>| match p {
        LoadProgress::File { name, done, total } => progress(
            id,
            Task::Download(name.to_string()),
            done as f64,
            total.unwrap_or(0) as f64,
        ),
        LoadProgress::Convert {
            scheme,
            done,
            total,
        } => progress(
            id,
            Task::Convert(scheme),
            done as f64,
            total.unwrap_or(0) as f64,
        ),
    };
    let (loaded, name) = match &origin.source {
        ModelSource::Url { url, quant } => {
            let address = ModelAddress::url(url);
            (
                load(&WebFiles, &address, *quant, &mut report).await?,
                url.clone(),
            )
        }
        ModelSource::Files { names, quant } => {
            let address = ModelAddress::picked(names)?;
            let picked = PickedFiles(&origin.files);
            let loaded = load(&picked, &address, *quant, &mut report).await?;
            (loaded, address.weights())
        }
    };
    let downloaded = now();
    progress(id, Task::Upload, 0.0, 1.0);
    let clip = upload(&loaded, &active).await?;
    let text_id = text_model_id(&loaded.weights, &clip);
    // A pack's own text features: its labels are shown without encoding any text.
    let bank = TextBank::with_stored(loaded.text_bank.as_deref(), &clip)?;
    progress(id, Task::Upload, 1.0, 1.0);
    let config = &clip.config;
    let info = ModelInfo {
        name,
        architecture: config.architecture(),
        bytes: loaded.weights.bytes() as f64,
        scheme: loaded.weights.scheme(),
        sizes: Scheme::ALL
            .iter()
            .map(|&s| (s, s.pack_bytes(config) as f64))
            .collect(),
        cached: loaded.cached,
        download_ms: downloaded - started,
        upload_ms: now() - downloaded,
        patch: config.vision.patch_size,
        blocks: config.vision.tower.layers,
        max_side: active.limits(config).max_side(config),
        memory_bytes: device::wasm_memory_bytes(),
    };
    let model = LoadedModel {
        clip,
        origin,
        text_id,
        bank: RefCell::new(bank),
    };
    Ok((Rc::new(model), info))
}

/// Puts the weights on the device; files that still prove unusable leave the cache.
async fn upload(loaded: &Loaded, active: &ActiveDevice) -> Result<Clip, WorkerError> {
    match Clip::from_weights(&loaded.weights, &active.device) {
        Ok(clip) => Ok(clip),
        Err(e) => {
            WebFiles.forget(&loaded.files).await;
            Err(e.into())
        }
    }
}

/// CLIP's tokenizer, fetched once (through the cache) and kept.
async fn tokenizer(id: u64) -> Result<Rc<ClipTokenizer>, WorkerError> {
    if let Some(t) = session(|s| s.tokenizer.clone()) {
        return Ok(t);
    }
    progress(id, Task::Download(TOKENIZER_URL.into()), 0.0, 0.0);
    let mut json = Collect::default();
    net::stream(TOKENIZER_URL, true, &mut json).await?;
    let tokenizer = match ClipTokenizer::from_bytes(&json.0) {
        Ok(t) => Rc::new(t),
        Err(e) => {
            net::forget(&[TOKENIZER_URL.to_string()]).await;
            return Err(clip_core::error::ClipError::from(e).into());
        }
    };
    session(|s| s.tokenizer = Some(tokenizer.clone()));
    Ok(tokenizer)
}
