//! Downloads with byte progress, through Cache Storage: a file fetched once is read from the
//! cache on the next visit (and offline). A response is cached only once fully received, and
//! callers [`forget`] files that turn out to be unusable, so nothing stays cached broken.

use clip_surgery_web::protocol::js_message;
use js_sys::{Array, Promise, Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Cache, ReadableStreamDefaultReader, Response, WorkerGlobalScope};

/// Cache Storage bucket for model files and the tokenizer.
pub const CACHE_NAME: &str = "clip-surgery-models-v1";

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
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 => " (not found: is the model address right?)",
        401 | 403 => " (access denied: the file may be private or gated)",
        _ => "",
    }
}

/// A file's bytes and whether they came from the cache.
#[derive(Debug)]
pub struct Fetched {
    /// The body.
    pub bytes: Vec<u8>,
    /// Read from Cache Storage rather than the network.
    pub cached: bool,
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
    let storage = scope().caches().ok()?;
    promise(storage.open(CACHE_NAME))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// Fetches `url`, from the cache when it is there, reporting `(bytes done, bytes total)`
/// (total 0 when unknown).
pub async fn fetch_cached(
    url: &str,
    progress: &mut dyn FnMut(f64, f64),
) -> Result<Fetched, FetchError> {
    let cache = open_cache().await;
    if let Some(cache) = &cache
        && let Some(response) = hit(cache, url).await
    {
        let bytes = read_body(url, response, progress).await?;
        return Ok(Fetched {
            bytes,
            cached: true,
        });
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
    // The cache reads a tee of the body while we read ours: no second copy in memory, and
    // `put` only stores a body that arrived whole.
    let stored = cache
        .as_ref()
        .and_then(|c| Some(c.put_with_str(url, &response.clone().ok()?)));
    let bytes = read_body(url, response, progress).await?;
    if let Some(stored) = stored {
        // A full quota only costs the next visit a download.
        if let Err(e) = promise(stored).await {
            web_sys::console::warn_1(&format!("not cached: {url}: {e}").into());
        }
    }
    Ok(Fetched {
        bytes,
        cached: false,
    })
}

/// `url` from the cache only (keys that are never fetched: the worker's own conversions).
pub async fn cached(url: &str) -> Option<Vec<u8>> {
    let response = hit(&open_cache().await?, url).await?;
    read_body(url, response, &mut |_, _| {}).await.ok()
}

/// The cached response for `url`, if any.
async fn hit(cache: &Cache, url: &str) -> Option<Response> {
    promise(cache.match_with_str(url))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// Stores `bytes` under `url`. A full quota is only a warning: the next visit converts again.
pub async fn store(url: &str, bytes: &[u8]) {
    let Some(cache) = open_cache().await else {
        return;
    };
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

/// Reads a local file with the same progress reporting.
pub async fn read_file(
    file: &web_sys::File,
    progress: &mut dyn FnMut(f64, f64),
) -> Result<Vec<u8>, FetchError> {
    let blob: &Blob = file;
    let response = Response::new_with_opt_blob(Some(blob)).map_err(|e| FetchError::Read {
        url: file.name(),
        reason: js_message(&e),
    })?;
    read_body(&file.name(), response, progress).await
}

async fn read_body(
    url: &str,
    response: Response,
    progress: &mut dyn FnMut(f64, f64),
) -> Result<Vec<u8>, FetchError> {
    let failed = |reason: String| FetchError::Read {
        url: url.to_string(),
        reason,
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let Some(body) = response.body() else {
        return Ok(Vec::new());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // Reserve for the announced size, but never trust a header with gigabytes up front.
    let mut bytes = Vec::with_capacity((total as usize).min(1 << 30));
    let mut reported = 0.0;
    progress(0.0, total);
    loop {
        let chunk = promise(reader.read()).await.map_err(failed)?;
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(|e| failed(js_message(&e)))?
            .unchecked_into();
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        let done = bytes.len() as f64;
        // ~200 updates per file at most: enough for a smooth bar, few messages.
        if total == 0.0 || done - reported >= total / 200.0 {
            progress(done, total);
            reported = done;
        }
    }
    progress(bytes.len() as f64, total.max(bytes.len() as f64));
    Ok(bytes)
}

/// Drops `urls` from the cache (files that downloaded but proved unusable).
pub async fn forget(urls: &[&str]) {
    if let Some(cache) = open_cache().await {
        for url in urls {
            let _ = promise(cache.delete_with_str(url)).await;
        }
    }
}

/// What the cache holds: bytes, and the URLs of the files.
pub async fn contents() -> Result<(f64, Vec<String>), String> {
    // `open` would create the cache: after "clear" it must stay gone.
    let exists = match scope().caches() {
        Ok(storage) => promise(storage.has(CACHE_NAME)).await?.is_truthy(),
        Err(_) => false,
    };
    if !exists {
        return Ok((0.0, Vec::new()));
    }
    let Some(cache) = open_cache().await else {
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

/// Deletes the app's cache.
pub async fn clear() -> Result<(), String> {
    let storage = scope().caches().map_err(|e| js_message(&e))?;
    promise(storage.delete(CACHE_NAME)).await.map(|_| ())
}
