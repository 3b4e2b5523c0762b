// The page's side of the classifier worker: every call is a Promise, and
// errors arrive as Error objects with the name and message the worker (and
// Go behind it) gave them.

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
    for (const call of this.pending.values()) call.reject(err);
    this.pending.clear();
  }

  call(op, args, { transfer = [], onProgress } = {}) {
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  // start loads the WebAssembly build: prefer is 'auto', 'simd' or 'scalar'.
  start(prefer) { return this.call('start', { prefer }); }

  // load fetches the model whose manifest.json is at base (absolute URL,
  // ending in '/'). float32Weights widens the float16 weights once at load:
  // faster per image, twice the memory. backend is 'auto' (WebGPU on a real
  // GPU, else the CPU), 'webgpu' or 'cpu'.
  load(base, onProgress, { float32Weights = false, backend = 'auto' } = {}) {
    return this.call('load', { base, float32Weights, backend }, { onProgress });
  }

  // classify takes ownership of the ArrayBuffer (it is transferred, not copied).
  classify(buffer, { top = 5, crops = 1 } = {}) {
    return this.call('classify', { bytes: buffer, top, crops }, { transfer: [buffer] });
  }

  clearCache() { return this.call('clearCache'); }
}
