// <clip-surgery-view>: a precomputed CLIP Surgery result (`clip-surgery explain --json`) drawn
// over its image in the host page — no model, no worker, no WebAssembly, no iframe. Shadow DOM
// (nothing leaks into the page's styles, nothing of the page's leaks in), a constructed style
// sheet (allowed by a strict `style-src 'self'`), no eval: the page only needs to allow this
// script and to reach the JSON and the image (same origin, or CORS).
//
//   <script type="module" src="https://HOST/clip-surgery/embed.js"></script>
//   <clip-surgery-view result="results/cat.json" image="photos/cat.jpg" label="dog"
//       colormap="jet" opacity="0.6"></clip-surgery-view>
//
// The map is drawn by the app's rule, in the same f32 arithmetic (crates/clip-core/src/output:
// min-max per label, PyTorch's bilinear resize with align_corners=False, a 256-entry colormap,
// `image·(1 − α) + heat·α` rounded), so it equals the app's canvas pixel for pixel.

const RESULT_VERSION = 1;
const PREVIEW_MAX_SIDE = 1024;
const COLORMAP_NAMES = ['jet', 'turbo', 'viridis', 'inferno'];

// BEGIN colormaps: 256 RGB entries each, base64; generated from clip-core's `Colormap::lut`
// (`CLIP_BLESS=1 cargo test -p clip-surgery-web embed` rewrites them; the test checks them).
const COLORMAPS = {
  jet: 'AACAAACEAACJAACNAACSAACWAACbAACfAACkAACoAACtAACyAAC2AAC7AAC/AADEAADIAADNAADRAADWAADaAADfAADkAADoAADtAADxAAD2AAD6AAD/AAD/AAD/AAD/AAH/AAX/AAn/AA3/ABH/ABX/ABn/AB3/ACH/ACX/ACn/AC3/ADH/ADX/ADn/AD3/AEH/AEX/AEn/AE3/AFH/AFX/AFn/AF3/AGH/AGX/AGn/AG3/AHH/AHX/AHn/AH3/AIH/AIX/AIn/AI3/AJH/AJX/AJn/AJ3/AKH/AKX/AKn/AK3/ALH/ALX/ALn/AL3/AMH/AMX/AMn/AM3/ANH/ANX/ANn/AN3+AOH7AOX4Aun0Bu3xCfHuDPXrD/nnE/3kFv/hGf/eHP/bH//XI//UJv/RKf/OLP/KMP/HM//ENv/BOf++PP+6QP+3Q/+0Rv+xSf+tTf+qUP+nU/+kVv+gWv+dXf+aYP+XY/+UZv+Qav+Nbf+KcP+Hc/+Dd/+Aev99ff96gP93g/9zh/9wiv9tjf9qkP9mlP9jl/9gmv9dnf9aoP9WpP9Tp/9Qqv9Nrf9Jsf9GtP9Dt/9Auv88vv85wf82xP8zx/8wyv8szv8p0f8m1P8j1/8f2/8c3v8Z4f8W5P8T5/8P6/8M7v8J8fwG9PgC+PUA+/EA/u0A/+oA/+YA/+IA/94A/9sA/9cA/9MA/9AA/8wA/8gA/8QA/8EA/70A/7kA/7YA/7IA/64A/6sA/6cA/6MA/58A/5wA/5gA/5QA/5EA/40A/4kA/4YA/4IA/34A/3oA/3cA/3MA/28A/2wA/2gA/2QA/2AA/10A/1kA/1UA/1IA/04A/0oA/0cA/0MA/z8A/zsA/zgA/zQA/zAA/y0A/ykA/yUA/yIA/x4A/xoA/xYA/xMA+g8A9gsA8QgA7QQA6AAA4wAA3wAA2gAA1gAA0QAAzQAAyAAAxAAAvwAAuwAAtgAAsgAArQAAqAAApAAAnwAAmwAAlgAAkgAAjQAAiQAAhAAAgAAA',
  turbo: 'IxcbJxooKxwzLx4/MiBKNiNUOSVfOydoPipyQCx7Qi+DRDGLRTSTRjabSDmiSTyoST6vSkG1SkS7S0bAS0nFS0zKS07PS1HTSlTXSlbbSVneSVziSF/lR2HnRmTqRWfsRGruRG3wQm/yQXLzQHX1P3j2Pnr3PX33PID4OoP5OYX5OIj5N4v5No35NZD4M5P4MpX3MZj3MJv2L531LqD0LaLzLKXxK6fwKqrvKqztKa/sKLHqKLToJ7bmJ7jlJrvjJr3hJr/fJcHcJcPaJcbYJcjWJcrTJczRJc7PJtDMJtLKJtTIJ9bFJ9jDKNnAKdu+Kd27Kt+4K+C2LOKzLeOxLuWuMOasMeipMummNOukNeyhN+2fOe+cOvCaPPGXPvKVQPOSQvSQRPWNRvaLSPeISveGTfiET/mBUfp/VPp9Vvt6Wft4XPx2Xvx0Yf1xZP1vZv1taf1rbP1pb/5ncv5ldf5jeP5he/5ffv1dgf1chP1ah/1YivxWjfxVkPtTk/tRlvpQmfpOnPlNn/hLovhKpvdIqfZHrPVGr/REsvNDtfJCuPFBu/A/vu8+we09w+w8xus7yek6zOg5z+c40eU31OM21+I12eA03N8z3t0y4Nsy49kx5dcw59Uv6dQv7NIu7tAt8M4s8css88kr9ccr98Uq+MMp+sAp+74o/bwo/rkn/7cn/7Um/7Im/7Al/60l/6sk/6gk/6Yj/6Mj/6Ai/54i/5sh/5kh/5Yh/5Mg/5Ag/44f/4sf/4ge/4Ue/4Md/4Ad/30d/3oc/3gc/3Ub/3Ib/28a/Wwa/GoZ+mcZ+WQY92EY9l8Y9FwX8lkW8FcW7lQV7FEV6k8U6EwU5kkT5EcT4kQS30IS3T8R2j0Q2DoQ1TgP0zYP0DMOzjENyy8NyS0MxioLwygLwSYKviQJuyMJuSEIth8HtB0HsRsGrxoFrBgFqhcEqBYEpRQDoxMCoRICnxEBnRAAmw8Amg4AmA4Alg0AlQwAlAwAkwwAkgwAkQsAkQwAkAwAkAwAkAwA',
  viridis: 'RAFURAJVRANWRAVXRAZYRQdZRQhbRQlcRQtdRQxeRQ1fRQ5gRQ9hRRBiRhJjRhNkRhRlRhVmRhZnRhhoRhlpRhpqRhtrRhxsRh1tRh9uRiBvRiFwRiJxRiNyRiRzRiV0Rid0Rih1Ril2Rip3RSt4RSx4RS15RS96RTB7RTF7RDJ8RDN9RDR9RDV+RDZ/Qzd/QzmAQzqBQzuBQjyCQj2CQj6DQT+DQUCEQUGEQEKFQEOFQESGP0WGP0aGP0eHPkiHPkmIPkqIPUuIPUyJPU2JPE6JPE+JO1CKO1GKO1KKOlOKOlSLOVWLOVaLOVeLOFiMOFmMN1qMN1qMN1uMNlyMNl2MNV6NNV+NNWCNNGGNNGKNM2ONM2SNM2SNMmWNMmaNMWeOMWiOMWmOMGqOMGuOL2yOL22OL22OLm6OLm+OLnCOLXGOLXKOLXOOLHSOLHSOK3WOK3aOK3eOKniOKnmOKnqOKnuOKXuOKXyOKX2OKH6OKH+OKICOJ4GOJ4GOJ4KOJ4OOJoSOJoWOJoaOJYaOJYeOJYiNJYmNJYqNJYuNJIyNJIyNJI2MJI6MJI+MJJCMJJGLJZKLJZOLJZSKJZWKJpaJJpeJJpiIJ5mIKJqHKJuHKZyGKp2FK56FLJ+ELaCDLqKCL6OBMKSBMqWAM6Z/NKh+Nql8OKp7Oax6O615Pa54P7B3QbF1Q7J0RbRzR7VySbZwS7hvTbltT7psUbtrVL1pVr5oWL9mWsBlXcJjX8NiYcRgZMVfZsZeacdca8hbbclZcMpYcstWdMxVd81Tec5Se89Qfs9PgNBNgtFMhdJKh9JJidNIjNRGjtRFkNVEk9ZCldZBl9dAmtc/nNg9ntg8odk7o9k6pdo5qNo4qts3rNs2r9w1sdw0s90ztd0yuN0xut4wvN4wv98vwd8uw98uxeAtyOAsyuAszOErzuEr0eEq0+Iq1eIq2OMp2uMp3OMp3uQo4eQo4+Qo5eUn5+Un6uUn7OUn7uYm8OYm8+Ym9ecm9+cm+ecl/Ogl/ugl',
  inferno: 'AAAEAQAGAgEIAwEKBAIMBQIPBQMRBgMTBwMVCAQXCQQZCgUbCwUdDAUfDQYhDgYjDwYmEAcoEQcqEwcsFAguFQgwFggyFwg0GAk2Ggk4Gwk6HAk8Hgk+Hwo/IApBIgpDIwpFJQpHJgpJKApKKQpMKwpOLAtQLgtRMAtTMQtUMwtWNQtXNgtZOAtaOQtcOwxdPQxePgxfQAxgQgxhQw1iRQ1jRw1kSA1lSg5mSw5mTQ5nTw9oUA9oUhBpVBBpVRBqVxFqWBFqWhJrXBJrXRNrXxNrYBRrYhRsZBVsZRVsZxZsaBdsahdsbBhsbRhsbxlscBlschpsdBprdRtrdxxreBxreh1rex1rfR5qfx5qgB9qgiBpgyBphSFphiFoiCJoiiNoiyNnjSRnjiRmkCVmkSZmkyZllSdklidkmChjmSljmylinCpiniphoCtgoSxgoyxfpC1epi5epy5dqS9cqjBbrDFbrTFarzJZsDNYsjNYszRXtTVWtjZVuDdUuTdTuzhSvDlRvjpRvztQwDxPwj1Owz5NxT9MxkBLx0FKyUJJykNIy0RHzUVGzkZFz0dE0EhD0klC00pB1EtA1U0/1k492E882VA72lI621M53FQ43VU33lc231g04Fkz4Vsy4lwx414w5F8v5WAt5mIs52Mr6GUq6WYp6Wgo6mkn62sl7Gwk7G4j7W8i7nEh73Mg73Qf8HYe8Xgd8Xkc8nsb8nwa834a84AZ9IIY9IMX9YUX9YcW9ogV9ooV9owU944U95AU95ET+JMT+JUT+JcT+ZkT+ZoT+ZwU+Z4U+aAU+aIV+aQW+qYW+qcX+qkY+qsZ+q0b+q8c+bEd+bMf+bQg+bYi+bgk+bom+bwo+b4q+cAs+cIu+cMx+cUz+Mc1+Mk4+Ms7+M09+M5A+NBD+NJG+NRJ+NZM+NdP+NlS+NtV+NxY+N5c+OBf+OJi+eNm+eVp+edt+ehw+ep0+ex3+u17+u9/+vCC+vKG+vSK+/WN+/eR+/mV+/qZ/Pyc/P2g/P+k',
};
// END colormaps

