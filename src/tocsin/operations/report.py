"""After-action report: the operation's summary and journal as self-contained HTML
(photos embedded as thumbnails, no external resource) or as PDF (fpdf2)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from typing import Any

from sqlalchemy import func, select

from tocsin.core.access import Principal
from tocsin.core.identity.models import User
from tocsin.core.runtime import Runtime
from tocsin.operations.models import Position
from tocsin.operations.service import get_service


def collect(rt: Runtime, p: Principal, op_id: int) -> dict[str, Any]:
    svc = get_service(rt)
    op = svc.get_operation(p, op_id)  # access checked here
    journal = svc.journal(p, op_id, limit=100_000)
    orders = svc.orders(p, op_id)
    alerts = svc.alerts(p, op_id)
    with rt.db.read() as s:
        counts = dict(s.execute(select(Position.op_unit_id, func.count()).where(
            Position.operation_id == op_id).group_by(Position.op_unit_id)).all())
        ids = {e["author_user_id"] for e in journal if e["author_user_id"]}
        names = dict(s.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all()
                     ) if ids else {}
    superseded = {e["supersedes_id"]: e["id"] for e in journal if e["supersedes_id"]}
    photos = {}
    for e in journal:
        if e["photo"] and e["photo"] not in photos:
            photos[e["photo"]] = _thumbnail(svc, p, op_id, e["photo"])
    return {"op": op, "journal": journal, "orders": orders, "alerts": alerts,
            "position_counts": counts, "names": names, "superseded": superseded,
            "photos": photos, "generated_at": dt.datetime.now(dt.timezone.utc)}


def _thumbnail(svc, p, op_id: int, sha: str) -> str | None:
    from PIL import Image

    try:
        path, _mime = svc.photo(p, op_id, sha)
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((480, 480))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
    except Exception:
        return None


def _t(value: str | None) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(data: dict[str, Any]) -> str:
    e = html.escape
    op = data["op"]
    units = {u["id"]: u for u in op["units"]}
    sectors = {s["id"]: s["name"] for s in op["sectors"]}
    decisions = [j for j in data["journal"] if j["kind"] == "decision"]
    incidents = [j for j in data["journal"] if j["kind"] == "incident"]
    rows = []
    for j in data["journal"]:
        who = data["names"].get(j["author_user_id"], "system")
        extra = ""
        if j["rationale"]:
            extra += f"<div class='why'>Rationale: {e(j['rationale'])}</div>"
        if j["kind"] == "decision":
            extra += f"<div class='sig'>Signed {e(j['signature'] or '')}</div>"
            if j["id"] in data["superseded"]:
                extra += f"<div class='sup'>Superseded by #{data['superseded'][j['id']]}</div>"
        if j["lat"] is not None:
            extra += f"<div class='loc'>at {j['lat']:.5f}, {j['lon']:.5f}</div>"
        if j["photo"] and data["photos"].get(j["photo"]):
            extra += f"<img alt='photo' src='{data['photos'][j['photo']]}'>"
        rows.append(
            f"<tr class='k-{e(j['kind'])}'><td>{e(_t(j['at']))}</td><td>{e(j['kind'])}</td>"
            f"<td>{e(sectors.get(j['sector_id'], '') if j['sector_id'] else '')}</td>"
            f"<td>{e(units[j['op_unit_id']]['callsign'] if j['op_unit_id'] in units else '')}"
            f"</td><td>{e(who)}</td><td>{e(j['text'])}{extra}</td></tr>")
    unit_rows = "".join(
        f"<tr><td>{e(u['callsign'])}</td><td>{e(u['kind'])}</td>"
        f"<td>{e(sectors.get(u['sector_id'], '-'))}</td><td>{e(u['status'])}</td>"
        f"<td>{data['position_counts'].get(u['id'], 0)}</td></tr>" for u in op["units"])
    order_rows = "".join(
        f"<tr><td>#{o['id']}</td><td>{e(o['text'])}</td><td>{e(o['status'])}"
        f"{' (overdue)' if o['overdue'] else ''}</td><td>{e(_t(o['issued_at']))}</td>"
        f"<td>{e(_t(o['completed_at']))}</td></tr>" for o in data["orders"])
    decision_rows = "".join(
        f"<li><b>{e(_t(d['at']))}</b> {e(d['text'])} — <i>{e(d['rationale'] or '')}</i>"
        f" ({e(data['names'].get(d['author_user_id'], '?'))})"
        f"{' [superseded]' if d['id'] in data['superseded'] else ''}</li>" for d in decisions)
    incident_rows = "".join(f"<li>{e(_t(i['at']))} {e(i['text'])}</li>" for i in incidents)
    alert_rows = "".join(f"<li>{e(_t(a['sent_at']))} {e(a['kind'])}: {e(a['headline'])} "
                         f"({e(a['identifier'])})</li>" for a in data["alerts"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>After-action report: {e(op['name'])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #111; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}
th, td {{ border-bottom: 1px solid #ccc; padding: .3rem .4rem; text-align: left; vertical-align: top; }}
.why {{ color: #333; font-style: italic; }} .sig, .sup, .loc {{ color: #666; font-size: 12px; }}
img {{ max-width: 320px; display: block; margin-top: .3rem; }}
tr.k-decision td {{ background: #fff7e0; }}
</style></head><body>
<h1>After-action report: {e(op['name'])}</h1>
<p>{e(op['description'] or '')}</p>
<table><tr><th>Period</th><td>{e(_t(op['starts_at']))} — {e(_t(op['ends_at']) or 'ongoing')}</td></tr>
<tr><th>Status</th><td>{e(op['status'])}</td></tr>
<tr><th>Commander</th><td>{e(op['commander']['name'] or '')}</td></tr>
<tr><th>Staff</th><td>{e(', '.join(f"{s['name']} ({s['function']})" for s in op['staff']))}</td></tr>
<tr><th>Participating units</th><td>{e(', '.join(p['code'] for p in op['participants']))}</td></tr>
<tr><th>Sectors</th><td>{e(', '.join(s['name'] for s in op['sectors']))}</td></tr>
<tr><th>Journal entries</th><td>{len(data['journal'])}</td></tr>
<tr><th>Generated</th><td>{e(data['generated_at'].strftime('%Y-%m-%d %H:%M:%S UTC'))}</td></tr></table>
<h2>Units involved</h2>
<table><tr><th>Callsign</th><th>Kind</th><th>Sector</th><th>Status</th><th>Positions</th></tr>{unit_rows}</table>
<h2>Decisions</h2><ul>{decision_rows or '<li>none</li>'}</ul>
<h2>Incidents</h2><ul>{incident_rows or '<li>none</li>'}</ul>
<h2>Orders</h2>
<table><tr><th>#</th><th>Order</th><th>Status</th><th>Issued</th><th>Completed</th></tr>{order_rows}</table>
<h2>Alerts</h2><ul>{alert_rows or '<li>none</li>'}</ul>
<h2>Timeline (journal)</h2>
<table><tr><th>Time</th><th>Type</th><th>Sector</th><th>Unit</th><th>By</th><th>Entry</th></tr>
{''.join(rows)}</table>
</body></html>"""


