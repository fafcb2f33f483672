"""Caller locations, recommendation, assignment, races, vanishing units, live pushes."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.dispatch.conftest import ESPLANADI, PARIS, STATION, at_once
from tocsin.core.errors import Conflict
from tocsin.dispatch.schemas import Point, UnitIn

PIDF = ('<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:caller@example.com">'
        '<dm:device id="phone"><gp:geopriv><gp:location-info>'
        '<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>60.16952 24.93545</gml:pos>'
        '<gs:radius uom="urn:ogc:def:uom:EPSG::9001">35.5</gs:radius></gs:Circle>'
        '</gp:location-info><gp:usage-rules/><gp:method>GPS</gp:method></gp:geopriv>'
        '<dm:timestamp>{ts}</dm:timestamp></dm:device></presence>')


def aml(lat: float, lon: float) -> str:
    top = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    base = (f'A"ML=1;lt=+{lat:.5f};lg=+{lon:08.5f};rd=12;top={top};lc=90;pm=G;'
            'si=123456789012345;ei=1234567890123456;mcc=244;mnc=91')
    for n in range(len(base) + 5, len(base) + 9):
        if len(f"{base};ml={n}") == n:
            return f"{base};ml={n}"
    raise AssertionError


def _incident(client, h, type_code="burglary", where=STATION):
    r = client.post("/api/v1/dispatch/incidents", headers=h, json={
        "type_code": type_code, "location": {"lat": where[0], "lon": where[1]}})
    assert r.status_code == 201, r.text
    return r.json()


def test_gateway_posts_calls_with_aml_and_pidf_lo(client, force, dispatch):
    h = force.headers(client, "calltaker")
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "caller_number": "+358401234567", "location_text": aml(60.16980, 24.94120)})
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["location_source"] == "aml-sms" and call["caller_accuracy_m"] == 12
    assert (round(call["caller_lat"], 4), round(call["caller_lon"], 4)) == (60.1698, 24.9412)
    # the event place defaults to the caller's position, with its address
    assert call["lat"] == call["caller_lat"] and "Helsinki" in call["address"]
    ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "caller_number": "+358401234568", "location_text": PIDF.format(ts=ts)})
    assert r.status_code == 201, r.text
    assert r.json()["location_source"] == "pidf-lo" and r.json()["caller_accuracy_m"] == 35.5
    # A caller far outside the map: refused, nothing stored.
    r = client.post("/api/v1/dispatch/calls", headers=h, json={
        "location_text": aml(PARIS[0], PARIS[1])})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.outside_map"
    assert len(client.get("/api/v1/dispatch/calls", headers=h).json()) == 2


def test_recommendation_ranks_by_road_time_and_fills_the_response_plan(client, force,
                                                                        dispatch):
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h, type_code="missing_person", where=ESPLANADI)
    r = client.get(f"/api/v1/dispatch/incidents/{inc['id']}/recommendations", headers=h)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["plan"] == {"patrol": 1, "dog": 1}
    ranked = rec["ranked"]
    assert len(ranked) == 4 and [x["rank"] for x in ranked] == [1, 2, 3, 4]
    times = [x["travel_time_s"] for x in ranked]
    assert times == sorted(times)
    # the dog unit is kept for the dog slot; the fastest other unit fills patrol
    by_sign = {x["call_sign"]: x for x in ranked}
    assert by_sign["HKI-K9"]["fills"] == "dog" and by_sign["HKI-K9"]["suggested"]
    suggested = [x["call_sign"] for x in ranked if x["suggested"]]
    assert len(suggested) == 2 and rec["missing"] == {}
    for x in ranked:
        assert "by road" in x["explanation"] and x["distance_m"] > 0
    assert by_sign["HKI-F1"]["explanation"].count("on foot") == 1
    assert all(x["route"] and len(x["route"]) >= 2 for x in ranked if x["suggested"])
    # the route ends at the incident
    assert by_sign["HKI-K9"]["route"][-1] == pytest.approx(list(ESPLANADI))
    # a tactical plan nobody can fill says what is missing
    armed = _incident(client, h, type_code="armed_person")
    rec = client.get(f"/api/v1/dispatch/incidents/{armed['id']}/recommendations",
                     headers=h).json()
    assert rec["missing"] == {"tactical": 1}


def test_recommended_travel_times_match_a_reference_dijkstra(force, dispatch):
    """Each unit's time equals an independent Dijkstra from its snapped node."""
    import heapq

    graph = dispatch.graph()
    src, dst, time, _ = graph.edges()
    adj: dict[int, list] = {}
    for a, b, t in zip(src.tolist(), dst.tolist(), time.tolist()):
        adj.setdefault(a, []).append((b, t))
    from tocsin.dispatch.recommend import UnitRow, recommend

    target, tsnap = graph.nearest_node(*ESPLANADI)
    units = [UnitRow(i, f"U{i}", "patrol_car", ("patrol",), 60.165 + i * 0.001, 24.936 + i * 0.0015)
             for i in range(10)]
    rec = recommend(graph, ESPLANADI[0], ESPLANADI[1], units, {"patrol": 1}, limit=10,
                    with_routes=False)
    assert len(rec.ranked) + len(rec.unreachable) == 10
    for r in rec.ranked:
        u = units[r.unit_id]
        node, snap = graph.nearest_node(u.lat, u.lon)
        dist = {node: 0.0}
        heap, done = [(0.0, node)], set()
        while heap:
            d, x = heapq.heappop(heap)
            if x in done:
                continue
            done.add(x)
            for y, w in adj.get(x, ()):
                if d + w < dist.get(y, float("inf")):
                    dist[y] = d + w
                    heapq.heappush(heap, (d + w, y))
        expected = dist[target] + (snap + tsnap) / graph._snap_speed_ms
        assert r.travel_time_s == pytest.approx(expected, abs=0.11)


