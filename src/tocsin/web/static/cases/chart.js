"use strict";
// Link chart: a small force-directed layout drawn in SVG, no library.
//   CaseChart.draw(svg, data, {onClick(node, event)})
// data = {nodes:[{id,type,label}], links:[{id,source_id,target_id,type}], hits:[...],
//         path:{nodes:[], links:[]}}; hits become red nodes tied to their entity.
const CaseChart = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { person: "#3d8bfd", vehicle: "#30a46c", phone: "#f5a524", email: "#a371f7",
    address: "#8ea0b3", document: "#c9d1d9", weapon: "#e5484d", bank_account: "#2dd4bf",
    event: "#f778ba", hit: "#e5484d" };

  function layout(nodes, edges, w, h) {
    const n = nodes.length;
    nodes.forEach((d, i) => {
      const a = (2 * Math.PI * i) / Math.max(n, 1);
      d.x = w / 2 + (w / 3) * Math.cos(a); d.y = h / 2 + (h / 3) * Math.sin(a);
    });
    const index = new Map(nodes.map((d, i) => [d.key, i]));
    const k = Math.sqrt((w * h) / Math.max(n, 1)) * 0.6;
    for (let it = 0; it < 250; it++) {
      const t = 20 * (1 - it / 250) + 0.5;
      const dx = new Float64Array(n), dy = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
        let ex = nodes[i].x - nodes[j].x, ey = nodes[i].y - nodes[j].y;
        const d2 = Math.max(ex * ex + ey * ey, 0.01), f = (k * k) / d2;
        dx[i] += ex * f; dy[i] += ey * f; dx[j] -= ex * f; dy[j] -= ey * f;
      }
      for (const e of edges) {
        const i = index.get(e.a), j = index.get(e.b);
        if (i === undefined || j === undefined) continue;
        const ex = nodes[i].x - nodes[j].x, ey = nodes[i].y - nodes[j].y;
        const d = Math.max(Math.sqrt(ex * ex + ey * ey), 0.1), f = d / k;
        dx[i] -= ex * f; dy[i] -= ey * f; dx[j] += ex * f; dy[j] += ey * f;
      }
      for (let i = 0; i < n; i++) {
        const len = Math.max(Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]), 0.01);
        nodes[i].x = Math.min(w - 30, Math.max(30, nodes[i].x + (dx[i] / len) * Math.min(len, t)));
        nodes[i].y = Math.min(h - 20, Math.max(20, nodes[i].y + (dy[i] / len) * Math.min(len, t)));
      }
    }
  }

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function draw(svg, data, opts = {}) {
    const w = 640, h = 420;
    const nodes = data.nodes.map((d) => ({ key: "e" + d.id, data: d, type: d.type, label: d.label }));
    const edges = data.links.map((l) => ({ a: "e" + l.source_id, b: "e" + l.target_id, link: l }));
    for (const hit of data.hits || []) {
      const key = "h" + hit.id;
      nodes.push({ key, type: "hit", hit,
                   label: `hit ${hit.other.unit_code} (${Math.round(hit.strength * 100)}%)` });
      edges.push({ a: "e" + hit.entity_id, b: key, hit: true });
    }
    layout(nodes, edges, w, h);
    const pos = new Map(nodes.map((d) => [d.key, d]));
    const onPath = new Set((data.path && data.path.links) || []);
    svg.replaceChildren();
    for (const e of edges) {
      const a = pos.get(e.a), b = pos.get(e.b);
      if (!a || !b) continue;
      svg.appendChild(el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y,
        class: e.link && onPath.has(e.link.id) ? "path" : "", "stroke-dasharray": e.hit ? "4 3" : "" }));
      if (e.link) svg.appendChild(el("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2,
        class: "edge-label" }, e.link.type.replace("_", " ")));
    }
    for (const d of nodes) {
      const g = el("g", { class: "node" + (d.type === "hit" ? " hit" : "") +
                         (opts.selected && d.data && opts.selected.has(d.data.id) ? " selected" : ""),
                         transform: `translate(${d.x},${d.y})`, "data-id": d.data ? d.data.id : "",
                         "data-type": d.type });
      g.appendChild(el("circle", { r: d.type === "hit" ? 7 : 10, fill: COLORS[d.type] || "#888" }));
      g.appendChild(el("text", { x: 13, y: 4 }, d.label.length > 28 ? d.label.slice(0, 27) + "…" : d.label));
      if (d.data && opts.onClick) g.addEventListener("click", (ev) => opts.onClick(d.data, ev));
      svg.appendChild(g);
    }
  }

  return { draw };
})();
