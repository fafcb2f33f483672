"""Dispatch rules through the HTTP API: calls, incidents, lifecycle, units, bad input."""

from __future__ import annotations

from sqlalchemy import select

from tests.dispatch.conftest import ESPLANADI, PARIS, STATION
from tocsin.core.events import EventRecord
from tocsin.dispatch.models import Incident


def _incident(client, h, type_code="burglary", where=STATION, **extra):
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": type_code, "location": {"lat": where[0], "lon": where[1]}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_call_with_typed_address_becomes_incident_with_catalogue_priority(client, force,
                                                                          dispatch):
    h = force.headers(client, "calltaker")
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "caller_number": "+358 40 123 4567", "address": "Mannerheimintie 5",
        "narrative": "Window smashed, two men inside the shop"})
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["address"].startswith("Mannerheimintie 5")
    assert abs(call["lat"] - 60.1694) < 0.001 and abs(call["lon"] - 24.9398) < 0.001
    assert call["status"] == "open" and call["duplicates"] == []
    r = client.post("/api/v1/dispatch/incidents", headers=h,
                    json={"call_id": call["id"], "type_code": "burglary"})
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["priority"] == 1 and inc["status"] == "new" and inc["plan"] == {"patrol": 2}
    assert inc["address"] == call["address"] and "smashed" in inc["summary"]
    detail = client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=h).json()
    assert [c["id"] for c in detail["calls"]] == [call["id"]]
    assert [t["kind"] for t in detail["timeline"]] == ["created", "call_linked"]
    assert client.get(f"/api/v1/dispatch/calls/{call['id']}", headers=h).json()["status"] \
        == "linked"


def test_second_call_about_the_same_place_is_suggested_as_duplicate_and_linked(
        client, force, dispatch):
    h = force.headers(client, "calltaker")
    inc = _incident(client, h, where=ESPLANADI)
    far = _incident(client, h, where=STATION)
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "caller_number": "112", "location": {"lat": ESPLANADI[0] + 0.0003,
                                             "lon": ESPLANADI[1] + 0.0004}})
    call = r.json()
    assert [d["incident_id"] for d in call["duplicates"]] == [inc["id"]]
    assert far["id"] not in [d["incident_id"] for d in call["duplicates"]]
    r = client.post(f"/api/v1/dispatch/calls/{call['id']}/link", headers=h,
                    json={"incident_id": inc["id"]})
    assert r.status_code == 200 and r.json()["incident_id"] == inc["id"]
    r = client.post(f"/api/v1/dispatch/calls/{call['id']}/link", headers=h,
                    json={"incident_id": far["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch.call_already_linked"


def test_bad_input_is_refused_with_clear_codes_and_changes_nothing(client, force, dispatch):
    h = force.headers(client, "calltaker")
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "burglary", "location": {"lat": PARIS[0], "lon": PARIS[1]}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.outside_map"
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "alien_landing", "location": {"lat": STATION[0], "lon": STATION[1]}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.type_unknown"
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "address": "Qwzxv Plokjstrasse 99999"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.address_not_found"
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "location": {"lat": 91, "lon": 0}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    r = client.post("/api/v1/dispatch/calls", headers=h, json={"location_text": "hello"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.location_unreadable"
    with force.runtime.db.read() as s:
        assert s.scalars(select(Incident)).all() == []
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "burglary", "location": {"lat": STATION[0], "lon": STATION[1]},
        "colour": "red"})
    assert r.status_code == 422


def test_status_lifecycle_refuses_illegal_transitions(client, force, dispatch):
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h)
    url = f"/api/v1/dispatch/incidents/{inc['id']}/status"
    r = client.post(url, headers=h, json={"status": "on_scene"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "dispatch.transition_not_allowed"
    assert r.json()["error"]["details"] == {"from": "new", "to": "on_scene",
                                            "allowed": ["closed"]}
    r = client.post(url, headers=h, json={"status": "closed"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.reason_required"
    r = client.post(url, headers=h, json={"status": "closed", "reason": "hoax call"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert r.json()["close_reason"] == "hoax call"
    r = client.post(url, headers=h, json={"status": "en_route"})
    assert r.status_code == 409 and r.json()["error"]["details"]["allowed"] == []
    r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                    json={"unit_ids": [dispatch.test_units["HKI-11"]]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch.incident_closed"
    unit = client.get(f"/api/v1/dispatch/units/{dispatch.test_units['HKI-11']}", headers=h)
    assert unit.json()["status"] == "available"


def test_access_is_limited_to_the_unit_subtree_and_outside_reads_are_recorded(
        client, force, dispatch):
    inc = _incident(client, force.headers(client, "calltaker"))
    other = force.headers(client, "inv2")  # investigator in another region
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=other).status_code \
        == 403
    assert client.get("/api/v1/dispatch/incidents", headers=other).json() == []
    # A regional commander above the department may read it: that read is recorded.
    cmd = force.headers(client, "commander1")
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=cmd).status_code == 200
    with force.runtime.db.read() as s:
        reads = s.scalars(select(EventRecord).where(
            EventRecord.type == "dispatch.incident.read")).all()
    assert [(r.record_id, r.actor_id) for r in reads] == [(str(inc["id"]),
                                                           force.users["commander1"])]
    patrol = force.headers(client, "patrol1")
    r = client.post("/api/v1/dispatch/incidents", headers=patrol, json={
        "type_code": "theft", "location": {"lat": STATION[0], "lon": STATION[1]}})
    assert r.status_code == 403


def test_notes_attachments_priority_and_timers(client, force, dispatch):
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h, type_code="theft")
    assert inc["priority"] == 3 and inc["overdue"] == []
    base = f"/api/v1/dispatch/incidents/{inc['id']}"
    assert client.post(base + "/notes", headers=h, json={"text": "Suspect wears a red cap"}
                       ).status_code == 201
    r = client.post(base + "/attachments", headers=h,
                    files={"file": ("cctv.jpg", b"\xff\xd8 fake jpeg bytes", "image/jpeg")})
    assert r.status_code == 201, r.text
    att = r.json()
    got = client.get(f"{base}/attachments/{att['id']}", headers=h)
    assert got.content == b"\xff\xd8 fake jpeg bytes"
    # Two people edit from the same version: the second is told to reload.
    r = client.patch(base, headers=h, json={"priority": 2, "version": inc["version"]})
    assert r.status_code == 200 and r.json()["priority"] == 2
    r = client.patch(base, headers=h, json={"priority": 4, "version": inc["version"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch.stale"
    version = client.get(base, headers=h).json()["version"]
    r = client.patch(base, headers=h, json={"priority": 1, "version": version})
    assert r.status_code == 200 and r.json()["priority"] == 1
    detail = client.get(base, headers=h).json()
    assert [t["kind"] for t in detail["timeline"]] == ["created", "note", "attachment",
                                                       "updated", "updated"]
    # A priority-1 incident not dispatched within its deadline is flagged.
    import datetime as dt

    with force.runtime.db.session() as s:
        s.get(Incident, inc["id"]).created_at = (dt.datetime.now(dt.timezone.utc)
                                                 - dt.timedelta(minutes=5))
    assert client.get(base, headers=h).json()["overdue"] == ["dispatch"]
