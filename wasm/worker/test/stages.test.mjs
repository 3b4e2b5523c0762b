// ResNet-101 and ResNet-152 (generated: make synthetic-all) on
// the local Cloudflare runtime, each split by the configuration generator
// into stage Workers joined by Service Bindings and run by one wrangler dev
// with a -c per stage. Real photos through the front give tools/classify's
// answer; every stage stays under 128 MB; the access controls, a stage that
// is down and a stage called directly behave as the README says.
// Environment (make worker-test): as worker.test.mjs, plus
//   RESIDUAL_WEIGHTS  the weights/ directory holding <model>-synthetic/
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  workerDir, freePort, portOpen, startWrangler, groupAlive, classifyWasm, generate, stageMessage,
} from "./wrangler.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with make worker-test`);
  return path.resolve(workerDir, v);
};
const weightsDir = env("RESIDUAL_WEIGHTS");
const classifyJs = env("RESIDUAL_CLASSIFY_WASM");
const wasmExec = env("RESIDUAL_WASM_EXEC");
const tool = env("RESIDUAL_WORKER_TOOL");
const entry = env("RESIDUAL_ENTRY");
const photosDir = env("RESIDUAL_PHOTOS");
const photos = readdirSync(photosDir)
  .filter((f) => /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i.test(f))
  .map((f) => path.join(photosDir, f));
const MB128 = 128_000_000;
const TOKEN = "test-token-7f3a"; // the ResNet-101 front requires it
const ORIGIN = "https://app.example"; // and allows only this origin
const figures = {};

async function call(base, route, { method = "POST", body, headers = {} } = {}) {
  const t0 = performance.now();
  const res = await fetch(base + route, { method, body, headers });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text.slice(0, 300) };
  }
  return { status: res.status, headers: res.headers, json, ms: performance.now() - t0 };
}

// checkTop compares an answer with tools/classify's (its js/wasm build,
// the kernels the Worker runs): the same top-5 classes with the same
// probabilities, to the bit: splitting the network changes no sum.
function checkTop(want, got, what) {
  assert.ok(want && !want.error, `${what}: no reference (${want && want.error})`);
  assert.equal(got.top.length, want.top.length, `${what}: number of predictions`);
  assert.deepEqual(got.top.map((p) => p.index), want.top.map((p) => p.index), `${what}: top-5 indices`);
  got.top.forEach((p, i) => {
    assert.equal(p.prob, want.top[i].prob, `${what} #${i}: prob ${p.prob} vs ${want.top[i].prob}`);
    assert.equal(p.label, want.top[i].label);
  });
}

// The references, computed in the background from the start (node runs
// them beside workerd): every photo with its class activation map.
const refs = {};
for (const name of ["resnet101-synthetic", "resnet152-synthetic"]) {
  const camDir = mkdtempSync(path.join(os.tmpdir(), `residual-cam-${name}-`));
  refs[name] = classifyWasm(classifyJs, wasmExec, path.join(weightsDir, name), photos, ["-cam", camDir]).finally(() =>
    rmSync(camDir, { recursive: true, force: true }));
  refs[name].catch(() => {}); // reported where awaited
}

