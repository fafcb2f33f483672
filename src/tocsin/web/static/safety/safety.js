"use strict";
// Field safety page: click the map, type a point or an address -> briefing (expected persons
// by id, or by name and birth date); commanders get the review queue.
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  let map = null, marker = null, circle = null;

  function flagItem(f) {
    const who = f.subject.kind === "place" ? (f.subject.address || "this place")
      : (f.subject.withheld ? "a person linked here (identity withheld)" : f.subject.name);
    return el("div", { class: "flag " + f.state, "data-category": f.category },
      el("strong", {}, f.label), " — ", who,
      f.state === "unconfirmed" ? el("span", { class: "badge" }, "unconfirmed") : null,
      el("div", { class: "why" }, f.reason),
      el("div", { class: "why" }, `source: ${f.source}; by ${f.author || "?"}, `
        + `until ${f.expires_at.slice(0, 10)}`));
  }

  function render(b) {
    const box = $("briefing");
    const ops = b.operations.map((o) => el("li", {},
      `${o.started_at.slice(0, 10)} ${o.nature} — ${o.outcome}`,
      o.force_used ? el("span", { class: "force" }, " · force used") : null,
      o.injury ? el("span", { class: "force" }, " · injury") : null,
      o.address ? el("span", { class: "muted" }, ` (${o.address})`) : null));
    box.replaceChildren(
      el("p", { id: "briefing-summary" }, b.summary.join(" · ")),
      b.withheld.message ? el("p", { class: "withheld", id: "briefing-withheld" }, b.withheld.message) : null,
      el("h3", {}, `Risk flags (${b.flags.length})`),
      el("div", { id: "briefing-flags" }, b.flags.map(flagItem)),
      el("h3", {}, "Prior operations, recent first"),
      el("ul", { class: "ops", id: "briefing-ops" }, ops),
      b.query.located ? el("p", { class: "muted", id: "briefing-located" },
        `${b.query.located.label || b.query.address}`
        + (b.query.located.approximate ? " (approximate location)" : "")) : null,
      b.persons.length ? el("h3", {}, "Persons") : null,
      el("ul", { id: "briefing-persons" }, b.persons.map((p) => el("li", {},
        `${p.name || "?"}${p.birth_date ? " (" + p.birth_date + ")" : ""}`,
        p.match ? el("span", { class: "muted" },
          ` — matches expected person ${p.match.query + 1}, ${Math.round(p.match.probability * 100)}%`) : null,
        p.roles_here.length ? el("span", { class: "muted" }, " — " + p.roles_here.join(", ")) : null))),
      b.persons_not_shown && b.persons_not_shown.message
        ? el("p", { class: "muted" }, b.persons_not_shown.message) : null,
      b.operations_not_shown && b.operations_not_shown.message
        ? el("p", { class: "muted" }, b.operations_not_shown.message) : null,
      (b.expected || []).some((e) => !e.person_ids.length && !e.withheld)
        ? el("p", { class: "muted" }, "No record for: " + b.expected
          .filter((e) => !e.person_ids.length && !e.withheld)
          .map((e) => `${e.given_names} ${e.surname}`).join(", ")) : null);
  }

  // "Given names; surname; birth date", one person a line.
  function expectedPersons() {
    return $("expected").value.split("\n").map((l) => l.split(";").map((x) => x.trim()))
      .filter((f) => f[0] || f[1])
      .map(([given_names, surname, birth_date]) => ({ given_names, surname: surname || "",
        ...(birth_date ? { birth_date } : {}) }));
  }

  function addAddressFields() {
    const form = $("briefing-form");
    for (const id of ["lat", "lon"]) $(id).required = false;
    const field = (label, input) => el("label", {}, label, " ", input);
    form.insertBefore(field("Address", el("input", { id: "address", placeholder: "Mannerheimintie 5" })),
      form.firstChild);
    form.insertBefore(field("Expected persons (given names; surname; birth date, one a line)",
      el("textarea", { id: "expected", rows: "2", placeholder: "Jean-Pierre; Dupont; 04/03/1981" })),
      $("briefing-button"));
  }

  async function brief(lat, lon) {
    $("briefing-error").textContent = "";
    const radius = $("radius").value || 50;
    const persons = $("persons").value.trim();
    const body = { radius_m: Number(radius), expected: expectedPersons() };
    if (lat === null) body.address = $("address").value.trim();
    else Object.assign(body, { lat, lon });
    let b;
    try {
      body.person_ids = persons ? persons.split(",").filter((x) => x.trim()).map((x) => {
        if (!/^\s*\d+\s*$/.test(x)) throw new Error("expected persons: ids separated by commas");
        return Number(x);
      }) : [];
      b = await Tocsin.api("POST", "/api/v1/safety/briefing", body);
      render(b);
    } catch (err) {
      $("briefing-error").textContent = err.message;
      return;
    }
    lat = b.query.lat; lon = b.query.lon;
    if (map) {
      if (marker) marker.remove();
      if (circle) circle.remove();
      marker = TocsinMap.dot([lat, lon], "#f5a524").addTo(map);
      circle = L.circle([lat, lon], { radius: Number(radius), color: "#f5a524", weight: 1 }).addTo(map);
    }
  }

  async function review() {
    const q = await Tocsin.api("GET", "/api/v1/safety/review-queue");
    $("review-panel").hidden = false;
    $("review").replaceChildren(...(q.items.length ? q.items.map((f) => {
      const act = (decision) => async () => {
        const body = { decision, version: f.version };
        if (decision === "renew") {
          const d = new Date(); d.setDate(d.getDate() + 180); body.expires_at = d.toISOString();
        }
        try { await Tocsin.api("POST", `/api/v1/safety/flags/${f.id}/review`, body); }
        catch (err) { alert(err.message); }
        review();
      };
      return el("div", { class: "flag " + f.state, "data-flag": f.id },
        el("strong", {}, f.label), " — ",
        f.subject.kind === "place" ? f.subject.address || "place" : f.subject.name || "person",
        el("div", { class: "why" }, f.queue_reason + " · " + f.reason),
        f.state === "expired" ? null : el("button", { onclick: act("approve") }, "Confirm"), " ",
        el("button", { class: "secondary", onclick: act("renew") }, "Renew 180 d"), " ",
        el("button", { class: "danger", onclick: act("withdraw") }, "Withdraw"));
    }) : [el("p", { class: "muted" }, "Nothing to review.")]));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    await Tocsin.renderTopbar("Field safety");
    addAddressFields();
    $("briefing-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if ($("address").value.trim()) return brief(null, null);  // an address wins over the point
      if (!$("lat").value.trim() || !$("lon").value.trim()) {
        $("briefing-error").textContent = "give a point or an address";
        return;
      }
      brief(Number($("lat").value), Number($("lon").value));
    });
    try {
      map = await TocsinMap.create("map", { center: [60.1699, 24.9384], zoom: 14 });
      map.on("click", (e) => {
        $("lat").value = e.latlng.lat.toFixed(6);
        $("lon").value = e.latlng.lng.toFixed(6);
        $("address").value = "";
        brief(e.latlng.lat, e.latlng.lng);
      });
    } catch (e) { /* the briefing form works without the map */ }
    const me = await Tocsin.me();
    if (me.roles.includes("commander")) review();
  });
})();
