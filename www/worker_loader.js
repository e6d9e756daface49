// Starts the model worker (wasm-bindgen's no-modules build of crates/clip-worker).
importScripts('../worker.js');
wasm_bindgen({ module_or_path: '../worker_bg.wasm' });
