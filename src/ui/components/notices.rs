//! The banners above the panels: no network (and what still works), a dead worker (with a
//! restart), the device note (CPU fallback, a lost GPU) or failure, and problems with the
//! address's parameters. A view
//! function, not a component (it holds no state).

use yew::prelude::*;

use crate::params::bundled_model;
use crate::ui::state::{DeviceState, State};

/// The banners, each only when there is something to say; `online`: the browser's word.
pub fn notices(
    state: &State,
    online: bool,
    on_restart: Callback<()>,
    on_dismiss: Callback<()>,
) -> Html {
    let offline = (!online).then(|| {
        let models = state.cache.models();
        let available = match (bundled_model(), models.is_empty()) {
            (Some(_), _) => ", this demo's bundled model and the models cached in this browser",
            (None, false) => " and the models cached in this browser",
            (None, true) => "; no model (none is cached in this browser yet)",
        };
        let names = (!models.is_empty()).then(|| format!(" ({})", models.join(", ")));
        html! {
            <div class="banner note" role="status" data-offline="">
                { format!("You are offline. Still working: the app, its sample images{available}{}. \
                           Other model addresses and image URLs need a network.", names.unwrap_or_default()) }
            </div>
        }
    });
    let worker = state.worker_error.as_ref().map(|e| {
        html! {
            <div class="banner error" role="alert">
                { e.clone() }
                <button type="button" onclick={on_restart.reform(|_| ())}>{ "Restart the engine" }</button>
            </div>
        }
    });
    let device = match &state.device {
        DeviceState::Ready {
            note: Some(note), ..
        } => Some(html! { <div class="banner note" role="status">{ note.clone() }</div> }),
        DeviceState::Failed(e) => {
            Some(html! { <div class="banner error" role="alert">{ e.clone() }</div> })
        }
        _ => None,
    };
    let warnings = (!state.warnings.is_empty()).then(|| {
        html! {
            <div class="banner note" role="status">
                <ul>{ for state.warnings.iter().map(|w| html! { <li>{ w.clone() }</li> }) }</ul>
                <button type="button" class="link" onclick={on_dismiss.reform(|_| ())}>
                    { "Dismiss" }
                </button>
            </div>
        }
    });
    html! {
        <>
            { offline.unwrap_or_default() }
            { worker.unwrap_or_default() }
            { device.unwrap_or_default() }
            { warnings.unwrap_or_default() }
        </>
    }
}
