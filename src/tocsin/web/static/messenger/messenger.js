"use strict";
// Tocsin messenger: the Matrix client-server API plus /api/v1/messaging, from a phone or a desk.
// Offline: recent messages are kept locally and sends are queued with their transaction id,
// so a resend after reconnection is stored once (the server deduplicates by device + txn id).
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  const C3 = "/_matrix/client/v3";
  const STORE = "tocsin.msg.cache";
  const OUTBOX = "tocsin.msg.outbox";
  let me = null, myMx = null, rooms = [], current = null, live = null;
  const timelines = {};   // room_id -> [event]
  const seen = new Set(); // event ids shown
  const arriving = {};    // room_id -> live events received while its page loads
  const blobUrls = {};

  // Local store (wiped when the device is revoked) ------------------------------
  function load(key, dflt) { try { return JSON.parse(localStorage.getItem(key)) || dflt; } catch (e) { return dflt; } }
  function save(key, v) { try { localStorage.setItem(key, JSON.stringify(v)); } catch (e) {} }
  function persist() {
    const keep = {};
    for (const [r, evs] of Object.entries(timelines)) keep[r] = evs.slice(-50);
    save(STORE, { stream: lastStream, rooms, timelines: keep });
  }
  async function wipe() {
    for (const k of [STORE, OUTBOX]) localStorage.removeItem(k);
    if (window.caches) for (const k of await caches.keys()) await caches.delete(k);
    if (navigator.serviceWorker) for (const r of await navigator.serviceWorker.getRegistrations()) await r.unregister();
  }
  let lastStream = 0;

  // HTTP ---------------------------------------------------------------------
  async function mx(method, path, body, raw) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const auth = Tocsin.auth();
      const headers = { Authorization: `Bearer ${auth ? auth.access_token : ""}` };
      let payload;
      if (raw) { payload = body; headers["Content-Type"] = raw; }
      else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
      const r = await fetch(path, { method, headers, body: payload });
      if (r.ok) return r;
      let err = {};
      try { err = await r.clone().json(); } catch (e) {}
      const code = err["org.tocsin.code"] || (err.error && err.error.code);
      if (r.status === 401 && code === "token_expired" && attempt === 0) { await Tocsin.refresh(); continue; }
      if (r.status === 401 && ["session_revoked", "session_expired", "account_disabled"].includes(code)) {
        await revoked(); throw new Error("revoked");
      }
      const e = new Error(err.error && err.error.message || err.error || r.statusText);
      e.status = r.status; e.code = code || err.errcode; throw e;
    }
  }
  const mxJson = async (...a) => (await mx(...a)).json();

  async function revoked() {
    await wipe();
    Tocsin.forget();
    location.href = "/?revoked=1";
  }

  // Rooms ----------------------------------------------------------------------
  async function loadRooms() {
    rooms = await Tocsin.api("GET", "/api/v1/messaging/rooms");
    renderRooms();
    persist();
  }
  function renderRooms() {
    const ul = $("rooms");
    ul.replaceChildren(...rooms.map((r) => el("li", {
      class: r.room_id === current ? "active" : "", "data-room": r.room_id,
      onclick: () => openRoom(r.room_id),
    }, el("span", {}, (r.membership === "invite" ? "✉ " : "") + (r.name || r.kind)),
       r.unread ? el("span", { class: "unread" }, String(r.unread)) : null)));
  }

  async function openRoom(roomId) {
    current = roomId;
    const room = rooms.find((r) => r.room_id === roomId);
    if (room && room.membership === "invite") {
      await mx("POST", `${C3}/rooms/${encodeURIComponent(roomId)}/join`, {});
      await loadRooms();
    }
    $("room-title").textContent = room ? (room.name || room.kind) : roomId;
    $("composer").hidden = !(room && room.can_post);
    renderRooms();
    // Live events that arrive while the page loads are kept aside: the page may have been
    // read before they were committed, and replacing the timeline with it would drop them.
    const arrived = arriving[roomId] = [];
    try {
      const page = await mxJson("GET", `${C3}/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`);
      const tl = page.chunk.reverse();
      for (const e of arrived) addEvent(tl, e);
      timelines[roomId] = tl;
      persist();
    } catch (e) {
      if (!navigator.onLine || e.message === "Failed to fetch") setStatus("offline: showing saved messages");
      else { setStatus(e.message); timelines[roomId] = []; }
    } finally {
      if (arriving[roomId] === arrived) delete arriving[roomId];
    }
    if (current === roomId) { renderTimeline(); markRead(); }
  }

  function addEvent(tl, e) {
    if (!tl.some((x) => x.event_id === e.event_id)) tl.push(e);
    if (e.type === "m.room.redaction") {
      const t = tl.find((x) => x.event_id === e.redacts);
      if (t) t.unsigned = Object.assign({}, t.unsigned, { redacted_because: { event_id: e.event_id } });
    }
  }

  function renderTimeline() {
    const ol = $("timeline");
    const evs = (timelines[current] || []);
    const edits = {};
    for (const e of evs) {
      const rel = e.content && e.content["m.relates_to"];
      if (rel && rel.rel_type === "m.replace" && e.content["m.new_content"]) edits[rel.event_id] = e.content["m.new_content"];
    }
    ol.replaceChildren();
    for (const e of evs) {
      const node = renderEvent(e, edits);
      if (node) ol.appendChild(node);
    }
    for (const p of load(OUTBOX, []).filter((o) => o.room === current)) {
      ol.appendChild(el("li", { class: "pending", "data-txn": p.txn }, el("span", { class: "who" }, "you"), p.content.body, " (queued)"));
    }
    ol.scrollTop = ol.scrollHeight;
  }

  function who(e) { return e.sender === myMx ? "you" : e.sender.slice(1).split(":")[0]; }

  function renderEvent(e, edits) {
    const c = e.content || {};
    const rel = c["m.relates_to"] || {};
    if (rel.rel_type === "m.replace" || e.type === "m.reaction" || e.type === "m.room.redaction") return null;
    if (e.unsigned && e.unsigned.redacted_because) {
      return el("li", { class: "redacted", "data-event": e.event_id }, "message deleted");
    }
    if (isAlert(e)) return alertCard(e);
    if (e.type === "m.room.member") return el("li", { class: "muted" }, `${e.state_key.slice(1).split(":")[0]}: ${c.membership}`);
    if (e.type !== "m.room.message" && e.type !== "org.tocsin.alert.update") return null;
    const body = (edits[e.event_id] && edits[e.event_id].body) || c.body || "";
    const li = el("li", { "data-event": e.event_id }, el("span", { class: "who" }, who(e)), body,
      edits[e.event_id] ? el("span", { class: "muted" }, " (edited)") : null);
    if ((c.msgtype === "m.image" || c.msgtype === "m.video") && c.url) {
      const img = el("img", { class: "thumb", alt: c.body || "photo" });
      showMedia(img, (c.info && c.info.thumbnail_url) || c.url);
      img.onclick = () => showMedia(img, c.url);
      li.appendChild(img);
    }
    if (e.sender === myMx && !e.unsigned?.redacted_because) {
      li.appendChild(el("button", { class: "link", title: "delete", onclick: () => redact(e.event_id) }, " ✕"));
    }
    return li;
  }

  async function showMedia(img, mxc) {
    const id = mxc.split("/").pop();
    if (!blobUrls[id]) {
      const r = await mx("GET", `/_matrix/client/v1/media/download/${mxc.slice(6)}`);
      blobUrls[id] = URL.createObjectURL(await r.blob());
    }
    img.src = blobUrls[id];
  }

  // Sending (queued offline, idempotent) ------------------------------------------
  function txnId() { return "web-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10); }

  async function queue(room, type, content) {
    const out = load(OUTBOX, []);
    out.push({ room, type, content, txn: txnId() });
    save(OUTBOX, out);
    renderTimeline();
    await flush();
  }

  let flushing = false;
  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      let out = load(OUTBOX, []);
      while (out.length) {
        const p = out[0];
        try {
          await mx("PUT", `${C3}/rooms/${encodeURIComponent(p.room)}/send/${p.type}/${p.txn}`, p.content);
        } catch (e) {
          if (e.status && e.status < 500 && e.status !== 429) { setStatus(`not sent: ${e.message}`); }
          else { setStatus("offline: message queued"); return; }
        }
        out = load(OUTBOX, []).filter((o) => o.txn !== p.txn);
        save(OUTBOX, out);
      }
      setStatus("");
    } finally { flushing = false; renderTimeline(); }
  }

  async function redact(eventId) {
    await mx("PUT", `${C3}/rooms/${encodeURIComponent(current)}/redact/${encodeURIComponent(eventId)}/${txnId()}`, { reason: "deleted by sender" });
  }

  async function uploadFile(file, scene, roomId) {
    // Resumable: 1 MiB chunks; a dropped connection resumes at the server's offset.
    const start = await Tocsin.api("POST", "/api/v1/messaging/uploads",
      { size: file.size, filename: file.name, room_id: roomId || null, scene: !!scene });
    let offset = 0;
    while (offset < file.size) {
      const chunk = file.slice(offset, offset + (1 << 20));
      try {
        const r = await Tocsin.api("PUT", `/api/v1/messaging/uploads/${start.upload_id}?offset=${offset}`, chunk);
        offset = r.received;
      } catch (e) {
        if (e.code === "media.bad_offset") { offset = e.details.received; continue; }
        throw e;
      }
      setStatus(`uploading ${Math.round(100 * offset / file.size)} %`);
    }
    setStatus("");
    return Tocsin.api("POST", `/api/v1/messaging/uploads/${start.upload_id}/complete`);
  }

  async function onSend(ev) {
    ev.preventDefault();
    const text = $("text").value.trim();
    const file = $("file").files[0];
    if (!current || (!text && !file)) return;
    try {
      if (file) {
        const done = await uploadFile(file, $("scene").checked, current);
        const msgtype = done.content_type.startsWith("video/") ? "m.video" : "m.image";
        await queue(current, "m.room.message", { msgtype, body: text || file.name, url: done.content_uri,
          info: { mimetype: done.content_type, thumbnail_url: done.thumbnail_uri || undefined },
          "org.tocsin.scene": $("scene").checked || undefined });
      } else {
        await queue(current, "m.room.message", { msgtype: "m.text", body: text });
      }
      // clear what was sent, not what was typed or chosen while it was being sent
      if ($("text").value.trim() === text) $("text").value = "";
      if (file && $("file").files[0] === file) { $("file").value = ""; $("scene").checked = false; }
    } catch (e) { setStatus(e.message); }
  }

  function markRead() {
    const evs = timelines[current] || [];
    const last = evs[evs.length - 1];
    if (!last || last.event_id.startsWith("$member-")) return;
    mx("POST", `${C3}/rooms/${encodeURIComponent(current)}/receipt/m.read/${encodeURIComponent(last.event_id)}`, {}).catch(() => {});
  }

  // Alerts ---------------------------------------------------------------------
  let alerts = [];
  async function loadAlerts() {
    alerts = await Tocsin.api("GET", "/api/v1/messaging/alerts");
    const box = $("alerts");
    box.replaceChildren(...alerts.map((a) => el("div", { class: "alert-card " + a.status, "data-alert": a.alert_id },
      el("strong", {}, a.title), el("div", { class: "muted ack-summary" }, a.summary),
      a.you_acknowledged ? el("span", { class: "badge" }, "acknowledged")
        : el("button", { class: "danger ack", onclick: () => ack(a.alert_id) }, "Acknowledge"))));
  }
  async function ack(id) { await Tocsin.api("POST", `/api/v1/messaging/alerts/${id}/ack`); await loadAlerts(); }

  // An alert is an m.room.message carrying "org.tocsin.alert" (older servers: its own
  // event type); its updates are notices replying to it with "org.tocsin.alert.update".
  function isAlert(e) {
    return e.type === "org.tocsin.alert" || (e.type === "m.room.message" && !!(e.content || {})["org.tocsin.alert"]);
  }
  function isAlertUpdate(e) {
    return e.type === "org.tocsin.alert.update" || (e.type === "m.room.message" && !!(e.content || {})["org.tocsin.alert.update"]);
  }

  function alertCard(e) {
    const a = e.content["org.tocsin.alert"] || {};
    const li = el("li", { class: "alert-card", "data-event": e.event_id },
      el("strong", {}, "ALERT: " + (a.title || "")), el("div", {}, a.description || ""));
    if (a.photo) {
      const img = el("img", { class: "thumb", alt: a.title || "alert photo" });
      const info = e.content.info || {};
      showMedia(img, info.thumbnail_url || a.photo);
      img.onclick = () => showMedia(img, a.photo);
      li.appendChild(img);
    }
    return li;
  }

  async function onAlert(ev) {
    ev.preventDefault();
    try {
      let photo = null;
      const f = $("alert-photo").files[0];
      if (f) photo = (await uploadFile(f, false, null)).content_uri;
      const units = $("alert-units").value.split(",").map((s) => s.trim()).filter(Boolean);
      await Tocsin.api("POST", "/api/v1/messaging/alerts", { kind: $("alert-kind").value,
        title: $("alert-title").value, description: $("alert-desc").value, unit_codes: units, photo });
      $("alert-form").reset();
      await loadAlerts(); await loadRooms();
    } catch (e) { setStatus(e.message); }
  }

  // Devices --------------------------------------------------------------------
  async function loadDevices() {
    const sessions = await Tocsin.api("GET", "/api/v1/auth/sessions");
    $("devices").replaceChildren(...sessions.filter((s) => !s.revoked_at).map((s) => el("li", { "data-device": s.id },
      s.device_name + (s.current ? " (this device)" : " "),
      s.current ? null : el("button", { class: "danger revoke", onclick: async () => {
        await Tocsin.api("DELETE", `/api/v1/auth/sessions/${s.id}`); loadDevices(); } }, "Log out"))));
  }

  // Directory ------------------------------------------------------------------
  let dmTimer = null;
  function onDmInput() {
    clearTimeout(dmTimer);
    const q = $("dm-user").value.trim();
    if (q.length < 2) { $("dm-hits").replaceChildren(); return; }
    dmTimer = setTimeout(async () => {
      const hits = await Tocsin.api("GET", `/api/v1/messaging/users?q=${encodeURIComponent(q)}`);
      $("dm-hits").replaceChildren(...hits.filter((h) => h.user_id !== myMx).map((h) => el("li", {},
        el("button", { class: "link", onclick: async (e) => { e.preventDefault(); await startDm(h.user_id); } },
          `${h.display_name} (${h.unit_code})`))));
    }, 250);
  }
  async function startDm(userId) {
    const r = await mxJson("POST", `${C3}/createRoom`, { is_direct: true, invite: [userId] });
    $("dm-user").value = ""; $("dm-hits").replaceChildren();
    await loadRooms(); await openRoom(r.room_id);
  }

  // Live -----------------------------------------------------------------------
  function connect() {
    let delay = 500;
    function open() {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/messaging/ws`);
      ws.onopen = () => {
        const auth = Tocsin.auth();
        ws.send(JSON.stringify({ type: "auth", access_token: auth ? auth.access_token : "", since: lastStream || undefined }));
      };
      ws.onmessage = (m) => onLive(JSON.parse(m.data));
      ws.onclose = async (ev) => {
        Tocsin.setLiveStatus("offline");
        if (ev.code === 4401) {
          // revoked, or an expired token: refresh once; a revoked device is wiped
          try { await Tocsin.refresh(); } catch (e) { await revoked(); return; }
        }
        setTimeout(open, delay); delay = Math.min(delay * 2, 15000);
      };
    }
    open();
  }

  function onLive(msg) {
    if (msg.type === "ready") {
      Tocsin.setLiveStatus("live");
      if (msg.stream > lastStream) lastStream = msg.stream;
      flush(); loadRooms();
    } else if (msg.type === "event") {
      lastStream = Math.max(lastStream, msg.stream);
      const e = msg.event;
      if (seen.has(e.event_id)) return;
      seen.add(e.event_id);
      addEvent(timelines[msg.room_id] || (timelines[msg.room_id] = []), e);
      if (arriving[msg.room_id]) arriving[msg.room_id].push(e);
      if (isAlert(e) || isAlertUpdate(e)) loadAlerts();
      if (e.type === "m.room.member" && e.state_key === myMx && e.content.membership !== "join") {
        delete timelines[msg.room_id];
        if (current === msg.room_id) { current = null; $("timeline").replaceChildren(); $("composer").hidden = true; }
      }
      persist();
      if (msg.room_id === current) { renderTimeline(); markRead(); } else loadRooms();
      if (!rooms.some((r) => r.room_id === msg.room_id)) loadRooms();
    } else if (msg.type === "typing") {
      if (msg.room_id === current) {
        const others = msg.user_ids.filter((u) => u !== myMx).map((u) => u.slice(1).split(":")[0]);
        $("typing").textContent = others.length ? `${others.join(", ")} typing…` : "";
      }
    } else if (msg.type === "alert") {
      loadAlerts();
    } else if (msg.type === "reset") {
      lastStream = msg.stream;
      if (current) openRoom(current);
    }
  }

  let typingSent = 0;
  function onTyping() {
    if (!current || Date.now() - typingSent < 4000) return;
    typingSent = Date.now();
    mx("PUT", `${C3}/rooms/${encodeURIComponent(current)}/typing/${encodeURIComponent(myMx)}`, { typing: true, timeout: 6000 }).catch(() => {});
  }

  function setStatus(t) { $("status").textContent = t; }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    Tocsin.onRevoked(() => { revoked(); });
    const cached = load(STORE, null);
    if (cached) {
      lastStream = cached.stream || 0; rooms = cached.rooms || [];
      Object.assign(timelines, cached.timelines || {});
      renderRooms();
    }
    $("composer").addEventListener("submit", onSend);
    $("text").addEventListener("input", onTyping);
    $("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); onSend(e); } });
    $("alert-form").addEventListener("submit", onAlert);
    $("dm-user").addEventListener("input", onDmInput);
    $("new-dm").addEventListener("submit", (e) => e.preventDefault());
    window.addEventListener("online", flush);
    if (navigator.serviceWorker) navigator.serviceWorker.register("/messenger-sw.js", { scope: "/" }).catch(() => {});
    try {
      me = await Tocsin.me();
      myMx = (await mxJson("GET", `${C3}/account/whoami`)).user_id;
      await Tocsin.renderTopbar("Messenger");
      $("alert-compose").hidden = !me.roles.some((r) => ["commander", "dispatcher", "administrator"].includes(r));
      await Promise.all([loadRooms(), loadAlerts(), loadDevices()]);
    } catch (e) {
      if (e.message === "revoked") return;
      setStatus("offline: showing saved messages");
    }
    connect();
    const want = new URLSearchParams(location.search).get("room");
    if (want) openRoom(want);
  });
})();
