// Measures what converting a full-size checkpoint in the browser costs the worker: the page
// loads a random-init ViT-B/16 (f32, ~600 MB) with `quant=int8` on WebGPU, and
// the worker reports its wasm memory once the pack is on the device. Wasm memory never shrinks,
// so that is the high-water mark of the streamed conversion (plus the tokenizer and the token
// table, which stays on the host).
//
//   clip-surgery random --preset vit-b-16 --to /tmp/b16
//   cargo xtask build
//   node tests/e2e/measure-conversion.mjs /tmp/b16
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = process.env.CLIP_DIST ?? path.join(ROOT, 'dist');
const MODEL = process.argv[2] && path.resolve(process.argv[2]);
const CHECKPOINT = MODEL && path.join(MODEL, 'model.safetensors');
if (!CHECKPOINT || !fs.existsSync(CHECKPOINT)) {
  console.error('usage: node measure-conversion.mjs <model directory (config.json + model.safetensors)>');
  process.exit(2);
}
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png' };

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const file = url.pathname.startsWith('/models/b16/')
    ? path.join(MODEL, path.basename(url.pathname))
    : path.join(DIST, url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname));
  if (!file.startsWith(DIST) && !file.startsWith(MODEL) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': fs.statSync(file).size,
  });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-measure-'));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--no-first-run', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
    '--use-vulkan=swiftshader', '--use-angle=swiftshader'],
});
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const started = Date.now();
  await page.goto(`${origin}/?model=models/b16&quant=int8&device=webgpu`);
  const ready = page.getByTestId('model-ready');
  await ready.waitFor({ timeout: 20 * 60_000 });
  const memory = Number(await ready.getAttribute('data-memory'));
  const cached = await page.evaluate(async () => {
    let bytes = 0;
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        bytes += (await (await cache.match(request)).arrayBuffer()).byteLength;
      }
    }
    return bytes;
  });
  console.log(JSON.stringify({
    checkpoint_mb: fs.statSync(CHECKPOINT).size / 1e6,
    worker_wasm_memory_mb: memory / 1e6,
    cache_storage_mb: cached / 1e6,
    seconds: (Date.now() - started) / 1000,
    status: await ready.textContent(),
  }, null, 2));
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
