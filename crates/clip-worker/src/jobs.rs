//! Explanations, one at a time: a request that arrives while one runs waits, and a newer one
//! replaces it (stale results are dropped, never shown).

use clip_core::input::preprocess::preprocess_image;
use clip_core::input::query::{Method, Query};
use clip_core::surgery::explain::{Stage, explain};
use clip_protocol::{ExplainRequest, QuerySpec, Request, Response, RunResult, Task, Timings};

use crate::error::WorkerError;
use crate::session::{ModelSlot, session};
use crate::{device, loading, now, post, progress, report};

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
    let explanation = explain(
        clip,
        &tokenizer,
        &pre,
        &query,
        job.method,
        |stage| match stage {
            Stage::Text(done, total) => progress(id, Task::Text, done as f64, total as f64),
            Stage::Image => {
                marks[2] = now();
                progress(id, Task::Image, 0.0, 0.0);
            }
            Stage::Finish => {
                marks[3] = now();
                progress(id, Task::Finish, 0.0, 0.0);
            }
        },
    )
    .await?;
    marks[4] = now();
    if superseded(id) {
        return Ok(None);
    }
    let compare = job.compare && job.method == Method::Surgery;
    let raw = if compare {
        let raw = explain(clip, &tokenizer, &pre, &query, Method::Raw, |_| {}).await?;
        if superseded(id) {
            return Ok(None);
        }
        Some(raw)
    } else {
        None
    };
    marks[5] = now();
    Ok(Some(RunResult {
        explanation,
        raw,
        method: job.method,
        input_hw: job.size,
        original_hw: [image.height() as usize, image.width() as usize],
        device: active.kind,
        timings_ms: Timings::from_marks(marks, compare),
    }))
}
