"use strict";
// A unit's crew on a phone: the assignment, the route, status buttons, position.
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  const API = "/api/v1/dispatch";
  let unit = null, map = null, marker = null, route = null, target = null, watch = null;
  let hazards = null;
  const briefingLib = new Promise((ok, ko) => document.head.append(
    el("script", { src: "/static/dispatch/briefing.js", onload: ok, onerror: ko })));

  function fmtTime(s) { s = Math.round(s); return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`; }

  function showUnit(u) {
    unit = Object.assign(unit || {}, u);
    $("unit-callsign").textContent = unit.call_sign;
    const st = $("unit-status");
    st.textContent = unit.status.replace("_", " ");
    st.className = `badge st-${unit.status}`;
    st.dataset.status = unit.status;
    for (const s of ["en_route", "on_scene", "available", "unavailable"]) {
      $(`btn-${s}`).disabled = s === unit.status;
    }
    if (unit.lat != null && map) {
      if (!marker) marker = TocsinMap.dot([unit.lat, unit.lon], "#3d8bfd", { radius: 8 }).addTo(map);
      marker.setLatLng([unit.lat, unit.lon]);
    }
  }

  async function loadAssignment() {
    const d = await Tocsin.api("GET", `${API}/units/${unit.id}/assignment`);
    if (route) { route.remove(); route = null; }
    if (target) { target.remove(); target = null; }
    if (!d.incident) {
      $("assignment").hidden = true; $("no-assignment").hidden = false; briefedIncident = null;
      if (hazards) { hazards.remove(); hazards = null; }
      return;
    }
    $("assignment").hidden = false; $("no-assignment").hidden = true;
    const inc = d.incident;
    $("assignment-title").textContent = `#${inc.id} ${inc.type_title} · P${inc.priority}`;
    $("assignment-address").textContent = inc.address;
    $("assignment-summary").textContent = d.summary || "";
    const a = d.assignment;
    $("assignment-eta").textContent = a && a.travel_time_s ? `About ${fmtTime(a.travel_time_s)} by road (${(a.distance_m / 1000).toFixed(1)} km)` : "";
    loadBriefing(inc.id);
    target = TocsinMap.dot([inc.lat, inc.lon], "#e5484d", { radius: 10 }).addTo(map);
    if (a && a.route) {
      route = L.polyline(a.route, { color: "#3d8bfd", weight: 6 }).addTo(map);
      map.fitBounds(route.getBounds(), { padding: [30, 30] });
    } else map.setView([inc.lat, inc.lon], 16);
  }

  // The push names the briefing, never its content: the crew fetches it as itself,
  // once per incident (each read is recorded in the reader's name).
  let briefedIncident = null;
  async function loadBriefing(incidentId) {
    if (incidentId === briefedIncident) return;
    briefedIncident = incidentId;
    let b, failed = false;
    try { b = await Tocsin.api("GET", `${API}/incidents/${incidentId}/briefing`); }
    catch (e) { failed = true; b = { available: false, message: `briefing: ${e.message}` }; }
    await briefingLib;
    if (incidentId !== briefedIncident) return;  // the assignment changed meanwhile
    if (failed) briefedIncident = null;  // asked again on the next update
    TocsinBriefing.render($("assignment-briefing"), b);
    if (hazards) hazards.remove();
    hazards = b.available ? TocsinBriefing.mapLayer(b.content).addTo(map) : null;
  }

  async function setStatus(status) {
    $("unit-error").textContent = "";
    try { showUnit(await Tocsin.api("POST", `${API}/units/${unit.id}/status`, { status })); }
    catch (e) { $("unit-error").textContent = e.message; }
    loadAssignment();
  }

  let lastSent = 0;
  async function sendPosition(lat, lon, force) {
    const now = Date.now();
    if (!force && now - lastSent < 5000) return;
    lastSent = now;
    try { showUnit(await Tocsin.api("POST", `${API}/units/${unit.id}/position`, { lat, lon })); $("unit-error").textContent = ""; }
    catch (e) { $("unit-error").textContent = e.message; }
  }

  function onEvent(ev) {
    if (!unit) return;
    if (ev.type === "dispatch.assignment.received" && ev.payload.unit && ev.payload.unit.id === unit.id) {
      showUnit(ev.payload.unit);
      loadAssignment();
      if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
    } else if (ev.record_kind === "dispatch_unit" && ev.record_id === String(unit.id) && ev.payload.unit) {
      showUnit(ev.payload.unit);
      if (["dispatch.unit.assigned", "dispatch.unit.released", "dispatch.unit.status"].includes(ev.type)) loadAssignment();
    } else if (ev.record_kind === "incident" && unit.incident_id && ev.record_id === String(unit.incident_id)) {
      loadAssignment();
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    await Tocsin.renderTopbar("My unit");
    map = await TocsinMap.create("map", { zoom: 15 });
    const mine = await Tocsin.api("GET", `${API}/units/mine`);
    if (!mine.length) { $("unit-none").hidden = false; document.body.dataset.ready = "1"; return; }
    showUnit(mine[0]);
    if (unit.lat != null) map.setView([unit.lat, unit.lon], 15);
    for (const s of ["en_route", "on_scene", "available", "unavailable"]) {
      $(`btn-${s}`).addEventListener("click", () => setStatus(s));
    }
    map.on("click", (e) => { if ($("click-position").checked) sendPosition(e.latlng.lat, e.latlng.lng, true); });
    $("gps").addEventListener("change", () => {
      if ($("gps").checked && navigator.geolocation) {
        watch = navigator.geolocation.watchPosition((p) => sendPosition(p.coords.latitude, p.coords.longitude),
          (err) => { $("unit-error").textContent = `position unavailable: ${err.message}`; },
          { enableHighAccuracy: true, maximumAge: 5000 });
      } else if (watch !== null) { navigator.geolocation.clearWatch(watch); watch = null; }
    });
    Tocsin.live(onEvent, (s) => { Tocsin.setLiveStatus(s); if (s === "live") loadAssignment(); });
    await loadAssignment();
    document.body.dataset.ready = "1";
  });
})();
