"use strict";
// Investigations page: my cases, nationwide search with facets, a case file with its
// entities, links, attachments and hits, the link chart, access requests and watches.
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (...a) => Tocsin.el(...a);
  const FIELDS = {
    person: ["given_name", "family_name", "birth_date", "nationality"],
    vehicle: ["plate", "vin", "make", "model", "colour"], phone: ["number", "notes"],
    email: ["address"], address: ["street", "postcode", "city"],
    document: ["doc_type", "number", "issuer"], weapon: ["kind", "make", "serial"],
    bank_account: ["iban", "bank", "holder"], event: ["title", "date", "place"],
  };
  let current = null;          // the open case file
  let selected = new Set();    // chart selection

  function notice(text) {
    const n = $("notice");
    n.textContent = text; n.hidden = false;
    clearTimeout(notice.t); notice.t = setTimeout(() => { n.hidden = true; }, 8000);
  }

  function otherText(o) {
    const who = o.contact_name ? `, contact ${o.contact_name}` : "";
    const phone = o.unit_phone ? ` (${o.unit_phone})` : "";
    return `${o.unit_code} ${o.unit_name}${phone}${who}`;
  }

  function hitItem(h, withEntity) {
    const li = el("li", { class: "hit", "data-hit": h.id },
      el("span", { class: "strength" }, `${Math.round(h.strength * 100)}%`), " ",
      `${h.kind} match in a case of `, el("b", {}, otherText(h.other)));
    if (withEntity && current) {
      const ent = current.entities.find((e) => e.id === h.entity_id);
      if (ent) li.append(" — your ", ent.label);
    }
    if (h.other_access) {
      li.append(" ", el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openCase(h.other.case_id); } },
        `open ${h.other.reference}`));
    } else {
      li.append(" ", el("button", { class: "secondary request-access", onclick: () => requestAccess({ hit_id: h.id }) },
        "Request access"));
    }
    return li;
  }

  async function requestAccess(target) {
    const reason = prompt("Why do you need this case? (recorded)", "Same identifier in my case");
    if (!reason) return;
    try {
      await Tocsin.api("POST", "/api/v1/cases/access-requests", Object.assign({ reason }, target));
      notice("Access requested; the owning unit has been told.");
    } catch (e) { notice(e.message); }
    loadRequests();
  }

  async function loadCases() {
    const cases = await Tocsin.api("GET", "/api/v1/cases");
    $("cases-list").replaceChildren(...cases.map((c) => el("li", {},
      el("a", { href: "#", "data-case": c.id, onclick: (ev) => { ev.preventDefault(); openCase(c.id); } },
        `${c.reference} · ${c.title}`), " ", el("span", { class: "badge" }, c.status))));
  }

  async function loadHits() {
    const hits = await Tocsin.api("GET", "/api/v1/cases/hits");
    $("my-hits").replaceChildren(...hits.map((h) => hitItem(h, false)));
  }

  async function loadRequests() {
    const r = await Tocsin.api("GET", "/api/v1/cases/access-requests");
    $("requests-to-decide").replaceChildren(...r.to_decide.map((q) => {
      const li = el("li", { "data-request": q.id },
        `${q.requester.display_name} (${q.requester.unit_code}) asks for `,
        el("b", {}, q.case.reference || q.case.unit_code), `: “${q.reason}” `,
        el("span", { class: "badge" }, q.status));
      if (q.status === "pending") {
        li.append(" ", el("button", { class: "grant", onclick: () => decide(q.id, true) }, "Grant"),
                  " ", el("button", { class: "danger refuse", onclick: () => decide(q.id, false) }, "Refuse"));
      }
      return li;
    }));
    $("requests-mine").replaceChildren(...r.mine.map((q) => {
      const li = el("li", { "data-request": q.id }, `case of ${q.case.unit_code} `,
        el("span", { class: "badge status" }, q.status));
      if (q.case.case_id) li.append(" ", el("a", { href: "#", class: "open-granted",
        onclick: (ev) => { ev.preventDefault(); openCase(q.case.case_id); } }, `open ${q.case.reference}`));
      return li;
    }));
  }

  async function decide(id, grant) {
    try {
      await Tocsin.api("POST", `/api/v1/cases/access-requests/${id}/decision`, { grant });
    } catch (e) { notice(e.message); }
    loadRequests();
  }

  async function loadWatches() {
    const [watches, alerts] = await Promise.all([Tocsin.api("GET", "/api/v1/cases/watches"),
      Tocsin.api("GET", "/api/v1/cases/watch-alerts")]);
    $("watches").replaceChildren(...watches.map((w) => el("li", {}, w.label, " ",
      el("button", { class: "link", onclick: async () => {
        await Tocsin.api("DELETE", `/api/v1/cases/watches/${w.id}`); loadWatches(); } }, "stop"))));
    $("watch-alerts").replaceChildren(...alerts.map((a) => {
      const li = el("li", {}, el("span", { class: "strength" }, `${Math.round(a.strength * 100)}%`),
        ` ${a.label} seen in a case of `, el("b", {}, otherText(a.other)));
      if (!a.other_access) li.append(" ", el("button", { class: "secondary",
        onclick: () => requestAccess({ alert_id: a.id }) }, "Request access"));
      return li;
    }));
  }

  function renderFacets(f) {
    $("facets").replaceChildren(...Object.entries(f).filter(([, v]) => Object.keys(v).length).map(([name, v]) =>
      el("div", {}, el("b", {}, name), Object.entries(v).map(([k, n]) => `${k} ${n}`).join(" · "))));
  }

  async function runSearch(ev) {
    ev.preventDefault();
    $("search-error").textContent = "";
    const body = {};
    for (const [id, key] of [["search-q", "q"], ["search-name", "name"], ["search-dob", "birth_date"],
                             ["search-plate", "plate"], ["search-phone", "phone"]]) {
      const v = $(id).value.trim();
      if (v) body[key] = v;
    }
    if (body.birth_date) body.dob_tolerance_days = 30;
    try {
      const r = await Tocsin.api("POST", "/api/v1/cases/search", body);
      $("search-out").hidden = false;
      $("search-total").textContent = `${r.total}${r.total_capped ? "+" : ""} results`;
      renderFacets(r.facets);
      $("search-results").replaceChildren(...r.results.map((x) => el("tr", {},
        el("td", {}, x.type), el("td", {}, x.label),
        el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); openCase(x.case.id); } },
          `${x.case.reference} · ${x.case.title}`)), el("td", {}, x.case.unit_code))));
    } catch (e) {
      $("search-out").hidden = true;
      $("search-error").textContent = e.message;
    }
  }

  function renderEntityForm() {
    const type = $("entity-type").value;
    $("entity-fields").replaceChildren(...FIELDS[type].map((f) =>
      el("label", {}, f.replace("_", " "), el("input", { "data-prop": f, maxlength: 200 }))));
  }

  async function openCase(id) {
    $("case-error").textContent = "";
    try {
      current = await Tocsin.api("GET", `/api/v1/cases/${id}`);
    } catch (e) { notice(e.message); return; }
    $("case-view").hidden = false;
    $("case-title").textContent = `${current.reference} · ${current.title}`;
    $("case-meta").textContent = `${current.unit_code} ${current.unit_name} · ${current.status} · ` +
      `${current.classification} · investigators: ${current.investigators.map((i) => i.display_name).join(", ")}`;
    $("case-summary").textContent = current.summary;
    for (const form of ["entity-form", "link-form", "attachment-file"]) $(form).hidden = !current.can_write;
    $("entities").replaceChildren(...current.entities.map((e) => el("tr", { "data-entity": e.id },
      el("td", {}, el("span", { class: "badge" }, e.type)), el("td", {}, e.label))));
    const opts = () => current.entities.map((e) => el("option", { value: e.id }, e.label));
    $("link-source").replaceChildren(...opts()); $("link-target").replaceChildren(...opts());
    $("attachments").replaceChildren(...current.attachments.map((a) => el("li", {},
      el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); download(a); } }, a.filename),
      ` ${a.media_type}, ${Math.ceil(a.size / 1024)} kB`)));
    $("case-hits").replaceChildren(...current.hits.map((h) => hitItem(h, true)));
    selected = new Set();
    loadChart();
  }

  async function download(a) {
    const r = await Tocsin.api("GET", `/api/v1/cases/${current.id}/attachments/${a.id}`, null, { raw: true });
    if (!r.ok) { notice("cannot open this attachment"); return; }
    const url = URL.createObjectURL(await r.blob());
    const link = el("a", { href: url, download: a.filename });
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function loadChart(params) {
    const qs = params ? "?" + new URLSearchParams(params) : "";
    try {
      const data = await Tocsin.api("GET", `/api/v1/cases/${current.id}/chart${qs}`);
      $("chart-status").textContent = params && params.path_to ? `path of ${data.path.nodes.length} entities`
        : params ? `neighbours of one entity` : `${data.nodes.length} entities`;
      CaseChart.draw($("chart"), data, { selected, onClick: chartClick });
      $("timeline").replaceChildren(...data.timeline.map((t) => el("li", {}, `${t.date} ${t.label}`)));
    } catch (e) { $("chart-status").textContent = e.message; }
  }

  function chartClick(node, ev) {
    if (ev.shiftKey && selected.size === 1) {
      const [from] = selected;
      selected.add(node.id);
      loadChart({ entity_id: from, path_to: node.id });
    } else {
      selected = new Set([node.id]);
      loadChart({ entity_id: node.id, depth: 1 });
    }
  }

  async function addEntity(ev) {
    ev.preventDefault();
    const properties = {};
    for (const input of $("entity-fields").querySelectorAll("input")) {
      if (input.value.trim()) properties[input.dataset.prop] = input.value.trim();
    }
    try {
      const r = await Tocsin.api("POST", `/api/v1/cases/${current.id}/entities`,
                                 { type: $("entity-type").value, properties });
      if (r.hits.length) notice(`Hit: ${r.label} is also in a case of ${otherText(r.hits[0].other)}`);
      renderEntityForm();
      await openCase(current.id);
      loadHits();
    } catch (e) { $("case-error").textContent = e.message; }
  }

  async function addLink(ev) {
    ev.preventDefault();
    const body = { source_id: +$("link-source").value, target_id: +$("link-target").value,
                   type: $("link-type").value };
    if ($("link-date").value.trim()) body.start_date = $("link-date").value.trim();
    try {
      await Tocsin.api("POST", `/api/v1/cases/${current.id}/links`, body);
      openCase(current.id);
    } catch (e) { $("case-error").textContent = e.message; }
  }

  async function upload() {
    const file = $("attachment-file").files[0];
    if (!file) return;
    try {
      await Tocsin.api("POST", `/api/v1/cases-upload/${current.id}?filename=${encodeURIComponent(file.name)}`, file);
      openCase(current.id);
    } catch (e) { $("case-error").textContent = e.message; }
    $("attachment-file").value = "";
  }

  function onEvent(ev) {
    if (!ev.type.startsWith("cases.")) return;
    if (ev.type === "cases.hit.found") {
      notice(`New hit (${ev.payload.kind}) with a case of ${otherText(ev.payload.other)}`);
      loadHits();
      if (current && current.id === ev.payload.case_id) openCase(current.id);
    } else if (ev.type.startsWith("cases.access.")) {
      if (ev.type === "cases.access.granted") notice("An access request was granted.");
      if (ev.type === "cases.access.requested") notice("New access request to decide.");
      loadRequests(); loadHits();
    } else if (ev.type === "cases.watch.alert") {
      notice(`Watch: ${ev.payload.label} seen in a case of ${otherText(ev.payload.other)}`);
      loadWatches();
    } else if (current && ev.record_id === String(current.id) && ev.actor_id !== null) {
      loadCases();
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!Tocsin.requireLogin()) return;
    await Tocsin.renderTopbar("Investigations");
    $("entity-type").replaceChildren(...Object.keys(FIELDS).map((t) => el("option", { value: t }, t)));
    $("entity-type").addEventListener("change", renderEntityForm);
    renderEntityForm();
    $("search-form").addEventListener("submit", runSearch);
    $("entity-form").addEventListener("submit", addEntity);
    $("link-form").addEventListener("submit", addLink);
    $("attachment-file").addEventListener("change", upload);
    $("chart-all").addEventListener("click", () => { selected = new Set(); loadChart(); });
    $("new-case-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const c = await Tocsin.api("POST", "/api/v1/cases", { title: $("new-case-title").value });
        $("new-case-title").value = "";
        await loadCases(); openCase(c.id);
      } catch (e) { notice(e.message); }
    });
    $("watch-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await Tocsin.api("POST", "/api/v1/cases/watches", { kind: $("watch-kind").value, value: $("watch-value").value });
        $("watch-value").value = ""; loadWatches();
      } catch (e) { notice(e.message); }
    });
    Tocsin.live(onEvent, Tocsin.setLiveStatus);
    await Promise.all([loadCases(), loadHits(), loadRequests(), loadWatches()]);
    document.body.dataset.ready = "1";
  });
})();
