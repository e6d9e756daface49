//! The title, the tagline and the badge that says where CLIP runs. A view function, not a
//! component: it holds no state, and every component type costs the page's wasm its own copy
//! of Yew's lifecycle code.

use yew::prelude::*;

use crate::ui::state::DeviceState;

/// The page header; `file`: a result file is shown, and no worker runs.
pub fn header(device: &DeviceState, file: bool) -> Html {
    let badge = match device {
        _ if file => html! {
            <span class="badge ok" data-device="none" title="Computed by clip-surgery; nothing runs here until Run live">{ "Result file" }</span>
        },
        DeviceState::Starting => {
            html! { <span class="badge" data-device="starting">{ "Starting…" }</span> }
        }
        DeviceState::Ready { kind, threads, .. } => {
            let label = match threads {
                2.. => format!("{} · {threads} threads", kind.label()),
                _ => kind.label().to_string(),
            };
            html! {
                <span class="badge ok" data-device={kind.label().to_lowercase()} data-threads={threads.to_string()} title="Where CLIP runs">{ label }</span>
            }
        }
        DeviceState::Failed(_) => {
            html! { <span class="badge bad" data-device="none">{ "No device" }</span> }
        }
    };
    html! {
        <header class="top">
            <div>
                <h1>{ "CLIP " }<span>{ "Surgery" }</span></h1>
                <p class="tagline">{ "See what CLIP looks at — computed in your browser, nothing uploaded." }</p>
            </div>
            { badge }
        </header>
    }
}
