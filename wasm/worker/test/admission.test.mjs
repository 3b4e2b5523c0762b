// Admission of /classify requests on the local Cloudflare runtime (wrangler
// dev + workerd, ResNet-50 in its stages): whether a request is admitted
// depends on the front's slice and on that request alone, never on the
// requests before it. (It once did: the
// preprocessing buffers kept from one request were counted again on top of
// the next one's need, so the second POST of the same 1000x872 JPEG got 413,
// and a truncated JPEG got 413 instead of 400.) Run by `make worker-test`,
// which also sets:
//   RESIDUAL_IMAGES   generated photographs (go run ./wasm/worker/testdata/e2eimages)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { workerDir, freePort, startWrangler, groupAlive, classifyReference, png, generate, snapshot } from "./wrangler.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with make worker-test`);
  return path.resolve(workerDir, v);
};
const model = process.env.RESIDUAL_MODEL || "resnet50-synthetic";
const assets = mkdtempSync(path.join(os.tmpdir(), "residual-worker-admission-"));
const confDir = mkdtempSync(path.join(os.tmpdir(), "residual-worker-admission-conf-"));
const modelDir = path.join(assets, "models", model);
const images = env("RESIDUAL_IMAGES");
const photo = (name) => path.join(images, `photo-${name}.jpeg`);
const MB128 = 128_000_000;

let w;
let reference; // file -> tools/classify's top 5
const figures = {};

async function post(body, query = "") {
  const res = await fetch(w.base + "/classify" + query, { method: "POST", body });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${res.status} answer is not JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, json };
}

// good POSTs a photo and expects tools/classify's answer for it.
async function good(name, what) {
  const file = photo(name);
  const r = await post(readFileSync(file));
  assert.equal(r.status, 200, `${what}: ${name}: ${JSON.stringify(r.json)}`);
  const want = reference.get(file);
  assert.deepEqual(r.json.top.map((p) => p.index), want.top.map((p) => p.index), `${what}: ${name}: top-5`);
  r.json.top.forEach((p, i) => assert.ok(Math.abs(p.prob - want.top[i].prob) <= 1e-4, `${what}: prob ${p.prob} vs ${want.top[i].prob}`));
}

const photos = ["1200x1000", "1000x872-exif6", "1000x872", "640x480", "1920x1080"];
// Does not fit beside ResNet-50: at 2:1 with its shorter side under 1024
// pixels there is no box reduction, and the resize works on the full image.
const tooBig = png(2046, 1023, (x, y) => [x & 255, y & 255, 0, 255]);

before(async () => {
  snapshot(env("RESIDUAL_ASSETS"), assets);
  assert.ok(existsSync(path.join(modelDir, "manifest.json")), `${modelDir}/manifest.json is missing`);
  for (const p of photos) assert.ok(existsSync(photo(p)), `${photo(p)} is missing`);
  reference = new Map();
  for (const r of classifyReference(env("RESIDUAL_CLASSIFY"), modelDir, photos.map(photo), 5)) {
    assert.ok(!r.error, `tools/classify failed on ${r.file}: ${r.error}`);
    reference.set(r.file, r);
  }
  const plan = generate(env("RESIDUAL_WORKER_TOOL"), { model: modelDir, name: model, site: assets, out: confDir, entry: env("RESIDUAL_ENTRY") });
  w = await startWrangler({ configs: plan.configs, port: await freePort() });
});

after(async () => {
  rmSync(assets, { recursive: true, force: true });
  rmSync(confDir, { recursive: true, force: true });
  if (!w) return;
  await w.stop();
  assert.equal(groupAlive(w.child.pid), false, "wrangler's process group is still running");
  console.log("# admission figures", JSON.stringify(figures));
});

test("the same 1200x1000 JPEG twenty times: every answer is 200", async () => {
  // It needs about 22 MB beside ResNet-50's front stage, which leaves about
  // 30 MB to a request: near the limit, where counting anything twice
  // refuses it.
  const statuses = [];
  for (let i = 0; i < 20; i++) {
    const r = await post(readFileSync(photo("1200x1000")));
    statuses.push(r.status);
    if (r.status !== 200 && !figures.repeat_refusal) figures.repeat_refusal = r.json.error;
  }
  figures.repeat_statuses = statuses.join(" ");
  assert.deepEqual(statuses, Array(20).fill(200), `statuses ${statuses.join(" ")}: ${figures.repeat_refusal}`);
  await good("1200x1000", "after the repeats");
});