def test_dispatch_pushes_the_incident_to_the_crew_and_status_flows_back(client, force,
                                                                        dispatch):
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h)
    hki11 = dispatch.test_units["HKI-11"]
    crew_token = force.login(client, "patrol1")["access_token"]
    floor_token = force.login(client, "dispatcher")["access_token"]
    with client.websocket_connect("/api/v1/live") as crew_ws, \
            client.websocket_connect("/api/v1/live") as floor_ws:
        crew_ws.send_json({"type": "auth", "access_token": crew_token})
        floor_ws.send_json({"type": "auth", "access_token": floor_token})
        assert crew_ws.receive_json()["type"] == "ready"
        assert floor_ws.receive_json()["type"] == "ready"
        r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                        json={"unit_ids": [hki11]})
        assert r.status_code == 201, r.text
        assert r.json()[0]["route"] and r.json()[0]["travel_time_s"] > 0

        def next_of(ws, wanted):
            while True:
                ev = ws.receive_json()["event"]
                if ev["type"] == wanted:
                    return ev

        packet = next_of(crew_ws, "dispatch.assignment.received")
        assert packet["payload"]["incident"]["id"] == inc["id"]
        assert packet["payload"]["incident"]["address"] == inc["address"]
        assert len(packet["payload"]["route"]) >= 2
        assert packet["payload"]["briefing"] == {"incident_id": inc["id"], "available": True}
        assert next_of(floor_ws, "dispatch.unit.assigned")["payload"]["unit"]["status"] \
            == "dispatched"
        # The crew reads its incident (shared with its brigade) and reports en route.
        crew = {"Authorization": f"Bearer {crew_token}"}
        assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=crew
                          ).status_code == 200
        mine = client.get("/api/v1/dispatch/units/mine", headers=crew).json()
        assert [u["call_sign"] for u in mine] == ["HKI-11"]
        r = client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=crew,
                        json={"status": "en_route"})
        assert r.status_code == 200, r.text
        seen = {}
        while len(seen) < 2:
            ev = floor_ws.receive_json()["event"]
            if ev["type"] in ("dispatch.unit.status", "dispatch.incident.status"):
                seen[ev["type"]] = ev["payload"]
        assert seen["dispatch.unit.status"]["unit"]["status"] == "en_route"
        assert seen["dispatch.incident.status"]["incident"]["status"] == "en_route"
        r = client.post(f"/api/v1/dispatch/units/{hki11}/position", headers=crew,
                        json={"lat": 60.1690, "lon": 24.9400})
        assert r.status_code == 200
        assert next_of(floor_ws, "dispatch.unit.moved")["payload"]["unit"]["lat"] == 60.1690
        # Another crew may not drive this unit.
        other = force.headers(client, "patrol2")
        r = client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=other,
                        json={"status": "on_scene"})
        assert r.status_code == 403
    client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=crew,
                json={"status": "on_scene"})
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=h).json()["status"] \
        == "on_scene"
    r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/status", headers=h,
                    json={"status": "closed", "reason": "suspects arrested"})
    assert r.status_code == 200
    unit = client.get(f"/api/v1/dispatch/units/{hki11}", headers=h).json()
    assert unit["status"] == "available" and unit["incident_id"] is None
    # the share ended with the assignment
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=crew
                      ).status_code == 403


