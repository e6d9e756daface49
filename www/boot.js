// Starts the app (trunk's loader, as a file so the Content-Security-Policy needs no
// 'unsafe-inline'). Paths are relative to this file: dist/ works from any folder.
import init from '../clip-surgery-web.js';

await init({ module_or_path: new URL('../clip-surgery-web_bg.wasm', import.meta.url) });