for (const m of [
  { name: "resnet101-synthetic", stages: 3, access: true, concurrent: true },
  { name: "resnet152-synthetic", stages: 3 },
]) {
  describe(m.name, () => {
    const modelDir = path.join(weightsDir, m.name);
    const confDir = mkdtempSync(path.join(os.tmpdir(), `residual-${m.name}-`));
    const fig = (figures[m.name] = {});
    const headers = m.access ? { Authorization: `Bearer ${TOKEN}` } : {};
    let w, plan, ref;

    before(async () => {
      assert.ok(existsSync(path.join(modelDir, "manifest.json")), `${modelDir} is missing: make synthetic-all`);
      plan = generate(tool, {
        model: modelDir, out: confDir, entry,
        apiToken: m.access ? TOKEN : "", origins: m.access ? ORIGIN : "",
      });
      fig.stages = plan.stages.map((s) => ({
        ops: `${s.first_op}..${s.last_op}`, weights: s.estimate.weights, estimate: s.estimate.total, gmac: s.macs / 1e9,
      }));
      w = await startWrangler({ configs: plan.configs, port: await freePort() });
    });

    after(async () => {
      if (w) {
        await w.stop();
        assert.equal(groupAlive(w.child.pid), false, "wrangler's process group is still running");
        assert.equal(await portOpen(w.port), false);
      }
      rmSync(confDir, { recursive: true, force: true });
    });

    test(`split into ${m.stages} stages; the first request (every stage cold) answers correctly`, async () => {
      assert.equal(plan.stages.length, m.stages, JSON.stringify(fig.stages));
      const r = await call(w.base, "/classify", { body: readFileSync(photos[0]), headers });
      fig.cold_ms = Math.round(r.ms);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.stages, m.stages);
      ref = await refs[m.name];
      checkTop(ref.get(photos[0]), r.json, photos[0]);
    });

    if (m.concurrent) {
      test("real photos, 20 requests at once: each answer is tools/classify's", async () => {
        const files = Array.from({ length: 20 }, (_, i) => photos[i % photos.length]);
        const t0 = performance.now();
        const rs = await Promise.all(files.map((f) => call(w.base, "/classify", { body: readFileSync(f), headers })));
        fig.twenty_concurrent_ms = Math.round(performance.now() - t0);
        rs.forEach((r, i) => {
          assert.equal(r.status, 200, JSON.stringify(r.json));
          checkTop(ref.get(files[i]), r.json, files[i]);
        });
      });
    } else {
      test("real photos: each answer is tools/classify's", async () => {
        const times = [];
        for (const file of photos) {
          const r = await call(w.base, "/classify", { body: readFileSync(file), headers });
          assert.equal(r.status, 200, `${file}: ${JSON.stringify(r.json)}`);
          checkTop(ref.get(file), r.json, file);
          times.push(r.ms);
        }
        times.sort((a, b) => a - b);
        fig.warm_ms = Math.round(times[times.length >> 1]);
      });
    }

    test("class activation map: made in the last stage, tools/classify's grid", async () => {
      const r = await call(w.base, "/classify?cam=1", { body: readFileSync(photos[1]), headers });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const want = ref.get(photos[1]).cam;
      assert.equal(r.json.cam.index, want.index);
      assert.equal(r.json.cam.index, r.json.top[0].index);
      assert.deepEqual(r.json.cam.grid, want.grid);
    });

    if (m.access) {
      test("access: no token and a wrong token get 401, a disallowed origin no CORS grant", async () => {
        const body = readFileSync(photos[0]);
        let r = await call(w.base, "/classify", { body });
        assert.equal(r.status, 401, JSON.stringify(r.json));
        assert.match(r.json.error, /API token/);
        assert.match(r.headers.get("www-authenticate"), /Bearer/);
        r = await call(w.base, "/classify", { body, headers: { Authorization: `Bearer ${TOKEN}x` } });
        assert.equal(r.status, 401);
        r = await call(w.base, "/healthz", { method: "GET" });
        assert.equal(r.status, 401);
        r = await call(w.base, "/classify", { body, headers: { ...headers, Origin: "https://evil.example" } });
        assert.equal(r.status, 403, JSON.stringify(r.json));
        assert.equal(r.headers.get("access-control-allow-origin"), null);
        const pre = await fetch(w.base + "/classify", { method: "OPTIONS", headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" } });
        assert.equal(pre.headers.get("access-control-allow-origin"), null);
        await pre.arrayBuffer();
        r = await call(w.base, "/classify", { body, headers: { ...headers, Origin: ORIGIN } });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
        checkTop(ref.get(photos[0]), r.json, "with the token");
      });
    }

    test("healthz: every stage loaded once, its peak memory under 128 MB", async () => {
      const r = await call(w.base, "/healthz", { method: "GET", headers });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.stages.length, m.stages);
      fig.memory = [];
      for (const s of r.json.stages) {
        assert.equal(s.status, "ok");
        assert.equal(s.loads, 1, `stage ${s.stage} loaded ${s.loads} times`);
        const p = s.memory.peak;
        for (const [what, v] of [["wasm memory", p.wasm_bytes], ["Go heap", p.go_heap_sys], ["Go runtime", p.go_sys]]) {
          assert.ok(v > s.info.weight_bytes && v < MB128, `stage ${s.stage}: ${what} at peak ${v}, want between its weights and 128 MB`);
        }
        assert.ok(s.memory.estimate.total <= s.memory.budget);
        fig.memory.push({ stage: s.stage, weights: s.info.weight_bytes, peak_wasm: p.wasm_bytes, estimate: s.memory.estimate.total, load_ms: s.load_ms });
      }
    });
  });
}