test("alternating sizes: every image gets the same answer whatever came before it", async () => {
  const first = await post(tooBig);
  assert.equal(first.status, 413, JSON.stringify(first.json));
  assert.match(first.json.error, /2046x1023 PNG.*downscale/);
  figures.too_big = { need: first.json.need, free: first.json.free };
  const hd = png(1536, 1024, (x, y) => [x & 255, y & 255, (x ^ y) & 255, 255]);
  for (let round = 0; round < 2; round++) {
    for (const p of ["1920x1080", "640x480", "1200x1000", "1000x872-exif6", "1000x872", "1200x1000"]) {
      await good(p, `round ${round}`);
      const r = await post(tooBig);
      assert.equal(r.status, 413, `round ${round}, after ${p}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.need, first.json.need, "the need of the same image changed");
      assert.equal(r.json.free, first.json.free, "the memory free beside the model changed");
    }
    const r = await post(hd);
    assert.equal(r.status, 200, `round ${round}: 1536x1024 PNG: ${JSON.stringify(r.json)}`);
    // Ten crops: the front holds the ten crop tensors from its load.
    const ten = await post(readFileSync(photo("1000x872")), "?crops=10");
    assert.equal(ten.status, 200, `round ${round}: 10 crops: ${JSON.stringify(ten.json)}`);
  }
});

test("bad inputs between good ones: each gets its own 4xx, every good one 200", async () => {
  const jpeg = readFileSync(photo("1200x1000"));
  const pngFile = png(400, 300, (x, y) => [x & 255, y & 255, 0, 255]);
  const cases = [
    { name: "truncated JPEG (half)", body: jpeg.subarray(0, jpeg.length >> 1), status: 400, has: /truncated/ },
    { name: "truncated JPEG (headers only)", body: jpeg.subarray(0, 700), status: 400, has: /truncated/ },
    { name: "JPEG without its end marker", body: jpeg.subarray(0, jpeg.length - 2), status: 400, has: /truncated/ },
    { name: "truncated PNG", body: pngFile.subarray(0, pngFile.length - 30), status: 400, has: /truncated/ },
    { name: "truncated PNG too big for memory", body: tooBig.subarray(0, tooBig.length >> 1), status: 400, has: /truncated/ },
    { name: "junk", body: new TextEncoder().encode("not an image ".repeat(40)), status: 400, has: /not a recognised image format/ },
    { name: "empty", body: new Uint8Array(0), status: 400, has: /empty/ },
    { name: "too big for the memory beside the model", body: tooBig, status: 413, has: /downscale/ },
    { name: "over the pixel limit", body: png(2100, 2100, () => [9, 9, 9, 255]), status: 413, has: /limit of 4194304 pixels/ },
  ];
  for (const c of cases) {
    await good("1000x872-exif6", `before ${c.name}`);
    const r = await post(c.body);
    assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error, c.has, c.name);
  }
  await good("1000x872-exif6", "after the bad inputs");
  await good("1200x1000", "after the bad inputs");
});

test("healthz: every stage's estimate is the README's, and its memory stayed within its budget", async () => {
  const res = await fetch(w.base + "/healthz");
  const h = await res.json();
  assert.equal(res.status, 200);
  figures.stages = h.stages.map((s) => ({ estimate: s.memory.estimate, after_load: s.memory.after_load, peak: s.memory.peak }));
  // The README's table (TestMemoryFigures writes it from the code from the
  // ResNet-50 manifest, synthetic or released: the same sizes).
  const readme = readFileSync(path.join(workerDir, "README.md"), "utf8").split("\n");
  const first = readme.findIndex((l) => l.startsWith("| ResNet-50 ("));
  assert.ok(first >= 0, "no ResNet-50 rows in README.md");
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  for (const s of h.stages) {
    const m = s.memory;
    assert.equal(s.loads, 1, `stage ${s.stage}: the weights were loaded more than once`);
    for (const [what, v] of [["wasm memory at peak", m.peak.wasm_bytes], ["Go runtime total at peak", m.peak.go_sys]]) {
      assert.ok(v > 0 && v < MB128, `stage ${s.stage}: ${what}: ${v} bytes, want under 128 MB`);
    }
    // The promise itself: the Go side stayed within its budget.
    assert.ok(m.peak.wasm_bytes <= m.budget, `stage ${s.stage}: wasm memory peaked at ${m.peak.wasm_bytes} bytes, over the ${m.budget}-byte budget`);
    if (!model.startsWith("resnet50")) continue;
    const row = readme[first + s.stage];
    const cells = row.split("|").map((c) => c.trim());
    const e = m.estimate;
    const resident = e.weights + e.activations + e.scratch + e.inputs + e.outputs + e.reply + e.kept + e.runtime;
    assert.deepEqual([cells[2], cells[4], cells[5], cells[6]], [String(s.stage), mb(e.weights), mb(resident), mb(e.total)],
      `README row ${row} vs /healthz ${JSON.stringify(e)}`);
    if (s.stage === 0) assert.equal(cells[7], mb(e.free), `README: ${cells[7]}, healthz free ${e.free}`);
  }
});
