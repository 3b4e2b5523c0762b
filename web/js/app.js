// The demo page: it reads models/index.json, starts the classifier worker,
// loads the chosen model with a progress bar, and classifies queued images,
// each into its own card: one at a time in one worker, or several at once in
// a pool of workers when more than one image waits (client.js). DOM
// contract (DESIGN.md): a finished card has data-file and one
// [data-class-index][data-prob] element per prediction, a failed one has
// data-error, and <html data-state> is loading, ready or error. Once a model
// is ready, <html data-backend> is webgpu or cpu (what runs the network:
// ?backend=webgpu|cpu forces it, otherwise WebGPU on a real GPU), and every
// finished card has data-backend.
import { ClassifierPool, poolSize, workerBytes } from './client.js';

const $ = (id) => document.getElementById(id);
const el = {
  model: $('model'), modelField: $('model-field'), progress: $('weights-progress'),
  progressLabel: $('progress-label'), status: $('status'), kernels: $('kernels'), backend: $('backend'),
  workers: $('workers'), camDialog: $('cam-dialog'),
  loadTime: $('load-time'), size: $('model-size'), synthetic: $('synthetic'),
  drop: $('drop'), files: $('files'), queue: $('queue'), results: $('results'),
  clearCache: $('clear-cache'), cacheUsage: $('cache-usage'), clearResults: $('clear-results'),
  template: $('card-template'),
};

