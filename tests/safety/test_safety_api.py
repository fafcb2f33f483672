"""Field safety over HTTP: persons and merges, flags and their review, operations,
and the briefing, with access rules, bad input and the events every change leaves."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests.safety.conftest import HOME
from tocsin.core.events import EventRecord

NOW = dt.datetime.now(dt.UTC)


def iso(d: dt.datetime) -> str:
    return d.isoformat()


def person(client, h, user, given, surname, dob=None, source="rms", ref=None):
    body = {"source": source, "given_names": given, "surname": surname}
    if dob:
        body["birth_date"] = dob
    if ref:
        body["source_ref"] = ref
    r = client.post("/api/v1/safety/persons", json=body, headers=h(user))
    assert r.status_code == 201, r.text
    return r.json()


def operation(client, h, user, lat=HOME[0], lon=HOME[1], address="Mannerheimintie 5",
              days_ago=10, persons=(), force_used=False, injury=False, **extra):
    body = {"lat": lat, "lon": lon, "address": address,
            "started_at": iso(NOW - dt.timedelta(days=days_ago)), "nature": "domestic dispute",
            "outcome": "arrest", "force_used": force_used, "injury": injury,
            "units": ["B1111"], "persons": [{"person_id": p, "role": r} for p, r in persons],
            **extra}
    r = client.post("/api/v1/safety/operations", json=body, headers=h(user))
    assert r.status_code == 201, r.text
    return r.json()


def flag(client, h, user, days=90, **subject):
    body = {"reason": "hit an officer with a bottle during an arrest", "source": "report 2026/118",
            "expires_at": iso(NOW + dt.timedelta(days=days)), **subject}
    return client.post("/api/v1/safety/flags", json=body, headers=h(user))


def briefing(client, h, user, lat=HOME[0], lon=HOME[1], radius=50, persons=None):
    url = f"/api/v1/safety/briefing?lat={lat}&lon={lon}&radius={radius}"
    if persons:
        url += "&persons=" + ",".join(map(str, persons))
    return client.get(url, headers=h(user))


def test_briefing_shows_prior_operations_and_flags_with_reasons(client, h, force):
    p = person(client, h, "patrol1", "Jari", "Mäkelä", "1980-02-03")["person_id"]
    operation(client, h, "patrol1", days_ago=40, persons=[(p, "suspect")], force_used=True,
              injury=True)
    operation(client, h, "patrol1", days_ago=5, persons=[(p, "occupant")])
    # another address 400 m away: not in a 50 m briefing
    operation(client, h, "patrol1", lat=HOME[0] + 0.0036, address="Kaivokatu 1", days_ago=1)
    r = flag(client, h, "patrol1", category="violent_towards_police", person_id=p)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "unconfirmed"
    r = flag(client, h, "patrol1", category="fortified_door",
             place={"lat": HOME[0], "lon": HOME[1], "address": "Mannerheimintie 5"})
    assert r.status_code == 201, r.text

    r = briefing(client, h, "patrol1")
    assert r.status_code == 200, r.text
    b = r.json()
    assert [o["nature"] for o in b["operations"]] == ["domestic dispute"] * 2
    assert b["operations"][0]["started_at"] > b["operations"][1]["started_at"]  # recent first
    assert b["operations_stats"] == {"total": 2, "force_used": 1, "injury": 1}
    cats = [f["category"] for f in b["flags"]]
    assert cats == ["violent_towards_police", "fortified_door"]  # most dangerous first
    violent = b["flags"][0]
    assert violent["reason"].startswith("hit an officer") and violent["source"] == "report 2026/118"
    assert violent["subject"] == {"kind": "person", "id": p, "name": "Jari Mäkelä",
                                  "withheld": False}
    assert violent["author"] == "Patrol1"
    assert [x["id"] for x in b["persons"]] == [p]
    assert b["persons"][0]["roles_here"] == ["occupant", "suspect"]
    assert b["withheld"]["total"] == 0 and b["withheld"]["message"] is None
    # a wider radius reaches the other address
    assert briefing(client, h, "patrol1", radius=500).json()["operations_stats"]["total"] == 3
    # the read is recorded, with what was shown
    with force.runtime.db.read() as s:
        ev = s.scalars(select(EventRecord).where(EventRecord.type == "safety.briefing.read")).all()
    assert len(ev) == 2 and ev[0].actor_id == force.users["patrol1"]
    assert set(ev[0].payload["flag_ids"]) == {f["id"] for f in b["flags"]}


def test_service_function_for_dispatch_with_expected_persons(client, h, force):
    from tocsin.safety.service import briefing_for

    p = person(client, h, "calltaker", "Anna", "Korhonen", "1975")["person_id"]
    assert flag(client, h, "calltaker", category="armed", person_id=p).status_code == 201
    b = briefing_for(force.runtime, force.principal("dispatcher"), 60.18, 24.95,
                     person_ids=[p])
    import json

    json.dumps(b)  # JSON-able for the dispatch push
    assert b["operations"] == [] and b["persons"][0]["expected"] is True
    assert b["flags"][0]["category"] == "armed"


def test_briefing_shows_only_what_the_reader_may_see(client, h, force):
    p = person(client, h, "patrol1", "Mikko", "Laine", "1990-01-01")["person_id"]
    operation(client, h, "patrol1", persons=[(p, "suspect")])
    operation(client, h, "inv1", days_ago=3)  # D11: above patrol1's brigade
    assert flag(client, h, "patrol1", category="mental_health_crisis",
                person_id=p).status_code == 201
    assert flag(client, h, "patrol1", category="dangerous_dog", person_id=p).status_code == 201

    mine = briefing(client, h, "patrol1").json()
    assert mine["operations_stats"]["total"] == 1
    assert mine["withheld"]["operations"] == 1
    assert mine["withheld"]["message"] == "1 item withheld"
    assert {f["category"] for f in mine["flags"]} == {"mental_health_crisis", "dangerous_dog"}

    other = briefing(client, h, "patrol2", persons=[p]).json()  # sister brigade
    assert other["operations"] == [] and other["withheld"]["operations"] == 2
    assert other["withheld"]["persons"] == 1  # the expected person is patrol1's record
    # the force-wide warning still reaches patrol2, without the person's name;
    # the health flag stays with the unit tree that wrote it
    assert [f["category"] for f in other["flags"]] == ["dangerous_dog"]
    assert other["flags"][0]["subject"] == {"kind": "person", "id": None, "name": None,
                                            "withheld": True}
    assert other["withheld"]["flags"] == 1
    assert "Laine" not in str(other)
    assert other["withheld"]["message"] == "4 items withheld"

    dispatcher = briefing(client, h, "dispatcher").json()  # D11 sees its department
    assert dispatcher["operations_stats"]["total"] == 2 and dispatcher["withheld"]["total"] == 0
    # a role that may not read operations sees none, and is told
    assert briefing(client, h, "auditor").json()["withheld"]["operations"] == 2


def test_expired_flags_never_show_as_active_and_enter_the_review_queue(client, h, force):
    p = person(client, h, "patrol1", "Leo", "Nieminen", "1985-05-05")["person_id"]
    fid = flag(client, h, "patrol1", category="wanted", person_id=p, days=10).json()["id"]
    r = client.post(f"/api/v1/safety/flags/{fid}/review",
                    json={"decision": "approve", "version": 1}, headers=h("commander1"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active"
    assert briefing(client, h, "patrol1", persons=[p]).json()["flags"][0]["state"] == "active"
    # time passes: the flag's expiry is reached
    from tocsin.safety.models import SafetyRiskFlag

    with force.runtime.db.session() as s:
        s.get(SafetyRiskFlag, fid).expires_at = NOW - dt.timedelta(days=1)
    b = briefing(client, h, "patrol1", persons=[p]).json()
    assert b["flags"] == []
    q = client.get("/api/v1/safety/review-queue", headers=h("commander1")).json()["items"]
    item = next(i for i in q if i["id"] == fid)
    assert item["state"] == "expired"
    assert item["queue_reason"] == f"expired on {(NOW - dt.timedelta(days=1)).date()}"
    # approving an expired flag is refused; renewing brings it back
    r = client.post(f"/api/v1/safety/flags/{fid}/review",
                    json={"decision": "approve", "version": 2}, headers=h("commander1"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "safety.flag.expired"
    r = client.post(f"/api/v1/safety/flags/{fid}/review",
                    json={"decision": "renew", "version": 2,
                          "expires_at": iso(NOW + dt.timedelta(days=200))},
                    headers=h("commander1"))
    assert r.status_code == 200, r.text
    assert briefing(client, h, "patrol1", persons=[p]).json()["flags"][0]["id"] == fid
    # the person page shows the reviewer the state, never a silent active flag
    page = client.get(f"/api/v1/safety/persons/{p}", headers=h("patrol1")).json()
    assert page["flags"][0]["state"] == "active"


def test_review_workflow_rights_and_concurrent_reviews(client, h, force):
    fid = flag(client, h, "patrol1", category="hazardous_materials",
               place={"lat": HOME[0], "lon": HOME[1], "address": "Mannerheimintie 5"}).json()["id"]
    q = client.get("/api/v1/safety/review-queue", headers=h("commander1")).json()["items"]
    assert [(i["id"], i["queue_reason"]) for i in q] == [(fid, "awaiting review")]
    assert q[0]["subject"]["address"] == "Mannerheimintie 5"
    r = client.post(f"/api/v1/safety/flags/{fid}/review",
                    json={"decision": "approve", "version": 1}, headers=h("patrol1"))
    assert r.status_code == 403
    assert client.get("/api/v1/safety/review-queue", headers=h("patrol1")).status_code == 403
    ok = client.post(f"/api/v1/safety/flags/{fid}/review",
                     json={"decision": "approve", "version": 1}, headers=h("commander1"))
    stale = client.post(f"/api/v1/safety/flags/{fid}/review",
                        json={"decision": "reject", "version": 1}, headers=h("commander1"))
    assert ok.status_code == 200
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "safety.flag.stale"
    r = client.post(f"/api/v1/safety/flags/{fid}/review",
                    json={"decision": "withdraw", "version": 2, "note": "door replaced"},
                    headers=h("commander1"))
    assert r.json()["state"] == "withdrawn"
    assert briefing(client, h, "patrol1").json()["flags"] == []
    with force.runtime.db.read() as s:
        types = [e for (e,) in s.execute(select(EventRecord.type).where(
            EventRecord.type.like("safety.flag.%")).order_by(EventRecord.seq))]
    assert types == ["safety.flag.created", "safety.flag.approved", "safety.flag.withdrawn"]


def test_records_resolved_by_the_engine_merge_and_undo(client, h, force):
    a = person(client, h, "patrol1", "Jean", "Dupont", "1981-03-04", source="rms", ref="A-1")
    b = person(client, h, "patrol1", "Jean", "Dupond", "04/03/1981", source="traffic")
    # the engine suggests the second is the first; nothing merged by itself
    assert b["suggestions"], b
    sugg = b["suggestions"][0]
    assert sugg["person_ids"] == sorted([a["person_id"], b["person_id"]])
    assert any(row["field"] == "surname" for row in sugg["explanation"])
    listed = client.get("/api/v1/safety/merge-suggestions", headers=h("patrol1")).json()
    assert [x["id"] for x in listed] == [sugg["id"]]

    fid = flag(client, h, "patrol1", category="armed", person_id=b["person_id"]).json()["id"]
    r = client.post("/api/v1/safety/merges", headers=h("patrol1"), json={
        "target_id": a["person_id"], "source_id": b["person_id"], "reason": "same DOB, sound-alike",
        "suggestion_id": sugg["id"]})
    assert r.status_code == 201, r.text
    merge_id = r.json()["merge"]["id"]
    page = client.get(f"/api/v1/safety/persons/{a['person_id']}", headers=h("patrol1")).json()
    assert {x["source"] for x in page["records"]} == {"rms", "traffic"}
    surnames = {v["value"]: [p["source"] for p in v["sources"]]
                for v in page["attributes"]["surname"]}
    assert surnames == {"Dupont": ["rms"], "Dupond": ["traffic"]}  # provenance per attribute
    assert [f["id"] for f in page["flags"]] == [fid]  # the merged person's flag follows
    # the old id still works in a briefing: it stands for the merged person now
    bb = briefing(client, h, "patrol1", persons=[b["person_id"]]).json()
    assert bb["persons"][0]["id"] == a["person_id"] and bb["flags"][0]["id"] == fid
    assert client.get("/api/v1/safety/merge-suggestions", headers=h("patrol1")).json() == []

    # merging the already-merged person again is a clear error
    c = person(client, h, "patrol1", "Paul", "Martin", "1970")["person_id"]
    r = client.post("/api/v1/safety/merges", headers=h("patrol1"), json={
        "target_id": c, "source_id": b["person_id"], "reason": "test merge"})
    assert r.status_code == 409 and r.json()["error"]["details"]["merged_into"] == a["person_id"]
    # a merge of two merged clusters, then undo in order
    r2 = client.post("/api/v1/safety/merges", headers=h("patrol1"), json={
        "target_id": c, "source_id": a["person_id"], "reason": "second merge"})
    assert r2.status_code == 201
    r = client.post(f"/api/v1/safety/merges/{merge_id}/undo", headers=h("patrol1"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "safety.merge.undo_blocked"
    assert r.json()["error"]["details"]["undo_first"] == r2.json()["merge"]["id"]
    assert client.post(f"/api/v1/safety/merges/{r2.json()['merge']['id']}/undo",
                       headers=h("patrol1")).status_code == 200
    assert client.post(f"/api/v1/safety/merges/{merge_id}/undo",
                       headers=h("patrol1")).status_code == 200
    again = client.post(f"/api/v1/safety/merges/{merge_id}/undo", headers=h("patrol1"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "safety.merge.already_undone"
    for pid, src in ((a["person_id"], {"rms"}), (b["person_id"], {"traffic"}),
                     (c, {"rms"})):
        page = client.get(f"/api/v1/safety/persons/{pid}", headers=h("patrol1")).json()
        assert page["status"] == "active"
        assert {x["source"] for x in page["records"]} == src
    page_b = client.get(f"/api/v1/safety/persons/{b['person_id']}", headers=h("patrol1")).json()
    assert [f["id"] for f in page_b["flags"]] == [fid]  # the flag is back with its person
    with force.runtime.db.read() as s:
        types = [e for (e,) in s.execute(select(EventRecord.type).where(
            EventRecord.type.in_(["safety.person.merged", "safety.person.unmerged"]))
            .order_by(EventRecord.seq))]
    assert types == ["safety.person.merged"] * 2 + ["safety.person.unmerged"] * 2


def test_stale_merge_and_person_search(client, h, force):
    a = person(client, h, "patrol1", "Aino", "Virtanen", "1992-07-01")
    b = person(client, h, "patrol1", "Aino", "Virtanen", "1992-07-01", source="sis")
    r = client.post("/api/v1/safety/merges", headers=h("patrol1"), json={
        "target_id": a["person_id"], "source_id": b["person_id"], "reason": "same",
        "target_version": a["version"] + 5})
    assert r.status_code == 409 and r.json()["error"]["code"] == "safety.person.stale"
    found = client.get("/api/v1/safety/persons?given_names=Aino&surname=Virtanen"
                       "&birth_date=01.07.1992", headers=h("patrol1")).json()
    assert {x["id"] for x in found["results"]} == {a["person_id"], b["person_id"]}
    # inv2 (another region) may not see them: told, not shown
    other = client.get("/api/v1/safety/persons?given_names=Aino&surname=Virtanen",
                       headers=h("inv2")).json()
    assert other["results"] == [] and other["withheld"] == 2
    assert client.get(f"/api/v1/safety/persons/{a['person_id']}",
                      headers=h("inv2")).status_code == 403


def test_bad_input_is_refused_with_clear_errors_and_changes_nothing(client, h, force):
    post = lambda body: client.post("/api/v1/safety/persons", json=body, headers=h("patrol1"))
    base = {"source": "rms", "given_names": "Jean", "surname": "Dupont"}
    r = post({**base, "birth_date": "31/02/1990"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.record.bad_date_of_birth"
    r = post({**base, "birth_date": "2090-01-01"})
    assert r.status_code == 422
    r = post({**base, "surname": "   "})
    assert r.status_code == 422
    r = post({**base, "given_names": " ".join(["Jean"] * 500)})
    assert r.status_code == 422
    r = post({**base, "surname": "Dupоnt"})  # Cyrillic о inside a Latin word
    assert r.status_code == 422 and "mixes scripts" in r.text
    ok = post({**base, "surname": "Иванов", "source_ref": "X-1"})  # one script: fine
    assert ok.status_code == 201, ok.text
    dup = post({**base, "surname": "Something else", "source_ref": "X-1"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "safety.record.duplicate"
    assert dup.json()["error"]["details"]["person_id"] == ok.json()["person_id"]
    r = post({**base, "surprise": 1})
    assert r.status_code == 422
    # flags: no expiry in the past, right category for the subject
    p = ok.json()["person_id"]
    assert flag(client, h, "patrol1", category="armed", person_id=p, days=-1).status_code == 422
    assert flag(client, h, "patrol1", category="access_code", person_id=p).status_code == 422
    assert flag(client, h, "patrol1", category="armed", person_id=p,
                place={"lat": 60.0, "lon": 25.0}).status_code == 422
    # operations: unknown person, end before start, duplicate submission
    r = client.post("/api/v1/safety/operations", headers=h("patrol1"), json={
        "lat": 60.17, "lon": 24.94, "started_at": iso(NOW), "nature": "check", "outcome": "none",
        "persons": [{"person_id": 999999, "role": "suspect"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "safety.person.not_found"
    r = client.post("/api/v1/safety/operations", headers=h("patrol1"), json={
        "lat": 60.17, "lon": 24.94, "started_at": iso(NOW),
        "ended_at": iso(NOW - dt.timedelta(hours=1)), "nature": "check", "outcome": "none"})
    assert r.status_code == 422
    first = operation(client, h, "patrol1", client_ref="CAD-1")
    r = client.post("/api/v1/safety/operations", headers=h("patrol1"), json={
        "lat": 60.17, "lon": 24.94, "started_at": iso(NOW), "nature": "check", "outcome": "none",
        "client_ref": "CAD-1"})
    assert r.status_code == 409 and r.json()["error"]["details"]["operation_id"] == first["id"]
    # briefings: radius and persons checked
    assert briefing(client, h, "patrol1", radius=0).status_code == 422
    assert briefing(client, h, "patrol1", radius=50_000).status_code == 422
    assert briefing(client, h, "patrol1", lat=95).status_code == 422
    r = client.get("/api/v1/safety/briefing?lat=60.1&lon=24.9&persons=1,x", headers=h("patrol1"))
    assert r.status_code == 422
    assert briefing(client, h, "patrol1", persons=[424242]).status_code == 404
    assert client.get("/api/v1/safety/briefing?lat=60.1&lon=24.9").status_code == 401
    with force.runtime.db.read() as s:
        from tocsin.safety.models import SafetyIdentityRecord, SafetyOperation

        assert len(s.scalars(select(SafetyIdentityRecord)).all()) == 1
        assert len(s.scalars(select(SafetyOperation)).all()) == 1
