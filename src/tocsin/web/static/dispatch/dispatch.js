"use strict";
// Dispatch floor: take a call, place it, create the incident, send units, watch it live.
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  const API = "/api/v1/dispatch";
  const PRIO = { 1: "#e5484d", 2: "#f5a524", 3: "#3d8bfd", 4: "#8ea0b3" };
  const UNIT = { available: "#30a46c", dispatched: "#f5a524", en_route: "#3d8bfd",
                 on_scene: "#a855f7", unavailable: "#55606b" };
  let map, catalogue, layers = {};
  let picked = null;        // {label, lat, lon} chosen for the current call
  let currentCall = null;   // the call just saved
  let selected = null;      // id of the incident shown
  const incidentMarkers = new Map(), unitMarkers = new Map(), callMarkers = new Map();
  const units = new Map();
  // The briefing renderer, shared with the unit's phone.
  const briefingLib = new Promise((ok, ko) => document.head.append(
    el("script", { src: "/static/dispatch/briefing.js", onload: ok, onerror: ko })));

  function fmtTime(s) { s = Math.round(s); return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`; }
  function when(iso) { return new Date(iso).toLocaleTimeString(); }
  function showError(id, e) { $(id).textContent = e ? (e.message || String(e)) : ""; }

  // ---------------------------------------------------------------- address
  let searchSeq = 0;
  async function suggest() {
    const q = $("call-address").value.trim();
    const seq = ++searchSeq;
    const list = $("address-suggestions");
    if (q.length < 3) { list.replaceChildren(); return; }
    let found = [];
    try { found = await Tocsin.api("GET", `${API}/addresses?q=${encodeURIComponent(q)}&autocomplete=true&limit=6`); }
    catch (e) { return; }
    if (seq !== searchSeq) return;
    list.replaceChildren(...found.map((c) => el("li", {},
      el("button", { type: "button", class: "suggestion", onclick: () => pick(c) }, c.label))));
  }
  function pick(c) {
    picked = { label: c.label, lat: c.lat, lon: c.lon };
    $("call-address").value = c.label;
    $("address-suggestions").replaceChildren();
    $("call-picked").textContent = `📍 ${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`;
    placePin(c.lat, c.lon);
    map.setView([c.lat, c.lon], Math.max(map.getZoom(), 16));
  }
  function placePin(lat, lon) {
    if (layers.pin) layers.pin.remove();
    layers.pin = L.marker([lat, lon]).addTo(map);
  }
  async function mapClick(ev) {
    if (!$("call-result").hidden) return;
    try {
      const r = await Tocsin.api("GET", `${API}/reverse?lat=${ev.latlng.lat}&lon=${ev.latlng.lng}`);
      const best = r.address || r.street;
      picked = { label: best ? best.label : `${ev.latlng.lat.toFixed(5)}, ${ev.latlng.lng.toFixed(5)}`,
                 lat: ev.latlng.lat, lon: ev.latlng.lng };
      $("call-address").value = picked.label;
      $("call-picked").textContent = `📍 picked on the map`;
      placePin(picked.lat, picked.lon);
    } catch (e) { showError("call-error", e); }
  }

  // ------------------------------------------------------------------- calls
  async function saveCall(ev) {
    ev.preventDefault();
    showError("call-error");
    const body = { caller_number: $("call-number").value.trim() || null,
                   narrative: $("call-narrative").value };
    const text = $("call-location-text").value.trim();
    if (text) body.location_text = text;
    if (picked) { body.address = picked.label; body.location = { lat: picked.lat, lon: picked.lon }; }
    else if ($("call-address").value.trim()) body.address = $("call-address").value.trim();
    try {
      currentCall = await Tocsin.api("POST", `${API}/calls`, body);
    } catch (e) { showError("call-error", e); return; }
    $("call-form").hidden = true;
    $("call-result").hidden = false;
    $("call-summary").textContent = `Call ${currentCall.id}: ${currentCall.address || "no place yet"}`;
    const dups = $("call-duplicates");
    dups.replaceChildren();
    if (currentCall.duplicates.length) {
      dups.append(el("p", { class: "muted" }, "Same place, close in time — the same event?"));
      for (const d of currentCall.duplicates) {
        dups.append(el("div", { class: "dup" },
          `#${d.incident_id} ${d.type_code} P${d.priority} (${d.status}), ${Math.round(d.distance_m)} m, ${Math.round(d.minutes_ago)} min ago `,
          el("button", { class: "secondary link-dup", onclick: () => linkCall(d.incident_id) }, "Link to it")));
      }
    }
    if (currentCall.lat != null) placePin(currentCall.lat, currentCall.lon);
    $("call-close").replaceChildren(el("p", { class: "muted" }, "No incident needed?"),
      closeCallControls(currentCall.id, () => { resetCall(); refreshCalls(); }));
  }
  async function linkCall(incidentId) {
    try {
      await Tocsin.api("POST", `${API}/calls/${currentCall.id}/link`, { incident_id: incidentId });
      resetCall();
      selectIncident(incidentId);
    } catch (e) { showError("call-error", e); }
  }
  async function createIncident() {
    try {
      const inc = await Tocsin.api("POST", `${API}/incidents`, {
        call_id: currentCall.id, type_code: $("incident-type").value,
        priority: parseInt($("incident-priority").value, 10) });
      resetCall();
      await refreshIncidents();
      selectIncident(inc.id);
    } catch (e) { showError("call-error", e); $("call-error").hidden = false; }
  }
  // A call that needs no incident (hoax, advice given) is closed with a reason.
  const CLOSE_REASONS = ["hoax", "advice given by phone", "no police action needed",
                         "referred to another service", "caller hung up, no trace"];
  function closeCallControls(callId, onDone) {
    const pick = el("select", { class: "close-call-reason", "aria-label": "reason for closing the call" },
      CLOSE_REASONS.map((r) => el("option", { value: r }, r)), el("option", { value: "" }, "other…"));
    const other = el("input", { class: "close-call-other", placeholder: "reason for closing", hidden: true });
    pick.addEventListener("change", () => { other.hidden = pick.value !== ""; if (!other.hidden) other.focus(); });
    const err = el("span", { class: "error", role: "alert" });
    const go = async () => {
      const reason = (pick.value || other.value).trim();
      if (!reason) { err.textContent = "give a reason for closing"; other.focus(); return; }
      try { await Tocsin.api("POST", `${API}/calls/${callId}/close`, { reason }); }
      catch (e) { err.textContent = e.message; return; }
      onDone();
    };
    return el("div", { class: "close-call-row", "data-call": callId }, pick, other,
      el("button", { type: "button", class: "danger close-call", onclick: go }, "Close call"), err);
  }
  // In the open-call list, the controls someone has opened survive the list's refreshes.
  const closeRows = new Map();
  function listCloseRow(callId) {
    if (!closeRows.has(callId)) closeRows.set(callId, closeCallControls(callId, refreshCalls));
    return closeRows.get(callId);
  }

  function resetCall() {
    currentCall = null; picked = null;
    $("call-form").reset(); $("call-form").hidden = false; $("call-result").hidden = true;
    $("call-picked").textContent = ""; $("address-suggestions").replaceChildren();
    if (layers.pin) { layers.pin.remove(); layers.pin = null; }
  }

  // --------------------------------------------------------------- incidents
  async function selectIncident(id) {
    selected = id;
    await showIncident();
  }
  async function showIncident() {
    if (!selected) return;
    let inc;
    try { inc = await Tocsin.api("GET", `${API}/incidents/${selected}`); }
    catch (e) { showError("incident-error", e); return; }
    $("incident-panel").hidden = false;
    $("incident-title").textContent = `#${inc.id} ${inc.type_title}`;
    const st = $("incident-status");
    st.textContent = inc.status.replace("_", " "); st.className = `badge st-${inc.status}`;
    const pb = $("incident-priority-badge");
    pb.textContent = `P${inc.priority}`; pb.className = `badge prio-${inc.priority}`;
    const od = $("incident-overdue");
    od.hidden = !inc.overdue.length; od.textContent = inc.overdue.length ? `overdue: ${inc.overdue.join(", ")}` : "";
    $("incident-address").textContent = inc.address;
    $("incident-summary").textContent = inc.summary;
    $("assignments").replaceChildren(...inc.assignments.map((a) => el("li", { class: `assignment as-${a.status}` },
      `${a.call_sign}: ${a.status.replace("_", " ")}`,
      a.travel_time_s ? ` · ${fmtTime(a.travel_time_s)} by road` : "",
      a.end_reason ? ` (${a.end_reason})` : "")));
    const actions = $("status-actions");
    actions.replaceChildren(...inc.allowed_transitions.map((s) => el("button", {
      class: s === "closed" ? "danger" : "secondary", id: `to-${s}`,
      onclick: () => setStatus(inc.id, s) }, s === "closed" ? "Close" : s.replace("_", " "))));
    $("close-reason").hidden = !inc.allowed_transitions.includes("closed");
    $("timeline").replaceChildren(...inc.timeline.map((t) => el("li", {},
      el("time", {}, when(t.at)), `${t.kind.replace("_", " ")}: ${t.text}`)));
    $("attachments").replaceChildren(...inc.attachments.map((a) => el("li", {},
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); download(inc.id, a); } },
        `${a.filename} (${Math.ceil(a.size / 1024)} kB)`))));
    drawRoutes(inc);
    map.setView([inc.lat, inc.lon], Math.max(map.getZoom(), 15));
    if (inc.status !== "closed") loadRecommendations(inc); else $("recommendations").replaceChildren();
    loadSurroundings(inc.id);
  }
  async function download(id, a) {
    const r = await Tocsin.api("GET", `${API}/incidents/${id}/attachments/${a.id}`, null, { raw: true });
    const url = URL.createObjectURL(await r.blob());
    const link = el("a", { href: url, download: a.filename });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
  function drawRoutes(inc) {
    if (layers.routes) layers.routes.remove();
    layers.routes = L.layerGroup().addTo(map);
    for (const a of inc.assignments) {
      if (a.route && ["dispatched", "en_route"].includes(a.status)) {
        L.polyline(a.route, { color: "#3d8bfd", weight: 5, opacity: .8 }).addTo(layers.routes)
          .bindTooltip(a.call_sign);
      }
    }
  }
  async function loadRecommendations(inc) {
    const list = $("recommendations");
    try {
      const rec = await Tocsin.api("GET", `${API}/incidents/${inc.id}/recommendations`);
      const plan = Object.entries(rec.plan).map(([k, v]) => `${v}× ${k}`).join(", ");
      const missing = Object.entries(rec.missing).map(([k, v]) => `${v}× ${k}`).join(", ");
      $("recommend-plan").textContent = `Response plan: ${plan || "none"}` + (missing ? ` · missing: ${missing}` : "");
      list.replaceChildren(...rec.ranked.map((r) => el("li", { class: r.suggested ? "suggested rec" : "rec", "data-unit": r.unit_id },
        `${r.call_sign} (${r.kind.replace("_", " ")}) `,
        el("button", { class: "dispatch-btn", "data-unit": r.unit_id, onclick: () => assign(inc.id, [r.unit_id]) }, "Dispatch"),
        el("span", { class: "why" }, r.explanation))));
      if (!rec.ranked.length) list.replaceChildren(el("li", { class: "muted" }, "no available unit"));
    } catch (e) { list.replaceChildren(el("li", { class: "error" }, e.message)); }
  }
  async function assign(id, unitIds) {
    showError("incident-error");
    try { await Tocsin.api("POST", `${API}/incidents/${id}/assign`, { unit_ids: unitIds }); }
    catch (e) { showError("incident-error", e); }
    await showIncident();
  }
  async function setStatus(id, status) {
    showError("incident-error");
    const body = { status };
    if (status === "closed") {
      body.reason = $("close-reason").value.trim();
      if (!body.reason) { showError("incident-error", "give a reason for closing"); $("close-reason").focus(); return; }
    }
    try { await Tocsin.api("POST", `${API}/incidents/${id}/status`, body); $("close-reason").value = ""; }
    catch (e) { showError("incident-error", e); }
    await showIncident();
  }
  async function addNote() {
    const text = $("note-text").value.trim();
    if (!text || !selected) return;
    try { await Tocsin.api("POST", `${API}/incidents/${selected}/notes`, { text }); $("note-text").value = ""; }
    catch (e) { showError("incident-error", e); }
    showIncident();
  }
  async function attach() {
    const f = $("attach-file").files[0];
    if (!f || !selected) return;
    const form = new FormData(); form.append("file", f, f.name);
    try { await Tocsin.api("POST", `${API}/incidents/${selected}/attachments`, form); }
    catch (e) { showError("incident-error", e); }
    $("attach-file").value = "";
    showIncident();
  }
  async function loadSurroundings(id) {
    const box = $("surroundings"), brief = $("briefing");
    if (layers.surroundings) layers.surroundings.remove();
    layers.surroundings = L.layerGroup().addTo(map);
    let s;
    try { s = await Tocsin.api("GET", `${API}/incidents/${id}/surroundings`); }
    catch (e) { box.textContent = e.message; return; }
    if (id !== selected) return;  // another incident was opened meanwhile
    const past = (p) => `#${p.id} ${p.type_title} · ${new Date(p.created_at).toLocaleDateString()} · ${p.status.replace("_", " ")}`;
    box.replaceChildren(
      el("p", {}, s.past_incidents.length ? "Earlier incidents here:" : "No earlier incident within 100 m."),
      el("ul", { class: "plain" }, s.past_incidents.map((p) => el("li", { onclick: () => selectIncident(p.id) }, past(p)))),
      s.open_calls.length ? el("p", {}, `${s.open_calls.length} open call(s) nearby`) : null);
    for (const p of s.past_incidents) {
      L.marker([p.lat, p.lon], { icon: L.divIcon({ className: "map-past", iconSize: [14, 14] }), keyboard: false })
        .bindTooltip(el("span", {}, past(p))).on("click", () => selectIncident(p.id)).addTo(layers.surroundings);
    }
    await briefingLib;
    TocsinBriefing.render(brief, s.hazards);
    if (s.hazards.available) TocsinBriefing.mapLayer(s.hazards.content).addTo(layers.surroundings);
  }

  // ------------------------------------------------------------ lists and map
  async function refreshIncidents() {
    const list = await Tocsin.api("GET", `${API}/incidents`);
    const seen = new Set();
    for (const inc of list) {
      seen.add(inc.id);
      let m = incidentMarkers.get(inc.id);
      if (!m) { m = TocsinMap.dot([inc.lat, inc.lon], PRIO[inc.priority], { radius: 9 }).addTo(layers.incidents);
                m.on("click", () => selectIncident(inc.id)); incidentMarkers.set(inc.id, m); }
      m.setLatLng([inc.lat, inc.lon]);
      m.setStyle({ fillColor: PRIO[inc.priority], color: inc.overdue.length ? "#ffffff" : "#0b1117" });
      m.bindTooltip(el("span", {}, `#${inc.id} ${inc.type_title} (${inc.status.replace("_", " ")})`));
    }
    for (const [id, m] of incidentMarkers) if (!seen.has(id)) { m.remove(); incidentMarkers.delete(id); }
    $("incident-list").replaceChildren(...list.map((inc) => el("li", { class: "incident-item", "data-id": inc.id, onclick: () => selectIncident(inc.id) },
      el("span", { class: `badge prio-${inc.priority}` }, `P${inc.priority}`), ` #${inc.id} ${inc.type_title} · `,
      el("span", { class: `badge st-${inc.status}` }, inc.status.replace("_", " ")),
      inc.overdue.length ? el("span", { class: "badge overdue" }, "late") : null, ` ${inc.address}`)));
  }
  async function refreshCalls() {
    const list = await Tocsin.api("GET", `${API}/calls?status=open`);
    const seen = new Set();
    for (const c of list) {
      if (c.lat == null) continue;
      seen.add(c.id);
      if (!callMarkers.has(c.id)) {
        callMarkers.set(c.id, L.circleMarker([c.lat, c.lon], { radius: 5, color: "#f5a524", weight: 2, fillOpacity: 0 })
          .bindTooltip(el("span", {}, `call ${c.id}: ${c.address || ""}`)).addTo(layers.calls));
      }
    }
    for (const [id, m] of callMarkers) if (!seen.has(id)) { m.remove(); callMarkers.delete(id); }
    for (const id of closeRows.keys()) if (!list.some((c) => c.id === id)) closeRows.delete(id);
    $("call-list").replaceChildren(...list.map((c) => el("li", { class: "call-item", "data-call": c.id },
      `${when(c.received_at)} · ${c.caller_number || "unknown"} · ${c.address || "no place"} `,
      closeRows.has(c.id) ? closeRows.get(c.id)
        : el("button", { type: "button", class: "link close-open", onclick: (ev) => {
            ev.currentTarget.replaceWith(listCloseRow(c.id)); } }, "close…"))));
  }
  function showUnit(u) {
    units.set(u.id, u);
    let m = unitMarkers.get(u.id);
    if (u.lat == null) return;
    if (!m) { m = TocsinMap.dot([u.lat, u.lon], UNIT[u.status], { radius: 6 }).addTo(layers.units); unitMarkers.set(u.id, m); }
    m.setLatLng([u.lat, u.lon]);
    m.setStyle({ fillColor: UNIT[u.status] || "#fff" });
    m.bindTooltip(`${u.call_sign}: ${u.status.replace("_", " ")}`);
  }
  function renderUnitList() {
    const sorted = [...units.values()].sort((a, b) => a.call_sign.localeCompare(b.call_sign));
    $("unit-list").replaceChildren(...sorted.map((u) => el("li", { class: "unit-item", "data-unit": u.id },
      el("span", { class: `badge st-${u.status}`, id: `unit-${u.id}-status` }, u.status.replace("_", " ")), ` ${u.call_sign}`,
      u.incident_id ? ` → #${u.incident_id}` : "")));
  }
  async function refreshUnits() {
    for (const u of await Tocsin.api("GET", `${API}/units`)) showUnit(u);
    renderUnitList();
  }

  let refreshTimer = null;
  function soon(fn) { clearTimeout(refreshTimer); refreshTimer = setTimeout(fn, 150); }
  function onEvent(ev) {
    if (!ev.type.startsWith("dispatch.")) return;
    if (ev.record_kind === "dispatch_unit" && ev.payload.unit) {
      const u = Object.assign(units.get(ev.payload.unit.id) || {}, ev.payload.unit);
      if (ev.type === "dispatch.unit.removed") {
        units.delete(u.id); const m = unitMarkers.get(u.id); if (m) { m.remove(); unitMarkers.delete(u.id); }
      } else showUnit(u);
      renderUnitList();
    }
    if (ev.record_kind === "incident" || ev.record_kind === "call") {
      soon(async () => {
        await refreshIncidents(); await refreshCalls();
        if (selected && ev.record_kind === "incident" && ev.record_id === String(selected)) showIncident();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    await Tocsin.renderTopbar("Dispatch");
    map = await TocsinMap.create("map", { zoom: 15 });
    layers.calls = L.layerGroup().addTo(map);
    layers.incidents = L.layerGroup().addTo(map);
    layers.units = L.layerGroup().addTo(map);
    map.on("click", mapClick);
    catalogue = await Tocsin.api("GET", `${API}/catalogue`);
    $("incident-type").replaceChildren(...catalogue.types.map((t) => el("option", { value: t.code }, `${t.title} (P${t.priority})`)));
    const syncPrio = () => { const t = catalogue.types.find((x) => x.code === $("incident-type").value); if (t) $("incident-priority").value = String(t.priority); };
    $("incident-type").addEventListener("change", syncPrio); syncPrio();
    let debounce = null;
    $("call-address").addEventListener("input", () => { picked = null; clearTimeout(debounce); debounce = setTimeout(suggest, 150); });
    $("call-location-file").addEventListener("change", async () => {
      const f = $("call-location-file").files[0]; if (f) $("call-location-text").value = await f.text();
    });
    $("call-form").addEventListener("submit", saveCall);
    $("incident-create").addEventListener("click", createIncident);
    $("call-new").addEventListener("click", resetCall);
    $("call-result").append(el("div", { id: "call-close" }));
    $("note-add").addEventListener("click", addNote);
    $("attach-file").addEventListener("change", attach);
    Tocsin.live(onEvent, (s) => { Tocsin.setLiveStatus(s); if (s === "live") { refreshIncidents(); refreshUnits(); refreshCalls(); } });
    await Promise.all([refreshIncidents(), refreshUnits(), refreshCalls()]);
    setInterval(refreshIncidents, 30000);  // overdue flags move with the clock
    document.body.dataset.ready = "1";
  });
})();
