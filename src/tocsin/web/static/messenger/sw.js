"use strict";
// Service worker: the messenger's shell works offline. Only local static files are
// cached; messages live in the page's own store and are wiped when the device is revoked.
const CACHE = "tocsin-messenger-v1";
const SHELL = ["/messenger", "/static/tocsin.js", "/static/tocsin.css",
  "/static/messenger/messenger.js", "/static/messenger/messenger.css",
  "/static/messenger/manifest.json", "/static/messenger/icon.svg"];

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()));
});
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  if (!SHELL.includes(url.pathname)) return;  // API and media: always the network
  e.respondWith(fetch(e.request).then((r) => {
    const copy = r.clone();
    caches.open(CACHE).then((c) => c.put(e.request, copy));
    return r;
  }).catch(() => caches.match(e.request)));
});