def test_unit_status_rules(client, force, dispatch):
    crew = force.headers(client, "patrol1")
    hki11 = dispatch.test_units["HKI-11"]
    r = client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=crew,
                    json={"status": "en_route"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch.unit_not_assigned"
    r = client.post(f"/api/v1/dispatch/units/{hki11}/position", headers=crew,
                    json={"lat": PARIS[0], "lon": PARIS[1]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.outside_map"
    r = client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=crew,
                    json={"status": "unavailable", "reason": "refuelling"})
    assert r.status_code == 200 and r.json()["status"] == "unavailable"
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h)
    r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                    json={"unit_ids": [hki11]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch.unit_unavailable"
    assert r.json()["error"]["details"]["status"] == "unavailable"


def test_all_or_nothing_assignment_and_a_unit_vanishing_mid_assignment(client, force,
                                                                       dispatch):
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h)
    u = dispatch.test_units
    # one of two units is already busy: neither is sent
    other = _incident(client, h, where=ESPLANADI)
    assert client.post(f"/api/v1/dispatch/incidents/{other['id']}/assign", headers=h,
                       json={"unit_ids": [u["HKI-12"]]}).status_code == 201
    r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                    json={"unit_ids": [u["HKI-11"], u["HKI-12"]]})
    assert r.status_code == 409
    assert r.json()["error"]["details"]["incident_id"] == other["id"]
    assert client.get(f"/api/v1/dispatch/units/{u['HKI-11']}", headers=h).json()["status"] \
        == "available"
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=h).json()["status"] \
        == "new"
    # a unit that no longer exists
    r = client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                    json={"unit_ids": [99999]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "dispatch.unit_not_found"
    # the only unit on an incident vanishes: the incident goes back to the queue
    assert client.delete(f"/api/v1/dispatch/units/{u['HKI-12']}?reason=radio+lost",
                         headers=h).status_code == 204
    detail = client.get(f"/api/v1/dispatch/incidents/{other['id']}", headers=h).json()
    assert detail["status"] == "new"
    assert detail["assignments"][0]["status"] == "cancelled"
    assert detail["assignments"][0]["end_reason"] == "radio lost"
    assert detail["assignments"][0]["dispatch_unit_id"] is None
    assert detail["assignments"][0]["call_sign"] == "HKI-12"
    assert any("no unit assigned" in t["text"] for t in detail["timeline"])
    # and can be dispatched again
    assert client.post(f"/api/v1/dispatch/incidents/{other['id']}/assign", headers=h,
                       json={"unit_ids": [u["HKI-11"]]}).status_code == 201
    # a unit losing contact mid-assignment (unavailable) frees the incident too
    crew = force.headers(client, "patrol1")
    r = client.post(f"/api/v1/dispatch/units/{u['HKI-11']}/status", headers=crew,
                    json={"status": "unavailable", "reason": "vehicle breakdown"})
    assert r.status_code == 200
    detail = client.get(f"/api/v1/dispatch/incidents/{other['id']}", headers=h).json()
    assert detail["status"] == "new" and detail["assignments"][-1]["status"] == "cancelled"


def test_two_dispatchers_assigning_the_same_unit_at_once_one_wins(force, dispatch):
    svc = dispatch
    dispatcher = force.principal("dispatcher")
    from tocsin.dispatch.schemas import IncidentIn

    incs = [svc.create_incident(dispatcher, IncidentIn(
        type_code="theft", location=Point(lat=STATION[0], lon=STATION[1]))).id
        for _ in range(2)]
    for round_ in range(5):
        unit = svc.create_unit(None, UnitIn(call_sign=f"RACE-{round_}", kind="patrol_car",
                                            unit_code="B1111",
                                            position=Point(lat=60.171, lon=24.941)))
        results = at_once(*(lambda i=i, u=unit.id: svc.assign(dispatcher, incs[i], [u])
                            for i in range(2)))
        wins = [r for r in results if isinstance(r, list)]
        losses = [r for r in results if isinstance(r, Conflict)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].code == "dispatch.unit_unavailable"
        winner = incs[results.index(wins[0])]
        assert svc.get_unit(dispatcher, unit.id).incident_id == winner
        from sqlalchemy import func, select

        from tocsin.dispatch.models import Assignment

        with force.runtime.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Assignment).where(
                Assignment.dispatch_unit_id == unit.id)) == 1
        svc.set_unit_status(dispatcher, unit.id, "unavailable")
        svc.delete_unit(dispatcher, unit.id)


