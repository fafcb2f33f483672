"""Closing a call that needs no incident (a hoax, advice given), with its reason;
the transitions that are refused, and two people acting on one call at once."""

from __future__ import annotations

from sqlalchemy import select, text

from tests.dispatch.conftest import STATION, at_once
from tocsin.core.errors import Conflict
from tocsin.core.events import EventRecord, erase
from tocsin.dispatch.models import Call, Incident
from tocsin.dispatch.schemas import CallIn, IncidentIn, Point

BASE = "/api/v1/dispatch/calls"


def _call(client, h, **extra):
    r = client.post(BASE, headers=h, json={
        "caller_number": "+358 40 111 2222", "narrative": "says a bomb is in the station",
        "location": {"lat": STATION[0], "lon": STATION[1]}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _err(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]


def test_a_hoax_call_is_closed_with_its_reason_and_leaves_the_open_list(client, force,
                                                                        dispatch):
    h = force.headers(client, "calltaker")
    call = _call(client, h)
    kept = _call(client, h, caller_number="+358 40 333 4444")
    url = f"{BASE}/{call['id']}/close"
    _err(client.post(url, headers=h, json={}), 422, "dispatch.reason_required")
    _err(client.post(url, headers=h, json={"reason": "   "}), 422, "invalid_input")
    _err(client.post(url, headers=h, json={"reason": "a\nb"}), 422, "invalid_input")
    assert client.get(f"{BASE}/{call['id']}", headers=h).json()["status"] == "open"

    r = client.post(url, headers=h, json={"reason": "hoax: the caller admitted a prank"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    assert r.json()["close_reason"] == "hoax: the caller admitted a prank"
    assert r.json()["incident_id"] is None
    # gone from the open calls, listed with its reason among the closed ones
    assert [c["id"] for c in client.get(BASE, headers=h).json()] == [kept["id"]]
    closed = client.get(f"{BASE}?status=closed", headers=h).json()
    assert [(c["id"], c["close_reason"]) for c in closed] == [
        (call["id"], "hoax: the caller admitted a prank")]
    assert client.get(f"{BASE}/{call['id']}", headers=h).json()["close_reason"] \
        == "hoax: the caller admitted a prank"
    assert client.get(f"{BASE}/{kept['id']}", headers=h).json()["close_reason"] is None
    # the change is an event, in the closer's name, with the reason
    with force.runtime.db.read() as s:
        ev = s.scalars(select(EventRecord).where(EventRecord.type == "dispatch.call.closed")).all()
    assert len(ev) == 1 and ev[0].record_id == str(call["id"])
    assert ev[0].actor_id == force.users["calltaker"]
    assert ev[0].payload["reason"] == "hoax: the caller admitted a prank"
    # the reason is the call's own: kept when the event's content is erased
    with force.runtime.db.session() as s:
        assert s.get(Call, call["id"]).close_reason == "hoax: the caller admitted a prank"
        assert erase(s, [ev[0].id]) == 1
    assert client.get(f"{BASE}/{call['id']}", headers=h).json()["close_reason"] \
        == "hoax: the caller admitted a prank"


def test_closed_and_linked_calls_refuse_what_no_longer_applies(client, force, dispatch):
    h = force.headers(client, "calltaker")
    call = _call(client, h)
    assert client.post(f"{BASE}/{call['id']}/close", headers=h,
                       json={"reason": "advice given by phone"}).status_code == 200
    # closed -> closed, closed -> linked, closed -> incident, editing it: all refused
    e = _err(client.post(f"{BASE}/{call['id']}/close", headers=h, json={"reason": "again"}),
             409, "dispatch.call_closed")
    assert e["details"] == {"status": "closed"}
    inc = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": "burglary", "location": {"lat": STATION[0], "lon": STATION[1]}}).json()
    _err(client.post(f"{BASE}/{call['id']}/link", headers=h, json={"incident_id": inc["id"]}),
         409, "dispatch.call_closed")
    _err(client.post("/api/v1/dispatch/incidents", headers=h,
                     json={"call_id": call["id"], "type_code": "burglary"}),
         409, "dispatch.call_closed")
    _err(client.patch(f"{BASE}/{call['id']}", headers=h, json={"narrative": "edited"}),
         409, "dispatch.call_closed")
    with force.runtime.db.read() as s:
        assert len(s.scalars(select(Incident)).all()) == 1  # only the one made above
        stored = s.get(Call, call["id"])
        assert (stored.status, stored.incident_id) == ("closed", None)
        assert stored.close_reason == "advice given by phone"  # the first close's, kept
        assert stored.narrative == call["narrative"]
        reasons = [e.payload["reason"] for e in s.scalars(
            select(EventRecord).where(EventRecord.type == "dispatch.call.closed"))]
    assert reasons == ["advice given by phone"]
    # a call that became an incident ends with the incident, not on its own
    linked = _call(client, h)
    inc = client.post("/api/v1/dispatch/incidents", headers=h,
                      json={"call_id": linked["id"], "type_code": "burglary"}).json()
    e = _err(client.post(f"{BASE}/{linked['id']}/close", headers=h, json={"reason": "hoax"}),
             409, "dispatch.call_already_linked")
    assert e["details"] == {"status": "linked", "incident_id": inc["id"]}
    # unknown call, and a role that may not write calls
    _err(client.post(f"{BASE}/999999/close", headers=h, json={"reason": "hoax"}),
         404, "dispatch.call_not_found")
    other = _call(client, h)
    r = client.post(f"{BASE}/{other['id']}/close", headers=force.headers(client, "patrol1"),
                    json={"reason": "hoax"})
    assert r.status_code == 403
    assert client.get(f"{BASE}/{other['id']}", headers=h).json()["status"] == "open"


def test_closing_and_linking_the_same_call_at_once_one_wins(force, dispatch):
    svc = dispatch
    taker = force.principal("calltaker")
    here = Point(lat=STATION[0], lon=STATION[1])
    inc = svc.create_incident(taker, IncidentIn(type_code="theft", location=here)).id
    for round_ in range(4):
        call = svc.create_call(taker, CallIn(location=here))[0].id
        acts = [lambda c=call: svc.close_call(taker, c, "duplicate of a known incident").status,
                lambda c=call: svc.link_call(taker, c, inc).status]
        results = at_once(*(reversed(acts) if round_ % 2 else acts))
        wins = [r for r in results if isinstance(r, str)]
        losses = [r for r in results if isinstance(r, Conflict)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].code == ("dispatch.call_closed" if wins[0] == "closed"
                                  else "dispatch.call_already_linked")
        stored = svc.get_call(taker, call)
        assert stored.status == wins[0]
        assert (stored.incident_id == inc) == (wins[0] == "linked")
        assert stored.close_reason == ("duplicate of a known incident" if wins[0] == "closed"
                                       else None)


def test_migration_moves_the_reasons_of_calls_already_closed_onto_the_calls(database_url):
    """dispatch_0002 adds the column and fills it from the close events stored so far."""
    import datetime as dt

    import sqlalchemy as sa
    from alembic import command

    from tocsin.core import migrate
    from tocsin.core.database import Database

    now = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
    units = sa.table("units", *(sa.column(c) for c in ("id", "code", "name", "kind", "path")),
                     sa.column("created_at", sa.DateTime(timezone=True)))
    calls = sa.table("dispatch_calls", *(sa.column(c) for c in ("id", "unit_id", "narrative",
                                                                "status")),
                     *(sa.column(c, sa.DateTime(timezone=True))
                       for c in ("received_at", "created_at", "updated_at")))
    events = sa.table("events", *(sa.column(c) for c in ("seq", "id", "type", "record_kind",
                                                         "record_id")),
                      sa.column("occurred_at", sa.DateTime(timezone=True)),
                      sa.column("payload", sa.JSON))
    db = Database(database_url)
    try:
        with db.engine.begin() as conn:
            command.upgrade(migrate._config(conn), "dispatch_0001")
        with db.engine.begin() as conn:
            conn.execute(sa.insert(units).values(id=1, code="NAT", name="Nation", kind="nation",
                                                 path="/1/", created_at=now))
            for cid, status in [(1, "closed"), (2, "closed"), (3, "open"), (4, "closed")]:
                conn.execute(sa.insert(calls).values(id=cid, unit_id=1, narrative="",
                                                     status=status, received_at=now,
                                                     created_at=now, updated_at=now))
            for seq, (cid, payload) in enumerate([
                    (1, {"call": {"id": 1}, "reason": "hoax"}),
                    (2, {"call": {"id": 2}, "reason": "advice given"}),
                    (4, None)], start=1):  # 4: its event's content was erased
                conn.execute(sa.insert(events).values(
                    seq=seq, id=f"e{seq}", type="dispatch.call.closed", record_kind="call",
                    record_id=str(cid), occurred_at=now, payload=payload))
        migrate.upgrade(db.engine)
        assert migrate.is_current(db.engine)
        with db.engine.connect() as conn:
            got = dict(conn.execute(text("SELECT id, close_reason FROM dispatch_calls")).all())
        assert got == {1: "hoax", 2: "advice given", 3: None, 4: None}
    finally:
        db.dispose()
