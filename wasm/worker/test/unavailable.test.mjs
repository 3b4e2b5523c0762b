// The worker on the local Cloudflare runtime when its model cannot run: a
// slice too big for a 128 MB isolate, and a model missing from the assets.
// Both answer 503 with a JSON error that names the model and the reason,
// and the demo page is still served. The configuration is written here by
// hand (one Worker, the whole model: what a stage configured for too large
// a slice looks like), since the generator would split such a model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, copyFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { workerDir, freePort, portOpen, startWrangler, groupAlive } from "./wrangler.mjs";

const assetsSource = path.resolve(workerDir, process.env.RESIDUAL_ASSETS || "../../dist/web");
const entry = path.resolve(workerDir, process.env.RESIDUAL_ENTRY || "../../dist/worker/worker.mjs");
const weightsDir = path.resolve(workerDir, process.env.RESIDUAL_WEIGHTS || "../../weights");

// A site with the page and ResNet-152's manifest (make synthetic-all) but
// none of its shards: configured as one Worker, the model (120 MB of
// float16 weights) does not fit an isolate, and the worker must refuse it
// from the manifest alone, before fetching any shard.
function site() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "residual-worker-unavailable-"));
  copyFileSync(path.join(assetsSource, "index.html"), path.join(dir, "index.html"));
  mkdirSync(path.join(dir, "models", "resnet152-sized"), { recursive: true });
  copyFileSync(path.join(weightsDir, "resnet152-synthetic", "manifest.json"), path.join(dir, "models", "resnet152-sized", "manifest.json"));
  return dir;
}

async function withWorker(assets, model, fn) {
  const config = path.join(assets, "wrangler.json");
  writeFileSync(config, JSON.stringify({
    name: `residual-unavailable-${process.pid}`, main: path.relative(assets, entry), compatibility_date: "2026-11-01",
    assets: { directory: ".", binding: "ASSETS", run_worker_first: ["/classify", "/healthz"] },
    vars: { MODEL: model },
  }));
  const w = await startWrangler({ configs: [config], port: await freePort() });
  try {
    await fn(w);
  } finally {
    await w.stop();
    assert.equal(groupAlive(w.child.pid), false, "wrangler's process group is still running");
    assert.equal(await portOpen(w.port), false, `port ${w.port} still accepts connections`);
  }
}

async function expect503(w, model, reason) {
  for (let round = 0; round < 2; round++) {
    const h = await fetch(w.base + "/healthz");
    const hj = await h.json();
    assert.equal(h.status, 503, JSON.stringify(hj));
    assert.equal(hj.status, "error");
    assert.equal(hj.loads, 0);
    assert.ok(hj.error.includes(model) && reason.test(hj.error), hj.error);
    const c = await fetch(w.base + "/classify", { method: "POST", body: new Uint8Array([0xff, 0xd8, 0xff]) });
    const cj = await c.json();
    assert.equal(c.status, 503, JSON.stringify(cj));
    assert.equal(cj.model, model);
    assert.ok(reason.test(cj.error), cj.error);
  }
  const page = await fetch(w.base + "/");
  assert.equal(page.status, 200);
  await page.arrayBuffer();
}

test("a slice too big for 128 MB: 503 with the arithmetic, no shard fetched", async () => {
  const dir = site();
  try {
    await withWorker(dir, "resnet152-sized", async (w) => {
      await expect503(w, "resnet152-sized", /needs about 1[4-9]\d\.\d MB .*float16 weights 120\.\d MB.*128 MB.*more stages/);
      const h = await (await fetch(w.base + "/healthz")).json();
      assert.equal(h.load_attempts, 1, "a model too big must not be retried");
      assert.ok(h.memory.estimate.total > h.memory.budget);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a model missing from the assets: 503 naming it and the fix", async () => {
  const dir = site();
  try {
    await withWorker(dir, "resnet101", async (w) => {
      await expect503(w, "resnet101", /models\/resnet101\/manifest\.json.*HTTP 404.*make web/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