const CSS = `
:host { display: inline-block; max-width: 100%; font: 14px/1.4 system-ui, sans-serif; color: #1f2328; }
:host([hidden]) { display: none; }
figure { margin: 0; display: grid; gap: .4rem; }
canvas { max-width: 100%; height: auto; display: block; border-radius: 6px; background: #eee; }
.controls { display: flex; flex-wrap: wrap; gap: .4rem .8rem; align-items: center; }
label { display: inline-flex; gap: .35rem; align-items: center; }
select, input { font: inherit; }
a { color: #0b6bcb; }
.status { margin: 0; color: #57606a; }
.status.error { color: #b42318; }
`;

const f32 = Math.fround;

/** LUT bytes of a colormap name (jet for an unknown one). */
function lut(name) {
  const b64 = COLORMAPS[name] || COLORMAPS.jet;
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** PyTorch's bilinear taps (align_corners=False), in f32 as its CPU kernel computes them. */
function taps(inLen, outLen) {
  const scale = f32(inLen / outLen);
  const out = [];
  for (let o = 0; o < outLen; o++) {
    const src = Math.max(0, f32(f32(scale * f32(o + 0.5)) - 0.5));
    const i0 = Math.min(Math.trunc(src), inLen - 1);
    const i1 = i0 < inLen - 1 ? i0 + 1 : i0;
    const l1 = f32(src - i0);
    out.push([i0, i1, f32(1 - l1), l1]);
  }
  return out;
}

/** `(v − min) / (max − min)` in f32; a constant column is all zeros. */
function minMax(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = f32(hi - lo);
  if (!(range > 0 && Number.isFinite(range))) return values.map(() => 0);
  return values.map((v) => f32(f32(v - lo) / range));
}

/** A row-major `[gh, gw]` plane resized to `[h, w]`. */
function resize(src, [gh, gw], [h, w]) {
  if (gh === h && gw === w) return Float32Array.from(src);
  const rows = taps(gh, h);
  const cols = taps(gw, w);
  const out = new Float32Array(h * w);
  let k = 0;
  for (const [y0, y1, wy0, wy1] of rows) {
    for (const [x0, x1, wx0, wx1] of cols) {
      const top = f32(f32(wx0 * src[y0 * gw + x0]) + f32(wx1 * src[y0 * gw + x1]));
      const bottom = f32(f32(wx0 * src[y1 * gw + x0]) + f32(wx1 * src[y1 * gw + x1]));
      out[k++] = f32(f32(wy0 * top) + f32(wy1 * bottom));
    }
  }
  return out;
}

/** What is wrong with a result file, or null. */
function problem(doc) {
  if (typeof doc !== 'object' || doc === null) return 'it is not a JSON object';
  if (doc.version !== RESULT_VERSION) {
    const found = doc.version === undefined ? 'no version' : `version ${doc.version}`;
    return `it is a result file of ${found}; this viewer reads version ${RESULT_VERSION}`;
  }
  const labels = doc.labels;
  const [gh, gw] = Array.isArray(doc.grid) ? doc.grid : [];
  if (!Array.isArray(labels) || labels.length === 0) return 'it has no labels';
  if (!(Number.isInteger(gh) && Number.isInteger(gw) && gh > 0 && gw > 0 && gh * gw <= 512 * 512)) {
    return 'its grid is empty or too large';
  }
  const columns = doc.combined ? 1 : labels.length;
  const rows = doc.similarity;
  if (!Array.isArray(rows) || rows.length !== gh * gw
      || rows.some((r) => !Array.isArray(r) || r.length !== columns || r.some((v) => typeof v !== 'number'))) {
    return 'its similarity is not one row of label values per grid cell';
  }
  return null;
}

/** The label shown first: the author's multi-label ranking where there is one, else CLIP's. */
function topLabel(doc) {
  const scores = doc.cls_surgery?.length ? doc.cls_surgery : (doc.cls_scores ?? []);
  let best = 0;
  scores.forEach((s, i) => { if (s > scores[best]) best = i; });
  return Math.min(best, doc.labels.length - 1);
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response;
}

/** The image decoded by the browser (EXIF orientation applied) at the app's preview size. */
async function decode(url) {
  const blob = await (await fetchOk(url)).blob();
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    throw new Error(`the browser cannot decode ${url}`);
  }
  const scale = Math.min(1, PREVIEW_MAX_SIDE / Math.max(bitmap.width, bitmap.height, 1));
  const [w, h] = [bitmap.width, bitmap.height].map((n) => Math.max(1, Math.round(n * scale)));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, w, h).data;
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return { width: w, height: h, rgba };
}

