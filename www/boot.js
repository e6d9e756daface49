// Starts the app (trunk's loader, as a file so the Content-Security-Policy needs no
// 'unsafe-inline'). Paths are relative to this file: dist/ works from any folder.
import init from '../clip-surgery-web.js';

// Threads for the CPU need a cross-origin isolated page. Where the host did not make it one,
// the app's service worker (../sw.js) adds the headers: registered once, then one reload. Only
// where it can help: a top-level page (an embedded one also needs its parent isolated), a
// secure context, a browser with service workers, a visit that will use the CPU (WebGPU needs
// no threads); and not when it already did not help.
async function usesCpu() {
  const device = new URLSearchParams(location.search).get('device');
  if (device === 'cpu') return true;
  try {
    return device !== 'webgpu' && !(await navigator.gpu?.requestAdapter());
  } catch {
    return true;
  }
}

async function isolate() {
  const tried = 'clip-surgery-isolation-tried';
  if (self.crossOriginIsolated || window.top !== window || !window.isSecureContext) return false;
  if (!('serviceWorker' in navigator) || sessionStorage.getItem(tried)) return false;
  if (!(await usesCpu())) return false;
  sessionStorage.setItem(tried, '1');
  try {
    await navigator.serviceWorker.register(new URL('../sw.js', import.meta.url));
    await navigator.serviceWorker.ready;
  } catch (e) {
    console.warn(`clip-surgery: no service worker, the CPU will run on one thread (${e})`);
    return false;
  }
  location.reload();
  return true;
}

if (!(await isolate())) {
  await init({ module_or_path: new URL('../clip-surgery-web_bg.wasm', import.meta.url) });
}
