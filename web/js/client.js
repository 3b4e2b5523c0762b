// The page's side of the classifier workers. A Classifier is one Web Worker
// (one Go instance, see worker.js): every call is a Promise, and errors
// arrive as Error objects with the name and message the worker (and Go
// behind it) gave them. A ClassifierPool runs several, one image each at a
// time, growing only as far as the queue of images needs.

export class Classifier {
  constructor(workerURL) {
    this.worker = new Worker(workerURL);
    this.nextID = 1;
    this.pending = new Map();
    this.worker.onmessage = (e) => this.receive(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.failAll(new Error(`the classifier worker failed: ${e.message || 'could not start'}`));
    };
  }

  receive({ id, result, error, progress }) {
    const call = this.pending.get(id);
    if (!call) return;
    if (progress) {
      call.onProgress?.(progress);
      return;
    }
    this.pending.delete(id);
    if (error) {
      const err = new Error(error.message);
      err.name = error.name;
      call.reject(err);
    } else {
      call.resolve(result);
    }
  }

  failAll(err) {
    this.failed = err;
    for (const call of this.pending.values()) call.reject(err);
    this.pending.clear();
  }

  call(op, args, { transfer = [], onProgress } = {}) {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  // start loads the WebAssembly build: prefer is 'auto', 'simd' or 'scalar'.
  // module is a WebAssembly.Module another worker compiled (boot.module), to
  // share its code instead of compiling the build again.
  start(prefer, module = null) { return this.call('start', { prefer, module }); }

  // load fetches the model whose manifest.json is at base (absolute URL,
  // ending in '/'). float32Weights widens the float16 weights once at load:
  // faster per image, twice the memory. backend is 'auto' (WebGPU on a real
  // GPU, else the CPU), 'webgpu' or 'cpu'.
  load(base, onProgress, { float32Weights = false, backend = 'auto' } = {}) {
    return this.call('load', { base, float32Weights, backend }, { onProgress });
  }

  // classify takes ownership of the ArrayBuffer (it is transferred, not
  // copied). With cam, the result's cam holds the top-1 class's activation
  // map over the image ({index, grid, width, height, rgba}) when the model
  // has maps.
  classify(buffer, { top = 5, crops = 1, cam = false } = {}) {
    return this.call('classify', { bytes: buffer, top, crops, cam }, { transfer: [buffer] });
  }

  clearCache() { return this.call('clearCache'); }

  // terminate stops the worker; calls still pending reject.
  terminate() {
    this.worker.terminate();
    this.failAll(new Error('the classifier worker was stopped'));
  }
}

// poolSize is how many classifier workers the page may run: one per core
// (navigator.hardwareConcurrency), as many as fit in a quarter of the
// device's memory (navigator.deviceMemory, in GB; 4 when the browser does
// not tell) at perWorkerBytes each, at most cap, at least one.
export function poolSize({ cores, deviceMemoryGB, perWorkerBytes, cap = Infinity }) {
  const budget = (deviceMemoryGB || 4) * 2 ** 30 / 4;
  const byMemory = perWorkerBytes > 0 ? Math.floor(budget / perWorkerBytes) : 1;
  return Math.max(1, Math.min(cores || 1, byMemory, cap));
}

// workerBytes estimates one worker's memory for a loaded model from its
// info (core.Info): the resident weights, the activations and the scratch,
// with room for Go's garbage collector (which lets the heap grow to twice
// what is live) and the runtime and code (32 MiB).
export function workerBytes(info) {
  const live = (info.weight_bytes || 0) + (info.activation_bytes || 0) + (info.scratch_bytes || 0);
  return 2 * live + 32 * 2 ** 20;
}

// ClassifierPool runs classifications on up to `max` Classifiers. The first
// one is started and loaded like a single Classifier; the others are
// started on demand, when an image waits while every worker is busy, with
// the first one's compiled WebAssembly.Module (V8 shares its code, tiered up
// already) and load the same model (from the Cache API: no second
// download). A single image therefore never starts a second worker.
//
// The page asks for a worker with acquire(waiting), runs one request on it
// and gives it back with release(worker).
export class ClassifierPool {
  constructor(workerURL) {
    this.workerURL = workerURL;
    this.max = 1;
    this.workers = []; // ready: {classifier, busy, id}
    this.starting = 0; // workers being started
    this.waiters = []; // acquire() calls waiting for a worker
    this.prefer = 'auto';
    this.module = null; // the first worker's WebAssembly.Module, shared with the others
    this.model = null; // {base, options} of the loaded model
    this.generation = 0; // bumped by load(): workers started before are stale
    this.nextWorkerID = 0;
    this.onChange = null; // called with the pool when its workers change
  }

