"use strict";
// Operations page: situation map (sectors, points, units live, reports, incidents),
// journal, orders, drawing sectors by clicking corners, the officer's own unit
// (share position, field report with photo) and a time slider to replay the past.
const OpsPage = (function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  const S = { map: null, op: null, opId: null, ws: null, positions: {}, replay: null,
              layers: {}, drawing: null, lastFix: null, watch: null, photoUrls: {} };

  function fmt(t) { return t ? new Date(t).toLocaleTimeString() : ""; }
  function showError(e) { $("op-error").textContent = e ? (e.message || String(e)) : ""; }

  async function photoUrl(sha) {
    if (!S.photoUrls[sha]) {
      const r = await Tocsin.api("GET", `/api/v1/operations/${S.opId}/photos/${sha}`, null, { raw: true });
      if (!r.ok) return null;
      S.photoUrls[sha] = URL.createObjectURL(await r.blob());
    }
    return S.photoUrls[sha];
  }

  // Lists ----------------------------------------------------------------------
  async function loadList() {
    const me = await Tocsin.me();
    $("op-create-form").hidden = !me.roles.includes("commander");
    const ops = await Tocsin.api("GET", "/api/v1/operations");
    $("op-list").replaceChildren(...ops.map((o) => el("li", {},
      el("a", { href: `/operations?id=${o.id}`, "data-id": o.id, onclick: (ev) => {
        ev.preventDefault(); history.pushState(null, "", `/operations?id=${o.id}`); open(o.id);
      } }, o.name), " ", el("span", { class: "badge" }, o.status))));
  }

  async function create(ev) {
    ev.preventDefault();
    try {
      const op = await Tocsin.api("POST", "/api/v1/operations", { name: $("op-name").value });
      $("op-name").value = "";
      history.pushState(null, "", `/operations?id=${op.id}`);
      await loadList();
      await open(op.id);
    } catch (e) { $("ops-error").textContent = e.message; }
  }

  // One operation -------------------------------------------------------------------
  async function open(id) {
    S.opId = id; S.positions = {}; S.replay = null;
    if (S.ws) S.ws.close();
    await refresh();
    $("op-panel").hidden = false;
    connect();
    const start = new Date(S.op.starts_at).getTime();
    const slider = $("replay-slider");
    slider.min = String(start); slider.max = String(Date.now()); slider.value = slider.max;
    await loadJournal();
    await loadOrders();
    fitMap();
  }

  async function refresh() {
    S.op = await Tocsin.api("GET", `/api/v1/operations/${S.opId}`);
    renderOp();
  }

  function view() { return S.replay || S.op; }

  function renderOp() {
    const op = view();
    $("op-title").textContent = S.op.name;
    $("op-meta").textContent = `${S.op.status} · since ${new Date(S.op.starts_at).toLocaleString()} · commander ${S.op.commander.name || ""}`;
    $("manage-tools").hidden = !S.op.may_manage || !!S.replay;
    const mine = S.op.units.filter((u) => S.op.my_units.includes(u.id));
    $("my-unit").hidden = !mine.length || !!S.replay;
    $("my-callsign").textContent = mine.map((u) => u.callsign).join(", ");
    $("sectors").replaceChildren(...op.sectors.map((s) => el("li", { "data-id": s.id }, s.name)));
    const sectors = Object.fromEntries(op.sectors.map((s) => [s.id, s.name]));
    const rows = op.units.map((u) => {
      const pos = (S.replay ? S.replayPositions : S.positions)[u.id];
      let sectorCell = sectors[u.sector_id] || "–";
      if (S.op.may_manage && !S.replay) {
        sectorCell = el("select", { class: "sector", onchange: (ev) => assign(u, ev.target.value) },
          el("option", { value: "" }, "–"),
          ...op.sectors.map((s) => el("option", { value: s.id, selected: s.id === u.sector_id }, s.name)));
      }
      return el("tr", { id: `unit-row-${u.id}` }, el("td", {}, u.callsign), el("td", {}, u.status),
        el("td", {}, sectorCell),
        el("td", { class: "pos" }, pos ? `${pos.lat.toFixed(5)}, ${pos.lon.toFixed(5)} (${fmt(pos.at)})` : ""));
    });
    $("units").querySelector("tbody").replaceChildren(...rows);
    drawStructure();
    drawUnits();
  }

  async function assign(u, value) {
    const sector_id = value ? Number(value) : null;
    try {
      await Tocsin.api("PUT", `/api/v1/operations/${S.opId}/units/${u.id}/sector`, { sector_id });
    } catch (e) {
      if (e.code === "unit.already_assigned" && confirm(`${e.message}. Move it?`)) {
        await Tocsin.api("PUT", `/api/v1/operations/${S.opId}/units/${u.id}/sector`, { sector_id, reassign: true });
      } else showError(e);
    }
    await refresh();
  }

  // Map -------------------------------------------------------------------------------
  const POINT_COLORS = { checkpoint: "#f5a524", command_post: "#3d8bfd", assembly_area: "#30a46c",
                         restricted_zone: "#e5484d" };
  function layer(name) {
    if (!S.layers[name]) S.layers[name] = L.layerGroup().addTo(S.map);
    return S.layers[name];
  }
  function drawStructure() {
    const op = view();
    const g = layer("structure"); g.clearLayers();
    for (const s of op.sectors) {
      L.geoJSON(s.geometry, { style: { color: "#3d8bfd", weight: 2, fillOpacity: 0.08 } })
        .bindTooltip(s.name, { permanent: true, direction: "center", className: "sector-label" }).addTo(g);
    }
    for (const p of op.points) {
      const c = POINT_COLORS[p.kind] || "#8ea0b3";
      if (p.geometry.type === "Point") {
        TocsinMap.dot([p.geometry.coordinates[1], p.geometry.coordinates[0]], c, { radius: 5 })
          .bindTooltip(`${p.kind.replace("_", " ")}: ${p.name}`).addTo(g);
      } else {
        L.geoJSON(p.geometry, { style: { color: c, weight: 2, dashArray: "4 4", fillOpacity: 0.15 } })
          .bindTooltip(p.name).addTo(g);
      }
    }
  }
  function drawUnits() {
    const g = layer("units"); g.clearLayers();
    const positions = S.replay ? S.replayPositions : S.positions;
    const byId = Object.fromEntries(view().units.map((u) => [u.id, u]));
    for (const [id, p] of Object.entries(positions)) {
      const u = byId[id];
      if (!u) continue;
      TocsinMap.dot([p.lat, p.lon], u.status === "engaged" ? "#e5484d" : "#30a46c")
        .bindTooltip(u.callsign, { permanent: true, direction: "right" }).addTo(g);
    }
  }
  function fitMap() {
    const b = [];
    for (const s of S.op.sectors) for (const [x, y] of s.geometry.coordinates[0]) b.push([y, x]);
    if (b.length) S.map.fitBounds(b, { maxZoom: 15, padding: [20, 20] });
  }

  // Sector drawing: click corners, then name and finish ---------------------------------
  function startDraw() {
    S.drawing = { pts: [], line: L.polyline([], { color: "#f5a524", dashArray: "4 4" }).addTo(S.map) };
    $("draw-box").hidden = false; $("draw-count").textContent = "0";
  }
  function stopDraw() {
    if (S.drawing) S.map.removeLayer(S.drawing.line);
    S.drawing = null; $("draw-box").hidden = true;
  }
  async function finishDraw() {
    const pts = S.drawing ? S.drawing.pts : [];
    if (pts.length < 3) { showError("a sector needs at least three corners"); return; }
    const ring = pts.map((p) => [Number(p.lng.toFixed(6)), Number(p.lat.toFixed(6))]);
    ring.push(ring[0]);
    try {
      await Tocsin.api("POST", `/api/v1/operations/${S.opId}/sectors`, {
        name: $("sector-name").value || `Sector ${S.op.sectors.length + 1}`,
        geometry: { type: "Polygon", coordinates: [ring] } });
      $("sector-name").value = ""; showError(null); stopDraw(); await refresh();
    } catch (e) { showError(e); }
  }

  // Live ----------------------------------------------------------------------------------
  function connect() {
    const opId = S.opId;
    let closedByUs = false;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/operations/live`);
    S.ws = { close() { closedByUs = true; ws.close(); }, send(m) { if (ws.readyState === 1) ws.send(JSON.stringify(m)); } };
    // paced: the server sends the next positions frame once this one is applied ("seen"),
    // merged with whatever moved meanwhile, so a busy screen never falls behind
    // binary: positions come as packed rows (see decodePositions), a third of the JSON
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", access_token: (Tocsin.auth() || {}).access_token, operation_id: opId, paced: true, format: "binary" }));
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) {
        const rows = decodePositions(m.data);
        if (rows) applyPositions(rows);
        if (ws.readyState === 1) ws.send('{"type":"seen"}');
        return;
      }
      const msg = JSON.parse(m.data);
      if (msg.type === "ready") { Tocsin.setLiveStatus("live"); applyPositions(msg.positions); }
      else if (msg.type === "positions") { applyPositions(msg.u); if (ws.readyState === 1) ws.send('{"type":"seen"}'); }
      else if (msg.type === "event") onEvent(msg.event);
      else if (msg.type === "ack" && msg.rejected.length) $("share-status").textContent = "refused: " + msg.rejected[0].reason;
      else if (msg.type === "error" && msg.code === "token_expired") { Tocsin.refresh().catch(() => Tocsin.onRevoked && location.reload()); }
      else if (msg.type === "closed" && msg.code === 4401) { closedByUs = true; Tocsin.forget(); location.href = "/?revoked=1"; }
    };
    ws.onclose = () => { Tocsin.setLiveStatus("offline"); if (!closedByUs && S.opId === opId) setTimeout(connect, 1500); };
  }

  // A binary positions frame (tocsin.operations.positions.encode_binary): a 16-byte
  // header (u8 kind 1, u8 version 1, u16, u32 operation, u32 rows, u32) then 28 bytes a
  // row (u32 unit, i32 lat and lon in 1e-7 degrees, f64 epoch ms, f32 heading, f32 speed
  // with NaN for none), little-endian. Null when the frame is not one.
  function decodePositions(buf) {
    const v = new DataView(buf);
    if (buf.byteLength < 16 || v.getUint8(0) !== 1 || v.getUint8(1) !== 1) return null;
    const n = v.getUint32(8, true);
    if (buf.byteLength !== 16 + 28 * n) return null;
    const rows = new Array(n);
    for (let i = 0, o = 16; i < n; i++, o += 28) {
      const heading = v.getFloat32(o + 20, true), speed = v.getFloat32(o + 24, true);
      rows[i] = [v.getUint32(o, true), v.getInt32(o + 4, true) / 1e7, v.getInt32(o + 8, true) / 1e7,
                 v.getFloat64(o + 12, true), isNaN(heading) ? null : heading, isNaN(speed) ? null : speed];
    }
    return rows;
  }

  let pending = null;
  function applyPositions(rows) {
    for (const [id, lat, lon, at] of rows) S.positions[id] = { lat, lon, at };
    if (S.replay || pending) return;
    pending = requestAnimationFrame(() => { pending = null; if (!S.replay) renderOp(); });
  }

  let refreshTimer = null;
  function onEvent(ev) {
    const t = ev.type;
    if (t === "operations.journal.added") {
      const e = ev.payload.entry;
      if (!S.replay) { addJournal(e, true); if (e.kind === "order") loadOrders(); }
    } else if (t.startsWith("operations.order.")) {
      if (!S.replay) loadOrders();
    }
    if (/^operations\.(sector|point|unit|operation|participant|staff|phase)\./.test(t)) {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => { if (!S.replay) refresh(); }, 150);
    }
  }

  // Journal and orders -------------------------------------------------------------------
  async function loadJournal() {
    const kind = $("journal-kind").value;
    const rows = await Tocsin.api("GET", `/api/v1/operations/${S.opId}/journal${kind ? "?kind=" + kind : ""}`);
    renderJournal(rows);
  }
  function renderJournal(rows) {
    $("journal").replaceChildren();
    layer("reports").clearLayers();
    for (const e of rows) addJournal(e, false);
  }
  function addJournal(e, live) {
    const kind = $("journal-kind").value;
    if (live && kind && e.kind !== kind) return;
    const units = Object.fromEntries(view().units.map((u) => [u.id, u.callsign]));
    const li = el("li", { class: `k-${e.kind}`, "data-id": e.id },
      el("span", { class: "when" }, fmt(e.at)), el("span", { class: "badge" }, e.kind), " ",
      units[e.op_unit_id] ? el("b", {}, units[e.op_unit_id] + ": ") : null, e.text,
      e.rationale ? el("div", { class: "muted" }, "Rationale: " + e.rationale) : null);
    if (e.photo) {
      const img = el("img", { alt: "report photo", class: "report-photo" });
      photoUrl(e.photo).then((u) => { if (u) img.src = u; });
      li.appendChild(img);
    }
    $("journal").prepend(li);
    if (e.lat !== null && e.lat !== undefined) {
      const color = e.kind === "incident" ? "#e5484d" : "#f5a524";
      const m = TocsinMap.dot([e.lat, e.lon], color, { radius: 6 }).addTo(layer("reports"));
      m.bindPopup(() => {
        const box = el("div", {}, el("b", {}, e.kind), " ", e.text);
        if (e.photo) photoUrl(e.photo).then((u) => u && box.appendChild(el("img", { src: u, alt: "photo" })));
        return box;
      });
    }
  }
  async function loadOrders(rows) {
    rows = rows || await Tocsin.api("GET", `/api/v1/operations/${S.opId}/orders`);
    const units = Object.fromEntries(view().units.map((u) => [u.id, u.callsign]));
    $("orders").replaceChildren(...rows.map((o) => {
      const mineUnit = S.op.my_units.includes(o.op_unit_id);
      const act = (a) => el("button", { class: "secondary", onclick: async () => {
        try { await Tocsin.api("POST", `/api/v1/operations/${S.opId}/orders/${o.id}/${a}`); loadOrders(); } catch (e) { showError(e); } } }, a);
      return el("li", { class: o.overdue ? "overdue" : "" }, `#${o.id} ${units[o.op_unit_id] || ""} ${o.text} · ${o.status}${o.overdue ? " · OVERDUE" : ""} `,
        !S.replay && (mineUnit || S.op.may_manage) && o.status === "issued" ? act("acknowledge") : null,
        !S.replay && (mineUnit || S.op.may_manage) && ["issued", "acknowledged"].includes(o.status) ? act("complete") : null);
    }));
  }

  // My unit: position and field reports ---------------------------------------------------
  function sharePosition() {
    if (S.watch !== null) {
      navigator.geolocation.clearWatch(S.watch); S.watch = null;
      $("share-position").textContent = "Share my position"; $("share-status").textContent = ""; return;
    }
    const units = S.op.my_units;
    S.watch = navigator.geolocation.watchPosition((p) => {
      S.lastFix = { lat: p.coords.latitude, lon: p.coords.longitude };
      for (const id of units) {
        S.ws.send({ type: "position", op_unit_id: id, lat: p.coords.latitude, lon: p.coords.longitude,
                    at: p.timestamp, accuracy: p.coords.accuracy, heading: p.coords.heading,
                    speed: p.coords.speed });
      }
      $("share-status").textContent = "sharing · " + new Date().toLocaleTimeString();
    }, (err) => { $("share-status").textContent = "no position: " + err.message; },
    { enableHighAccuracy: true, maximumAge: 5000 });
    $("share-position").textContent = "Stop sharing";
  }
  async function sendReport(ev) {
    ev.preventDefault();
    try {
      const body = { kind: "report", text: $("report-text").value, op_unit_id: S.op.my_units[0] };
      const file = $("report-photo").files[0];
      if (file) {
        const up = await Tocsin.api("POST", `/api/v1/operations/photos/${S.opId}`, file);
        body.photo = up.photo;
      }
      if (S.lastFix) { body.lat = S.lastFix.lat; body.lon = S.lastFix.lon; }
      await Tocsin.api("POST", `/api/v1/operations/${S.opId}/journal`, body);
      $("report-text").value = ""; $("report-photo").value = ""; showError(null);
    } catch (e) { showError(e); }
  }

  // Replay -------------------------------------------------------------------------------
  let replayTimer = null;
  function onSlide() {
    clearTimeout(replayTimer);
    replayTimer = setTimeout(async () => {
      const at = new Date(Number($("replay-slider").value));
      $("replay-label").textContent = at.toLocaleString();
      const data = await Tocsin.api("GET", `/api/v1/operations/${S.opId}/replay?at=${encodeURIComponent(at.toISOString())}`);
      S.replay = data;
      S.replayPositions = Object.fromEntries(data.positions.map((p) => [p.op_unit_id, p]));
      $("replay-banner").hidden = false;
      $("replay-banner").textContent = "Replay at " + at.toLocaleString();
      renderOp();
      renderJournal(data.journal);
      loadOrders(data.orders);
    }, 200);
  }
  async function backToLive() {
    S.replay = null; $("replay-banner").hidden = true; $("replay-label").textContent = "live";
    $("replay-slider").max = String(Date.now()); $("replay-slider").value = $("replay-slider").max;
    await refresh(); await loadJournal(); await loadOrders();
  }

  async function addUnit(ev) {
    ev.preventDefault();
    try {
      const members = $("unit-members").value.split(",").map((s) => s.trim()).filter(Boolean);
      const body = { callsign: $("unit-callsign").value, unit_code: $("unit-code").value, member_usernames: members };
      if ($("unit-cot").value) body.cot_uid = $("unit-cot").value;
      await Tocsin.api("POST", `/api/v1/operations/${S.opId}/units`, body);
      for (const id of ["unit-callsign", "unit-code", "unit-members", "unit-cot"]) $(id).value = "";
      showError(null); await refresh();
    } catch (e) { showError(e); }
  }
  async function decide(ev) {
    ev.preventDefault();
    try {
      await Tocsin.api("POST", `/api/v1/operations/${S.opId}/decisions`, { text: $("decision-text").value, rationale: $("decision-why").value });
      $("decision-text").value = ""; $("decision-why").value = "";
    } catch (e) { showError(e); }
  }
  async function openReport(kind) {
    const r = await Tocsin.api("GET", `/api/v1/operations/${S.opId}/report.${kind}`, null, { raw: true });
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: `operation-${S.opId}.${kind}` });
    document.body.appendChild(a); a.click(); a.remove();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    await Tocsin.renderTopbar("Operations");
    S.map = await TocsinMap.create("map");
    S.map.on("click", (ev) => {
      if (!S.drawing) return;
      S.drawing.pts.push(ev.latlng); S.drawing.line.setLatLngs([...S.drawing.pts, S.drawing.pts[0]]);
      $("draw-count").textContent = String(S.drawing.pts.length);
    });
    $("op-create-form").addEventListener("submit", create);
    $("draw-sector").addEventListener("click", startDraw);
    $("finish-sector").addEventListener("click", finishDraw);
    $("cancel-sector").addEventListener("click", stopDraw);
    $("unit-form").addEventListener("submit", addUnit);
    $("decision-form").addEventListener("submit", decide);
    $("report-form").addEventListener("submit", sendReport);
    $("share-position").addEventListener("click", sharePosition);
    $("journal-kind").addEventListener("change", () => (S.replay ? onSlide() : loadJournal()));
    $("replay-slider").addEventListener("input", onSlide);
    $("replay-live").addEventListener("click", backToLive);
    $("report-html").addEventListener("click", () => openReport("html"));
    $("report-pdf").addEventListener("click", () => openReport("pdf"));
    setInterval(() => { if (!S.replay) $("replay-slider").max = $("replay-slider").value = String(Date.now()); }, 5000);
    try { await loadList(); } catch (e) { $("ops-error").textContent = e.message; }
    const id = Number(new URLSearchParams(location.search).get("id"));
    if (id) { try { await open(id); } catch (e) { $("ops-error").textContent = e.message; } }
  });

  return { state: S };
})();
