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
// the reason is passed on, and the page says why the CPU runs on one thread. `threads=N`
// (the page's parameter) caps the pool; the threaded build runs even for one.
const params = new URL(self.location.href).searchParams;
const device = params.get('device') ?? 'auto';
const asked = Number.parseInt(params.get('threads') ?? '', 10);

async function hasAdapter() {
  if (device === 'cpu' || !self.navigator.gpu) return false;
  try {
    return (await self.navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** Whether this worker can share memory with threads (cross-origin isolation), or why not. */
function whyNotShared() {
  if (!self.crossOriginIsolated) {
    return 'the page is not cross-origin isolated (embedded in a page that is not, or served without COOP/COEP and without the app\'s service worker)';
  }
  if (typeof SharedArrayBuffer !== 'function') return 'this browser has no SharedArrayBuffer';
  return null;
}

/** One thread per core the browser reports, at most 16 (and at most `threads=N`). */
function poolSize() {
  const cores = Math.max(1, Math.min(self.navigator.hardwareConcurrency || 1, 16));
  return asked >= 1 ? Math.min(cores, asked) : cores;
}

async function startThreaded(count, why) {
  const mt = await import('../mt/worker.js');
  await mt.default({ module_or_path: new URL('../mt/worker_bg.wasm', import.meta.url) });
  await mt.initThreadPool(count);
  self.clipSurgeryThreads = { count, why };
  mt.start();
}

async function start() {
  const count = poolSize();
  let why = whyNotShared();
  if (why === null && device !== 'webgpu' && !(await hasAdapter())) {
    // The threaded build, even for a pool of one (threads=1): the same code either way.
    const one = asked === 1 ? 'threads=1 was asked for' : 'the browser reports one CPU core';
    try {
      return await startThreaded(count, count > 1 ? undefined : one);
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
