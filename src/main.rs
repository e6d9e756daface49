//! The page: mounts the Yew app (the model runs in the worker binary, `src/bin/worker.rs`).

fn main() {
    console_error_panic_hook::set_once();
    // An offline demo's bundled pack (`cargo xtask build --bundle-model`).
    if let Some(model) = clip_surgery_web::ui::dom::meta("clip-surgery-model") {
        clip_surgery_web::params::bundle_model(model);
    }
    yew::Renderer::<clip_surgery_web::ui::App>::new().render();
}
