// The bench page (www/bench.html): drives the app (../index.html) in a same-origin iframe as a
// user would, on this browser and device, and reports the app's own stage times
// (window.clipSurgery.last.timings_ms). `cargo xtask bench-web` opens this page too, for the
// CPU configurations it compares with onnxruntime-web.
//
// 1. the app with a throwaway label: the model downloads (or comes from the cache);
// 2. the app again with the label set: the model from the cache, the first picture (the text
//    features are encoded: none are persisted for these labels yet);
// 3. one label changed; 4. the two label sets in turn, `runs` times (image encode; text from
//    the bank).
//
// The result lands in window.benchResult (or window.benchError) and in the page.

const DEFAULT_LABELS = ['person', 'flag', 'rocket', 'sky', 'ground'];
// Longer than this for one step is a hang.
const STEP_TIMEOUT_MS = 30 * 60_000;

const query = new URLSearchParams(location.search);
const runs = Math.max(1, Math.min(50, Number.parseInt(query.get('runs') ?? '5', 10) || 5));
query.delete('runs');
const labels = (query.get('labels') ?? DEFAULT_LABELS.join(','))
  .split(',').map((l) => l.trim()).filter(Boolean);
const changed = [...labels.slice(0, -1), labels.includes('tree') ? 'bench' : 'tree'];
if (!query.has('image')) query.set('image', 'www/samples/astronaut.jpg');
query.delete('text');

const frame = document.getElementById('app');
const status = (text) => { document.getElementById('status').textContent = text; };

function appUrl(labelSet) {
  const params = new URLSearchParams(query);
  params.set('labels', labelSet.join(','));
  return new URL(`../index.html?${params}`, location.href).href;
}

function open(labelSet) {
  return new Promise((resolve) => {
    frame.onload = () => resolve(frame.contentWindow);
    frame.src = appUrl(labelSet);
  });
}

async function waitFor(probe, what) {
  const until = performance.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (performance.now() > until) throw new Error(`no ${what} after ${STEP_TIMEOUT_MS / 60_000} min`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The app's next result (its error, thrown). */
async function result(win) {
  const api = () => win.clipSurgery;
  const got = await waitFor(() => api()?.last ?? (api()?.lastError && { error: api().lastError }), 'result');
  if (got.error) throw new Error(`the app failed: ${got.error}`);
  delete api().last;
  return got;
}

async function modelInfo(win) {
  const ready = await waitFor(() => win.document.querySelector('[data-testid=model-ready]'), 'model');
  return {
    download_ms: Number(ready.dataset.downloadMs),
    upload_ms: Number(ready.dataset.uploadMs),
    cached: ready.dataset.cached === 'true',
    memory_bytes: Number(ready.dataset.memory),
  };
}

async function explain(win, labelSet) {
  const doc = win.document;
  const field = [...doc.querySelectorAll('label')]
    .find((l) => l.textContent.includes('Labels (comma-separated)'))?.querySelector('textarea');
  if (!field) throw new Error('the app shows no label field');
  field.value = labelSet.join(', ');
  field.dispatchEvent(new Event('input', { bubbles: true }));
  const button = await waitFor(() => {
    const b = doc.querySelector('button.primary[type=submit]');
    return b && !b.disabled && b;
  }, 'enabled Explain button');
  button.click();
  return result(win);
}

function row(name, t) {
  const cells = [name, ...['text', 'image', 'finish', 'total'].map((k) => (t ? `${(t[k] / 1000).toFixed(2)} s` : ''))];
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  document.querySelector('#results tbody').append(tr);
}

async function bench() {
  const out = {
    params: Object.fromEntries(query), labels, changed, runs,
    user_agent: navigator.userAgent, cross_origin_isolated: self.crossOriginIsolated,
  };
  status('Loading the model (a download the first time)…');
  let start = performance.now();
  let win = await open(['a throwaway label']);
  await result(win);
  out.download = { ...(await modelInfo(win)), page_to_picture_ms: performance.now() - start };

  status('The label set, with the model from the cache…');
  start = performance.now();
  win = await open(labels);
  const first = await result(win);
  out.cached_load = await modelInfo(win);
  out.first = { page_to_picture_ms: performance.now() - start, timings_ms: first.timings_ms };
  out.device = first.device;
  out.threads = Number(win.document.querySelector('[data-threads]')?.dataset.threads ?? 0) || null;
  document.getElementById('results').hidden = false;
  row('first picture (text encoded)', first.timings_ms);

  status('One label changed…');
  out.changed_ms = (await explain(win, changed)).timings_ms;
  row('one label changed', out.changed_ms);
  out.repeats = [];
  let last = first;
  for (let i = 0; i < runs; i++) {
    status(`Repeat ${i + 1} of ${runs}…`);
    last = await explain(win, i % 2 ? changed : labels);
    out.repeats.push(last.timings_ms);
    row(`repeat ${i + 1}`, last.timings_ms);
  }
  out.memory_bytes = last.memory_bytes;
  return out;
}

bench().then(
  (out) => {
    window.benchResult = out;
    const load = (out.cached_load.download_ms + out.cached_load.upload_ms) / 1000;
    status(`Done on ${out.device}${out.threads ? ` (${out.threads} threads)` : ''}: model from the cache in ${load.toFixed(2)} s, `
      + `first picture ${(out.first.page_to_picture_ms / 1000).toFixed(2)} s after the page started.`);
    const json = document.getElementById('json');
    json.textContent = JSON.stringify(out, null, 2);
    json.hidden = false;
  },
  (e) => {
    window.benchError = String(e?.message ?? e);
    status(`Failed: ${window.benchError}`);
  },
);