class ClipSurgeryView extends HTMLElement {
  static observedAttributes = ['result', 'image', 'label', 'colormap', 'opacity', 'app'];

  #canvas;
  #select;
  #opacity;
  #opacityText;
  #link;
  #status;
  #doc = null;
  #picture = null;
  #maps = new Map();
  #loads = 0;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    if ('adoptedStyleSheets' in root) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    }
    const el = (tag, props = {}, ...children) => {
      const node = Object.assign(document.createElement(tag), props);
      node.append(...children);
      return node;
    };
    this.#canvas = el('canvas', { role: 'img' });
    this.#select = el('select');
    this.#opacity = el('input', { type: 'range', min: '0', max: '1', step: '0.05' });
    this.#opacityText = el('span');
    this.#link = el('a', { textContent: 'Open in the app', target: '_blank', rel: 'noopener' });
    this.#status = el('p', { className: 'status', textContent: 'Loading…' });
    this.#status.setAttribute('role', 'status');
    this.#select.addEventListener('change', () => this.#draw());
    this.#opacity.addEventListener('input', () => this.#draw());
    root.append(el('figure', {},
      this.#canvas,
      el('div', { className: 'controls' },
        el('label', {}, 'Label ', this.#select),
        el('label', {}, this.#opacityText, this.#opacity),
        this.#link),
      this.#status));
  }

  /** The result file shown (parsed), once loaded. */
  get result() {
    return this.#doc;
  }

  connectedCallback() {
    this.#load();
  }

  attributeChangedCallback(name, old, value) {
    if (!this.isConnected || old === value) return;
    if (name === 'result' || name === 'image') this.#load();
    else if (this.#doc) this.#show();
  }

  #url(attribute) {
    const value = this.getAttribute(attribute);
    return value ? new URL(value, document.baseURI).href : null;
  }

  async #load() {
    const load = ++this.#loads;
    const [resultUrl, imageUrl] = [this.#url('result'), this.#url('image')];
    this.#doc = null;
    this.#maps.clear();
    this.dataset.state = 'loading';
    try {
      if (!resultUrl || !imageUrl) throw new Error('give the result and image attributes');
      const [text, picture] = await Promise.all([
        fetchOk(resultUrl).then((r) => r.text()),
        decode(imageUrl),
      ]);
      let doc;
      try {
        doc = JSON.parse(text);
      } catch {
        doc = undefined;
      }
      const why = problem(doc);
      if (why) throw new Error(`${resultUrl} is not a result of clip-surgery explain --json: ${why}`);
      if (load !== this.#loads) return;
      [this.#doc, this.#picture] = [doc, picture];
      this.#select.replaceChildren(...doc.labels.map((l, i) => Object.assign(document.createElement('option'), { value: String(i), textContent: l })));
      this.#show();
    } catch (e) {
      if (load !== this.#loads) return;
      this.dataset.state = 'error';
      this.#status.className = 'status error';
      this.#status.setAttribute('role', 'alert');
      this.#status.textContent = e.message;
      this.dispatchEvent(new CustomEvent('clipsurgery:error', { detail: e.message }));
    }
  }

  /** Applies the label, colormap, opacity and app attributes, then draws. */
  #show() {
    const doc = this.#doc;
    const wanted = doc.labels.indexOf(this.getAttribute('label'));
    this.#select.value = String(wanted >= 0 ? wanted : topLabel(doc));
    const opacity = Number.parseFloat(this.getAttribute('opacity'));
    this.#opacity.value = String(opacity >= 0 && opacity <= 1 ? opacity : 0.6);
    const app = new URL(this.getAttribute('app') || './', this.getAttribute('app') ? document.baseURI : import.meta.url);
    app.search = '';
    app.searchParams.set('result', this.#url('result'));
    app.searchParams.set('image', this.#url('image'));
    const colormap = this.#colormap();
    if (colormap !== 'jet') app.searchParams.set('colormap', colormap);
    this.#link.href = app.href;
    this.#draw();
  }

  #colormap() {
    const name = this.getAttribute('colormap');
    return COLORMAP_NAMES.includes(name) ? name : 'jet';
  }

  /** Label `k`'s map at the picture's size (kept: opacity changes do not recompute it). */
  #map(k) {
    if (!this.#maps.has(k)) {
      const doc = this.#doc;
      const column = doc.similarity.map((row) => f32(row[k]));
      // An "a+b" text is its parts' mean of min-maxed maps already (the app draws it as is).
      const values = doc.combined ? column : minMax(column);
      this.#maps.set(k, resize(values, doc.grid, [this.#picture.height, this.#picture.width]));
    }
    return this.#maps.get(k);
  }

  #draw() {
    const doc = this.#doc;
    const picture = this.#picture;
    if (!doc || !picture) return;
    const k = Number(this.#select.value);
    const alpha = f32(Number(this.#opacity.value));
    this.#opacityText.textContent = `Opacity ${Math.round(alpha * 100)} %`;
    const map = this.#map(k);
    const colors = lut(this.#colormap());
    const out = new ImageData(picture.width, picture.height);
    const keep = f32(1 - alpha);
    for (let p = 0; p < map.length; p++) {
      const v = Number.isNaN(map[p]) ? 0 : Math.min(1, Math.max(0, map[p]));
      const c = Math.trunc(f32(v * 255)) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const blended = f32(f32(picture.rgba[p * 4 + ch] * keep) + f32(colors[c + ch] * alpha));
        out.data[p * 4 + ch] = Math.min(255, Math.max(0, Math.round(blended)));
      }
      out.data[p * 4 + 3] = 255;
    }
    this.#canvas.width = picture.width;
    this.#canvas.height = picture.height;
    this.#canvas.getContext('2d').putImageData(out, 0, 0);
    const method = doc.method === 'raw' ? 'Raw CLIP' : 'CLIP Surgery';
    this.#canvas.setAttribute('aria-label', `${method} similarity map for “${doc.labels[k]}” over ${doc.image ?? 'the image'}`);
    this.#status.className = 'status';
    this.#status.setAttribute('role', 'status');
    this.#status.textContent = `${method}, ${doc.architecture ?? 'CLIP'} (${doc.model ?? 'a model'}), precomputed`;
    this.dataset.state = 'drawn';
    this.dispatchEvent(new CustomEvent('clipsurgery:drawn', { detail: { label: doc.labels[k] } }));
  }
}

if (!customElements.get('clip-surgery-view')) customElements.define('clip-surgery-view', ClipSurgeryView);
