"""Operations: command structure, access across regions, geometry rules, journal,
decisions, orders, photos, replay, reports and dispatch incidents."""

from __future__ import annotations

import datetime as dt

from tests.operations.helpers import LAT, LON, make_operation, png_bytes, square
from tocsin.core.events import DomainEvent
from tocsin.operations import positions
from tocsin.operations.positions import get_hub


def test_command_structure_and_who_sees_the_operation(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    got = client.get(base, headers=op.patrol)
    assert got.status_code == 200, got.text
    body = got.json()
    assert [s["name"] for s in body["sectors"]] == ["North"]
    assert body["my_units"] == [op.unit_id] and body["may_manage"] is False
    # the patrol officer may read but not command
    r = client.post(f"{base}/sectors", headers=op.patrol,
                    json={"name": "Mine", "geometry": square(LON + 0.05, LAT)})
    assert r.status_code == 403
    # another region sees nothing until its unit takes part (an explicit core share)
    inv2 = force.headers(client, "inv2")
    assert client.get(base, headers=inv2).status_code == 403
    assert all(o["id"] != op.id for o in client.get("/api/v1/operations", headers=inv2).json())
    r = client.post(f"{base}/participants", headers=op.cmd, json={"unit_code": "D21"})
    assert r.status_code == 201, r.text
    assert client.get(base, headers=inv2).status_code == 200
    assert any(o["id"] == op.id for o in client.get("/api/v1/operations", headers=inv2).json())
    assert client.post(f"{base}/participants", headers=op.cmd,
                       json={"unit_code": "D21"}).status_code == 409
    # staff and phases
    r = client.post(f"{base}/staff", headers=op.cmd,
                    json={"user_id": force.users["dispatcher"], "function": "logistics"})
    assert r.status_code == 201
    r = client.post(f"{base}/phases", headers=op.cmd,
                    json={"name": "Arrival", "starts_at": "2030-01-01T08:00:00Z",
                          "ends_at": "2030-01-01T07:00:00Z"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "operation.bad_period"
    detail = client.get(base, headers=op.cmd).json()
    assert detail["staff"][0]["function"] == "logistics"
    assert {p["code"] for p in detail["participants"]} >= {"B1111", "B1112", "D21"}
    # staff may manage
    disp = force.headers(client, "dispatcher")
    assert client.post(f"{base}/points", headers=disp, json={
        "kind": "checkpoint", "name": "CP1",
        "geometry": {"type": "Point", "coordinates": [LON + 0.005, LAT + 0.005]}}
    ).status_code == 201


def test_sector_geometry_rules(client, force):
    op = make_operation(client, force)
    url = f"/api/v1/operations/{op.id}/sectors"
    overlapping = client.post(url, headers=op.cmd,
                              json={"name": "Overlap", "geometry": square(LON + 0.005, LAT)})
    assert overlapping.status_code == 409
    assert overlapping.json()["error"]["code"] == "sector.overlap"
    assert overlapping.json()["error"]["details"]["sector_id"] == op.sector_id
    bowtie = {"type": "Polygon", "coordinates": [[[LON, LAT], [LON + 0.01, LAT + 0.01],
                                                  [LON + 0.01, LAT], [LON, LAT + 0.01],
                                                  [LON, LAT]]]}
    r = client.post(url, headers=op.cmd, json={"name": "Bowtie", "geometry": bowtie})
    assert r.status_code == 422 and r.json()["error"]["code"] == "geometry.self_intersection"
    for bad in ({"type": "Point", "coordinates": [1, 2]},
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]},
                {"type": "Polygon", "coordinates": [[[0, 0], [500, 1], [1, 0]]]},
                {"type": "Polygon", "coordinates": "nope"}):
        r = client.post(url, headers=op.cmd, json={"name": "Bad", "geometry": bad})
        assert r.status_code == 422, bad
    # sharing a border is not an overlap
    r = client.post(url, headers=op.cmd, json={"name": "East", "geometry": square(LON + 0.01, LAT)})
    assert r.status_code == 201, r.text
    names = [s["name"] for s in client.get(f"/api/v1/operations/{op.id}",
                                           headers=op.cmd).json()["sectors"]]
    assert names == ["North", "East"]


def test_a_unit_is_in_one_sector_at_most(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    east = client.post(f"{base}/sectors", headers=op.cmd,
                       json={"name": "East", "geometry": square(LON + 0.02, LAT)}).json()["id"]
    url = f"{base}/units/{op.unit_id}/sector"
    assert client.put(url, headers=op.cmd, json={"sector_id": op.sector_id}).status_code == 200
    r = client.put(url, headers=op.cmd, json={"sector_id": east})
    assert r.status_code == 409 and r.json()["error"]["code"] == "unit.already_assigned"
    units = client.get(base, headers=op.cmd).json()["units"]
    assert next(u for u in units if u["id"] == op.unit_id)["sector_id"] == op.sector_id
    r = client.put(url, headers=op.cmd, json={"sector_id": east, "reassign": True})
    assert r.status_code == 200 and r.json()["sector_id"] == east
    moves = client.get(f"{base}/journal", headers=op.cmd,
                       params={"kind": "assignment", "op_unit_id": op.unit_id}).json()
    assert [m["sector_id"] for m in moves] == [op.sector_id, east]
    assert moves[1]["data"]["previous_sector_id"] == op.sector_id


def test_decisions_are_signed_and_only_superseded(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    r = client.post(f"{base}/decisions", headers=op.cmd,
                    json={"text": "Close Mannerheimintie", "rationale": "crowd of 5,000",
                          "sector_id": op.sector_id})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["signature"].startswith("hmac-sha256:")
    check = client.get(f"{base}/decisions/{first['id']}/verify", headers=op.patrol).json()
    assert check == {"id": first["id"], "valid": True,
                     "author_user_id": force.users["commander1"], "superseded_by": None}
    # no route edits a journal entry
    assert client.put(f"{base}/journal/{first['id']}", headers=op.cmd,
                      json={"text": "x"}).status_code in (404, 405)
    assert client.post(f"{base}/decisions", headers=op.patrol,
                       json={"text": "x", "rationale": "y"}).status_code == 403
    r = client.post(f"{base}/decisions", headers=op.cmd,
                    json={"text": "Reopen Mannerheimintie", "rationale": "crowd dispersed",
                          "supersedes_id": first["id"]})
    assert r.status_code == 201
    second = r.json()
    again = client.post(f"{base}/decisions", headers=op.cmd,
                        json={"text": "x", "rationale": "y", "supersedes_id": first["id"]})
    assert again.status_code == 409
    assert client.get(f"{base}/decisions/{first['id']}/verify",
                      headers=op.cmd).json()["superseded_by"] == second["id"]
    # tampering with the stored row breaks the signature
    from sqlalchemy import update

    from tocsin.operations.models import JournalEntry

    with force.runtime.db.session() as s:
        s.execute(update(JournalEntry).where(JournalEntry.id == first["id"])
                  .values(rationale="no reason"))
    assert client.get(f"{base}/decisions/{first['id']}/verify",
                      headers=op.cmd).json()["valid"] is False


def test_orders_acknowledged_completed_and_overdue(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)).isoformat()
    r = client.post(f"{base}/orders", headers=op.cmd,
                    json={"text": "Hold the bridge", "op_unit_id": op.unit_id, "due_at": past})
    assert r.status_code == 201
    order = r.json()
    assert order["overdue"] is True and order["status"] == "issued"
    assert client.post(f"{base}/orders", headers=op.cmd,
                       json={"text": "x", "op_unit_id": op.unit_id,
                             "sector_id": op.sector_id}).status_code == 422
    patrol2 = force.headers(client, "patrol2")
    assert client.post(f"{base}/orders/{order['id']}/acknowledge",
                       headers=patrol2).status_code == 403
    r = client.post(f"{base}/orders/{order['id']}/acknowledge", headers=op.patrol)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["overdue"] is True
    assert [o["id"] for o in client.get(f"{base}/orders", headers=op.cmd,
                                        params={"overdue": True}).json()] == [order["id"]]
    r = client.post(f"{base}/orders/{order['id']}/complete", headers=op.patrol)
    assert r.status_code == 200 and r.json()["overdue"] is False
    assert client.post(f"{base}/orders/{order['id']}/acknowledge",
                       headers=op.patrol).status_code == 409
    assert client.get(f"{base}/orders", headers=op.cmd, params={"overdue": True}).json() == []
    # a sector order is answered by a unit in that sector
    client.put(f"{base}/units/{op.unit_id}/sector", headers=op.cmd,
               json={"sector_id": op.sector_id})
    r = client.post(f"{base}/orders", headers=op.cmd,
                    json={"text": "Sweep north", "sector_id": op.sector_id})
    assert client.post(f"{base}/orders/{r.json()['id']}/acknowledge",
                       headers=op.patrol).status_code == 200
    kinds = [e["kind"] for e in client.get(f"{base}/journal", headers=op.cmd,
                                           params={"kind": "order"}).json()]
    assert kinds == ["order"] * 5


def test_field_report_with_photo_and_journal_filters(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    up = f"/api/v1/operations/photos/{op.id}"
    r = client.post(up, headers=op.patrol, content=b"<svg onload=alert(1)>")
    assert r.status_code == 422 and r.json()["error"]["code"] == "photo.not_an_image"
    r = client.post(up, headers=force.headers(client, "inv2"), content=png_bytes())
    assert r.status_code == 403
    r = client.post(up, headers=op.patrol, content=png_bytes())
    assert r.status_code == 201, r.text
    sha = r.json()["photo"]
    r = client.post(f"{base}/journal", headers=op.patrol, json={
        "kind": "report", "text": "Crowd gathering at the station", "op_unit_id": op.unit_id,
        "lat": LAT + 0.005, "lon": LON + 0.005, "photo": sha})
    assert r.status_code == 201, r.text
    assert r.json()["photo"] == sha
    assert client.post(f"{base}/journal", headers=op.patrol, json={
        "kind": "report", "text": "x", "photo": "0" * 64}).status_code == 422
    assert client.post(f"{base}/journal", headers=op.patrol, json={
        "kind": "report", "text": "x", "lat": 60.0}).status_code == 422
    assert client.post(f"{base}/journal", headers=op.patrol, json={
        "kind": "report", "text": "not mine", "op_unit_id": op.other_unit_id}).status_code == 403
    img = client.get(f"{base}/photos/{sha}", headers=op.cmd)
    assert img.status_code == 200 and img.content == png_bytes()
    assert img.headers["content-type"] == "image/png"
    assert client.get(f"{base}/photos/{sha}", headers=force.headers(client, "inv2")
                      ).status_code == 403
    reports = client.get(f"{base}/journal", headers=op.cmd,
                         params={"kind": "report", "op_unit_id": op.unit_id}).json()
    assert [e["text"] for e in reports] == ["Crowd gathering at the station"]
    assert client.get(f"{base}/journal", headers=op.cmd,
                      params={"kind": "report", "op_unit_id": op.other_unit_id}).json() == []
    sector_entries = client.get(f"{base}/journal", headers=op.cmd,
                                params={"sector_id": op.sector_id}).json()
    assert [e["kind"] for e in sector_entries] == ["sector"]


def test_positions_bad_input_and_flood(client, force, monkeypatch):
    op = make_operation(client, force)
    url = f"/api/v1/operations/{op.id}/positions"
    now = dt.datetime.now(dt.timezone.utc)
    good = {"op_unit_id": op.unit_id, "lat": LAT + 0.005, "lon": LON + 0.005}
    r = client.post(url, headers=op.patrol, json={"items": [
        good,
        {**good, "at": (now + dt.timedelta(hours=1)).isoformat()},
        {**good, "lat": 48.85, "lon": 2.35},
        {**good, "op_unit_id": op.other_unit_id},
        {**good, "lat": "north"},
        {**good, "lat": 95},
        {"op_unit_id": 999999, "lat": LAT, "lon": LON},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert [x["reason"] for x in r.json()["rejected"]] == [
        "future", "outside_operation", "not_your_unit", "malformed", "bad_coordinates",
        "unknown_unit"]
    r = client.post(url, headers=op.patrol, json={"items": [{**good, "lat": 0, "lon": 0}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "positions.rejected"
    # a flood from one client is cut at the rate limit with a clear answer (the refill
    # slowed down: each answer waits for its positions to be stored)
    monkeypatch.setattr(positions, "RATE", 0.01)
    r = client.post(url, headers=op.patrol, json={"items": [good] * 40})
    assert r.status_code == 200
    assert 5 <= r.json()["accepted"] <= 11
    assert {x["reason"] for x in r.json()["rejected"]} == {"rate_limited"}
    r = client.post(url, headers=op.patrol, json={"items": [good] * 5})
    assert r.status_code == 429 and r.json()["error"]["code"] == "positions.rate_limited"
    hub = get_hub(force.runtime)
    assert hub.pending_for(op.id) == []  # the answers came once the positions were stored
    from sqlalchemy import func, select

    from tocsin.operations.models import Position

    with force.runtime.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(Position))
    assert stored == hub.stats["accepted"]
    latest = client.get(f"/api/v1/operations/{op.id}/positions/latest", headers=op.cmd).json()
    assert [p["op_unit_id"] for p in latest] == [op.unit_id]


def test_replay_shows_the_past(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    now = dt.datetime.now(dt.timezone.utc)
    t1, t2 = now - dt.timedelta(minutes=20), now - dt.timedelta(minutes=10)
    r = client.post(f"{base}/positions", headers=op.cmd, json={"items": [
        {"op_unit_id": op.unit_id, "lat": LAT + 0.001, "lon": LON + 0.001,
         "at": t1.isoformat()},
        {"op_unit_id": op.unit_id, "lat": LAT + 0.009, "lon": LON + 0.009,
         "at": t2.isoformat()}]})
    assert r.json()["accepted"] == 2
    get_hub(force.runtime).flush()
    mid = (now - dt.timedelta(minutes=15)).isoformat()
    rep = client.get(f"{base}/replay", headers=op.patrol, params={"at": mid}).json()
    assert [(p["op_unit_id"], p["lat"]) for p in rep["positions"]] == [(op.unit_id, LAT + 0.001)]
    rep = client.get(f"{base}/replay", headers=op.patrol).json()
    assert rep["positions"][0]["lat"] == LAT + 0.009
    assert [s["name"] for s in rep["sectors"]] == ["North"]
    # the sector did not exist an hour ago, the operation's journal was shorter
    early = client.get(f"{base}/replay", headers=op.patrol,
                       params={"at": (now - dt.timedelta(hours=2)).isoformat()}).json()
    assert early["sectors"] == [] and early["positions"] == [] and early["journal"] == []
    # a sector redrawn (removed) stays in the replay of before
    before_removal = dt.datetime.now(dt.timezone.utc).isoformat()
    assert client.delete(f"{base}/sectors/{op.sector_id}", headers=op.cmd).status_code == 204
    assert client.get(f"{base}/replay", headers=op.cmd).json()["sectors"] == []
    assert len(client.get(f"{base}/replay", headers=op.cmd,
                          params={"at": before_removal}).json()["sectors"]) == 1
    assert client.get(f"{base}/replay", headers=op.cmd,
                      params={"at": "2026-01-01T00:00:00"}).status_code == 422


def test_dispatch_incidents_inside_the_perimeter_enter_the_journal_once(client, force):
    op = make_operation(client, force)
    rt = force.runtime
    inside = DomainEvent(type="dispatch.incident.created", record_kind="incident",
                         record_id="77", unit_id=1,
                         payload={"location": {"lat": LAT + 0.005, "lon": LON + 0.005},
                                  "summary": "Fight", "priority": 1})
    outside = DomainEvent(type="dispatch.incident.created", record_kind="incident",
                          record_id="78", unit_id=1, payload={"lat": 61.5, "lon": 23.7})
    rt.bus.publish([inside, outside, inside])  # the same event twice (two nodes hearing it)
    entries = client.get(f"/api/v1/operations/{op.id}/journal", headers=op.cmd,
                         params={"kind": "incident"}).json()
    assert len(entries) == 1
    assert entries[0]["data"]["incident_id"] == "77" and "Fight" in entries[0]["text"]
    assert entries[0]["lat"] == LAT + 0.005


def test_after_action_report_html_and_pdf(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    sha = client.post(f"/api/v1/operations/photos/{op.id}", headers=op.patrol,
                      content=png_bytes()).json()["photo"]
    client.post(f"{base}/journal", headers=op.patrol, json={
        "kind": "report", "text": "<script>alert(1)</script> seen", "op_unit_id": op.unit_id,
        "lat": LAT + 0.005, "lon": LON + 0.005, "photo": sha})
    client.post(f"{base}/decisions", headers=op.cmd,
                json={"text": "Kettle the crowd", "rationale": "violence at the fence"})
    r = client.get(f"{base}/report.html", headers=op.cmd)
    assert r.status_code == 200
    html = r.text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "Kettle the crowd" in html and "violence at the fence" in html
    assert "ALPHA-1" in html and "data:image/jpeg;base64," in html
    assert "src='http" not in html and 'src="http' not in html
    pdf = client.get(f"{base}/report.pdf", headers=op.cmd)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"{base}/report.html",
                      headers=force.headers(client, "inv2")).status_code == 403
