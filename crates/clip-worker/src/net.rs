//! Downloads through Cache Storage: a file fetched once is read from the cache on the next
//! visit (and offline). A response is cached only once fully received (and only when the
//! loading pipeline says it is worth keeping), and unusable files are [`forget`]-ed, so nothing
//! stays cached broken. Bodies stream chunk by chunk into the pipeline's sinks.

use clip_core::weights::load::{FileError, Origin};
use clip_core::weights::stream::Sink;
use clip_protocol::js_message;
use js_sys::{Array, Promise, Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Cache, ReadableStreamDefaultReader, Response, WorkerGlobalScope};

/// Cache Storage bucket for model files and the tokenizer.
pub const CACHE_NAME: &str = "clip-surgery-models-v1";

/// Cache Storage bucket for text features (clip-core's `bank`): small entries, kept apart so
/// that the model list stays a list of models.
pub const TEXT_CACHE_NAME: &str = "clip-surgery-text-v1";

/// Where text features live in [`TEXT_CACHE_NAME`] (never fetched: relative to the worker,
/// so on the app's own origin).
const TEXT_PREFIX: &str = "text-features/";

/// Why a file could not be had.
#[derive(Debug, Error)]
pub enum FetchError {
    /// No response at all (offline, DNS, CORS refusal, blocked by policy).
    #[error(
        "could not fetch {url} ({reason}); check the address, and that the server allows \
         cross-origin requests (CORS)"
    )]
    Network {
        /// What was asked for.
        url: String,
        /// The browser's words.
        reason: String,
    },
    /// An HTTP error status.
    #[error("{url} answered HTTP {status}{}", status_hint(*status))]
    Status {
        /// What was asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body broke off or could not be read.
    #[error("reading {url} failed: {reason}")]
    Read {
        /// What was being read.
        url: String,
        /// The browser's words.
        reason: String,
    },
    /// A file the model needs is not among the picked ones.
    #[error("pick all of the model's files: {0} is missing")]
    NotPicked(String),
}

impl FileError for FetchError {
    fn is_not_found(&self) -> bool {
        matches!(
            self,
            FetchError::Status { status: 404, .. } | FetchError::NotPicked(_)
        )
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 => " (not found: is the model address right?)",
        401 | 403 => " (access denied: the file may be private or gated)",
        _ => "",
    }
}

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

async fn promise(p: Promise) -> Result<JsValue, String> {
    JsFuture::from(p).await.map_err(|e| js_message(&e))
}

/// The app's cache, or `None` where Cache Storage is unavailable (then everything is
/// downloaded each time, which still works).
async fn open_cache() -> Option<Cache> {
    open_named(CACHE_NAME).await
}

async fn open_named(name: &str) -> Option<Cache> {
    let storage = scope().caches().ok()?;
    promise(storage.open(name)).await.ok()?.dyn_into().ok()
}

/// Streams `url` into `sink`, from the cache when it is there. A download is cached (when
/// `keep`) through a tee of its body — no second copy in memory — and only once it arrived
/// whole.
pub async fn stream(url: &str, keep: bool, sink: &mut dyn Sink) -> Result<Origin, FetchError> {
    let cache = open_cache().await;
    if let Some(cache) = &cache
        && let Some(response) = hit(cache, url).await
    {
        read_body(url, response, sink).await?;
        return Ok(Origin::Cache);
    }
    let network = |reason: String| FetchError::Network {
        url: url.to_string(),
        reason,
    };
    let response: Response = promise(scope().fetch_with_str(url))
        .await
        .map_err(network)?
        .dyn_into()
        .map_err(|_| network("not a response".into()))?;
    if !response.ok() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status(),
        });
    }
    let stored = cache
        .as_ref()
        .filter(|_| keep)
        .and_then(|c| Some(c.put_with_str(url, &response.clone().ok()?)));
    read_body(url, response, sink).await?;
    if let Some(stored) = stored {
        // A full quota only costs the next visit a download.
        if let Err(e) = promise(stored).await {
            web_sys::console::warn_1(&format!("not cached: {url}: {e}").into());
        }
    }
    Ok(Origin::Source)
}

/// `url` from the cache only (keys that are never fetched: the worker's own conversions).
pub async fn cached(url: &str) -> Option<Vec<u8>> {
    let response = hit(&open_cache().await?, url).await?;
    let mut body = clip_core::weights::stream::Collect::default();
    read_body(url, response, &mut body).await.ok()?;
    Some(body.0)
}

