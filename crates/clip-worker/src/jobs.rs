//! Explanations, one at a time: a request that arrives while one runs waits, and a newer one
//! replaces it (stale results are dropped, never shown).

use clip_core::input::preprocess::preprocess_image;
use clip_core::input::query::{Method, Query};
use clip_core::surgery::bank::{Ensemble, TextBank, entry_key};
use clip_core::surgery::explain::{Extras, Stage, explain, explain_with, query_texts};
use clip_protocol::{ExplainRequest, QuerySpec, Request, Response, RunResult, Task, Timings};

use crate::error::WorkerError;
use crate::session::{LoadedModel, ModelSlot, session};
use crate::{device, loading, net, now, post, progress, report};

/// Runs `job`, or queues it behind the running one (replacing whatever waited).
pub async fn enqueue(job: ExplainRequest) -> Result<(), WorkerError> {
    let start = session(|s| {
        s.latest = job.id;
        if s.running {
            s.queued = Some(job.clone());
            false
        } else {
            s.running = true;
            true
        }
    });
    if !start {
        return Ok(());
    }
    let mut next = Some(job);
    while let Some(job) = next {
        let id = job.id;
        match run(&job).await {
            Ok(Some(run)) => post(
                &Response::Result {
                    id,
                    run: Box::new(run),
                },
                None,
            ),
            Ok(None) => {}
            Err(error) => report(&Request::Explain(job), error),
        }
        next = session(|s| {
            let next = s.queued.take();
            s.running = next.is_some();
            next
        });
    }
    Ok(())
}

fn superseded(id: u64) -> bool {
    session(|s| s.latest != id)
}

/// One explanation; `None` when a newer request superseded it.
async fn run(job: &ExplainRequest) -> Result<Option<RunResult>, WorkerError> {
    let id = job.id;
    let active = device::ready().await?;
    let model = match session(|s| s.model.clone()) {
        ModelSlot::Ready(model) => model,
        // The GPU was lost since the model loaded: a new device, the weights again (from
        // the cache), then the run.
        ModelSlot::Lost(origin) => loading::reload(id, origin).await?,
        ModelSlot::Empty => return Err(WorkerError::NoModel),
    };
    let tokenizer = session(|s| s.tokenizer.clone()).ok_or(WorkerError::NoModel)?;
    let image = match session(|s| s.image.clone()) {
        Some((image_id, image)) if image_id == job.image => image,
        _ => return Err(WorkerError::ImageChanged),
    };
    let query = match &job.query {
        QuerySpec::Text(text) => Query::text(text)?,
        QuerySpec::Labels(labels) => Query::label_set(labels.clone())?,
    };
    let clip = &model.clip;
    // Refuse what this device cannot hold before anything is allocated on it.
    active.limits(&clip.config).check(&clip.config, job.size)?;
    let mut marks = [now(); 6];
    let pre = preprocess_image(&image, job.size)?;
    marks[1] = now();
    [marks[2], marks[3]] = [marks[1]; 2];
    // The model's text features: held since it loaded, then persisted ones, then encoded.
    let mut bank = model.bank.take();
    // A single text also gets its per-token maps (the multimodal view): one short text
    // forward and a few products beside the explanation.
    let extras = Extras {
        tokens: matches!(query, Query::Text(_)),
        attention: job.attention,
        redundancy: job.redundancy && matches!(query, Query::Labels(_)),
    };
    let (texts, _) = query_texts(&query, job.method, &extras);
    let unheld = restore(&model, &mut bank, &texts).await;
    let compare = job.compare && job.method == Method::Surgery;
    let mut encoded = None;
    let explained = async {
        let explanation = explain_with(
            clip,
            &tokenizer,
            &pre,
            &query,
            job.method,
            &mut bank,
            extras,
            |stage| match stage {
                Stage::Text(done, total) => {
                    // The first report counts the texts the bank already holds.
                    encoded.get_or_insert(total - done);
                    progress(id, Task::Text, done as f64, total as f64);
                }
                Stage::Image => {
                    marks[2] = now();
                    progress(id, Task::Image, 0.0, 0.0);
                }
                // Explanations run the tower once.
                Stage::Windows(..) => {}
                Stage::Finish => {
                    marks[3] = now();
                    progress(id, Task::Finish, 0.0, 0.0);
                }
            },
        )
        .await?;
        marks[4] = now();
        if superseded(id) || !compare {
            return Ok((explanation, None));
        }
        // The same labels: the raw run finds every text feature in the bank.
        let raw = explain(
            clip,
            &tokenizer,
            &pre,
            &query,
            Method::Raw,
            &mut bank,
            |_| {},
        )
        .await?;
        Ok::<_, WorkerError>((explanation, Some(raw)))
    }
    .await;
    persist(&model, &bank, &unheld);
    model.bank.replace(bank);
    let (explanation, raw) = explained?;
    if superseded(id) {
        return Ok(None);
    }
    marks[5] = now();
    Ok(Some(RunResult {
        explanation,
        raw,
        method: job.method,
        input_hw: job.size,
        original_hw: [image.height() as usize, image.width() as usize],
        device: Some(active.kind),
        timings_ms: Timings::from_marks(marks, compare),
        texts_encoded: encoded.unwrap_or(0),
        memory_bytes: device::wasm_memory_bytes(),
        provenance: None,
    }))
}

/// Fills `bank` with the persisted features of the `texts` it lacks; returns those still
/// missing (to be encoded, then persisted).
async fn restore(model: &LoadedModel, bank: &mut TextBank, texts: &[String]) -> Vec<String> {
    let e = model.clip.config.embed_dim;
    let mut unheld = Vec::new();
    for text in bank.missing(texts) {
        let stored = net::text_feature(&entry_key(&model.text_id, &text)).await;
        match stored.and_then(|bytes| Ensemble::from_bytes(&bytes, e)) {
            Some(ensemble) => bank.insert(text, ensemble),
            None => unheld.push(text),
        }
    }
    unheld
}

/// Persists the features of `texts` that `bank` now holds, in the background.
fn persist(model: &LoadedModel, bank: &TextBank, texts: &[String]) {
    let entries: Vec<(String, Vec<u8>)> = texts
        .iter()
        .filter_map(|text| {
            let ensemble = bank.get(text)?;
            Some((entry_key(&model.text_id, text), ensemble.to_bytes()))
        })
        .collect();
    if !entries.is_empty() {
        wasm_bindgen_futures::spawn_local(async move {
            for (key, bytes) in entries {
                net::store_text_feature(&key, &bytes).await;
            }
        });
    }
}
