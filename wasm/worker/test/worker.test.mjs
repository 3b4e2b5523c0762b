// End-to-end tests of the worker on the local Cloudflare runtime (wrangler
// dev + workerd): ResNet-50 split into stage Workers by the configuration
// generator (two at the default budget), with the demo page served by the
// front. Run by `make worker-test`, which builds the worker, tools/classify
// and the generator and sets:
//   RESIDUAL_ASSETS       the assets directory (dist/web, with models/<model>/)
//   RESIDUAL_MODEL        the model directory name under models/
//   RESIDUAL_CLASSIFY     the tools/classify binary (the reference)
//   RESIDUAL_WORKER_TOOL  the native build of ./wasm/worker (its config command)
//   RESIDUAL_ENTRY        dist/worker/worker.mjs, the entry module every stage runs
//   RESIDUAL_PHOTOS       testdata/photos (real photographs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  workerDir, freePort, portOpen, startWrangler, groupAlive, classifyReference, png, generate, snapshot,
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
const confDir = mkdtempSync(path.join(os.tmpdir(), "residual-worker-conf-"));
const modelDir = path.join(assets, "models", model);
const classify = env("RESIDUAL_CLASSIFY");
const tool = env("RESIDUAL_WORKER_TOOL");
const entry = env("RESIDUAL_ENTRY");
const photosDir = env("RESIDUAL_PHOTOS");
const photos = readdirSync(photosDir)
  .filter((f) => /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i.test(f))
  .map((f) => path.join(photosDir, f));

const MB90 = 90_000_000; // ResNet-50's target: every stage's peak under 90 MB
const figures = {};
let w; // the running wrangler dev
let plan; // the generator's plan.json
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
  snapshot(assetsSource, assets);
  assert.ok(existsSync(path.join(modelDir, "manifest.json")), `${modelDir}/manifest.json is missing: run make web (with the model under weights/)`);
  assert.ok(photos.length >= 3, `too few photos in ${photosDir}`);
  reference = new Map();
  for (const r of classifyReference(classify, modelDir, photos, 5)) {
    assert.ok(!r.error, `tools/classify failed on ${r.file}: ${r.error}`);
    reference.set(`5:${r.file}`, r);
    reference.set(`3:${r.file}`, { ...r, top: r.top.slice(0, 3) }); // the same order: top-3 is top-5's head
  }
  plan = generate(tool, { model: modelDir, name: model, site: assets, out: confDir, entry });
  figures.stages = plan.stages.map((s) => ({ ops: `${s.first_op}..${s.last_op}`, weights: s.estimate.weights, estimate: s.estimate.total }));
  const port = await freePort();
  w = await startWrangler({ configs: plan.configs, port });
  figures.wrangler_ready_ms = w.readyMs;
});

