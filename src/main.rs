//! The page: mounts the Yew app (the model runs in the worker binary, `src/bin/worker.rs`).

fn main() {
    console_error_panic_hook::set_once();
    yew::Renderer::<clip_surgery_web::ui::App>::new().render();
}