describe("a stage that is down, and the rate limit", () => {
  const modelDir = path.join(weightsDir, "resnet101-synthetic");
  const confDir = mkdtempSync(path.join(os.tmpdir(), "residual-down-"));
  let w;
  before(async () => {
    const plan = generate(tool, { model: modelDir, out: confDir, entry, rateLimit: 2 });
    w = await startWrangler({ configs: [plan.configs[0]], port: await freePort() }); // stage 1 is not running
  });
  after(async () => {
    if (w) await w.stop();
    rmSync(confDir, { recursive: true, force: true });
  });
  test("502 naming the stage, healthz 503, then 429 with Retry-After", async () => {
    let r = await call(w.base, "/classify", { body: readFileSync(photos[0]) });
    assert.equal(r.status, 502, JSON.stringify(r.json));
    assert.ok(r.json.error.startsWith(`stage 1 (residual-t${process.pid}-stage-1) could not be reached`), r.json.error);
    assert.equal(r.json.stage, 1);
    r = await call(w.base, "/healthz", { method: "GET" });
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.equal(r.json.stages[0].status, "ok");
    assert.equal(r.json.stages[1].status, "unreachable");
    // Two requests a minute per client: quick requests now meet the limit
    // (within three, even if a window of the limiter just began).
    let limited;
    for (let i = 0; i < 5 && !limited; i++) {
      r = await call(w.base, "/healthz", { method: "GET" });
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, "no 429 after five quick requests with a limit of two a minute");
    assert.equal(limited.headers.get("retry-after"), "60");
    assert.match(limited.json.error, /too many requests/);
  });
});

describe("a stage called directly", () => {
  const modelDir = path.join(weightsDir, "resnet101-synthetic");
  const confDir = mkdtempSync(path.join(os.tmpdir(), "residual-direct-"));
  let w, plan;
  before(async () => {
    plan = generate(tool, { model: modelDir, out: confDir, entry });
    w = await startWrangler({ configs: [plan.configs.at(-1)], port: await freePort() }); // the last stage alone, on the port
  });
  after(async () => {
    if (w) await w.stop();
    rmSync(confDir, { recursive: true, force: true });
    console.log("# stage figures", JSON.stringify(figures));
  });
  test("refuses requests without the stage key, and tensors of another manifest", async () => {
    const k = plan.stages.length - 1;
    const s = plan.stages[k];
    const msg = (o = {}) => stageMessage({ stage: k, digest: plan.manifest_sha256, model: "resnet101-synthetic", n: 1, shape: s.input.shape, ...o });
    let r = await call(w.base, "/stage", { body: msg() });
    assert.equal(r.status, 403, JSON.stringify(r.json));
    assert.match(r.json.error, new RegExp(`stage ${k} .*Service Binding`));
    r = await call(w.base, "/healthz", { method: "GET" });
    assert.equal(r.status, 403);
    r = await call(w.base, "/classify", { body: readFileSync(photos[0]) });
    assert.equal(r.status, 403);
    const key = { "X-Residual-Stage-Key": plan.vars[k].STAGE_KEY };
    const wrong = plan.manifest_sha256.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    r = await call(w.base, "/stage", { body: msg({ digest: wrong }), headers: key });
    assert.equal(r.status, 409, JSON.stringify(r.json));
    assert.match(r.json.error, /another manifest/);
    r = await call(w.base, "/stage", { body: msg({ model: "resnet152-synthetic" }), headers: key });
    assert.equal(r.status, 409);
    r = await call(w.base, "/stage", { body: msg({ shape: [3, 224, 224] }), headers: key });
    assert.equal(r.status, 400);
    // The right tensor gets the probabilities.
    const res = await fetch(w.base + "/stage", { method: "POST", body: msg(), headers: key });
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, bytes.toString().slice(0, 300));
    assert.equal(bytes.subarray(0, 4).toString("latin1"), "RSTG");
    assert.equal(bytes[5], 2, "kind 2: probabilities");
  });
});
