"use strict";
// An incident's field-safety briefing on one screen, for the dispatch floor and the
// unit's phone: risk flags with reason and source (most dangerous first), prior
// operations (recent first), persons, and how much was withheld from the reader.
//
//   TocsinBriefing.render(box, b)         b: GET /api/v1/dispatch/incidents/{id}/briefing
//   TocsinBriefing.mapLayer(b.content)    the flagged places and prior operations as markers
//
// The content is the safety module's briefing (tocsin.safety.service.briefing_for); its
// look is the field-safety page's own stylesheet, loaded here once.
const TocsinBriefing = (function () {
  const el = (...a) => Tocsin.el(...a);
  const OPS_SHOWN = 5;

  function useSafetyStyles() {
    if (document.querySelector("link[data-safety-css]")) return;
    document.head.append(el("link", { rel: "stylesheet", href: "/static/safety/safety.css",
                                      "data-safety-css": "1" }));
  }

  const day = (iso) => (iso || "").slice(0, 10);

  function about(f) {
    if (f.subject.kind === "place") return f.subject.address || "this place";
    return f.subject.withheld ? "a person linked here (identity withheld)" : f.subject.name;
  }

  function flag(f) {
    return el("div", { class: `flag ${f.state}`, "data-category": f.category },
      el("strong", {}, f.label), ` — ${about(f)} `,
      f.state === "unconfirmed" ? el("span", { class: "badge" }, "unconfirmed") : null,
      el("div", { class: "why" }, f.reason),
      el("div", { class: "why" }, `source: ${f.source}; by ${f.author || "?"}, until ${day(f.expires_at)}`));
  }

  function operation(o) {
    const who = (o.persons || []).filter((p) => p.name).map((p) => `${p.name} (${p.role})`);
    return el("li", {},
      `${day(o.started_at)} ${o.nature} — ${o.outcome}`,
      o.force_used ? el("span", { class: "force" }, " · force used") : null,
      o.injury ? el("span", { class: "force" }, " · injury") : null,
      who.length ? el("span", { class: "muted" }, ` · ${who.join(", ")}`) : null,
      o.address ? el("span", { class: "muted" }, ` (${o.address})`) : null);
  }

  function person(p) {
    const what = [p.expected ? "expected" : null, ...p.roles_here,
                  p.flags.length ? `${p.flags.length} flag${p.flags.length > 1 ? "s" : ""}` : null]
      .filter(Boolean);
    return el("li", {}, `${p.name || "?"}${p.birth_date ? ` (${p.birth_date})` : ""}`,
      what.length ? el("span", { class: "muted" }, ` — ${what.join(", ")}`) : null);
  }

  function render(box, b) {
    useSafetyStyles();
    if (!b || !b.available) {
      box.replaceChildren(el("p", { class: "muted briefing-unavailable" }, b ? b.message : "No briefing."));
      return;
    }
    const c = b.content;
    const ops = [...c.operations].sort((x, y) => y.started_at.localeCompare(x.started_at));
    const moreOps = c.operations_stats.total - Math.min(ops.length, OPS_SHOWN);
    box.replaceChildren(
      el("p", { class: "briefing-summary" }, c.summary.join(" · ")),
      c.withheld.message ? el("p", { class: "withheld briefing-withheld" },
        `${c.withheld.message}: not visible to you. Ask your dispatcher if they matter.`) : null,
      el("h4", {}, `Risk flags (${c.flags.length}${c.flags_truncated ? "+" : ""})`),
      c.flags.length ? el("div", { class: "briefing-flags" }, c.flags.map(flag))
        : el("p", { class: "muted" }, "No risk flag you may see here."),
      el("h4", {}, "Prior operations, recent first"),
      ops.length ? el("ul", { class: "ops briefing-ops" }, ops.slice(0, OPS_SHOWN).map(operation))
        : el("p", { class: "muted" }, "None you may see."),
      moreOps > 0 ? el("p", { class: "muted" }, `and ${moreOps} earlier`) : null,
      c.persons.length ? el("h4", {}, "Persons") : null,
      c.persons.length ? el("ul", { class: "briefing-persons" }, c.persons.map(person)) : null,
      c.persons_not_shown && c.persons_not_shown.message
        ? el("p", { class: "muted" }, c.persons_not_shown.message) : null);
  }

  // One marker a place: a warning sign where a flag lies (on the place, or on a person
  // met there), a dot where there were only prior operations.
  function mapLayer(c) {
    const layer = L.layerGroup();
    if (!c) return layer;
    const at = new Map();
    const spot = (id, lat, lon, address) => {
      if (lat == null || lon == null) return null;
      if (!at.has(id)) at.set(id, { lat, lon, address, flags: [], ops: [] });
      return at.get(id);
    };
    for (const p of c.places) spot(p.id, p.lat, p.lon, p.address);
    for (const o of c.operations) {
      const s = spot(o.place_id, o.lat, o.lon, o.address);
      if (s) s.ops.push(`${day(o.started_at)} ${o.nature}${o.force_used ? " (force used)" : ""}`);
    }
    for (const f of c.flags) {
      let places = [];
      if (f.subject.kind === "place") places = [f.subject.id];
      else if (f.subject.id != null) {
        places = c.operations.filter((o) => o.persons.some((p) => p.id === f.subject.id)).map((o) => o.place_id);
      }
      for (const id of new Set(places)) if (at.has(id)) at.get(id).flags.push(`${f.label}: ${about(f)}`);
    }
    for (const s of at.values()) {
      if (!s.flags.length && !s.ops.length) continue;
      const hazard = s.flags.length > 0;
      const icon = L.divIcon({ className: hazard ? "map-hazard" : "map-prior-op", html: hazard ? "⚠" : "●",
                               iconSize: hazard ? [22, 22] : [14, 14] });
      const tip = [s.address || "", ...s.flags.map((x) => `⚠ ${x}`), ...s.ops.slice(0, 4)]
        .filter(Boolean).map((x) => el("div", {}, x));
      L.marker([s.lat, s.lon], { icon, keyboard: false, zIndexOffset: hazard ? 500 : 0 })
        .bindTooltip(el("div", {}, tip)).addTo(layer);
    }
    return layer;
  }

  return { render, mapLayer };
})();
