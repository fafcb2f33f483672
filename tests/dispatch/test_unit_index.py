"""The in-memory index of available units behind the recommendation follows every
change of a unit (through the service, or as an event from another node), keeps
the database as its source of truth and leaves access to each request."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from tests.dispatch.conftest import ESPLANADI, STATION
from tocsin.core.config import Settings
from tocsin.core.runtime import Runtime
from tocsin.dispatch.models import DispatchUnit
from tocsin.dispatch.recommend import candidates_of, rank
from tocsin.dispatch.schemas import IncidentIn, Point, UnitIn
from tocsin.dispatch.service import get_service

NEAR_ESPLANADI = (60.1677, 24.9455)


def _picture(rec) -> tuple:
    return ([r.__dict__ for r in rec.ranked], rec.missing, rec.unreachable, rec.considered)


def _from_db(svc, principal, inc, limit=10):
    """The recommendation computed from a fresh database read, without the index."""
    plan = svc.catalogue.types[inc.type_code].plan
    graph = svc.graph()
    return rank(graph, inc.lat, inc.lon, candidates_of(graph, svc.candidate_units(principal)),
                plan, limit=limit)


def _agrees(svc, principal, incident_id) -> dict[str, float]:
    """Recommend through the service (index) and check it equals the database's
    answer; the call signs ranked, with their travel times."""
    inc, rec = svc.recommend(principal, incident_id)
    assert _picture(rec) == _picture(_from_db(svc, principal, inc))
    return {r.call_sign: r.travel_time_s for r in rec.ranked}


def _incident(svc, principal, where=ESPLANADI, **extra) -> int:
    return svc.create_incident(principal, IncidentIn(
        type_code="missing_person", location=Point(lat=where[0], lon=where[1]), **extra)).id


def test_index_follows_status_and_position_changes_made_through_the_service(force, dispatch):
    svc, units = dispatch, dispatch.test_units
    boss = force.principal("dispatcher")
    inc = _incident(svc, boss)
    before = _agrees(svc, boss, inc)
    assert set(before) == {"HKI-11", "HKI-12", "HKI-K9", "HKI-F1"}
    assert svc.available.reads["full"] == 1

    # a unit becomes unavailable, then available again
    svc.set_unit_status(boss, units["HKI-11"], "unavailable", "vehicle check")
    assert "HKI-11" not in _agrees(svc, boss, inc)
    svc.set_unit_status(boss, units["HKI-11"], "available")
    assert _agrees(svc, boss, inc) == before

    # a unit moves next to the incident: its new position is ranked
    svc.update_position(boss, units["HKI-12"], *NEAR_ESPLANADI)
    moved = _agrees(svc, boss, inc)
    assert moved["HKI-12"] < before["HKI-12"]

    # dispatched units leave the index; released with the incident, they come back
    other = _incident(svc, boss, where=STATION)
    svc.assign(boss, other, [units["HKI-K9"], units["HKI-F1"]])
    assert set(_agrees(svc, boss, inc)) == {"HKI-11", "HKI-12"}
    svc.set_status(boss, other, "closed", "false alarm")
    assert set(_agrees(svc, boss, inc)) == set(before)

    # a new unit joins, a removed one leaves
    new = svc.create_unit(None, UnitIn(call_sign="HKI-13", kind="patrol_car", unit_code="B1111",
                                       position=Point(lat=STATION[0], lon=STATION[1])))
    assert "HKI-13" in _agrees(svc, boss, inc)
    svc.delete_unit(boss, new.id)
    assert "HKI-13" not in _agrees(svc, boss, inc)

    # all of it by reading the changed units again, never the whole index
    assert svc.available.reads["full"] == 1 and svc.available.reads["units"] >= 7


def test_index_equals_the_database_after_any_sequence_of_changes(force, dispatch):
    import random

    import numpy as np

    svc = dispatch
    boss = force.principal("dispatcher")
    graph = svc.graph()
    rng = random.Random(4)
    ids = list(svc.test_units.values())
    spots = [STATION, ESPLANADI, NEAR_ESPLANADI, (60.1712, 24.9410), (60.1760, 24.9380)]
    incidents = [_incident(svc, boss, where=w) for w in (STATION, ESPLANADI)]
    for step in range(40):
        uid = rng.choice(ids)
        unit = svc.get_unit(boss, uid)
        act = rng.randrange(5)
        if act == 0:
            svc.update_position(boss, uid, *rng.choice(spots))
        elif act == 1 and unit.status in ("available", "unavailable"):
            svc.set_unit_status(boss, uid, "unavailable" if unit.status == "available"
                                else "available")
        elif act == 2 and unit.status == "available":
            svc.assign(boss, rng.choice(incidents), [uid])
        elif act == 3 and unit.status in ("dispatched", "en_route", "on_scene"):
            svc.set_unit_status(boss, uid, "available")
        elif act == 4:
            new = svc.create_unit(None, UnitIn(call_sign=f"T-{step}", kind="dog",
                                               unit_code=rng.choice(["B1111", "B1112"]),
                                               position=Point(lat=STATION[0], lon=STATION[1])))
            ids.append(new.id)
            if rng.random() < 0.5:
                gone = rng.choice(ids)
                svc.delete_unit(boss, gone)
                ids.remove(gone)
        got = svc.candidates(boss, graph)
        want = candidates_of(graph, svc.candidate_units(boss))
        for name in ("ids", "lat", "lon", "node", "snap_m", "factor", "call_sign", "kind"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert [got.capsets[i] for i in got.capset] == [want.capsets[i] for i in want.capset]
    assert svc.available.reads["full"] == 1


def test_access_is_still_decided_per_request(force, dispatch):
    svc, units = dispatch, dispatch.test_units
    boss = force.principal("dispatcher")
    # an incident of brigade B1111, which its patrol officers may read
    inc = _incident(svc, boss, unit_code="B1111")
    assert set(_agrees(svc, boss, inc)) == {"HKI-11", "HKI-12", "HKI-K9", "HKI-F1"}
    patrol1 = force.principal("patrol1")  # B1111: sees its brigade's units only
    assert set(_agrees(svc, patrol1, inc)) == {"HKI-11", "HKI-K9"}
    _, rec = svc.recommend(patrol1, inc)
    assert rec.considered == 2
    # the same index serves everyone, each through core.access
    for name, seen in [("patrol2", {"HKI-12", "HKI-F1"}), ("commander1", set(units)),
                       ("admin", set(units)), ("inv1", set()), ("auditor", set())]:
        p = force.principal(name)
        got = {str(c) for c in svc.candidates(p).call_sign}
        assert got == seen, name
        assert got == {u.call_sign for u in svc.candidate_units(p)}, name
    # what the dispatcher changes, the patrol officer's next request sees, filtered
    svc.set_unit_status(boss, units["HKI-K9"], "unavailable")
    assert set(_agrees(svc, patrol1, inc)) == {"HKI-11"}
    assert svc.available.reads["full"] == 1


def test_index_follows_events_from_another_node(force, dispatch, settings):
    """Another node shares the database; what it changes reaches this node only as
    events on this node's bus (here forwarded by hand, as Redis does)."""
    svc, units = dispatch, dispatch.test_units
    boss = force.principal("dispatcher")
    inc = _incident(svc, boss)
    assert set(_agrees(svc, boss, inc)) == set(units)
    other = Runtime(Settings(data_dir=settings.data_dir, database_url=settings.database_url))
    try:
        other.bus.subscribe(lambda e: force.runtime.bus.publish([e]))
        remote = get_service(other)
        remote.set_unit_status(boss, units["HKI-11"], "unavailable")
        remote.update_position(boss, units["HKI-12"], *NEAR_ESPLANADI)
        got = _agrees(svc, boss, inc)
        assert "HKI-11" not in got
        assert got["HKI-12"] == min(got.values())
        assert svc.available.reads["full"] == 1
    finally:
        other.stop()