const params = new URLSearchParams(location.search);
const backendParam = ['webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';
const state = {
  pool: null, // ClassifierPool
  boot: null,
  models: [],
  current: null, // entry of models/index.json that is loaded
  queue: [], // {file, card}
  pumping: false,
  pasteCount: 0,
};

// ?workers=N caps the pool (1: one image at a time, to compare speed).
const workerCap = Number(params.get('workers')) > 0 ? Math.floor(Number(params.get('workers'))) : Infinity;

function setState(s) { document.documentElement.dataset.state = s; }

function fmtBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}
function fmtMs(ms) { return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`; }

function fail(message) {
  setState('error');
  el.status.textContent = message;
}

async function main() {
  setState('loading');
  registerServiceWorker();
  wireInputs();
  // The worker compiles the WebAssembly while the list of models arrives.
  const prefer = ['simd', 'scalar'].includes(params.get('kernels')) ? params.get('kernels') : 'auto';
  state.pool = new ClassifierPool(new URL('./worker.js', import.meta.url));
  state.pool.onChange = (pool) => { el.workers.dataset.started = String(pool.size); };
  const booting = state.pool.start(prefer);
  booting.catch(() => {}); // reported below, once the list is read
  try {
    const resp = await fetch('models/index.json');
    if (!resp.ok) throw new Error(`models/index.json: HTTP ${resp.status}`);
    state.models = (await resp.json()).models || [];
  } catch (err) {
    fail(`Cannot read the list of models (${err.message}). Build the site with "make web".`);
    return;
  }
  if (state.models.length === 0) {
    fail('No models in this build. Convert one (make weights, or make demo for a synthetic one), then run make web.');
    return;
  }
  for (const m of state.models) {
    const opt = document.createElement('option');
    opt.value = m.name;
    const synth = m.synthetic && !/synthetic/i.test(m.model) ? ' (synthetic)' : '';
    opt.textContent = `${m.model}${synth} · ${fmtBytes(m.bytes)}`;
    el.model.append(opt);
  }
  const wanted = params.get('model');
  const initial = state.models.find((m) => m.name === wanted)
    || state.models.find((m) => !m.synthetic) || state.models[0];
  el.model.value = initial.name;
  el.modelField.hidden = state.models.length < 2;

  try {
    el.status.textContent = 'Starting the WebAssembly classifier…';
    state.boot = await booting;
  } catch (err) {
    fail(`Cannot start the classifier: ${err.message}`);
    return;
  }
  const b = state.boot;
  el.kernels.textContent = b.kernels === 'simd'
    ? 'simd (WebAssembly SIMD128)'
    : `scalar (${b.prefer === 'scalar' ? 'chosen with ?kernels=scalar' : 'this browser has no WebAssembly SIMD'})`;
  el.kernels.title = `Built with ${b.goVersion}; residual-${b.build}.wasm, started in ${fmtMs(b.startMs)}`;
  el.kernels.dataset.startMs = String(b.startMs);
  el.model.disabled = false;
  el.model.addEventListener('change', () => {
    params.set('model', el.model.value); // a reload keeps the choice
    history.replaceState(null, '', `?${params}`);
    loadModel(el.model.value);
  });
  await loadModel(initial.name);
}

async function loadModel(name) {
  const entry = state.models.find((m) => m.name === name);
  state.current = null;
  setState('loading');
  delete document.documentElement.dataset.backend;
  el.model.disabled = true;
  el.synthetic.hidden = true;
  el.progress.max = entry.bytes || 1;
  el.progress.value = 0;
  el.progressLabel.textContent = 'Weights';
  el.status.textContent = `Loading ${entry.model}…`;
  el.loadTime.textContent = '…';
  el.size.textContent = fmtBytes(entry.bytes);
  const base = new URL(entry.path, document.baseURI).href;
  try {
    const r = await state.pool.load(base, (p) => {
      el.progress.max = p.total || 1;
      el.progress.value = p.loaded;
      if (p.phase === 'download') {
        el.progressLabel.textContent = 'Weights';
        el.status.textContent = `Loading ${entry.model}: ${fmtBytes(p.loaded)} of ${fmtBytes(p.total)}`;
      } else {
        el.progressLabel.textContent = 'Verifying';
        el.status.textContent = `Checking ${entry.model}'s weights (sha256)…`;
      }
    }, { float32Weights: params.get('weights') === 'f32', backend: backendParam });
    el.progress.max = r.bytes || 1;
    el.progress.value = r.bytes;
    el.progressLabel.textContent = 'Weights';
    const where = r.fromNetwork === 0 ? 'from this browser\'s cache'
      : r.fromCache === 0 ? 'from the network' : `${r.fromCache} shards from cache, ${r.fromNetwork} from the network`;
    el.loadTime.textContent = `${fmtMs(r.ms)} (${r.fromNetwork === 0 ? 'cache' : 'network'})`;
    el.loadTime.dataset.ms = String(r.ms);
    el.loadTime.dataset.openMs = String(r.openMs);
    el.loadTime.title = r.hashedBy === 'webcrypto'
      ? `${fmtMs(r.ms - r.openMs)} to get the weights and hash them (WebCrypto), ${fmtMs(r.openMs)} to check them and build the network`
      : `${fmtMs(r.ms - r.openMs)} to get the weights, ${fmtMs(r.openMs)} to verify them (sha256) and build the network`;
    el.loadTime.dataset.hashedBy = r.hashedBy;
    el.loadTime.dataset.source = r.fromNetwork === 0 ? 'cache' : 'network';
    el.size.textContent = `${fmtBytes(r.bytes)} ${r.info.weight_mode}, ${(r.info.params / 1e6).toFixed(1)} M parameters`;
    el.size.dataset.goHeapBytes = String(r.heapBytes); // the Go heap after the load (shards released on the GPU path)
    el.synthetic.hidden = !r.info.synthetic;
    el.status.textContent = `${r.info.model} is ready: loaded ${fmtBytes(r.bytes)} ${where}. ${backendSentence(r.backend)} Drop images to classify them.`;
    showBackend(r.backend);
    // On the GPU one worker: more would only share the one device. On the
    // CPU, a worker per image while several wait, as cores and memory allow.
    state.pool.max = r.backend.backend === 'webgpu' ? 1 : poolSize({
      cores: navigator.hardwareConcurrency,
      deviceMemoryGB: navigator.deviceMemory,
      perWorkerBytes: workerBytes(r.info),
      cap: workerCap,
    });
    el.workers.textContent = state.pool.max > 1
      ? `up to ${state.pool.max}, one per image when several wait`
      : '1';
    el.workers.title = r.backend.backend === 'webgpu' ? 'one worker drives the GPU'
      : `${navigator.hardwareConcurrency || '?'} cores, ${navigator.deviceMemory || '?'} GB of memory reported; `
      + `about ${fmtBytes(workerBytes(r.info))} per worker`;
    el.workers.dataset.max = String(state.pool.max);
    state.current = entry;
    setState('ready');
    updateCacheUsage();
    pump();
  } catch (err) {
    fail(`Cannot load ${entry.model}: ${err.message}`);
  } finally {
    el.model.disabled = false;
  }
}

// backendSentence says what runs the network and, for the CPU, why.
function backendSentence(b) {
  if (b.backend === 'webgpu') return `Running on the GPU with WebGPU (${b.adapter}).`;
  return `Running on the CPU: ${b.reason}.`;
}

function showBackend(b) {
  document.documentElement.dataset.backend = b.backend;
  el.backend.textContent = b.backend === 'webgpu' ? `WebGPU (${b.adapter})` : 'CPU (WebAssembly)';
  el.backend.title = b.reason || '';
  el.backend.dataset.reason = b.reason || '';
  el.backend.dataset.adapter = b.adapter || '';
}

async function updateCacheUsage() {
  if (!navigator.storage?.estimate) return;
  try {
    const { usage } = await navigator.storage.estimate();
    el.cacheUsage.textContent = usage ? `${fmtBytes(usage)} stored` : '';
  } catch { /* not available */ }
}

