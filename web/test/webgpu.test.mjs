// The page's backends in headless Chromium with WebGPU on (issue 9): with
// ?backend=webgpu the network runs on Chromium's adapter (SwiftShader here,
// a software GPU) and gives the same cards as ?backend=cpu; without the
// parameter the page sees that the adapter is a software one, picks the CPU
// and says why. Run by `make web-test` (see web/web.mk).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cfg, startServer, launch, photoPaths, readCards } from './helpers.mjs';

const DP = 2e-3; // DESIGN.md's bound on |prob(GPU) - prob(CPU)|

describe('backends', { timeout: 40 * 60 * 1000 }, () => {
  let server; let browser;
  let photo;
  const figures = {};

  before(async () => {
    fs.mkdirSync(cfg.artifacts, { recursive: true });
    [photo] = await photoPaths();
    server = await startServer();
    browser = await launch(undefined, { webgpu: true });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    fs.writeFileSync(path.join(cfg.artifacts, 'webgpu-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
    console.log('webgpu figures:', JSON.stringify(figures));
  });

  // classifyWith opens the page with a backend parameter, waits for the
  // model, classifies the photo (one crop) and returns what the page showed.
  async function classifyWith(backend) {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const q = new URLSearchParams({ model: cfg.model, sw: '0' });
    if (backend) q.set('backend', backend);
    const t0 = Date.now();
    await page.goto(`${server.url}?${q}`);
    await page.waitForSelector('html[data-state="ready"], html[data-state="error"]', { timeout: 15 * 60 * 1000 });
    const state = await page.evaluate(() => document.documentElement.dataset.state);
    assert.equal(state, 'ready', `backend=${backend}: ${await page.textContent('#status')}`);
    const loadMs = Date.now() - t0;
    const shown = await page.evaluate(() => ({
      backend: document.documentElement.dataset.backend,
      status: document.getElementById('status').textContent,
      fact: document.getElementById('backend').textContent,
      reason: document.getElementById('backend').dataset.reason,
      adapter: document.getElementById('backend').dataset.adapter,
      heap: Number(document.getElementById('model-size').dataset.goHeapBytes),
    }));
    const t1 = Date.now();
    await page.setInputFiles('#files', photo);
    await page.waitForFunction(() => document.querySelectorAll('[data-file]').length >= 1, null, { timeout: 20 * 60 * 1000 });
    const classifyMs = Date.now() - t1;
    const cards = await readCards(page);
    const cardBackend = await page.$eval('[data-file]', (el) => el.dataset.backend);
    await page.screenshot({ path: path.join(cfg.artifacts, `backend-${backend || 'default'}.png`), fullPage: true });
    await page.close();
    assert.deepEqual(errors, [], `backend=${backend}: page errors`);
    figures[backend || 'default'] = { loadMs, classifyMs, goHeapMB: +(shown.heap / 1e6).toFixed(1), adapter: shown.adapter };
    return { shown, card: cards[0], cardBackend };
  }

  let gpu; let cpu;

  it('?backend=webgpu runs the network with WebGPU and says on which adapter', async () => {
    gpu = await classifyWith('webgpu');
    assert.equal(gpu.shown.backend, 'webgpu', gpu.shown.status);
    assert.equal(gpu.cardBackend, 'webgpu');
    assert.ok(gpu.shown.adapter.length > 0 && gpu.shown.fact.includes(gpu.shown.adapter), gpu.shown.fact);
    assert.match(gpu.shown.status, /Running on the GPU with WebGPU/);
    assert.equal(gpu.card.error, null, gpu.card.error);
  });

  it('?backend=cpu runs it on the CPU and gives the same card', async () => {
    cpu = await classifyWith('cpu');
    assert.equal(cpu.shown.backend, 'cpu');
    assert.equal(cpu.cardBackend, 'cpu');
    assert.match(cpu.shown.status, /Running on the CPU: the CPU path was asked for/);
    assert.ok(gpu, 'the WebGPU run failed');
    assert.deepEqual(gpu.card.top.map((p) => p.index), cpu.card.top.map((p) => p.index), 'top-5 differs');
    gpu.card.top.forEach((p, i) => {
      assert.ok(Math.abs(p.prob - cpu.card.top[i].prob) <= DP, `class ${p.index}: ${p.prob} on the GPU, ${cpu.card.top[i].prob} on the CPU`);
    });
    // The GPU path released the shard bytes: the Go heap holds the weights
    // only on the CPU path (ResNet-50: 51 MB of float16).
    assert.ok(gpu.shown.heap + 30e6 < cpu.shown.heap, `Go heap: ${gpu.shown.heap} with WebGPU, ${cpu.shown.heap} on the CPU`);
  });

  it('by default, on a software adapter, picks the CPU and says why', async () => {
    const def = await classifyWith(undefined);
    assert.equal(def.shown.backend, 'cpu');
    assert.equal(def.cardBackend, 'cpu');
    assert.match(def.shown.reason, /software or fallback adapter/);
    assert.match(def.shown.status, /Running on the CPU: the GPU adapter \(.+\) is a software or fallback adapter/);
    assert.deepEqual(def.card.top.map((p) => p.index), cpu.card.top.map((p) => p.index));
  });
});