  get first() { return this.workers[0]?.classifier; }

  get size() { return this.workers.length; }

  // start starts the first worker.
  async start(prefer) {
    this.prefer = prefer;
    const c = new Classifier(this.workerURL);
    const { module, ...boot } = await c.start(prefer);
    this.module = module;
    this.workers = [{ classifier: c, busy: false, id: this.nextWorkerID++ }];
    this.onChange?.(this);
    return boot;
  }

  // load loads a model in the first worker and stops the others (they are
  // started again, with this model, when the queue needs them). It waits
  // for the requests in flight to finish.
  async load(base, onProgress, options = {}) {
    this.generation++;
    this.model = null;
    this.max = 1;
    await this.idle();
    for (const w of this.workers.splice(1)) w.classifier.terminate();
    this.onChange?.(this);
    const r = await this.first.load(base, onProgress, options);
    this.model = { base, options };
    return r;
  }

  // idle resolves when no worker is busy.
  idle() {
    return new Promise((resolve) => {
      const check = () => (this.workers.some((w) => w.busy) ? setTimeout(check, 10) : resolve());
      check();
    });
  }

  clearCache() { return this.first.clearCache(); }

  // acquire resolves with a ready worker ({classifier, id}) for one
  // request. waiting is the number of requests queued behind and including
  // this one: the pool starts another worker only while that exceeds the
  // workers it is already starting.
  acquire(waiting = 1) {
    const free = this.tryAcquire();
    if (free) return Promise.resolve(free);
    if (this.model && this.workers.length + this.starting < this.max && waiting > this.starting) {
      this.grow();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  // tryAcquire returns a free ready worker (marked busy), or null.
  tryAcquire() {
    const free = this.workers.find((w) => !w.busy);
    if (free) free.busy = true;
    return free ?? null;
  }

  // release gives a worker back after its request settled. A worker that
  // failed (crashed, or ran out of memory) is stopped and dropped, unless it
  // is the last one: then its error reaches every later request.
  release(worker) {
    worker.busy = false;
    if (worker.classifier.failed && this.workers.length > 1) {
      this.workers = this.workers.filter((w) => w !== worker);
      worker.classifier.terminate();
      this.max = Math.max(1, this.max - 1);
      this.onChange?.(this);
      return;
    }
    this.handOut(worker);
  }

  handOut(worker) {
    if (worker.busy || !this.workers.includes(worker)) return;
    const next = this.waiters.shift();
    if (next) {
      worker.busy = true;
      next(worker);
    }
  }

  // grow starts one more worker with the current model; on failure the
  // pool stops growing and goes on with the workers it has.
  async grow() {
    const gen = this.generation;
    const { base, options } = this.model;
    this.starting++;
    const c = new Classifier(this.workerURL);
    try {
      await c.start(this.prefer, this.module);
      await c.load(base, () => {}, options);
    } catch (err) {
      console.warn(`residual: could not start another classifier worker (${err.message}); going on with ${this.workers.length}`);
      c.terminate();
      if (gen === this.generation) this.max = this.workers.length;
      return;
    } finally {
      this.starting--;
    }
    if (gen !== this.generation) { // the model changed meanwhile
      c.terminate();
      return;
    }
    const w = { classifier: c, busy: false, id: this.nextWorkerID++ };
    this.workers.push(w);
    this.onChange?.(this);
    this.handOut(w);
  }
}
