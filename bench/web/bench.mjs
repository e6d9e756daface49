// The browser bench (`cargo xtask bench-web` builds its inputs and runs it): the app's CPU path
// on a full-size model in Debian's chromium, beside onnxruntime-web's plain CLIP vision forward
// on the same machine, browser and weights, in one run.
//
// For each configuration (precision × threads, plus one thread on a page that is not
// cross-origin isolated: the WebGPU build's CPU fallback, what an embedded app gets), a fresh
// browser profile opens the app's bench page (www/bench.html, which a user can open on their
// own device too): first visit (the model downloads into Cache Storage), second visit with the
// app's five default labels (model from the cache, text features encoded), one label changed,
// then --runs repeats (the image encode; text from the bank). `int8+bank` is the int8 pack
// converted with the default labels' text features (convert --text-bank): what a host that
// ships such a pack gives its first visitors. `--simd auto,baseline`: the threaded worker the
// browser picks (relaxed SIMD in Chromium), and again the baseline-SIMD build (`simd=baseline`,
// what browsers without relaxed SIMD run; f32 and int8).
//
// Then onnxruntime-web (bench/web/ort.html) on the ONNX export of the same weights, fp32 and
// int8, at each thread count: session creation and --runs timed forwards after a warm-up.
//
//   node bench.mjs --dist DIR --model DIR --packs DIR --onnx DIR --images DIR [--runs 5]
//                  [--threads 1,2] [--quant f32,int8,int8+bank] [--simd auto,baseline]
//                  [--out results.json]
//
// Prints a Markdown table and the ratios the performance issue asks for; --out keeps every
// number. Timings are the app's own (window.clipSurgery.last.timings_ms) and ort.html's.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// One wait may take long on one thread; longer than this is a hang, reported as such.
const WAIT_MS = 10 * 60_000;

function options(argv) {
  const o = { runs: 5, threads: [1, 2], quant: ['f32', 'int8', 'int8+bank'], simd: ['auto', 'baseline'], out: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i].replace(/^--/, ''), argv[i + 1]];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    if (key === 'runs') o.runs = Number(value);
    else if (key === 'threads') o.threads = value.split(',').map(Number);
    else if (key === 'quant') o.quant = value.split(',');
    else if (key === 'simd') o.simd = value.split(',');
    else o[key] = key === 'out' ? value : path.resolve(value);
  }
  for (const key of ['dist', 'model', 'packs', 'onnx', 'images']) {
    if (!o[key] || !fs.existsSync(o[key])) throw new Error(`--${key} must name an existing folder`);
  }
  return o;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.svg': 'image/svg+xml',
};

/** A static server over `mounts` ([url prefix, folder]); `isolated`: send COOP/COEP. */
async function serve(mounts, isolated) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = null;
    for (const [prefix, dir] of mounts) {
      if (!url.pathname.startsWith(prefix)) continue;
      let rel = decodeURIComponent(url.pathname.slice(prefix.length));
      if (rel === '' || rel.endsWith('/')) rel += 'index.html';
      const full = path.join(dir, rel);
      if (full.startsWith(dir) && fs.existsSync(full) && fs.statSync(full).isFile()) file = full;
      break;
    }
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': fs.statSync(file).size,
      'cache-control': 'no-store',
      ...(isolated
        ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
        : {}),
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

