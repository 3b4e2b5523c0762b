// Speed figures of the demo page in headless Chromium (not a test: nothing
// here can fail on a slow machine). Run by `make web-bench` after `make web`:
//
//   - cache load: navigation to <html data-state="ready"> with the shards in
//     the Cache API; the page's own timers too: the worker's start (compile
//     and start the Go program), the model's load (read + hash + check +
//     plan) and its open (Go's checks and plan);
//   - one image: the page's per-image time, after a warm-up image;
//   - a drop of DROP images (default 16): images per second with one worker
//     (?workers=1) and with the pool the page sizes itself, from the drop to
//     the last card.
//
// Prints one JSON object and writes it to artifacts/bench.json. Environment:
// as the tests (helpers.mjs), plus BENCH_RUNS (cache loads, default 5) and
// BENCH_DROP (default 16).
import fs from 'node:fs';
import path from 'node:path';
import { cfg, startServer, launch, photoPaths, mimeType } from './helpers.mjs';

const RUNS = Number(process.env.BENCH_RUNS || 5);
const DROP = Number(process.env.BENCH_DROP || 16);
const ONE = Number(process.env.BENCH_ONE || 5);
const QUERY = process.env.BENCH_QUERY || ''; // e.g. &kernels=scalar

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// readyAt records, in the page, when <html data-state> first becomes ready
// (performance.now(): milliseconds since navigation started).
function readyAt() {
  new MutationObserver(() => {
    if (document.documentElement.dataset.state === 'ready' && window.__readyAt === undefined) {
      window.__readyAt = performance.now();
    }
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-state'] });
}

async function open(page, url) {
  await page.goto(url);
  await page.waitForSelector('html[data-state="ready"]', { timeout: 300000 });
  return {
    navToReadyMs: await page.evaluate(() => window.__readyAt),
    loadMs: Number(await page.getAttribute('#load-time', 'data-ms')),
    openMs: Number(await page.getAttribute('#load-time', 'data-open-ms')),
    startMs: Number(await page.getAttribute('#kernels', 'data-start-ms')),
    hashedBy: await page.getAttribute('#load-time', 'data-hashed-by'),
    source: await page.getAttribute('#load-time', 'data-source'),
  };
}

// drop dispatches a real drop event with files and waits for every card.
async function drop(page, files) {
  return page.evaluate(async (list) => {
    const dt = new DataTransfer();
    for (const f of list) {
      dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    }
    const before = document.querySelectorAll('[data-file]').length;
    const t0 = performance.now();
    const zone = document.getElementById('drop');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    }
    await new Promise((resolve) => {
      const check = () => {
        if (document.querySelectorAll('[data-file]').length >= before + list.length) resolve();
        else setTimeout(check, 20);
      };
      check();
    });
    const ms = performance.now() - t0;
    const cards = [...document.querySelectorAll('[data-file]')].slice(before);
    return {
      ms,
      errors: cards.filter((c) => c.dataset.error).length,
      workers: new Set(cards.map((c) => c.dataset.worker)).size,
      imageMs: cards.map((c) => Number(c.dataset.ms)),
    };
  }, files);
}

const photos = await photoPaths();
const file = (p, name) => ({ name, type: mimeType(p), b64: fs.readFileSync(p).toString('base64') });
const server = await startServer();
const browser = await launch();
const out = { drop: DROP, hardwareConcurrency: null };

async function run() {
  const page = await browser.context.newPage();
  await page.addInitScript(readyAt);
  const url = `${server.url}?model=${encodeURIComponent(cfg.model)}${QUERY}`;
  out.networkLoad = await open(page, url);
  out.hardwareConcurrency = await page.evaluate(() => navigator.hardwareConcurrency);
  out.deviceMemoryGB = await page.evaluate(() => navigator.deviceMemory ?? null);
  const loads = [];
  for (let i = 0; i < RUNS; i++) loads.push(await open(page, url));
  out.cacheLoad = {
    sources: [...new Set(loads.map((l) => l.source))],
    navToReadyMs: loads.map((l) => Math.round(l.navToReadyMs)),
    medianNavToReadyMs: Math.round(median(loads.map((l) => l.navToReadyMs))),
    medianLoadMs: Math.round(median(loads.map((l) => l.loadMs))),
    medianOpenMs: Math.round(median(loads.map((l) => l.openMs))),
    medianStartMs: Math.round(median(loads.map((l) => l.startMs))),
    hashedBy: [...new Set(loads.map((l) => l.hashedBy))],
  };

  // One image at a time: warm-up, then the figure.
  await drop(page, [file(photos[0], 'warm-up.jpg')]);
  const singles = [];
  for (let i = 0; i < ONE; i++) singles.push((await drop(page, [file(photos[i % photos.length], `one-${i}`)])).imageMs[0]);
  out.oneImageMs = singles.map(Math.round);
  out.medianOneImageMs = Math.round(median(singles));
  if (process.env.BENCH_ONLY_ONE) return;

  // A drop of DROP images on one worker, then on the pool twice: the first
  // drop pays for starting the other workers, the second finds them ready.
  const many = (tag) => Array.from({ length: DROP }, (_, i) => file(photos[i % photos.length], `${tag}-${i}`));
  const figures = (r) => ({
    workers: r.workers,
    ms: Math.round(r.ms),
    imagesPerSecond: Number((DROP / (r.ms / 1000)).toFixed(2)),
    errors: r.errors,
    medianImageMs: Math.round(median(r.imageMs)),
  });
  await open(page, `${url}&workers=1`);
  await drop(page, [file(photos[0], 'warm-up.jpg')]); // the first worker's code is warm
  out.oneWorker = figures(await drop(page, many('a')));
  await open(page, url);
  await drop(page, [file(photos[0], 'warm-up.jpg')]);
  out.pool = figures(await drop(page, many('b')));
  out.poolAgain = figures(await drop(page, many('c')));
  out.poolSpeedup = Number((out.pool.imagesPerSecond / out.oneWorker.imagesPerSecond).toFixed(2));
  out.poolAgainSpeedup = Number((out.poolAgain.imagesPerSecond / out.oneWorker.imagesPerSecond).toFixed(2));
}

try {
  await run();
  finish();
} finally {
  await browser.close();
  await server.stop();
}

function finish() {
  fs.mkdirSync(cfg.artifacts, { recursive: true });
  fs.writeFileSync(path.join(cfg.artifacts, 'bench.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
}
