// The cost of the hops between stage Workers, measured (not a test: the
// figures for wasm/worker/README.md; `make worker-hops`). For each model it
// runs two wrangler dev sessions side by side on the same machine: the model
// split into stages by the configuration generator, and the whole model in
// one Worker (possible locally only: wrangler dev does not enforce the 128 MB
// limit). It warms both, then sends the same photos to one and the other in
// alternation, so that the load of a shared machine falls on both alike, and
// prints the median latency of each and of their difference. On a shared
// machine that difference is noise-bound; the precise figure comes from
// each answer itself: "ms" minus the sum of the stages' own "compute_ms" is
// what the Service Binding hops, the tensor encoding and copying cost, in
// the same request.
//
// Environment: as the tests (RESIDUAL_WORKER_TOOL, RESIDUAL_ENTRY,
// RESIDUAL_WEIGHTS, RESIDUAL_PHOTOS), and HOPS_MODELS (default
// "resnet50-synthetic resnet101-synthetic resnet152-synthetic"), HOPS_ROUNDS
// (default 5).
import { readdirSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { workerDir, freePort, startWrangler, generate } from "./wrangler.mjs";

const env = (name) => path.resolve(workerDir, process.env[name]);
const tool = env("RESIDUAL_WORKER_TOOL");
const entry = env("RESIDUAL_ENTRY");
const weightsDir = env("RESIDUAL_WEIGHTS");
const photosDir = env("RESIDUAL_PHOTOS");
const photos = readdirSync(photosDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).map((f) => path.join(photosDir, f));
const models = (process.env.HOPS_MODELS || "resnet50-synthetic resnet101-synthetic resnet152-synthetic").split(/\s+/);
const rounds = Number(process.env.HOPS_ROUNDS || 5);

async function time(base, body) {
  const t0 = performance.now();
  const res = await fetch(base + "/classify", { method: "POST", body });
  const j = await res.json();
  if (res.status !== 200) throw new Error(JSON.stringify(j));
  return { ms: performance.now() - t0, top: j.top, served: j.ms, compute: j.compute_ms };
}

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

for (const model of models) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `residual-hops-${model}-`));
  const modelDir = path.join(weightsDir, model);
  const plan = generate(tool, { model: modelDir, out: path.join(dir, "stages"), entry });
  // One Worker, the whole model: the front's configuration without a next
  // stage, a slice of every op, and a budget the local runtime allows.
  const one = generate(tool, { model: modelDir, out: path.join(dir, "one"), entry, budget: 1e12, vars: "MEMORY_BUDGET=1000000000", worker: `residual-one-${process.pid}` });
  const sessions = [];
  try {
    const split = await startWrangler({ configs: plan.configs, port: await freePort() });
    sessions.push(split);
    const whole = await startWrangler({ configs: one.configs, port: await freePort() });
    sessions.push(whole);
    const body = readFileSync(photos[0]);
    const cold = { split: (await time(split.base, body)).ms, whole: (await time(whole.base, body)).ms };
    const t = { split: [], whole: [], hops: [], compute: [] };
    for (let i = 0; i < rounds; i++) {
      const b = readFileSync(photos[i % photos.length]);
      const a = await time(split.base, b);
      const c = await time(whole.base, b);
      if (JSON.stringify(a.top) !== JSON.stringify(c.top)) throw new Error(`${model}: the split and the whole model disagree`);
      t.split.push(a.ms);
      t.whole.push(c.ms);
      t.hops.push(a.served - a.compute.reduce((x, y) => x + y, 0));
      t.compute.push(a.compute);
    }
    const h = await (await fetch(split.base + "/healthz")).json();
    const out = {
      model,
      stages: plan.stages.length,
      cold_ms: { split: Math.round(cold.split), whole: Math.round(cold.whole) },
      warm_median_ms: { split: Math.round(median(t.split)), whole: Math.round(median(t.whole)) },
      split_minus_whole_ms: Math.round(median(t.split.map((x, i) => x - t.whole[i]))),
      hops_ms_in_request: Math.round(median(t.hops) * 10) / 10,
      compute_ms_per_stage: t.compute[0].map((_, k) => Math.round(median(t.compute.map((c) => c[k])))),
      per_stage: h.stages.map((s) => ({ stage: s.stage, ops: `${s.info.first_op}..${s.info.last_op}`, weights: s.info.weight_bytes, peak_wasm: s.memory.peak.wasm_bytes, load_ms: s.load_ms })),
    };
    console.log(JSON.stringify(out));
    writeFileSync(path.join(os.tmpdir(), `residual-hops-${model}.json`), JSON.stringify(out, null, 2));
  } finally {
    for (const s of sessions) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
