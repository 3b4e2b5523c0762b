// End-to-end tests of the worker on the local Cloudflare runtime (wrangler
// dev + workerd). Run by `make worker-test`, which builds the worker and
// tools/classify and sets:
//   RESIDUAL_ASSETS    the assets directory (dist/web, with models/<model>/)
//   RESIDUAL_MODEL     the model directory name under models/
//   RESIDUAL_CLASSIFY  the tools/classify binary (the reference)
//   RESIDUAL_PHOTOS    testdata/photos (real photographs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import {
  workerDir, freePort, portOpen, startWrangler, groupAlive, classifyReference, png,
} from "./wrangler.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with make worker-test`);
  return path.resolve(workerDir, v);
};
const assetsSource = env("RESIDUAL_ASSETS");
const model = process.env.RESIDUAL_MODEL || "resnet50-synthetic";
// wrangler dev restarts the worker whenever its assets change; the tests run
// on a snapshot (hard links, or a copy across file systems) so that a
// rebuild of dist/web meanwhile cannot disturb them.
const assets = mkdtempSync(path.join(os.tmpdir(), "residual-worker-assets-"));
const modelDir = path.join(assets, "models", model);
const classify = env("RESIDUAL_CLASSIFY");
const photosDir = env("RESIDUAL_PHOTOS");
const photos = readdirSync(photosDir)
  .filter((f) => /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i.test(f))
  .map((f) => path.join(photosDir, f));

const MB128 = 128_000_000; // a Worker isolate's memory, as the tests count it
const figures = {};
let w; // the running wrangler dev
let reference; // file -> tools/classify result

async function post(route, body, headers = {}) {
  const t0 = performance.now();
  const res = await fetch(w.base + route, { method: "POST", body, headers });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`POST ${route}: ${res.status} answer is not JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, json, ms: performance.now() - t0 };
}

async function health() {
  const res = await fetch(w.base + "/healthz");
  return { status: res.status, json: await res.json() };
}

// checkTop compares a /classify answer with tools/classify's for the same file.
function checkTop(file, got, top = 5) {
  const want = reference.get(`${top}:${file}`);
  assert.ok(want, `no reference for ${file}`);
  assert.equal(got.model, model);
  assert.equal(got.top.length, want.top.length, `${file}: number of predictions`);
  assert.deepEqual(got.top.map((p) => p.index), want.top.map((p) => p.index), `${file}: top-${top} indices`);
  got.top.forEach((p, i) => {
    assert.ok(Math.abs(p.prob - want.top[i].prob) <= 1e-4, `${file} #${i}: prob ${p.prob} vs ${want.top[i].prob}`);
    assert.equal(p.label, want.top[i].label);
  });
}

before(async () => {
  try {
    execFileSync("cp", ["-al", `${assetsSource}/.`, assets]);
  } catch {
    execFileSync("cp", ["-a", `${assetsSource}/.`, assets]);
  }
  assert.ok(existsSync(path.join(modelDir, "manifest.json")), `${modelDir}/manifest.json is missing: run make web (with the model under weights/)`);
  assert.ok(photos.length >= 3, `too few photos in ${photosDir}`);
  reference = new Map();
  for (const top of [5, 3]) {
    for (const r of classifyReference(classify, modelDir, photos, top)) {
      assert.ok(!r.error, `tools/classify failed on ${r.file}: ${r.error}`);
      reference.set(`${top}:${r.file}`, r);
    }
  }
  const port = await freePort();
  w = await startWrangler({ assets, model, port });
  figures.wrangler_ready_ms = w.readyMs;
});

after(async () => {
  rmSync(assets, { recursive: true, force: true });
  if (!w) return;
  await w.stop();
  assert.equal(groupAlive(w.child.pid), false, "wrangler's process group is still running");
  assert.equal(await portOpen(w.port), false, `port ${w.port} still accepts connections`);
  console.log("# worker figures", JSON.stringify(figures));
});

test("cold start: the first request of the isolate is a classification", async () => {
  // Instantiates Go, fetches and verifies the weights, then classifies.
  const r = await post("/classify", readFileSync(photos[0]));
  figures.cold_first_answer_ms = Math.round(r.ms);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  checkTop(photos[0], r.json);
});

test("healthz reports the model, loaded once", async () => {
  const h = await health();
  assert.equal(h.status, 200, JSON.stringify(h.json));
  assert.equal(h.json.status, "ok");
  assert.equal(h.json.model, model);
  assert.equal(h.json.loads, 1);
  assert.equal(h.json.info.weight_mode, "f16", "weights must stay float16 in the worker");
  assert.equal(h.json.info.classes, 1000);
  figures.load_ms = h.json.load_ms;
  figures.fetch_ms = h.json.fetch_ms;
  figures.after_load = h.json.memory.after_load;
  assert.ok(h.json.memory.after_load.wasm_bytes > h.json.info.weight_bytes, "wasm memory smaller than the weights: not measured?");
});

