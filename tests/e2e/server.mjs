// A static server for the browser tests: the built app (dist/), the tiny fixture model, test
// images, and broken variants of both. It logs every request it receives, so tests can show
// what left the page.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.json': 'application/json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.txt': 'text/plain',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
};

// CRC-32 (PNG chunks), table-driven.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** A valid PNG header announcing `side`×`side` RGB pixels, with no pixel data behind it. */
export function hugePng(side) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * Broken copies of a one-shard weight pack, one per way a download goes wrong: each is a
 * `{ 'manifest.json', 'shard-000.bin' }` pair.
 */
function brokenPacks(dir) {
  const json = fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8');
  const shard = fs.readFileSync(path.join(dir, 'shard-000.bin'));
  const manifest = JSON.parse(json);
  const flipped = Buffer.from(shard);
  flipped[flipped.length - 100] ^= 1;
  const foreign = Buffer.from(shard);
  foreign[8] ^= 0xff; // the model id in the header: a shard of another conversion
  const missing = structuredClone(manifest);
  delete missing.tensors['vision_model.encoder.layers.0.mlp.fc1.weight'];
  return {
    truncated: [json, shard.subarray(0, shard.length >> 1)],
    checksum: [json, flipped],
    foreign: [json, foreign],
    missing: [JSON.stringify(missing), shard],
    scheme: [JSON.stringify({ ...manifest, scheme: 'int3' }), shard],
  };
}

/**
 * `isolated`: send COOP/COEP, as `cargo xtask serve` does (the page is cross-origin isolated
 * and the CPU worker runs threads); without, the page is what a plain static host gives.
 * `pages`: more files by path (e.g. a page that embeds the app). `deploy(dir)` serves
 * another dist/ from then on (a new deploy of the app at the same address).
 */
export async function startServer({ dist, fixtures, packs, isolated = true, pages = {} }) {
  const tiny = path.join(fixtures, 'tiny-clip');
  const weights = fs.readFileSync(path.join(tiny, 'model.safetensors'));
  const virtual = {
    '/models/truncated/config.json': fs.readFileSync(path.join(tiny, 'config.json')),
    // Cut in the middle of the tensor data: the header parses, the data is short.
    '/models/truncated/model.safetensors': weights.subarray(0, Math.floor(weights.length * 0.6)),
    '/img/huge.png': hugePng(10000),
    '/img/notes.txt': Buffer.from('these are notes, not an image\n'),
    ...Object.fromEntries(Object.entries(pages).map(([k, v]) => [k, Buffer.from(v)])),
  };
  for (const [name, [json, shard]] of Object.entries(brokenPacks(path.join(packs, 'int8')))) {
    virtual[`/packs/broken-${name}/manifest.json`] = Buffer.from(json);
    virtual[`/packs/broken-${name}/shard-000.bin`] = shard;
  }
  const mounts = [
    ['/models/tiny/', tiny],
    ['/packs/', packs],
    ['/img/', path.join(fixtures, 'images')],
    ['/', dist],
  ];
  const deploy = (dir) => {
    mounts[mounts.length - 1][1] = dir;
  };
  const log = [];
  const server = http.createServer((req, res) => {
    let body = 0;
    req.on('data', (d) => (body += d.length));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      log.push({ method: req.method, path: url.pathname, search: url.search, body });
      let file = virtual[url.pathname];
      let name = url.pathname;
      if (!file) {
        for (const [prefix, dir] of mounts) {
          if (!url.pathname.startsWith(prefix)) continue;
          let rel = decodeURIComponent(url.pathname.slice(prefix.length));
          if (rel === '' || rel.endsWith('/')) rel += 'index.html';
          const full = path.join(dir, rel);
          if (full.startsWith(dir) && fs.existsSync(full) && fs.statSync(full).isFile()) {
            file = fs.readFileSync(full);
            name = full;
          }
          break;
        }
      }
      if (!file || req.method !== 'GET') {
        res.writeHead(file ? 405 : 404, { 'content-type': 'text/plain' });
        res.end(file ? 'method not allowed' : 'not found');
        return;
      }
      res.writeHead(200, {
        'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream',
        'content-length': file.length,
        // Only Cache Storage may make a second visit skip the download, not the HTTP cache.
        'cache-control': 'no-store',
        ...(isolated
          ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
          : {}),
      });
      res.end(file);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    log,
    deploy,
    // Not waiting for requests a closed browser left half-open (Node waits 300 s for those).
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}
