// Starts the app (trunk's loader, as a file so the Content-Security-Policy needs no
// 'unsafe-inline'). Paths are relative to this file: dist/ works from any folder.
import init from '../clip-surgery-web.js';

const params = new URLSearchParams(location.search);

// The app's service worker (../sw.js): the shell offline, updates in one piece, and
// cross-origin isolation where the host sends no COOP/COEP. Not registered by the result
// viewer (`?result=`: a docs page's reader downloads the page's wasm only) nor where browsers
// refuse it (no service workers, not a secure context).
const workers = 'serviceWorker' in navigator && window.isSecureContext && !params.has('result')
  ? navigator.serviceWorker
  : null;
const script = new URL('../sw.js', import.meta.url);

/** Registers the worker, or looks for a new deploy of it (which then installs beside the old). */
async function register() {
  try {
    return await workers?.register(script);
  } catch (e) {
    console.warn(`clip-surgery: no service worker: no offline use, and the CPU runs one thread (${e})`);
    return null;
  }
}

// A new deploy's worker waits until no page runs the old shell; this page has run nothing
// yet, so it hands over now and loads again from the new shell.
async function update() {
  const registration = await workers?.getRegistration().catch(() => null);
  if (!registration?.waiting || !workers.controller) return false;
  const handedOver = new Promise((resolve) => {
    workers.addEventListener('controllerchange', resolve, { once: true });
  });
  registration.waiting.postMessage('activate');
  await handedOver;
  location.reload();
  return true;
}

// Threads for the CPU need a cross-origin isolated page. Where the host did not make it one,
// the service worker adds the headers: one reload once it controls the page. Only where it
// can help: a top-level page (an embedded one also needs its parent isolated), a visit that
// will use the CPU (WebGPU needs no threads); and not when it already did not help.
async function usesCpu() {
  const device = params.get('device');
  if (device === 'cpu') return true;
  try {
    return device !== 'webgpu' && !(await navigator.gpu?.requestAdapter());
  } catch {
    return true;
  }
}

async function isolate() {
  const tried = 'clip-surgery-isolation-tried';
  if (!workers || self.crossOriginIsolated || window.top !== window) return false;
  if (sessionStorage.getItem(tried) || !(await usesCpu())) return false;
  sessionStorage.setItem(tried, '1');
  if (!(await register())) return false;
  await workers.ready;
  location.reload();
  return true;
}

if (!(await update()) && !(await isolate())) {
  await init({ module_or_path: new URL('../clip-surgery-web_bg.wasm', import.meta.url) });
  // After the app started, not before: the first visit precaches the shell in the background,
  // and a later one finds a new deploy, which installs and takes over on the next load.
  register();
}
