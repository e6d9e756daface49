// The app's service worker. Registered by www/boot.js; its scope is the folder of dist/.
//
// 1. Offline: `cargo xtask build` writes BUILD below — the shell's files with their SHA-256
//    (subresource integrity), a version derived from them, and the files of a bundled weight
//    pack. Installing precaches the shell into `clip-surgery-shell-<version>` (every file
//    checked against its hash, so a cache never holds files of two deploys) and the pack into
//    the worker's model cache, where the worker finds it as if it had downloaded it. The shell
//    is then served from that cache, the network only for the rest.
// 2. Updates: a new deploy changes BUILD, so the browser installs the new worker beside the
//    old one; the old one keeps serving its own complete shell to open pages. boot.js hands
//    over on the next load, before any wasm runs; the new worker then deletes the old shell.
//    The model cache is never touched here: downloaded models survive updates.
// 3. Cross-origin isolation: the app's own responses get COOP/COEP, which a static host may
//    not be able to send. Isolation is what lets the CPU worker use threads
//    (SharedArrayBuffer). Other origins' responses (model downloads) are not touched.
//
// Without BUILD (`cargo xtask serve`, a dev build) nothing is cached: only 3 applies.

/* BUILD */ const BUILD = null;

const SHELL_PREFIX = 'clip-surgery-shell-';
/** The worker's cache of model files (crates/clip-worker/src/net.rs `CACHE_NAME`). */
const MODEL_CACHE = 'clip-surgery-models-v1';
const shellName = BUILD && `${SHELL_PREFIX}${BUILD.version}`;

const scoped = (path) => new URL(path, self.registration.scope).href;

// A module whose one function is `f32x4.relaxed_madd` (the same probe as
// www/worker_loader.js): the threaded build this browser will load, the only one precached.
const RELAXED_PROBE = (() => {
  const zeros = [0xfd, 0x0c, ...new Array(16).fill(0)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
    0x03, 0x02, 0x01, 0x00, 0x0a, 0x3d, 0x01, 0x3b, 0x00, ...zeros, ...zeros, ...zeros, 0xfd,
    0x85, 0x02, 0x0b,
  ]);
})();

/** Fetches `path` checked against `integrity` into `cache` (a changed file fails the install). */
async function precache(cache, [path, integrity]) {
  const url = scoped(path);
  // `no-cache`: revalidated, so an HTTP cache holding the previous deploy costs a retry only.
  const response = await fetch(url, { integrity, cache: 'no-cache' });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  await cache.put(url, response);
}

async function install() {
  if (!BUILD) return;
  const shell = await caches.open(shellName);
  const threads = WebAssembly.validate(RELAXED_PROBE) ? BUILD.threads.relaxed : BUILD.threads.baseline;
  await Promise.all([...BUILD.shell, ...threads].map((entry) => precache(shell, entry)));
  const models = await caches.open(MODEL_CACHE);
  for (const entry of BUILD.model) {
    if (!(await models.match(scoped(entry[0])))) await precache(models, entry);
  }
}

self.addEventListener('install', (event) => {
  // The first install has no pages to keep consistent; an update waits for boot.js.
  event.waitUntil(install().then(() => self.registration.active || self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(SHELL_PREFIX) && name !== shellName) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'activate') self.skipWaiting();
});

/** The response with the cross-origin isolation headers added. */
function isolated(response) {
  if (response.status === 0 || response.type === 'opaque') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Cross-Origin-Resource-Policy', 'same-origin');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/** The shell's cached copy of `request`, if it is a shell file (a page load: index.html). */
async function fromShell(request) {
  if (!shellName) return undefined;
  const url = new URL(request.url);
  url.search = '';
  url.hash = '';
  const root = self.registration.scope;
  const key = request.mode === 'navigate' && url.href === root ? scoped('index.html') : url.href;
  const cache = await caches.open(shellName);
  return cache.match(key);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  // A request the browser may only answer from its cache cannot be refetched here.
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith((async () => isolated((await fromShell(request)) ?? (await fetch(request))))());
});
