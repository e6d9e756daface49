//! Image choice: file picker, URL, bundled samples, webcam snapshot (drag-and-drop and paste
//! work anywhere on the page).

use js_sys::ArrayBuffer;
use web_sys::{File, HtmlInputElement};
use yew::prelude::*;

use crate::ui::components::camera::Camera;
use crate::ui::components::url_field::UrlField;

/// Bundled photos from scikit-image's data set (public domain / CC0).
pub const SAMPLES: [(&str, &str); 3] = [
    ("www/samples/astronaut.jpg", "Astronaut"),
    ("www/samples/coffee.jpg", "Coffee"),
    ("www/samples/chelsea.jpg", "Cat"),
];

/// Props of [`ImagePanel`].
#[derive(Properties, PartialEq)]
pub struct ImagePanelProps {
    /// The image URL in the controls.
    pub url: AttrValue,
    /// Name of the image shown.
    pub current: Option<AttrValue>,
    /// An image is being decoded.
    pub busy: bool,
    /// Last error.
    pub error: Option<AttrValue>,
    /// A picked file.
    pub on_file: Callback<File>,
    /// A URL (also used for the samples).
    pub on_url: Callback<String>,
    /// Camera snapshot bytes.
    pub on_bytes: Callback<(ArrayBuffer, String)>,
    /// The camera failed.
    pub on_error: Callback<String>,
}

/// The image section.
#[function_component(ImagePanel)]
pub fn image_panel(props: &ImagePanelProps) -> Html {
    let on_url = {
        let cb = props.on_url.clone();
        Callback::from(move |url: String| {
            if !url.is_empty() {
                cb.emit(url);
            }
        })
    };
    let on_file = {
        let cb = props.on_file.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(file) = input.files().and_then(|l| l.get(0)) {
                cb.emit(file);
            }
            input.set_value("");
        })
    };
    html! {
        <section class="panel" aria-labelledby="image-h">
            <h2 id="image-h">{ "Image" }</h2>
            <div class="samples" role="group" aria-label="Sample photos">
                { for SAMPLES.iter().map(|&(url, name)| {
                    let cb = props.on_url.clone();
                    html! {
                        <button type="button" class="sample" title={name}
                            onclick={Callback::from(move |_| cb.emit(url.to_string()))}>
                            <img src={url} alt="" width="56" height="56" />
                            <span>{ name }</span>
                        </button>
                    }
                }) }
            </div>
            <label class="file">
                <span>{ "Open an image file (or drop / paste one anywhere)" }</span>
                <input type="file" accept="image/*" onchange={on_file} />
            </label>
            <UrlField label="Image URL" value={props.url.clone()} placeholder="https://…/photo.jpg"
                button="Open" on_submit={on_url} />
            <Camera on_bytes={props.on_bytes.clone()} on_error={props.on_error.clone()} />
            { if props.busy { html!{ <p class="muted" role="status">{ "Decoding the image…" }</p> } } else { html!{} } }
            { for props.current.as_ref().map(|c| html! { <p class="muted">{ "Showing " }<span class="name">{ c.clone() }</span></p> }) }
            { for props.error.as_ref().map(|e| html! { <p class="error" role="alert">{ e.clone() }</p> }) }
        </section>
    }
}
