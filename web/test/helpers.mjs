// Shared pieces of the browser tests: the static server (tools/serve, built
// by make), Debian's Chromium through playwright-core, the reference answers
// of tools/classify, and the test images.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
const fromTest = (p, dflt) => path.resolve(here, p || dflt);

export const cfg = {
  site: fromTest(process.env.RESIDUAL_SITE, '../../dist/web'),
  model: process.env.RESIDUAL_MODEL || 'resnet50-synthetic',
  modelDir: fromTest(process.env.RESIDUAL_MODEL_DIR, '../../weights/resnet50-synthetic'),
  serve: fromTest(process.env.RESIDUAL_SERVE, '../../dist/bin/serve'),
  classify: fromTest(process.env.RESIDUAL_CLASSIFY, '../../dist/bin/classify'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  artifacts: path.join(here, 'artifacts'),
};

// startServer runs tools/serve on a free port with an access log, and
// resolves once it prints its address.
export async function startServer({ logFile, prefix = '/' } = {}) {
  logFile ||= path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'residual-serve-')), 'access.log');
  const proc = spawn(cfg.serve, ['-addr', '127.0.0.1:0', '-dir', cfg.site, '-prefix', prefix, '-log', logFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/at (http:\/\/\S+\/)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    logFile,
    // requests lists the logged requests as {method, path, status}.
    requests() {
      const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
      return text.split('\n').filter(Boolean).map((line) => {
        const [method, p, status] = line.split(' ');
        return { method, path: p, status: Number(status) };
      });
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

// launch starts headless Chromium with a fresh profile. webgpu turns WebGPU
// on (Chromium's SwiftShader adapter where there is no GPU).
export async function launch(viewport = { width: 1280, height: 900 }, { webgpu = false } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'residual-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: cfg.chromium,
    headless: true,
    viewport,
    args: [
      '--no-sandbox', webgpu ? '--enable-unsafe-webgpu' : '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

// photoPaths gives three real photographs in three formats: from
// testdata/photos (see its README), else frames from Go's image/jpeg test data.
export async function photoPaths() {
  const dir = path.join(root, 'testdata', 'photos');
  const wanted = ['video-001.jpeg', 'yellow_rose.png', 'blue-purple-pink.lossless.webp'].map((f) => path.join(dir, f));
  if (wanted.every((f) => fs.existsSync(f))) return wanted;
  const { stdout } = await promisify(execFile)('go', ['env', 'GOROOT'], { cwd: root });
  const td = path.join(stdout.trim(), 'src', 'image', 'testdata');
  return ['video-001.jpeg', 'video-005.gray.jpeg', 'video-001.png'].map((f) => path.join(td, f));
}

export function mimeType(file) {
  const ext = path.extname(file).toLowerCase().slice(1);
  return { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif' }[ext]
    || 'application/octet-stream';
}

// reference runs tools/classify -json on files and returns {basename: top}.
export async function reference(files, { crops = 1, top = 5, camDir = '' } = {}) {
  const args = ['-json', '-model', cfg.modelDir, '-top', String(top), '-crops', String(crops),
    ...(camDir ? ['-cam', camDir] : []), ...files];
  let stdout;
  try {
    ({ stdout } = await promisify(execFile)(cfg.classify, args, { maxBuffer: 1 << 24 }));
  } catch (err) {
    stdout = err.stdout; // exit status 1 when some file failed; the lines are still there
    if (!stdout) throw err;
  }
  const out = {};
  for (const line of stdout.split('\n').filter(Boolean)) {
    const r = JSON.parse(line);
    out[path.basename(r.file)] = r;
  }
  return out;
}

// cards reads the DOM contract: every finished card with its predictions.
export function readCards(page) {
  return page.$$eval('[data-file]', (els) => els.map((el) => ({
    file: el.dataset.file,
    error: el.dataset.error ?? null,
    ms: Number(el.dataset.ms || 0),
    top: [...el.querySelectorAll('[data-class-index]')].map((p) => ({
      index: Number(p.dataset.classIndex),
      prob: Number(p.dataset.prob),
    })),
  })));
}
