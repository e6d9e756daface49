// Starts the model worker (a module worker; paths are relative to this file). There are two
// builds of crates/clip-worker:
//
//   ../worker.js      WebGPU, with a single-threaded CPU fallback (trunk's build);
//   ../mt/worker.js   the CPU on several threads (burn's rayon pool on Web Workers), built by
//                     `cargo xtask` with wasm atomics. It has no WebGPU: wgpu cannot run with
//                     shared memory.
//
// The threaded one runs when the CPU will (device=cpu, or no WebGPU adapter) and it can:
// threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages
// (COOP/COEP headers, or the app's service worker where a host cannot send them). Otherwise
// the reason is passed on, and the page says why the CPU runs on one thread.
const device = new URL(self.location.href).searchParams.get('device') ?? 'auto';

async function hasAdapter() {
  if (device === 'cpu' || !self.navigator.gpu) return false;
  try {
    return (await self.navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

function whyOneThread(cores) {
  if (!self.crossOriginIsolated) {
    return 'the page is not cross-origin isolated (embedded in a page that is not, or served without COOP/COEP and without the app\'s service worker)';
  }
  if (typeof SharedArrayBuffer !== 'function') return 'this browser has no SharedArrayBuffer';
  if (cores < 2) return 'the browser reports one CPU core';
  return null;
}

async function startThreaded(cores) {
  const mt = await import('../mt/worker.js');
  await mt.default({ module_or_path: new URL('../mt/worker_bg.wasm', import.meta.url) });
  await mt.initThreadPool(cores);
  self.clipSurgeryThreads = { count: cores };
  mt.start();
}

async function start() {
  const cores = Math.max(1, Math.min(self.navigator.hardwareConcurrency || 1, 16));
  let why = whyOneThread(cores);
  if (why === null && device !== 'webgpu' && !(await hasAdapter())) {
    try {
      return await startThreaded(cores);
    } catch (e) {
      why = `the threaded build did not start (${e})`;
      console.warn(`clip-surgery: ${why}`);
    }
  }
  self.clipSurgeryThreads = { count: 1, why };
  const single = await import('../worker.js');
  await single.default({ module_or_path: new URL('../worker_bg.wasm', import.meta.url) });
}

start();