@pytest.mark.redis
def test_index_follows_a_change_made_on_another_node_over_redis(force, dispatch, settings,
                                                               redis_server):
    nodes = []
    for _ in range(2):
        rt = Runtime(Settings(data_dir=settings.data_dir, database_url=settings.database_url,
                              bus_url=redis_server))
        rt.start()
        nodes.append(rt)
    try:
        here, there = (get_service(rt) for rt in nodes)
        boss = force.principal("dispatcher")
        inc = _incident(here, boss)
        assert "HKI-11" in _agrees(here, boss, inc)
        there.set_unit_status(boss, dispatch.test_units["HKI-11"], "unavailable")
        deadline = time.monotonic() + 10
        while "HKI-11" in {r.call_sign for r in here.recommend(boss, inc)[1].ranked}:
            assert time.monotonic() < deadline, "the change never reached the other node"
            time.sleep(0.02)
        assert "HKI-11" not in _agrees(here, boss, inc)
        assert here.available.reads["full"] == 1
    finally:
        for rt in nodes:
            rt.stop()


def test_a_change_no_event_announced_is_read_at_the_next_resync(force, dispatch):
    """A bus message lost between nodes is repaired by the periodic full read."""
    svc, units = dispatch, dispatch.test_units
    boss = force.principal("dispatcher")
    inc = _incident(svc, boss)
    assert "HKI-11" in _agrees(svc, boss, inc)
    with force.runtime.db.session() as s:  # behind every node's back: no event
        s.execute(update(DispatchUnit).where(DispatchUnit.id == units["HKI-11"])
                  .values(status="unavailable"))
    svc.available.resync_s = 0.0
    assert "HKI-11" not in _agrees(svc, boss, inc)
    assert svc.available.reads["full"] == 2


def test_a_new_road_graph_snaps_the_units_again(force, dispatch):
    svc = dispatch
    graph = svc.graph()
    first = svc.available.snapshot(graph)
    copy = type(graph)(graph.lat, graph.lon, graph.indptr, graph.indices, graph.time_s,
                       graph.length_m, graph.osm_ids)
    again = svc.available.snapshot(copy)
    assert again.graph is copy and again is not first
    assert again.units.node.tolist() == first.units.node.tolist()
    assert svc.available.reads["full"] == 1
