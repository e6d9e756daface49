//! The CLIP Surgery web app (Yew, compiled to WebAssembly). This first version is a placeholder
//! page; the inference UI arrives with the web-app issue on top of `clip-core`.

use yew::prelude::*;

#[function_component(App)]
fn app() -> Html {
    html! {
        <main>
            <h1>{ "CLIP " }<span>{ "Surgery" }</span></h1>
            <p>
                { "See what CLIP looks at, entirely in your browser: similarity maps from " }
                <a href="https://arxiv.org/abs/2304.05653">{ "CLIP Surgery" }</a>
                { " (Li et al., 2023), computed with WebGPU on your own device." }
            </p>
            <p>{ "The in-browser app is being built. Meanwhile the same engine runs natively: " }
               <code>{ "clip-surgery explain --model DIR --image photo.jpg --labels \"cat,dog\"" }</code></p>
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