function registerServiceWorker() {
  // The service worker keeps the page itself available offline; the shards
  // are cached by the classifier worker (Cache API, keyed by sha256).
  if ('serviceWorker' in navigator && params.get('sw') !== '0') {
    navigator.serviceWorker.register('sw.js').catch((err) => {
      console.warn(`residual: no offline support: ${err.message}`);
    });
  }
}

function wireInputs() {
  const d = el.drop;
  d.addEventListener('click', () => el.files.click());
  d.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      el.files.click();
    }
  });
  for (const type of ['dragenter', 'dragover']) {
    d.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      d.classList.add('over');
    });
  }
  d.addEventListener('dragleave', (e) => {
    if (!d.contains(e.relatedTarget)) d.classList.remove('over');
  });
  d.addEventListener('drop', (e) => {
    e.preventDefault();
    d.classList.remove('over');
    addFiles(e.dataTransfer?.files);
  });
  // A file dropped beside the zone should not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!d.contains(e.target)) addFiles(e.dataTransfer?.files);
  });
  el.files.addEventListener('change', () => {
    addFiles(el.files.files);
    el.files.value = '';
  });
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length === 0) return;
    e.preventDefault();
    addFiles(files.map((f) => {
      state.pasteCount++;
      const ext = (f.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
      return new File([f], f.name && f.name !== 'image.png' ? f.name : `pasted-${state.pasteCount}.${ext}`, { type: f.type });
    }));
  });
  el.clearCache.addEventListener('click', async () => {
    if (!state.pool?.first) return;
    el.clearCache.disabled = true;
    try {
      const { deleted } = await state.pool.clearCache();
      el.status.textContent = deleted
        ? 'Cached weights deleted: the next load downloads them again.'
        : 'There were no cached weights.';
    } catch (err) {
      el.status.textContent = `Cannot clear the cache: ${err.message}`;
    } finally {
      el.clearCache.disabled = false;
      updateCacheUsage();
    }
  });
  el.clearResults.addEventListener('click', () => {
    for (const card of el.results.querySelectorAll('.card:not([data-status="queued"]):not([data-status="running"])')) {
      URL.revokeObjectURL(card.querySelector('.thumb').src);
      card.remove();
    }
    updateQueue();
  });
}

function addFiles(list) {
  const files = [...(list || [])];
  for (const file of files) {
    const card = el.template.content.firstElementChild.cloneNode(true);
    card.querySelector('.name').textContent = file.name;
    const img = card.querySelector('.thumb');
    img.addEventListener('error', () => img.parentElement.classList.add('broken'), { once: true });
    img.src = URL.createObjectURL(file);
    el.results.append(card);
    state.queue.push({ file, card });
  }
  updateQueue();
  pump();
}

function updateQueue() {
  const waiting = state.queue.length;
  const running = [...el.results.querySelectorAll('.card[data-status="running"] .name')].map((n) => n.textContent);
  const parts = [];
  if (running.length === 1) parts.push(`Classifying ${running[0]}`);
  if (running.length > 1) parts.push(`Classifying ${running.length} images at once`);
  if (waiting) parts.push(`${waiting} waiting in the queue`);
  const doneCount = el.results.querySelectorAll('.card[data-file]').length;
  if (!running.length && !waiting) parts.push(doneCount ? `${doneCount} classified` : 'No images yet.');
  el.queue.textContent = parts.join(' · ');
  el.clearResults.hidden = doneCount === 0;
}

// pump hands queued images to the pool's workers while a model is ready:
// each waits for a free worker (the pool starts more while images wait, up
// to its size), then runs without blocking the next one.
async function pump() {
  if (state.pumping) return;
  state.pumping = true;
  try {
    while (state.queue.length && state.current) {
      // A free worker is taken at once, so the first image of a drop
      // starts running before the drop event returns.
      const worker = state.pool.tryAcquire() ?? await state.pool.acquire(state.queue.length);
      if (!state.queue.length || !state.current) {
        state.pool.release(worker);
        break;
      }
      classifyOn(worker, state.queue.shift());
    }
  } finally {
    state.pumping = false;
  }
}

async function classifyOn(worker, { file, card }) {
  card.dataset.status = 'running';
  card.querySelector('.card-status').textContent = 'Classifying…';
  updateQueue();
  const crops = Number(document.querySelector('input[name="crops"]:checked').value);
  try {
    const buf = await file.arrayBuffer();
    const r = await worker.classifier.classify(buf, { top: 5, crops, cam: true });
    if (r.fellBack) {
      showBackend(r.fellBack);
      el.status.textContent = `The GPU stopped working; ${backendSentence(r.fellBack)}`;
    }
    showResult(card, file, r, worker);
  } catch (err) {
    showError(card, file, err);
  } finally {
    state.pool.release(worker);
    updateQueue();
  }
}

