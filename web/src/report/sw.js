// The citizen's page's service worker (scope /report/): it keeps the page, its
// scripts and styles, and the public data it starts from (categories, map settings,
// communes), so that the page opens again without signal and a report can be made and
// kept in the outbox. The page and the data are asked of the network first, and taken
// from the cache only when it does not answer; nothing personal is ever cached (the
// tracking calls and every write go to the network only). When the browser hands it a
// background sync, it sends the reports kept in the outbox (outbox.js), even while the
// page is closed. Bundled by build.mjs with what it imports.
import { SYNC_TAG, sendWaiting } from './outbox.js';

// Filled in by build.mjs: the page's files, and a version that changes with them.
const FILES = [];
const VERSION = 'dev';
const CACHE = `dothi-report-${VERSION}`;
const PAGE = '/report/';
const DATA = new Set(['/reports/v1/categories', '/public/api/config', '/public/api/communes']);

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll([PAGE, ...FILES]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('dothi-report-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const answer = await fetch(request);
    if (answer.ok) await cache.put(key, answer.clone());
    return answer;
  } catch (error) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/assets/')) {
    // Content-hashed: a kept copy is always right.
    event.respondWith(caches.match(request).then((kept) => kept || fetch(request)));
  } else if (request.mode === 'navigate' && url.pathname.startsWith('/report/')) {
    // The form and the tracking page are one page.
    event.respondWith(networkFirst(request, PAGE));
  } else if (DATA.has(url.pathname)) {
    event.respondWith(networkFirst(request, url.pathname));
  }
});

self.addEventListener('sync', (event) => {
  if (event.tag !== SYNC_TAG) return;
  event.waitUntil(
    sendWaiting().then(async ({ retry, sent }) => {
      if (sent) {
        for (const client of await self.clients.matchAll({ type: 'window' })) client.postMessage({ type: 'reports-sent' });
      }
      // A failed sync is tried again by the browser later, with its own back-off.
      if (retry) throw new Error('the reports still wait for the network');
    }),
  );
});
