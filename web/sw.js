// residual's service worker: it keeps the page (HTML, CSS, JavaScript, the
// two .wasm builds, model lists and manifests) available offline. Requests
// go to the network first, so a new build is picked up at once, and the last
// good answer is served when the network is unreachable. Shards (*.bin) are
// not touched here: the classifier worker caches them itself, keyed by their
// sha256, so they are stored once and never fetched twice.
const SHELL_CACHE = 'residual-shell-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname.endsWith('.bin')) return;
  event.respondWith(networkFirst(req));
});

async function networkFirst(req) {
  const cache = await caches.open(SHELL_CACHE);
  try {
    const resp = await fetch(req);
    if (resp.ok) await cache.put(req, resp.clone());
    return resp;
  } catch (err) {
    const hit = await cache.match(req);
    if (hit) return hit;
    throw err;
  }
}