def test_a_released_crew_no_longer_gets_the_incident_live(client, force, dispatch):
    """The crew sees its incident through a share that ends with the assignment; its live
    feed must stop at once, not when a cache expires."""
    h = force.headers(client, "dispatcher")
    inc = _incident(client, h)
    hki11 = dispatch.test_units["HKI-11"]
    crew_token = force.login(client, "patrol1")["access_token"]
    crew = {"Authorization": f"Bearer {crew_token}"}
    with client.websocket_connect("/api/v1/live") as crew_ws:
        crew_ws.send_json({"type": "auth", "access_token": crew_token})
        assert crew_ws.receive_json()["type"] == "ready"

        def events_until(wanted):
            got = []
            while not got or got[-1]["type"] != wanted:
                got.append(crew_ws.receive_json()["event"])
            return got

        assert client.post(f"/api/v1/dispatch/incidents/{inc['id']}/assign", headers=h,
                           json={"unit_ids": [hki11]}).status_code == 201
        events_until("dispatch.assignment.received")
        r = client.patch(f"/api/v1/dispatch/incidents/{inc['id']}", headers=h,
                         json={"priority": 2})
        assert r.status_code == 200, r.text
        assert events_until("dispatch.incident.updated")[-1]["payload"]["incident"][
            "priority"] == 2  # the crew's incident: it sees the change
        r = client.post(f"/api/v1/dispatch/units/{hki11}/status", headers=crew,
                        json={"status": "available"})  # cleared: the assignment ends
        assert r.status_code == 200, r.text
        r = client.patch(f"/api/v1/dispatch/incidents/{inc['id']}", headers=h,
                         json={"priority": 1})
        assert r.status_code == 200, r.text
        # its own unit's next move comes through; the incident's change did not before it
        r = client.post(f"/api/v1/dispatch/units/{hki11}/position", headers=crew,
                        json={"lat": 60.1690, "lon": 24.9400})
        assert r.status_code == 200, r.text
        seen = events_until("dispatch.unit.moved")
        assert not [e for e in seen if e["type"] == "dispatch.incident.updated"
                    and e["payload"]["incident"]["priority"] == 1]
    assert client.get(f"/api/v1/dispatch/incidents/{inc['id']}", headers=crew
                      ).status_code == 403