function showResult(card, file, r, worker) {
  const list = card.querySelector('.preds');
  for (const p of r.top) {
    const li = document.createElement('li');
    li.dataset.classIndex = String(p.index);
    li.dataset.prob = String(p.prob);
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label || `class ${p.index}`;
    label.title = `${p.label} (class ${p.index})`;
    const pct = document.createElement('span');
    pct.className = 'pct';
    pct.textContent = `${(p.prob * 100).toFixed(p.prob >= 0.1 ? 1 : 2)}%`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(1, p.prob)) * 100}%`;
    bar.append(fill);
    li.append(label, pct, bar);
    list.append(li);
  }
  card.querySelector('.card-status').remove();
  card.querySelector('.meta').textContent =
    `${fmtMs(r.ms)} · ${r.crops === 10 ? '10 crops' : '1 crop'} · ${r.backend === 'webgpu' ? 'WebGPU' : r.kernels}`
    + (state.pool.max > 1 ? ` · worker ${worker.id + 1}` : '');
  if (r.cam) showMap(card, r.cam, r.top.find((p) => p.index === r.cam.index));
  card.dataset.status = 'done';
  card.dataset.backend = r.backend;
  card.dataset.ms = String(r.ms);
  card.dataset.worker = String(worker.id);
  card.dataset.file = file.name;
}

// showMap puts the class activation map of the card's top class (drawn
// over the image in the worker) beside its thumbnail, behind a toggle; a
// click on the map opens it larger. The card gets data-cam="ready".
function showMap(card, cam, pred) {
  const canvas = document.createElement('canvas');
  canvas.width = cam.width;
  canvas.height = cam.height;
  canvas.className = 'thumb cam';
  canvas.hidden = true;
  const pixels = new Uint8ClampedArray(cam.rgba.buffer, cam.rgba.byteOffset, cam.rgba.byteLength);
  canvas.getContext('2d').putImageData(new ImageData(pixels, cam.width, cam.height), 0, 0);
  const what = `where the network saw ${pred?.label || `class ${cam.index}`}`;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `Class activation map: ${what}`);
  canvas.title = `Class activation map: ${what} (click to enlarge)`;
  canvas.tabIndex = 0; // reachable and openable from the keyboard too
  const open = () => openMap(canvas, card.querySelector('.name').textContent, what);
  canvas.addEventListener('click', open);
  canvas.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    }
  });
  const thumb = card.querySelector('.thumb');
  thumb.after(canvas);
  const toggle = card.querySelector('.cam-toggle');
  toggle.hidden = false;
  toggle.addEventListener('click', () => {
    const on = toggle.getAttribute('aria-pressed') !== 'true';
    toggle.setAttribute('aria-pressed', String(on));
    toggle.textContent = on ? 'Hide map' : 'Show map';
    canvas.hidden = !on;
    thumb.hidden = on;
  });
  card.dataset.cam = 'ready';
  card.dataset.camClass = String(cam.index);
  card.dataset.camGrid = JSON.stringify(cam.grid); // the raw center-crop map, as tools/classify -cam gives it
}

// openMap shows a map as large as the window allows in the page's dialog.
function openMap(canvas, name, what) {
  const big = el.camDialog.querySelector('canvas');
  big.width = canvas.width;
  big.height = canvas.height;
  big.getContext('2d').drawImage(canvas, 0, 0);
  // Shown as large as the window allows (small images scaled up).
  const scale = Math.min(640 / big.width, (0.9 * innerWidth) / big.width, (0.75 * innerHeight) / big.height);
  big.style.width = `${Math.round(big.width * scale)}px`;
  big.style.height = `${Math.round(big.height * scale)}px`;
  big.setAttribute('aria-label', canvas.getAttribute('aria-label'));
  el.camDialog.querySelector('.cam-caption').textContent = `${name}: ${what}. Bright yellow: strongest evidence; dark blue: weakest.`;
  el.camDialog.showModal();
}

// readable drops the Go package prefixes ("core: preprocess: ") from a message.
function readable(msg) {
  const s = msg.replace(/^((core|preprocess|weights|jsbridge): )+/, '');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function showError(card, file, err) {
  const msg = err.message || String(err);
  const status = card.querySelector('.card-status');
  status.textContent = err.name === 'ImageError' ? readable(msg) : `Failed: ${readable(msg)}`;
  card.dataset.status = 'error';
  card.dataset.error = msg;
  card.dataset.file = file.name;
}

main();
