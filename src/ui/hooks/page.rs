//! The page's dealings with the browser around the app: the address bar follows the controls,
//! results and errors are published for automation (`window.clipSurgery`), and an image pasted
//! anywhere opens.

use wasm_bindgen::prelude::*;
use web_sys::ClipboardEvent;
use yew::prelude::*;

use crate::params::Params;
use crate::ui::dom;
use crate::ui::state::{Action, ImageSource, State};

/// Keeps the address bar equal to the controls (a share link at all times).
#[hook]
pub fn use_address_bar(params: &Params) {
    use_effect_with(params.clone(), dom::write_params);
}

/// Publishes each new result and error on `window.clipSurgery` (with their events).
#[hook]
pub fn use_automation(state: &State) {
    use_effect_with(state.result.clone(), |result| {
        if let Some(run) = result {
            dom::publish_result(run);
        }
    });
    use_effect_with(state.last_error.clone(), |error| {
        if let Some((_, message)) = error {
            dom::publish_error(message);
        }
    });
}

/// Whether the browser says it is online, following its `online`/`offline` events.
#[hook]
pub fn use_online() -> bool {
    let online = use_state(dom::online);
    {
        let online = online.clone();
        use_effect_with((), move |_| {
            let update = Closure::<dyn FnMut()>::new(move || online.set(dom::online()));
            let window = web_sys::window();
            for event in ["online", "offline"] {
                if let Some(w) = &window {
                    let _ =
                        w.add_event_listener_with_callback(event, update.as_ref().unchecked_ref());
                }
            }
            move || {
                for event in ["online", "offline"] {
                    if let Some(w) = &window {
                        let _ = w.remove_event_listener_with_callback(
                            event,
                            update.as_ref().unchecked_ref(),
                        );
                    }
                }
            }
        });
    }
    *online
}

/// Opens an image pasted anywhere on the page.
#[hook]
pub fn use_paste(dispatch: UseReducerDispatcher<State>) {
    use_effect_with((), move |_| {
        let on_paste = Closure::<dyn FnMut(ClipboardEvent)>::new(move |e: ClipboardEvent| {
            let file = e
                .clipboard_data()
                .and_then(|d| d.files())
                .and_then(|f| f.get(0));
            if let Some(file) = file.filter(|f| f.type_().starts_with("image/")) {
                e.prevent_default();
                dispatch.dispatch(Action::OpenImage(ImageSource::File(file)));
            }
        });
        let document = web_sys::window().and_then(|w| w.document());
        if let Some(d) = &document {
            let _ = d.add_event_listener_with_callback("paste", on_paste.as_ref().unchecked_ref());
        }
        move || {
            if let Some(d) = document {
                let _ = d.remove_event_listener_with_callback(
                    "paste",
                    on_paste.as_ref().unchecked_ref(),
                );
            }
        }
    });
}