def render_pdf(data: dict[str, Any]) -> bytes:
    from fpdf import FPDF

    op = data["op"]
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    font = "Helvetica"
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        try:
            pdf.add_font("DejaVu", "", path)
            pdf.add_font("DejaVu", "B", path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
            font = "DejaVu"
        except Exception:
            font = "Helvetica"

    def txt(s: str) -> str:
        return s if font == "DejaVu" else s.encode("latin-1", "replace").decode("latin-1")

    NL = {"new_x": "LMARGIN", "new_y": "NEXT"}
    pdf.add_page()
    pdf.set_font(font, "B", 16)
    pdf.multi_cell(0, 8, txt(f"After-action report: {op['name']}"), **NL)
    pdf.set_font(font, "", 10)
    sectors = {s["id"]: s["name"] for s in op["sectors"]}
    units = {u["id"]: u["callsign"] for u in op["units"]}
    for line in (f"Period: {_t(op['starts_at'])} - {_t(op['ends_at']) or 'ongoing'}",
                 f"Status: {op['status']}", f"Commander: {op['commander']['name']}",
                 "Participating units: " + ", ".join(p["code"] for p in op["participants"]),
                 "Sectors: " + ", ".join(sectors.values()),
                 "Units: " + ", ".join(f"{u['callsign']} ({data['position_counts'].get(u['id'], 0)}"
                                       " positions)" for u in op["units"])):
        pdf.multi_cell(0, 5, txt(line), **NL)
    pdf.ln(3)
    for title, kinds in (("Decisions", {"decision"}), ("Incidents", {"incident"}),
                         ("Timeline", None)):
        pdf.set_font(font, "B", 12)
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(font, "", 9)
        for j in data["journal"]:
            if kinds and j["kind"] not in kinds:
                continue
            who = data["names"].get(j["author_user_id"], "system")
            where = " ".join(x for x in (sectors.get(j["sector_id"], ""),
                                         units.get(j["op_unit_id"], "")) if x)
            line = f"{_t(j['at'])}  [{j['kind']}] {where + ': ' if where else ''}{j['text']}" \
                   f"  ({who})"
            if j["rationale"]:
                line += f"\n    Rationale: {j['rationale']}"
            if j["id"] in data["superseded"]:
                line += f"\n    Superseded by #{data['superseded'][j['id']]}"
            pdf.multi_cell(0, 4.5, txt(line), **NL)
        pdf.ln(2)
    return bytes(pdf.output())
