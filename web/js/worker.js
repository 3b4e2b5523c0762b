// The classifier's Web Worker: it runs residual's Go core (compiled to
// WebAssembly) off the page's main thread. It picks the SIMD or scalar build,
// streams a model's shards into Go memory (from the Cache API when they are
// there, else from the network, in parallel), hashes each shard where it
// lies with WebCrypto for Go to check, and answers classify requests. The
// page may run several of these workers (client.js), each with its own Go
// instance and its own copy of the model, read from the same cache.
// Logic about models and images lives in Go (package core); this file moves
// bytes and messages.
//
// Protocol (see client.js): the page posts {id, op, args}; the worker answers
// {id, result} or {id, error: {name, message}}, and may post {id, progress}
// before that.
'use strict';

importScripts('../wasm_exec.js');

// Shards are cached under a key made from their sha256 (content-addressed): a
// changed model gets new keys, and a shard shared by two models is stored once.
const SHARD_CACHE = 'residual-shards-v1';
const PARALLEL = 4; // shard downloads at a time

// The smallest valid module that uses a SIMD instruction: one function
// returning v128.const 0. Engines without WebAssembly SIMD reject it.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, // code: no locals, v128.const
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0x0b, // end
]);

let api = null; // the Go API (see wasm/browser/main.go)
// A result's buffers to transfer rather than copy (a symbol: not posted).
const TRANSFER = Symbol('transfer');
let memory = null; // the Go instance's WebAssembly.Memory
let model = null; // the loaded Go model, or null
let boot = null; // what start() found
let loaded = null; // the last load's arguments (a lost GPU reloads on the CPU)

function cacheKey(sha256) {
  return new URL(`residual-shard/sha256/${sha256}`, self.location.href).href;
}

async function openCache() {
  try {
    return await caches.open(SHARD_CACHE);
  } catch {
    return null; // no Cache API here (an insecure origin, say): network only
  }
}

