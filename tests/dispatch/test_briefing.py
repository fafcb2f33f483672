"""The crew's briefing: the assignment push carries only a reference; the crew
fetches the briefing as itself, sees what it may see, and the read is its own."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from tests.dispatch.conftest import STATION
from tocsin.core.events import EventRecord

SECRET = "tuberculosis, treated at home"
NAME = "Virtanen"


def _health_flag_at_the_station(client, force):
    """Matti Virtanen, met at the station by brigade B1112, carries a health flag:
    need-to-know along the unit tree, so the dispatcher (D11, above the brigade) sees
    him and his flag, and patrol1 (B1111, beside it) sees neither."""
    h = force.headers(client, "patrol2")
    now = dt.datetime.now(dt.UTC)
    r = client.post("/api/v1/safety/persons", headers=h, json={
        "source": "rms", "given_names": "Matti", "surname": NAME, "birth_date": "1970-05-06"})
    assert r.status_code == 201, r.text
    person = r.json()["person_id"]
    r = client.post("/api/v1/safety/operations", headers=h, json={
        "lat": STATION[0], "lon": STATION[1], "address": "Kaivokatu 1",
        "started_at": (now - dt.timedelta(days=3)).isoformat(), "nature": "welfare check",
        "outcome": "ambulance called", "force_used": False, "injury": False,
        "units": ["B1112"], "persons": [{"person_id": person, "role": "occupant"}]})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/safety/flags", headers=h, json={
        "category": "infectious", "reason": SECRET, "source": "ambulance report 2026/7",
        "expires_at": (now + dt.timedelta(days=30)).isoformat(), "person_id": person})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _events_since(force, seq: int) -> list[EventRecord]:
    with force.runtime.db.read() as s:
        return list(s.scalars(select(EventRecord).where(EventRecord.seq > seq)
                              .order_by(EventRecord.seq)))


def _last_seq(force) -> int:
    with force.runtime.db.read() as s:
        return s.scalar(select(func.max(EventRecord.seq))) or 0


def test_the_crew_is_pushed_a_reference_and_reads_only_what_it_may_see(client, force,
                                                                     dispatch):
    flag_id = _health_flag_at_the_station(client, force)
    h = force.headers(client, "dispatcher")
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "burglary", "location": {"lat": STATION[0], "lon": STATION[1]}})
    assert r.status_code == 201, r.text
    inc = r.json()
    desk = client.get(f"/api/v1/dispatch/incidents/{inc['id']}/briefing", headers=h).json()
    # the dispatcher sees the flag and the name
    assert [f["id"] for f in desk["content"]["flags"]] == [flag_id]
    assert NAME in json.dumps(desk)
    hki11 = dispatch.test_units["HKI-11"]
    crew_token = force.login(client, "patrol1")["access_token"]
    crew = {"Authorization": f"Bearer {crew_token}"}
    before = _last_seq(force)

    with client.websocket_connect("/api/v1/live") as ws:
        ws.send_json({"type": "auth", "access_token": crew_token})
        assert ws.receive_json()["type"] == "ready"
        r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                        json={"unit_ids": [hki11]})
        assert r.status_code == 201, r.text
        while (packet := ws.receive_json()["event"])["type"] != "dispatch.assignment.received":
            pass
    # What the crew is pushed: the incident and its route, the briefing only by reference.
    assert packet["payload"]["incident"]["id"] == inc["id"]
    assert packet["payload"]["briefing"] == {"incident_id": inc["id"], "available": True}
    pushed = json.dumps(packet)
    assert SECRET not in pushed and NAME not in pushed and "infectious" not in pushed
    # Nothing of the briefing was stored in an event (ledger, Redis), and the dispatcher's
    # assignment recorded no briefing read in anyone's name.
    during = _events_since(force, before)
    stored = [e for e in during if e.type == "dispatch.assignment.received"]
    assert len(stored) == 1 and stored[0].payload["briefing"]["incident_id"] == inc["id"]
    assert not [e.type for e in during if SECRET in json.dumps(e.payload)
                or NAME in json.dumps(e.payload)]
    assert "safety.briefing.read" not in {e.type for e in during}

    # The phone asks for its assignment: again a reference, no content.
    mine = client.get(f"/api/v1/dispatch/units/{hki11}/assignment", headers=crew).json()
    assert mine["briefing"] == {"incident_id": inc["id"], "available": True}
    # The crew fetches the briefing as itself: the health flag is withheld from it.
    before = _last_seq(force)
    r = client.get(f"/api/v1/dispatch/incidents/{inc['id']}/briefing", headers=crew)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["available"] is True
    assert flag_id not in [f["id"] for f in got["content"]["flags"]]
    assert SECRET not in json.dumps(got) and NAME not in json.dumps(got)
    assert got["content"]["withheld"]["flags"] == 1
    reads = [e for e in _events_since(force, before) if e.type == "safety.briefing.read"]
    assert len(reads) == 1
    assert reads[0].actor_id == force.users["patrol1"]
    assert reads[0].unit_id == force.principal("patrol1").unit_id
    assert flag_id not in reads[0].payload["flag_ids"]
    assert reads[0].payload["withheld"] == got["content"]["withheld"]["total"] >= 1


def test_the_briefing_route_refuses_who_may_not_read_the_incident(client, force, dispatch):
    h = force.headers(client, "dispatcher")
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "burglary", "location": {"lat": STATION[0], "lon": STATION[1]}})
    inc = r.json()
    url = f"/api/v1/dispatch/incidents/{inc['id']}/briefing"
    crew = force.headers(client, "patrol1")
    other = force.headers(client, "patrol2")
    # patrol1's brigade is below the incident's unit: not its incident until assigned
    assert client.get(url, headers=crew).status_code == 403
    assert client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                       json={"unit_ids": [dispatch.test_units["HKI-11"]]}).status_code == 201
    assert client.get(url, headers=crew).status_code == 200
    r = client.get(url, headers=other)  # a crew not sent there
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    r = client.get("/api/v1/dispatch/incidents/999999/briefing", headers=crew)
    assert r.status_code == 404 and r.json()["error"]["code"] == "dispatch.incident_not_found"
    # once the incident is closed the crew's access ends with its assignment
    assert client.post(f"/api/v1/dispatch/incidents/{inc['id']}/status", headers=h,
                       json={"status": "closed", "reason": "false alarm"}).status_code == 200
    assert client.get(url, headers=crew).status_code == 403
