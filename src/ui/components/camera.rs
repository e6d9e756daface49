//! A webcam snapshot: "Use camera" → live preview → "Take photo".

use js_sys::ArrayBuffer;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    HtmlCanvasElement, HtmlVideoElement, MediaStream, MediaStreamConstraints, MediaStreamTrack,
};
use yew::prelude::*;

use crate::ui::dom::{self, blob_bytes};

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
    let ctx = dom::context_2d(&canvas).ok_or("no 2D context")?;
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