async function browser({ serviceWorkers = 'allow' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-bench-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    serviceWorkers,
    args: ['--no-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const log = [];
  ctx.on('console', (m) => log.push(m.text()));
  return {
    ctx, log,
    async close() {
      await ctx.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function appScenario(o, servers, { quant, threads, isolated, simd }) {
  const server = isolated ? servers.isolated : servers.plain;
  // Not isolated: no service worker either (it would isolate the page): one thread.
  const b = await browser({ serviceWorkers: isolated ? 'allow' : 'block' });
  const [scheme, bank] = quant.split('+');
  const model = scheme === 'f32' ? 'bench/model' : `bench/packs/${scheme}${bank ? '-bank' : ''}`;
  const params = new URLSearchParams({
    model, quant: scheme, image: 'img/astronaut.png', size: '224', device: 'cpu', runs: String(o.runs),
  });
  if (isolated) params.set('threads', String(threads));
  if (simd === 'baseline') params.set('simd', 'baseline');
  const out = { quant, threads: isolated ? threads : 1, isolated, simd };
  try {
    const page = await b.ctx.newPage();
    // The app's own bench page (www/bench.html) runs the steps; see there.
    await page.goto(`${server.origin}/www/bench.html?${params}`);
    const handle = await page.waitForFunction(
      () => window.benchResult ?? (window.benchError && { error: window.benchError }),
      null, { timeout: WAIT_MS, polling: 200 },
    );
    const got = await handle.jsonValue();
    if (got.error) throw new Error(got.error);
    Object.assign(out, got, { threads_shown: got.threads, threads: out.threads });
  } catch (e) {
    out.error = String(e.message ?? e).split('\n')[0];
    out.console_tail = b.log.slice(-20);
  } finally {
    await b.close();
  }
  return out;
}

async function ortScenario(o, servers, { file, threads }) {
  const b = await browser();
  const out = { file, threads };
  try {
    const page = await b.ctx.newPage();
    await page.goto(`${servers.isolated.origin}/bench/web/ort.html?model=/bench/onnx/${file}&threads=${threads}&runs=${o.runs}`);
    const handle = await page.waitForFunction(
      () => window.benchResult ?? (window.benchError && { error: window.benchError }),
      null, { timeout: WAIT_MS, polling: 100 },
    );
    Object.assign(out, await handle.jsonValue());
  } catch (e) {
    out.error = String(e.message ?? e).split('\n')[0];
  } finally {
    await b.close();
  }
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const sec = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '–');
const spread = (xs) => (xs.length ? `${sec(median(xs))} (${sec(Math.min(...xs))}–${sec(Math.max(...xs))})` : '–');

function report(o, app, ort) {
  const lines = [];
  lines.push('| CPU path (ViT-B/16, 224 px) | model load, cached | first picture (page load → result) | its text / image | one label changed | image encode, repeats | worker memory |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of app) {
    const name = `${r.quant}, ${r.threads} thread${r.threads > 1 ? 's' : ''}${r.isolated ? '' : ', not isolated'}`
      + `${r.simd === 'baseline' ? ', baseline SIMD' : ''}`;
    if (r.error) {
      lines.push(`| ${name} | ${r.error} | | | | | |`);
      continue;
    }
    const load = r.cached_load.download_ms + r.cached_load.upload_ms;
    const f = r.first.timings_ms;
    lines.push(`| ${name} | ${sec(load)} | ${sec(r.first.page_to_picture_ms)} | ${sec(f.text)} / ${sec(f.image)} `
      + `| ${sec(r.changed_ms.total)} | ${spread(r.repeats.map((t) => t.image))} | ${(r.memory_bytes / 1e6).toFixed(0)} MB |`);
  }
  lines.push('');
  lines.push('| onnxruntime-web (plain vision forward, 224 px) | session created | forward, repeats |');
  lines.push('|---|---:|---:|');
  for (const r of ort) {
    const name = `${r.file.replace('vision_', '').replace('.onnx', '')}, ${r.threads} thread${r.threads > 1 ? 's' : ''}`;
    lines.push(r.error ? `| ${name} | ${r.error} | |` : `| ${name} | ${sec(r.load_ms)} | ${spread(r.runs_ms)} |`);
  }
  lines.push('');
  const image = (quant, threads, simd = 'auto') => {
    const r = app.find((a) => a.quant === quant && a.threads === threads && a.isolated && a.simd === simd && !a.error);
    return r ? median(r.repeats.map((t) => t.image)) : NaN;
  };
  const forward = (file, threads) => {
    const r = ort.find((x) => x.file === file && x.threads === threads && !x.error);
    return r ? median(r.runs_ms) : NaN;
  };
  const ratio = (a, b) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '–');
  for (const t of o.threads) {
    lines.push(`- ${t} thread(s): image encode f32 / onnxruntime-web fp32 = ${ratio(image('f32', t), forward('vision_fp32.onnx', t))}; `
      + `int8 / f32 = ${ratio(image('int8', t), image('f32', t))}; int8 / onnxruntime-web int8 = ${ratio(image('int8', t), forward('vision_int8.onnx', t))}`);
  }
  if (o.simd.includes('baseline')) {
    for (const t of o.threads) {
      lines.push(`- ${t} thread(s), baseline SIMD: image encode f32 / onnxruntime-web fp32 = ${ratio(image('f32', t, 'baseline'), forward('vision_fp32.onnx', t))}; `
        + `int8 / f32 = ${ratio(image('int8', t, 'baseline'), image('f32', t, 'baseline'))}; int8 / onnxruntime-web int8 = ${ratio(image('int8', t, 'baseline'), forward('vision_int8.onnx', t))}`);
    }
  }
  if (o.threads.includes(1) && o.threads.includes(2)) {
    for (const simd of o.simd) {
      for (const q of o.quant.filter((x) => !x.includes('+'))) {
        lines.push(`- ${q}${simd === 'baseline' ? ', baseline SIMD' : ''}: one thread / two threads, image encode = ${ratio(image(q, 1, simd), image(q, 2, simd))}`);
      }
    }
  }
  for (const r of app.filter((a) => !a.error)) {
    const text = r.first.timings_ms.text;
    if (text < 1) {
      lines.push(`- ${r.quant}, ${r.threads} thread(s): the first run's text came from the pack's bank (${sec(text)})`);
      continue;
    }
    const repeat = median(r.repeats.map((t) => t.text));
    lines.push(`- ${r.quant}, ${r.threads} thread(s)${r.isolated ? '' : ', not isolated'}${r.simd === 'baseline' ? ', baseline SIMD' : ''}: repeat text ${sec(repeat)} = ${((100 * repeat) / text).toFixed(1)} % of the first (${sec(text)})`);
  }
  return lines.join('\n');
}

async function main() {
  const o = options(process.argv.slice(2));
  const mounts = [
    ['/bench/model/', o.model],
    ['/bench/packs/', o.packs],
    ['/bench/onnx/', o.onnx],
    ['/bench/web/', HERE], // ort.html
    ['/ort/', path.join(HERE, 'node_modules/onnxruntime-web/dist')],
    ['/img/', o.images],
    ['/', o.dist],
  ];
  const servers = { isolated: await serve(mounts, true), plain: await serve(mounts, false) };
  const app = [];
  const ort = [];
  try {
    const configs = o.simd.flatMap((simd) => o.quant
      .filter((quant) => simd === 'auto' || !quant.includes('+'))
      .flatMap((quant) => o.threads.map((threads) => ({ quant, threads, isolated: true, simd }))));
    if (o.quant.includes('f32')) configs.push({ quant: 'f32', threads: 1, isolated: false, simd: 'auto' });
    for (const c of configs) {
      console.error(`app: ${JSON.stringify(c)}`);
      app.push(await appScenario(o, servers, c));
      console.error(`  ${JSON.stringify(app.at(-1))}`);
    }
    for (const quant of o.quant.filter((q) => !q.includes('+'))) {
      for (const threads of o.threads) {
        const file = quant === 'f32' ? 'vision_fp32.onnx' : `vision_${quant}.onnx`;
        if (!fs.existsSync(path.join(o.onnx, file))) continue;
        console.error(`onnxruntime-web: ${file}, ${threads} thread(s)`);
        ort.push(await ortScenario(o, servers, { file, threads }));
        console.error(`  ${JSON.stringify(ort.at(-1))}`);
      }
    }
  } finally {
    servers.isolated.close();
    servers.plain.close();
  }
  const machine = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    chromium: await chromiumVersion(),
  };
  if (o.out) fs.writeFileSync(o.out, JSON.stringify({ machine, runs: o.runs, app, ort }, null, 2) + '\n');
  console.log(`${machine.date.slice(0, 10)}, ${machine.cpus} cores (${machine.cpu}), ${machine.memory_gb} GB, ${machine.chromium}\n`);
  console.log(report(o, app, ort));
  if (app.some((r) => r.error) || ort.some((r) => r.error)) process.exitCode = 1;
}

async function chromiumVersion() {
  const b = await browser();
  try {
    return `Chromium ${b.ctx.browser()?.version() ?? (await (await b.ctx.newPage()).evaluate(() => navigator.userAgent)).match(/Chrome\/([\d.]+)/)?.[1]}`;
  } finally {
    await b.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