async function fetchOK(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status} ${resp.statusText}`);
  return resp;
}

// compile fetches and compiles a .wasm build into a WebAssembly.Module.
async function compile(url) {
  const resp = await fetchOK(url);
  try {
    return await WebAssembly.compileStreaming(resp);
  } catch (err) {
    // Hosts that serve .wasm without application/wasm: compile from bytes.
    if (!(err instanceof TypeError)) throw err;
    return WebAssembly.compile(await (await fetchOK(url)).arrayBuffer());
  }
}

// start loads the Go program. prefer is 'auto', 'simd' or 'scalar'. module,
// when given, is the build another worker compiled (see client.js): its
// code, already optimized by V8's tier-up, is shared, not compiled again.
// The result's module is the WebAssembly.Module, for other workers.
async function start({ prefer = 'auto', module = null } = {}) {
  if (boot) return boot;
  const simd = WebAssembly.validate(SIMD_PROBE);
  if (prefer === 'simd' && !simd) {
    throw new Error('this browser has no WebAssembly SIMD: load the page without ?kernels=simd');
  }
  const build = prefer === 'scalar' || !simd ? 'scalar' : 'simd';
  const go = new Go();
  const ready = new Promise((resolve) => { self.residualReady = resolve; });
  const t0 = performance.now();
  module ||= await compile(new URL(`../residual-${build}.wasm`, self.location.href));
  const instance = await WebAssembly.instantiate(module, go.importObject);
  const exited = go.run(instance).then(() => {
    throw new Error('the Go program exited; reload the page');
  });
  api = await Promise.race([ready, exited]);
  memory = instance.exports.mem;
  delete self.residualReady;
  boot = {
    build, simd, prefer, kernels: api.kernels, goVersion: api.goVersion,
    startMs: performance.now() - t0, module,
  };
  return boot;
}

// runLimited calls fn on every item, at most n at a time.
async function runLimited(items, n, fn) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, lane));
}

// load fetches the model at base (an absolute URL ending in '/') into Go.
// A model whose cached shards fail Go's checks is fetched again from the
// network once, after its cache entries are deleted.
async function load({ base, float32Weights = false, backend = 'auto' }, progress) {
  if (!api) throw new Error('start the worker before loading a model');
  if (model) {
    await model.close();
    model = null;
  }
  const t0 = performance.now();
  const manifest = new Uint8Array(await (await fetchOK(new URL('manifest.json', base))).arrayBuffer());
  const opts = { float32Weights, backend };
  let attempt = await loadShards(base, manifest, true, opts, progress);
  if (attempt.error && attempt.error.name === 'ShardError' && attempt.fromCache > 0) {
    await deleteKeys(attempt.keys);
    attempt = await loadShards(base, manifest, false, opts, progress);
  }
  if (attempt.error) {
    if (attempt.error.name === 'ShardError') await deleteKeys(attempt.keys);
    throw attempt.error;
  }
  model = attempt.model;
  loaded = { base, float32Weights, backend };
  return {
    info: model.info,
    backend: model.backend, // {backend: 'webgpu'|'cpu', adapter, reason}
    heapBytes: model.heapBytes,
    ms: performance.now() - t0,
    bytes: attempt.bytes,
    fromCache: attempt.fromCache,
    fromNetwork: attempt.fromNetwork,
    cached: attempt.cached,
    openMs: attempt.openMs, // Go: the shards' checks (and sha256 where WebCrypto did not), then the network's plan
    hashedBy: attempt.hashed === attempt.keys.length ? 'webcrypto' : attempt.hashed ? 'webcrypto+go' : 'go',
  };
}

// digest hashes a complete shard where it lies in Go's memory with WebCrypto
// (native SHA-256, many times faster than Go's compiled to WebAssembly) and
// hands the digest to Go, which compares it with the manifest before any
// byte is used (see web/README.md, "Who checks the shards?"). Without
// WebCrypto (crypto.subtle exists only in secure contexts) Go hashes the
// shard itself when the model is opened.
async function digest(loader, file) {
  if (!self.crypto?.subtle) return false;
  const { offset, length } = await loader.bytesAt(file);
  // digest() copies the view before it returns, so neither a later write
  // nor a growth of Go's memory (which replaces memory.buffer) can change
  // what is hashed.
  const sum = await crypto.subtle.digest('SHA-256', new Uint8Array(memory.buffer, offset, length));
  await loader.setSHA256(file, new Uint8Array(sum));
  return true;
}

async function deleteKeys(keys) {
  const cache = await openCache();
  if (cache) await Promise.all(keys.map((k) => cache.delete(k)));
}

async function loadShards(base, manifest, useCache, { float32Weights, backend }, progress) {
  const loader = await api.newLoader(manifest);
  const shards = loader.shards;
  const total = shards.reduce((n, s) => n + s.size, 0);
  const keys = shards.map((s) => cacheKey(s.sha256));
  const res = { bytes: total, fromCache: 0, fromNetwork: 0, cached: false, keys, hashed: 0 };
  const cache = await openCache();
  const done = new Map(); // file -> bytes written
  let lastPost = 0;
  const report = (force) => {
    const now = performance.now();
    if (!force && now - lastPost < 50) return;
    lastPost = now;
    let loaded = 0;
    for (const n of done.values()) loaded += n;
    progress({ phase: 'download', loaded, total });
  };
  // pump copies a body into Go chunk by chunk; each chunk is dropped once
  // copied, so no JavaScript copy of a shard outlives its transfer.
  const pump = async (body, file) => {
    const reader = body.getReader();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      await loader.write(file, value);
      done.set(file, (done.get(file) || 0) + value.byteLength);
      report(false);
    }
  };
  const puts = [];
  try {
    report(true);
    await runLimited(shards, PARALLEL, async (s) => {
      const key = cacheKey(s.sha256);
      const hit = useCache && cache ? await cache.match(key) : undefined;
      if (hit) {
        let read = false;
        try {
          await pump(hit.body, s.file);
          read = true;
        } catch (err) {
          // An unreadable cached entry, or one of the wrong size (Go
          // refused a chunk): forget it and use the network.
          console.warn(`residual: cached ${s.file} is unusable (${err.message}); fetching it again`);
          await cache.delete(key);
          await loader.rewind(s.file);
          done.set(s.file, 0);
        }
        if (read) {
          res.fromCache++;
          if (await digest(loader, s.file)) res.hashed++;
          return;
        }
      }
      const resp = await fetchOK(new URL(s.file, base));
      let body = resp.body;
      if (cache) {
        const [forGo, forCache] = body.tee();
        body = forGo;
        const headers = { 'content-type': 'application/octet-stream', 'content-length': String(s.size) };
        puts.push(cache.put(key, new Response(forCache, { headers })).then(() => true, (err) => {
          console.warn(`residual: could not cache ${s.file}: ${err.message}`);
          return false;
        }));
      }
      await pump(body, s.file);
      res.fromNetwork++;
      if (await digest(loader, s.file)) res.hashed++;
    });
    report(true);
    // Wait for the cache copies before Go starts: tee() holds chunks until
    // both branches have read them.
    const stored = await Promise.all(puts);
    res.cached = stored.every(Boolean) && (cache !== null);
    progress({ phase: 'verify', loaded: 0, total });
    const t0 = performance.now();
    res.model = await loader.open({
      float32Weights,
      backend,
      onProgress: (loaded, all) => progress({ phase: 'verify', loaded, total: all }),
    });
    res.openMs = performance.now() - t0;
  } catch (err) {
    await Promise.allSettled(puts);
    if (loader.discard) await loader.discard();
    res.error = err;
  }
  return res;
}

// classify classifies one image; with cam (for models whose info.cam is
// true) it also returns the class activation map of the top-1 class, drawn
// over the image by Go (the RGBA bytes are transferred to the page).
async function classify({ bytes, top = 5, crops = 1, cam = false }) {
  if (!model) throw new Error('no model is loaded yet');
  const t0 = performance.now();
  const opts = { top, crops, cam: cam && model.info.cam };
  let r;
  let fellBack = null;
  try {
    r = await model.classify(new Uint8Array(bytes), opts);
  } catch (err) {
    if (err.name !== 'DeviceLostError') throw err;
    // The GPU is gone: load the model again on the CPU (the shards come
    // from the Cache API) and classify there.
    await load({ ...loaded, backend: 'cpu' }, () => {});
    fellBack = { ...model.backend, reason: err.message };
    r = await model.classify(new Uint8Array(bytes), opts);
  }
  const result = {
    top: r.top, ms: r.ms, wallMs: performance.now() - t0, kernels: boot.kernels, crops, backend: r.backend, fellBack,
  };
  if (r.cam) {
    result.cam = { index: r.cam.index, grid: r.cam.grid, width: r.cam.width, height: r.cam.height, rgba: r.cam.rgba };
    result[TRANSFER] = [r.cam.rgba.buffer];
  }
  return result;
}

async function clearCache() {
  if (typeof caches === 'undefined') return { deleted: false }; // insecure origin: nothing was cached
  return { deleted: await caches.delete(SHARD_CACHE) };
}

const ops = { start, load, classify, clearCache };

// One request at a time, in arrival order: Go runs one call to completion
// anyway, and this keeps a model switch from racing a classification.
let chain = Promise.resolve();

self.onmessage = (event) => {
  const { id, op, args } = event.data;
  chain = chain.then(async () => {
    try {
      const fn = ops[op];
      if (!fn) throw new Error(`unknown operation ${op}`);
      const result = await fn(args || {}, (p) => self.postMessage({ id, progress: p }));
      const transfer = result?.[TRANSFER] ?? [];
      self.postMessage({ id, result }, transfer);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      self.postMessage({ id, error: { name: e.name, message: e.message } });
    }
  });
};