after(async () => {
  rmSync(assets, { recursive: true, force: true });
  rmSync(confDir, { recursive: true, force: true });
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

test("healthz reports every stage, each loaded once", async () => {
  const h = await health();
  assert.equal(h.status, 200, JSON.stringify(h.json));
  assert.equal(h.json.status, "ok");
  assert.equal(h.json.model, model);
  assert.equal(h.json.loads, 1);
  assert.equal(h.json.stages.length, plan.stages.length);
  assert.ok(plan.stages.length >= 2, "ResNet-50 at the default budget runs in two stages");
  let end = 0;
  for (const [i, s] of h.json.stages.entries()) {
    assert.equal(s.stage, i);
    assert.equal(s.status, "ok", JSON.stringify(s));
    assert.equal(s.loads, 1);
    assert.equal(s.info.first, end, "the stages' slices follow each other");
    end = s.info.end;
    assert.ok(s.memory.after_load.wasm_bytes > s.info.weight_bytes, "wasm memory smaller than the weights: not measured?");
  }
  assert.equal(end, h.json.stages[0].info.ops);
  assert.equal(h.json.info.classes, 1000);
  figures.load_ms = h.json.stages.map((s) => s.load_ms);
  figures.after_load = h.json.stages.map((s) => s.memory.after_load.wasm_bytes);
});

test("real photos: top-5 identical to tools/classify, probabilities within 1e-4", async () => {
  const times = [];
  for (const [i, file] of photos.entries()) {
    const r = await post("/classify", readFileSync(file), { "Content-Type": "application/octet-stream" });
    assert.equal(r.status, 200, `${file}: ${JSON.stringify(r.json)}`);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    checkTop(file, r.json);
    if (i === 0) figures.first_request_ms = Math.round(r.ms);
    times.push(r.ms);
  }
  times.sort((a, b) => a - b);
  figures.steady_request_ms = Math.round(times[times.length >> 1]);
  const r = await post("/classify?top=3", readFileSync(photos[0]));
  assert.equal(r.status, 200);
  checkTop(photos[0], r.json, 3);
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
    { name: "top out of range", route: "/classify?top=0", body: jpeg, status: 400, has: "option top" },
    { name: "bad crops", route: "/classify?crops=2", body: jpeg, status: 400, has: "10" },
    { name: "bad cam", route: "/classify?cam=maybe", body: jpeg, status: 400, has: "option cam" },
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
  assert.ok((await health()).json.stages.every((s) => s.loads === 1), "an error reloaded the weights");
});

test("concurrent requests all answer correctly; the weights were loaded once", async () => {
  // (20 at once through two and three stages: stages.test.mjs.)
  const files = Array.from({ length: 4 }, (_, i) => photos[i % photos.length]);
  const results = await Promise.all(files.map((f) => post("/classify", readFileSync(f))));
  results.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    checkTop(files[i], r.json);
  });
  const h = await health();
  assert.ok(h.json.stages.every((s) => s.loads === 1 && s.load_attempts === 1), JSON.stringify(h.json.stages));
});

test("10 crops of a 1536x1024 image: tools/classify's answer; every stage's peak stays under 90 MB", async () => {
  // A 1536x1024 PNG (decoded: 4 bytes a pixel) fits beside the front's
  // slice; the front checks each image's memory from its header and refuses
  // the ones that do not fit; one over the pixel limit is refused before that.
  // The ten crops go through the stages as one batch: the answer is
  // tools/classify -crops 10's.
  const hd = png(1536, 1024, (x, y) => [x & 255, y & 255, (x ^ y) & 255, 255]);
  const hdFile = path.join(confDir, "hd.png");
  writeFileSync(hdFile, hd);
  reference.set(`5:${hdFile}`, classifyReference(classify, modelDir, [hdFile], 5, ["-crops", "10"])[0]);
  let r = await post("/classify?crops=10", hd);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  checkTop(hdFile, r.json);
  figures.ten_crop_ms = Math.round(r.ms);
  r = await post("/classify", png(2100, 2100, (x, y) => [x & 255, y & 255, 0, 255]));
  assert.equal(r.status, 413, JSON.stringify(r.json));
  r = await post("/classify", readFileSync(photos[0]));
  assert.equal(r.status, 200);
  checkTop(photos[0], r.json);

  const h = await health();
  figures.peak = h.json.stages.map((s) => s.memory.peak);
  for (const s of h.json.stages) {
    const m = s.memory;
    for (const [what, v] of [
      ["wasm memory after load", m.after_load.wasm_bytes],
      ["wasm memory at peak", m.peak.wasm_bytes],
      ["Go heap at peak", m.peak.go_heap_sys],
      ["Go runtime total at peak", m.peak.go_sys],
    ]) {
      assert.ok(v > 0 && v < MB90, `stage ${s.stage}: ${what}: ${v} bytes, want under 90 MB`);
    }
    assert.ok(m.peak.wasm_bytes <= m.budget, `stage ${s.stage}: wasm memory ${m.peak.wasm_bytes}, over its budget ${m.budget}`);
    assert.ok(m.peak.wasm_bytes >= m.after_load.wasm_bytes);
    assert.equal(s.loads, 1);
  }
});

test("the demo page is served from the same worker", async () => {
  const page = await fetch(w.base + "/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /text\/html/);
  const manifest = await fetch(`${w.base}/models/${model}/manifest.json`);
  assert.equal(manifest.status, 200);
  assert.equal((await manifest.json()).format, "residual-weights");
});
