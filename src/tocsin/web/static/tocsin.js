"use strict";
// Shared client of every Tocsin page: login and tokens, API calls, the live feed.
//
//   await Tocsin.login(username, password, totp)      store a device session
//   await Tocsin.api("POST", "/api/v1/...", body)      JSON in and out; refreshes an
//                                                      expired access token once
//   Tocsin.requireLogin()                              send to the login page if needed
//   Tocsin.live((event) => ...)                        live domain events (websocket)
//   Tocsin.renderTopbar()                              the header with modules and logout
//
// Errors thrown by api() carry the server's machine-readable `code` and `status`.
const Tocsin = (function () {
  const KEY = "tocsin.auth";
  let meCache = null;

  const MODULES = [
    { id: "dispatch", title: "Dispatch", href: "/dispatch",
      roles: ["call_taker", "dispatcher", "commander", "patrol_officer", "administrator"] },
    { id: "unit", title: "My unit", href: "/unit", roles: ["patrol_officer"] },
    { id: "operations", title: "Operations", href: "/operations",
      roles: ["commander", "dispatcher", "patrol_officer", "analyst"] },
    { id: "cases", title: "Investigations", href: "/cases", roles: ["investigator", "analyst"] },
    { id: "messenger", title: "Messenger", href: "/messenger",
      roles: ["call_taker", "dispatcher", "patrol_officer", "commander", "investigator",
              "analyst", "administrator", "auditor"] },
    { id: "ledger", title: "Audit log", href: "/ledger", roles: ["auditor"] },
  ];

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message); this.status = status; this.code = code; this.details = details;
    }
  }

  function stored() {
    try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch (e) { return null; }
  }
  function store(tokens) { localStorage.setItem(KEY, JSON.stringify(tokens)); }
  function forget() { localStorage.removeItem(KEY); meCache = null; }
  function loggedIn() { return !!stored(); }

  function deviceName() {
    const ua = navigator.userAgent;
    const kind = /Mobi|Android|iPhone/.test(ua) ? "phone" : "desktop";
    const browser = (ua.match(/(Firefox|Chrome|Chromium|Safari|Edg)\/[\d]+/) || ["browser"])[0];
    return `${browser} on ${kind}`;
  }

  async function login(username, password, totp_code) {
    const r = await fetch("/api/v1/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password, totp_code: totp_code || null,
                             device_name: deviceName() }),
    });
    const body = await r.json();
    if (!r.ok) throw new ApiError(r.status, body.error.code, body.error.message, body.error.details);
    store(body);
    meCache = null;
    return body;
  }

  let refreshing = null;
  async function refresh() {
    const auth = stored();
    if (!auth) throw new ApiError(401, "token_missing", "not logged in");
    if (!refreshing) {
      refreshing = (async () => {
        const r = await fetch("/api/v1/auth/refresh", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: auth.refresh_token }),
        });
        const body = await r.json();
        if (!r.ok) { forget(); throw new ApiError(r.status, body.error.code, body.error.message); }
        store(body);
        return body;
      })().finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function api(method, path, body, opts = {}) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const auth = stored();
      const headers = Object.assign({}, opts.headers || {});
      if (auth) headers["Authorization"] = `Bearer ${auth.access_token}`;
      let payload = undefined;
      if (body instanceof Blob || body instanceof FormData || body instanceof ArrayBuffer) {
        payload = body;
      } else if (body !== undefined && body !== null) {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
      const r = await fetch(path, { method, headers, body: payload });
      if (r.status === 401 && attempt === 0) {
        let code = null;
        try { code = (await r.clone().json()).error.code; } catch (e) {}
        if (code === "token_expired") { await refresh(); continue; }
        if (["session_revoked", "session_expired", "account_disabled"].includes(code)) {
          onRevoked();
        }
      }
      if (opts.raw) return r;
      if (r.status === 204) return null;
      const text = await r.text();
      const data = text ? JSON.parse(text) : null;
      if (!r.ok) {
        const e = (data && data.error) || {};
        throw new ApiError(r.status, e.code || `http_${r.status}`, e.message || r.statusText, e.details);
      }
      return data;
    }
  }

  const revokedHandlers = [];
  function onRevoked() {
    forget();
    for (const h of revokedHandlers) { try { h(); } catch (e) {} }
    if (!revokedHandlers.length) location.href = "/?revoked=1";
  }

  async function me() {
    if (!meCache) meCache = await api("GET", "/api/v1/auth/whoami");
    return meCache;
  }

  function requireLogin() {
    if (!loggedIn()) {
      location.href = "/?next=" + encodeURIComponent(location.pathname + location.search);
      return false;
    }
    return true;
  }

  async function logout() {
    try { await api("POST", "/api/v1/auth/logout"); } catch (e) {}
    forget();
    location.href = "/";
  }

  // Live feed: one websocket, re-opened with backoff; handlers get each event dict.
  function live(onEvent, onStatus) {
    let ws = null, closedByUs = false, delay = 500;
    function open() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(`${proto}//${location.host}/api/v1/live`);
      ws.onopen = () => {
        const auth = stored();
        ws.send(JSON.stringify({ type: "auth", access_token: auth ? auth.access_token : "" }));
      };
      ws.onmessage = async (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === "ready") { delay = 500; onStatus && onStatus("live"); }
        else if (msg.type === "event") onEvent(msg.event);
        else if (msg.type === "closed" && msg.code === 4401) { closedByUs = true; onRevoked(); }
        else if (msg.type === "error" && msg.code === "token_expired") {
          try { await refresh(); } catch (e) { closedByUs = true; onRevoked(); }
        } else if (msg.type === "error") { closedByUs = true; onRevoked(); }
      };
      ws.onclose = () => {
        onStatus && onStatus("offline");
        if (closedByUs) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    open();
    return { close() { closedByUs = true; ws && ws.close(); } };
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  async function renderTopbar(title) {
    const bar = document.getElementById("topbar");
    if (!bar) return;
    const user = await me();
    bar.replaceChildren(
      el("a", { href: "/", class: "brand" }, "Tocsin"),
      title ? el("span", { class: "page-title" }, title) : null,
      el("nav", {}, MODULES.filter((m) => m.roles.some((r) => user.roles.includes(r)))
        .map((m) => el("a", { href: m.href, class: location.pathname === m.href ? "active" : "" }, m.title))),
      el("span", { class: "whoami", id: "whoami" }, user.display_name),
      el("span", { class: "live-status", id: "live-status" }, ""),
      el("button", { class: "link", id: "logout", onclick: logout }, "Log out"),
    );
  }

  function setLiveStatus(state) {
    const s = document.getElementById("live-status");
    if (s) { s.textContent = state === "live" ? "● live" : "○ offline"; s.className = "live-status " + state; }
  }

  return { MODULES, ApiError, login, logout, api, refresh, me, loggedIn, forget, requireLogin,
           live, el, renderTopbar, setLiveStatus, onRevoked: (h) => revokedHandlers.push(h),
           auth: stored };
})();
