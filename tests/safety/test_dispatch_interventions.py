"""A dispatch incident closed becomes one field operation (place, times, units, outcome),
once, however many times the event is delivered and however many nodes hear it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from tests.dispatch import conftest as dispatch_fixtures
from tests.dispatch.conftest import STATION
from tocsin.core.config import Settings
from tocsin.core.database import as_utc
from tocsin.core.events import DomainEvent
from tocsin.core.runtime import Runtime
from tocsin.dispatch.models import Incident
from tocsin.dispatch.schemas import IncidentIn, Point
from tocsin.dispatch.service import get_service
from tocsin.safety import listeners, service
from tocsin.safety.models import SafetyOperation

dispatch = dispatch_fixtures.dispatch  # the fixture: the test force's vehicles in Helsinki


def _closed_events(runtime) -> list[DomainEvent]:
    seen: list[DomainEvent] = []
    runtime.bus.subscribe(lambda e: seen.append(e) if e.type == listeners.CLOSED_EVENT
                          and e.payload["incident"]["status"] == "closed" else None)
    return seen


def _operations(runtime) -> list[SafetyOperation]:
    with runtime.db.read() as s:
        return list(s.scalars(select(SafetyOperation).order_by(SafetyOperation.id)))


def _incident_sent_and_closed(svc, force, units, reason="arrest made, one person taken in"):
    calltaker, dispatcher = force.principal("calltaker"), force.principal("dispatcher")
    inc = svc.create_incident(calltaker, IncidentIn(
        type_code="burglary", location=Point(lat=STATION[0], lon=STATION[1]),
        summary="two men breaking a shop window"))
    svc.assign(dispatcher, inc.id, [units["HKI-11"], units["HKI-K9"]])
    svc.set_status(dispatcher, inc.id, "closed", reason)
    return inc


def test_closed_incident_becomes_one_field_operation(force, dispatch):
    rt = force.runtime
    listeners.on_startup(rt)
    listeners.on_startup(rt)  # a second start does not subscribe twice
    events = _closed_events(rt)
    inc = _incident_sent_and_closed(dispatch, force, dispatch.test_units)

    ops = _operations(rt)
    assert len(ops) == 1, "closing an incident must record a field operation"
    op = ops[0]
    with rt.db.read() as s:
        row = s.get(Incident, inc.id)
    assert op.client_ref == f"dispatch.incident:{inc.id}"
    assert op.units == ["HKI-11", "HKI-K9"]
    assert op.outcome == "arrest made, one person taken in"
    assert op.nature == "Burglary in progress"
    assert "two men breaking" in op.summary and "Closed: arrest made" in op.summary
    assert as_utc(op.started_at) == as_utc(row.created_at)
    assert as_utc(op.ended_at) == as_utc(row.closed_at)
    assert op.unit_id == row.unit_id and op.created_by == force.users["dispatcher"]

    # the place is the incident's: a briefing there shows the intervention
    b = service.briefing_for(rt, force.principal("dispatcher"), row.lat, row.lon)
    assert [o["id"] for o in b["operations"]] == [op.id]
    assert b["operations"][0]["address"] == row.address
    assert b["operations"][0]["units"] == ["HKI-11", "HKI-K9"]

    # the same event delivered again (a replay, a second node): still one operation
    assert len(events) == 1
    listeners.on_event(rt, events[0])
    assert listeners.record_closed_incident(rt, events[0]) is None
    assert len(_operations(rt)) == 1


def test_two_deliveries_racing_record_one_operation(force, dispatch):
    """Past the quick check, the unique natural key still keeps one operation."""
    rt = force.runtime
    events = _closed_events(rt)
    _incident_sent_and_closed(dispatch, force, dispatch.test_units)
    assert _operations(rt) == []  # no listener subscribed in this test: nothing yet
    body = listeners.intervention(rt, events[0])
    results: list[object] = []
    barrier = threading.Barrier(3)

    def deliver() -> None:
        barrier.wait()
        results.append(service.record_intervention(rt, body, unit_id=events[0].unit_id,
                                                   actor_id=events[0].actor_id))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(_operations(rt)) == 1


def test_incident_closed_without_any_unit_is_no_field_operation(force, dispatch):
    rt = force.runtime
    listeners.on_startup(rt)
    calltaker = force.principal("calltaker")
    inc = dispatch.create_incident(calltaker, IncidentIn(
        type_code="burglary", location=Point(lat=STATION[0], lon=STATION[1])))
    dispatch.set_status(calltaker, inc.id, "closed", "duplicate call")
    assert _operations(rt) == []


def test_event_alone_still_records_when_dispatch_detail_is_refused(force):
    """An event whose closer cannot be resolved: place, time and outcome from the event."""
    rt = force.runtime
    ev = DomainEvent(type=listeners.CLOSED_EVENT, actor_id=None, unit_id=_unit_id(force, "D11"),
                     record_kind="incident", record_id="77",
                     payload={"incident": {"id": 77, "type_code": "assault", "priority": 1,
                                           "status": "closed", "address": "Kaivokatu 1",
                                           "lat": STATION[0], "lon": STATION[1], "version": 4},
                              "previous": "on_scene", "reason": "report filed"})
    op = listeners.record_closed_incident(rt, ev)
    assert op is not None
    (row,) = _operations(rt)
    assert row.outcome == "report filed" and row.nature == "Assault" and row.units == []
    assert as_utc(row.started_at) == ev.occurred_at


def _unit_id(force, code: str) -> int:
    with force.runtime.db.read() as s:
        return force.runtime.identity.unit_by_code(s, code).id


@pytest.mark.redis
def test_two_nodes_sharing_redis_record_one_operation(force, dispatch, settings,
                                                      redis_server):
    nodes = []
    for _ in range(2):
        rt = Runtime(Settings(data_dir=settings.data_dir, database_url=settings.database_url,
                              bus_url=redis_server))
        rt.start()
        listeners.on_startup(rt)
        nodes.append(rt)
    try:
        heard = [threading.Event() for _ in nodes]
        for rt, flag in zip(nodes, heard):  # subscribed after the listener: runs after it
            rt.bus.subscribe(lambda e, f=flag: f.set() if e.type == listeners.CLOSED_EVENT
                             and e.payload["incident"]["status"] == "closed" else None)
        _incident_sent_and_closed(get_service(nodes[0]), force, dispatch.test_units)
        assert all(f.wait(10) for f in heard), "both nodes must hear the close"
        ops = _operations(nodes[1])
        assert len(ops) == 1 and ops[0].units == ["HKI-11", "HKI-K9"]
    finally:
        for rt in nodes:
            rt.stop()
