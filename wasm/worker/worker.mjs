// The entry module of residual's Cloudflare Worker. It holds no application
// logic (that is Go, in this directory): it compiles nothing at request time
// (wrangler bundles the .wasm as a compiled WebAssembly.Module), instantiates
// the Go program ONCE per isolate on the first request, keeps it, and hands
// each request to the handler the Go side registered.
//
// Why not syumai/workers' stock worker.mjs: it creates a new Go instance per
// request, which would fetch and verify the weights (51 MB for ResNet-50)
// every time. Here the Go program calls workers.ServeNonBlock + Ready and
// then blocks forever, so the instance and its loaded model stay.
//
// The build (wasm/worker/worker.mk) copies next to this file:
//   wasm_exec.js          syumai/workers' wasm_exec_go.js: Go's wasm_exec.js whose
//                         Go.run(instance, context) shows `context` to Go as a global
//   residual-worker.wasm  GOOS=js GOARCH=wasm build of ./wasm/worker
import "./wasm_exec.js";
import wasmModule from "./residual-worker.wasm";

// syumai/workers' Go side calls globalThis.tryCatch to run callbacks that may throw.
globalThis.tryCatch = (fn) => {
  try {
    return { result: fn() };
  } catch (error) {
    return { error };
  }
};

// The runtime context Go reads as the global `context`. It is one object for
// the isolate's lifetime (Go caches references to it and to `binding` at
// startup); `env` and `ctx` are updated before every request. Every request
// of an isolate carries the same bindings, so concurrent requests share them
// safely.
const context = {
  env: undefined,
  ctx: undefined,
  binding: {}, // the Go side sets binding.handleRequest
  // The wasm linear memory in bytes, for /healthz (Go cannot see it itself).
  wasmMemoryBytes: () => 0,
};

let started; // Promise resolved once Go has called workers.ready()

function start() {
  if (started) return started;
  context.binding = {};
  started = new Promise((resolve, reject) => {
    const go = new Go();
    let exitCode = "unknown";
    const warnExit = go.exit;
    go.exit = (code) => {
      exitCode = code;
      warnExit(code);
    };
    const instance = new WebAssembly.Instance(wasmModule, {
      ...go.importObject,
      workers: { ready: () => resolve() },
    });
    context.wasmMemoryBytes = () => instance.exports.mem.buffer.byteLength;
    go.run(instance, context).then(
      () => {
        // The Go program exited (only a startup error or a crash does that):
        // start a new instance on the next request.
        started = undefined;
        reject(new Error(`the Go program exited with code ${exitCode}; see the log`));
      },
      (err) => {
        started = undefined;
        reject(err);
      },
    );
  });
  return started;
}

function failure(status, message, env) {
  const headers = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" };
  if (!env || !env.ALLOWED_ORIGINS) headers["Access-Control-Allow-Origin"] = "*"; // as the Go side answers
  return new Response(JSON.stringify({ error: message }) + "\n", { status, headers });
}

// One request at a time inside Go. Workers bind I/O objects (request and
// response bodies, subrequests) to the request that created them, and any
// goroutine may run whenever JavaScript resumes the Go instance; with two
// requests inside Go, one request's goroutine could touch its body from the
// other's turn ("Cannot perform I/O on behalf of a different request").
// So a request enters Go only after the previous one has finished all its
// I/O, response body included. Go runs one inference at a time anyway (one
// thread, and core.Model serializes), so nothing is lost.
let tail = Promise.resolve();
function inTurn(fn) {
  const run = tail.then(fn, fn);
  tail = run.then(
    () => {},
    () => {},
  );
  return run;
}

async function handle(request, env, ctx) {
  context.env = env;
  context.ctx = ctx;
  await start();
  const res = await context.binding.handleRequest(request);
  const body = await res.arrayBuffer(); // Go's body, read within this turn
  return new Response(body.byteLength > 0 ? body : null, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await inTurn(() => handle(request, env, ctx));
    } catch (err) {
      // Go recovers its own panics and answers 500 itself; this is the
      // last line for failures outside any handler (startup, exit).
      return failure(500, `worker: ${err && err.message ? err.message : String(err)}`, env);
    }
  },
};
