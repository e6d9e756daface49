//! A labelled progress bar for downloads and inference stages.

use yew::prelude::*;

use crate::ui::dom::format_bytes;
use crate::ui::state::Progress;
use clip_protocol::Task;

/// Props of [`ProgressBar`].
#[derive(Properties, PartialEq)]
pub struct ProgressProps {
    /// The numbers.
    pub progress: Progress,
}

/// `<progress>` plus words: "Downloading model.safetensors — 12.3 MB of 599 MB".
#[function_component(ProgressBar)]
pub fn progress_bar(props: &ProgressProps) -> Html {
    let p = &props.progress;
    let (what, amount) = describe(p);
    // Indeterminate when the total is unknown, so the bar still moves.
    let bar = if p.total > 0.0 {
        html! { <progress max={p.total.to_string()} value={p.done.min(p.total).to_string()} aria-label={what.clone()} /> }
    } else {
        html! { <progress aria-label={what.clone()} /> }
    };
    html! {
        <div class="progress" role="status">
            { bar }
            <span>{ what }{ amount.map(|a| format!(" — {a}")).unwrap_or_default() }</span>
        </div>
    }
}

fn describe(p: &Progress) -> (String, Option<String>) {
    match &p.task {
        None => ("Starting…".into(), None),
        Some(Task::Download(file)) => {
            let amount = if p.total > 0.0 {
                format!("{} of {}", format_bytes(p.done), format_bytes(p.total))
            } else {
                format_bytes(p.done)
            };
            (format!("Fetching {file}"), Some(amount))
        }
        Some(Task::Convert(scheme)) => (
            format!("Fetching and quantizing to {scheme} (once; the result is cached)"),
            Some(if p.total > 0.0 {
                format!("{} of {}", format_bytes(p.done), format_bytes(p.total))
            } else {
                format_bytes(p.done)
            }),
        ),
        Some(Task::Upload) => ("Loading the weights onto the device".into(), None),
        Some(Task::Text) => (
            "Encoding prompts (85 templates per label)".into(),
            Some(format!("{} of {}", p.done, p.total)),
        ),
        Some(Task::Image) => ("Encoding the image".into(), None),
        Some(Task::Finish) => ("Computing similarity maps".into(), None),
    }
}