test("real photos: top-5 identical to tools/classify, probabilities within 1e-4", async () => {
  for (const [i, file] of photos.entries()) {
    const r = await post("/classify", readFileSync(file), { "Content-Type": "application/octet-stream" });
    assert.equal(r.status, 200, `${file}: ${JSON.stringify(r.json)}`);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    checkTop(file, r.json);
    if (i === 0) figures.first_request_ms = Math.round(r.ms);
  }
  const r = await post("/classify?top=3", readFileSync(photos[0]));
  assert.equal(r.status, 200);
  checkTop(photos[0], r.json, 3);
});

test("steady per-request latency", async () => {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const r = await post("/classify", readFileSync(photos[i % photos.length]));
    assert.equal(r.status, 200);
    times.push(r.ms);
  }
  times.sort((a, b) => a - b);
  figures.steady_request_ms = Math.round(times[2]);
});

test("bad requests get the right status and a JSON error; the worker keeps serving", async () => {
  const jpeg = readFileSync(photos.find((f) => /\.jpe?g$/i.test(f)));
  const h0 = await health();
  const limit = h0.json.max_body;
  const cases = [
    { name: "empty body", body: new Uint8Array(0), status: 400, has: "empty" },
    { name: "junk bytes", body: new TextEncoder().encode("definitely not an image ".repeat(20)), status: 400 },
    { name: "truncated JPEG", body: jpeg.subarray(0, jpeg.length >> 1), status: 400 },
    { name: "body over the limit", body: new Uint8Array(limit + 1), status: 413, has: String(limit) },
    { name: "top out of range", route: "/classify?top=0", body: jpeg, status: 400, has: "1 to 1000" },
    { name: "bad crops", route: "/classify?crops=2", body: jpeg, status: 400, has: "10" },
  ];
  for (const c of cases) {
    const r = await post(c.route || "/classify", c.body);
    assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error, "string", c.name);
    if (c.has) assert.ok(r.json.error.includes(c.has), `${c.name}: ${r.json.error}`);
    if (c.status === 413) assert.equal(r.json.limit, limit);
  }
  const get = await fetch(w.base + "/classify");
  assert.equal(get.status, 405);
  assert.match(get.headers.get("allow"), /POST/);
  assert.equal(typeof (await get.json()).error, "string");

  const pre = await fetch(w.base + "/classify", {
    method: "OPTIONS",
    headers: { Origin: "https://example.com", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.match(pre.headers.get("access-control-allow-methods"), /POST/);

  const good = await post("/classify", readFileSync(photos[0]));
  assert.equal(good.status, 200);
  checkTop(photos[0], good.json);
  assert.equal((await health()).json.loads, 1, "an error reloaded the weights");
});

test("20 concurrent requests all answer correctly; the weights were loaded once", async () => {
  const files = Array.from({ length: 20 }, (_, i) => photos[i % photos.length]);
  const results = await Promise.all(files.map((f) => post("/classify", readFileSync(f))));
  results.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    checkTop(files[i], r.json);
  });
  const h = await health();
  assert.equal(h.json.loads, 1);
  assert.equal(h.json.load_attempts, 1);
});

test("memory stays under 128 MB, also for a 1536x1024 image and 10 crops", async () => {
  // A 1536x1024 PNG (decoded: 4 bytes a pixel) fits beside ResNet-50; the worker
  // checks each image's memory from its header and refuses the ones that do
  // not fit (a 2046x1023 PNG needs about 43 MB in core's preprocessing).
  const hd = png(1536, 1024, (x, y) => [x & 255, y & 255, (x ^ y) & 255, 255]);
  let r = await post("/classify?crops=10", hd);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  r = await post("/classify?crops=10", readFileSync(photos[0]));
  assert.equal(r.status, 200);
  r = await post("/classify", png(2046, 1023, (x, y) => [x & 255, y & 255, 0, 255]));
  assert.equal(r.status, 413, JSON.stringify(r.json));
  assert.match(r.json.error, /2046x1023.*downscale/);
  r = await post("/classify", readFileSync(photos[0]));
  assert.equal(r.status, 200);
  checkTop(photos[0], r.json);

  const h = await health();
  const m = h.json.memory;
  figures.peak = m.peak;
  for (const [what, v] of [
    ["wasm memory after load", m.after_load.wasm_bytes],
    ["wasm memory at peak", m.peak.wasm_bytes],
    ["Go heap at peak", m.peak.go_heap_sys],
    ["Go runtime total at peak", m.peak.go_sys],
  ]) {
    assert.ok(v > 0 && v < MB128, `${what}: ${v} bytes, want under 128 MB`);
  }
  assert.ok(m.peak.wasm_bytes >= m.after_load.wasm_bytes);
  assert.equal(h.json.loads, 1);
});

test("the demo page is served from the same worker", async () => {
  const page = await fetch(w.base + "/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /text\/html/);
  const manifest = await fetch(`${w.base}/models/${model}/manifest.json`);
  assert.equal(manifest.status, 200);
  assert.equal((await manifest.json()).format, "residual-weights");
});
