// Starts the model worker (a module worker; paths are relative to this file). There are two
// builds of crates/clip-worker:
//
//   ../worker.js      WebGPU, with a single-threaded CPU fallback (trunk's build);
//   ../mt/worker.js   the CPU on several threads (burn's rayon pool on Web Workers), built by
//                     `cargo xtask` with wasm atomics. It has no WebGPU: wgpu cannot run with
//                     shared memory.
//   ../mt-relaxed/    the same with relaxed SIMD (a fused multiply-add in the f32 products),
//                     for the browsers that have it.
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

// A module whose one function is `f32x4.relaxed_madd` of three constants: valid only where the
// engine has relaxed SIMD (Chromium since 114; other engines as they ship it).
const RELAXED_PROBE = (() => {
  const zeros = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x0a, 0x3d, 0x01, 0x3b, 0x00, ...zeros, ...zeros, ...zeros, 0xfd, 0x85, 0x02, 0x0b, // code
  ]);
})();

/** The threaded build for this browser: with relaxed SIMD where it validates. */
function threadedBuild() {
  const forced = params.get('simd'); // `simd=baseline` (tests, comparisons) or `relaxed`
  if (forced === 'baseline' || forced === 'relaxed') return forced === 'relaxed' ? 'mt-relaxed' : 'mt';
  return WebAssembly.validate(RELAXED_PROBE) ? 'mt-relaxed' : 'mt';
}

async function startThreaded(count, why) {
  const build = threadedBuild();
  const mt = await import(`../${build}/worker.js`);
  await mt.default({ module_or_path: new URL(`../${build}/worker_bg.wasm`, import.meta.url) });
  await mt.initThreadPool(count);
  self.clipSurgeryThreads = { count, why, build };
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
