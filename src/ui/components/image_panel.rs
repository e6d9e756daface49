//! Image choice: file picker, URL, bundled samples, webcam snapshot (drag-and-drop and paste
//! work anywhere on the page).

use js_sys::ArrayBuffer;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    CanvasRenderingContext2d, File, HtmlCanvasElement, HtmlInputElement, HtmlVideoElement,
    MediaStream, MediaStreamConstraints, MediaStreamTrack,
};
use yew::prelude::*;

use crate::ui::components::url_field::UrlField;
use crate::ui::dom::blob_bytes;

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

/// Props of [`Camera`].
#[derive(Properties, PartialEq)]
pub struct CameraProps {
    /// Snapshot bytes (PNG).
    pub on_bytes: Callback<(ArrayBuffer, String)>,
    /// Permission denied, no camera.
    pub on_error: Callback<String>,
}

/// "Use camera" → live preview → "Take photo".
#[function_component(Camera)]
pub fn camera(props: &CameraProps) -> Html {
    let stream = use_state(|| None::<MediaStream>);
    let video = use_node_ref();
    {
        // Attach the stream once the <video> exists.
        let video = video.clone();
        use_effect_with((*stream).clone(), move |stream| {
            if let (Some(stream), Some(v)) = (stream, video.cast::<HtmlVideoElement>()) {
                v.set_src_object(Some(stream));
                let _ = v.play();
            }
        });
    }
    let stop = {
        let stream = stream.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(s) = &*stream {
                stop_tracks(s);
            }
            stream.set(None);
        })
    };
    let start = {
        let (stream, on_error) = (stream.clone(), props.on_error.clone());
        Callback::from(move |_: MouseEvent| {
            let (stream, on_error) = (stream.clone(), on_error.clone());
            spawn_local(async move {
                match open_camera().await {
                    Ok(s) => stream.set(Some(s)),
                    Err(e) => on_error.emit(e),
                }
            });
        })
    };
    let snap = {
        let (stream, video, on_bytes, on_error) = (
            stream.clone(),
            video.clone(),
            props.on_bytes.clone(),
            props.on_error.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let Some(v) = video.cast::<HtmlVideoElement>() else {
                return;
            };
            let (on_bytes, on_error) = (on_bytes.clone(), on_error.clone());
            if let Some(s) = &*stream {
                spawn_local({
                    let s = s.clone();
                    async move {
                        match snapshot(&v).await {
                            Ok(bytes) => on_bytes.emit((bytes, "camera snapshot".into())),
                            Err(e) => on_error.emit(e),
                        }
                        stop_tracks(&s);
                    }
                });
            }
            stream.set(None);
        })
    };
    match &*stream {
        None => html! { <button type="button" onclick={start}>{ "Use camera" }</button> },
        Some(_) => html! {
            <div class="camera">
                <video ref={video} muted=true playsinline=true aria-label="Camera preview" />
                <div class="row">
                    <button type="button" onclick={snap}>{ "Take photo" }</button>
                    <button type="button" onclick={stop}>{ "Cancel" }</button>
                </div>
            </div>
        },
    }
}

fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().stop();
    }
}

async fn open_camera() -> Result<MediaStream, String> {
    let devices = web_sys::window()
        .and_then(|w| w.navigator().media_devices().ok())
        .ok_or("this browser offers no camera access")?;
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    let promise = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(|_| "no camera access")?;
    JsFuture::from(promise)
        .await
        .map(|s| s.unchecked_into())
        .map_err(|_| "the camera is unavailable or access was denied".into())
}

async fn snapshot(video: &HtmlVideoElement) -> Result<ArrayBuffer, String> {
    let (w, h) = (video.video_width(), video.video_height());
    if w == 0 || h == 0 {
        return Err("the camera has not delivered a frame yet".into());
    }
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvas: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(|_| "no canvas")?
        .unchecked_into();
    canvas.set_width(w);
    canvas.set_height(h);
    let ctx: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .ok_or("no 2D context")?
        .unchecked_into();
    ctx.draw_image_with_html_video_element(video, 0.0, 0.0)
        .map_err(|_| "cannot read the camera frame")?;
    let blob = js_sys::Promise::new(&mut |resolve, _| {
        let _ = canvas.to_blob(&resolve);
    });
    let blob: web_sys::Blob = JsFuture::from(blob)
        .await
        .map_err(|_| "cannot encode the snapshot")?
        .dyn_into()
        .map_err(|_| "cannot encode the snapshot")?;
    blob_bytes(&blob).await
}