/// The cached response for `url`, if any.
async fn hit(cache: &Cache, url: &str) -> Option<Response> {
    promise(cache.match_with_str(url))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// A text feature persisted under `key` (clip-core's `bank::entry_key`), if any.
pub async fn text_feature(key: &str) -> Option<Vec<u8>> {
    let url = format!("{TEXT_PREFIX}{key}");
    let response = hit(&open_named(TEXT_CACHE_NAME).await?, &url).await?;
    let mut body = clip_core::weights::stream::Collect::default();
    read_body(&url, response, &mut body).await.ok()?;
    Some(body.0)
}

/// Persists a text feature under `key`.
pub async fn store_text_feature(key: &str, bytes: &[u8]) {
    if let Some(cache) = open_named(TEXT_CACHE_NAME).await {
        put(&cache, &format!("{TEXT_PREFIX}{key}"), bytes).await;
    }
}

/// Stores `bytes` under `url`. A full quota is only a warning: the next visit converts again.
pub async fn store(url: &str, bytes: &[u8]) {
    if let Some(cache) = open_cache().await {
        put(&cache, url, bytes).await;
    }
}

async fn put(cache: &Cache, url: &str, bytes: &[u8]) {
    let body = Uint8Array::from(bytes);
    let stored = match Response::new_with_opt_buffer_source(Some(&body)) {
        Ok(response) => promise(cache.put_with_str(url, &response))
            .await
            .map(|_| ()),
        Err(e) => Err(js_message(&e)),
    };
    if let Err(e) = stored {
        web_sys::console::warn_1(&format!("not cached: {url}: {e}").into());
    }
}

/// Streams a picked file into `sink`.
pub async fn read_file(file: &web_sys::File, sink: &mut dyn Sink) -> Result<(), FetchError> {
    let blob: &Blob = file;
    let response = Response::new_with_opt_blob(Some(blob)).map_err(|e| FetchError::Read {
        url: file.name(),
        reason: js_message(&e),
    })?;
    read_body(&file.name(), response, sink).await
}

/// Feeds a response body to `sink` chunk by chunk; a sink that stops cancels the body.
async fn read_body(url: &str, response: Response, sink: &mut dyn Sink) -> Result<(), FetchError> {
    let failed = |reason: String| FetchError::Read {
        url: url.to_string(),
        reason,
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    sink.size(total);
    let Some(body) = response.body() else {
        return Ok(());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // One buffer for every chunk: the sink copies what it keeps.
    let mut buffer = Vec::new();
    loop {
        let chunk = promise(reader.read()).await.map_err(failed)?;
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            return Ok(());
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(|e| failed(js_message(&e)))?
            .unchecked_into();
        buffer.resize(value.length() as usize, 0);
        value.copy_to(&mut buffer);
        if sink.chunk(&buffer).is_break() {
            let _ = reader.cancel();
            return Ok(());
        }
    }
}

/// Drops `urls` from the cache (files that downloaded but proved unusable).
pub async fn forget(urls: &[String]) {
    if let Some(cache) = open_cache().await {
        for url in urls {
            let _ = promise(cache.delete_with_str(url)).await;
        }
    }
}

/// What the caches hold: bytes (models and text features), and the URLs of the model files.
pub async fn contents() -> Result<(f64, Vec<String>), String> {
    let (bytes, urls) = bucket(CACHE_NAME).await?;
    let (text_bytes, _) = bucket(TEXT_CACHE_NAME).await?;
    Ok((bytes + text_bytes, urls))
}

async fn bucket(name: &str) -> Result<(f64, Vec<String>), String> {
    // `open` would create the cache: after "clear" it must stay gone.
    let exists = match scope().caches() {
        Ok(storage) => promise(storage.has(name)).await?.is_truthy(),
        Err(_) => false,
    };
    if !exists {
        return Ok((0.0, Vec::new()));
    }
    let Some(cache) = open_named(name).await else {
        return Ok((0.0, Vec::new()));
    };
    let keys: Array = promise(cache.keys()).await?.unchecked_into();
    let mut bytes = 0.0;
    let mut urls = Vec::new();
    for request in keys.iter() {
        let request: web_sys::Request = request.unchecked_into();
        let url = request.url();
        if let Ok(response) = promise(cache.match_with_request(&request))
            .await?
            .dyn_into::<Response>()
        {
            let size = match response.headers().get("content-length").ok().flatten() {
                Some(len) => len.parse().unwrap_or(0.0),
                None => {
                    let blob: Blob = promise(response.blob().map_err(|e| js_message(&e))?)
                        .await?
                        .unchecked_into();
                    blob.size()
                }
            };
            bytes += size;
        }
        urls.push(url);
    }
    Ok((bytes, urls))
}

/// Deletes the app's caches (models and text features).
pub async fn clear() -> Result<(), String> {
    let storage = scope().caches().map_err(|e| js_message(&e))?;
    promise(storage.delete(CACHE_NAME)).await?;
    promise(storage.delete(TEXT_CACHE_NAME)).await.map(|_| ())
}
