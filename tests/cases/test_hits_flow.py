"""The story of the issue: a phone number shared by two regions' cases becomes a hit,
the investigator asks for access, the owner grants it, and all of it is recorded."""

from __future__ import annotations

from sqlalchemy import select

from tests.cases.helpers import add, new_case
from tocsin.core.events import EventRecord
from tocsin.core.identity.models import Share


def test_shared_phone_hit_request_and_grant(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    c1 = new_case(client, h1, "Burglaries D11", summary="gold resold through a pawn shop")
    add(client, h1, c1, "person", given_name="Jean", family_name="Dupont",
        birth_date="1984-03-12")
    add(client, h1, c1, "phone", number="06 12 34 56 78", notes="prepaid, secret informant")
    c2 = new_case(client, h2, "Drugs D21")
    mine = add(client, h2, c2, "phone", number="+33 6 12-34-56-78")
    assert len(mine["hits"]) == 1
    hit = mine["hits"][0]
    assert hit["kind"] == "phone" and hit["strength"] == 1.0
    assert hit["other"]["unit_code"] == "D11" and hit["other"]["contact_username"] == "inv1"
    assert hit["other_access"] is False
    assert "case_id" not in hit["other"] and "title" not in hit["other"]
    # the other side learns of it too, in its own case
    h1_hits = client.get(f"/api/v1/cases/{c1}/hits", headers=h1).json()
    assert [x["other"]["unit_code"] for x in h1_hits] == ["D21"]
    # inv2 may not read case 1 ...
    assert client.get(f"/api/v1/cases/{c1}", headers=h2).status_code == 404
    # ... so she asks, naming the hit
    r = client.post("/api/v1/cases/access-requests",
                    json={"hit_id": hit["id"], "reason": "same prepaid phone in my drugs case"},
                    headers=h2)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "pending" and "case_id" not in req["case"]
    again = client.post("/api/v1/cases/access-requests",
                        json={"hit_id": hit["id"], "reason": "again"}, headers=h2)
    assert again.status_code == 409
    # inv1 owns case 1 and sees the request to decide
    todo = client.get("/api/v1/cases/access-requests", headers=h1).json()["to_decide"]
    assert [t["id"] for t in todo] == [req["id"]]
    assert todo[0]["requester"]["username"] == "inv2"
    # inv2 cannot decide her own request
    r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                    json={"grant": True}, headers=h2)
    assert r.status_code == 404
    r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                    json={"grant": True, "note": "call me first", "days": 30}, headers=h1)
    assert r.status_code == 200 and r.json()["status"] == "granted"
    opened = client.get(f"/api/v1/cases/{c1}", headers=h2)
    assert opened.status_code == 200
    assert opened.json()["can_write"] is False
    # read access only: she cannot change the case
    r = client.post(f"/api/v1/cases/{c1}/entities",
                    json={"type": "phone", "properties": {"number": "0611111111"}}, headers=h2)
    assert r.status_code == 403
    # the hit now shows the other case to her
    hits_now = client.get(f"/api/v1/cases/{c2}/hits", headers=h2).json()
    assert hits_now[0]["other_access"] and hits_now[0]["other"]["case_id"] == c1
    with force.runtime.db.read() as s:
        share = s.scalar(select(Share).where(Share.record_kind == "case",
                                             Share.record_id == str(c1)))
        assert share.grantee_user_id == force.users["inv2"]
        types = list(s.scalars(select(EventRecord.type).order_by(EventRecord.seq)))
    for t in ("cases.hit.found", "cases.access.requested", "cases.access.granted",
              "cases.audit.opened"):
        assert t in types
    # the auditor lists who looked at what
    ha = force.headers(client, "auditor")
    trail = client.get(f"/api/v1/cases/audit?case_id={c1}", headers=ha).json()
    assert any(e["actor"] == "inv2" and e["type"] == "cases.audit.opened" for e in trail)
    assert any(e["type"] == "cases.access.granted" and e["actor"] == "inv1" for e in trail)
    assert client.get("/api/v1/cases/audit", headers=h1).status_code == 403


def test_refusal_is_recorded_and_gives_nothing(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    c1 = new_case(client, h1)
    add(client, h1, c1, "vehicle", plate="AB-123-CD")
    c2 = new_case(client, h2)
    hit = add(client, h2, c2, "vehicle", plate="ab 123 cd")["hits"][0]
    req = client.post("/api/v1/cases/access-requests", json={"hit_id": hit["id"],
                      "reason": "please"}, headers=h2).json()
    r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                    json={"grant": False, "note": "covert operation"}, headers=h1)
    assert r.json()["status"] == "refused"
    assert client.get(f"/api/v1/cases/{c1}", headers=h2).status_code == 404
    mine = client.get("/api/v1/cases/access-requests", headers=h2).json()["mine"]
    assert mine[0]["status"] == "refused" and "title" not in mine[0]["case"]
    r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                    json={"grant": True}, headers=h1)
    assert r.status_code == 409


def test_someone_elses_hit_cannot_be_used_to_ask(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    c1 = new_case(client, h1)
    add(client, h1, c1, "email", address="x.y@example.org")
    c2 = new_case(client, h2)
    hit = add(client, h2, c2, "email", address="X.Y@example.org")["hits"][0]
    # inv1 cannot read c2, so inv2's hit (which lives in c2) is "not found" for her
    r = client.post("/api/v1/cases/access-requests", json={"hit_id": hit["id"],
                    "reason": "curious"}, headers=h1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "hit.not_found"


def test_cross_case_person_hit_by_the_resolution_engine(client, force):
    """The same man written two ways in two regions' cases: the engine resolves him."""
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    c1 = new_case(client, h1, "Fraud D11", summary="forged cheques")
    add(client, h1, c1, "person", given_name="Jean-Pierre", family_name="DUPONT",
        birth_date="1981-03-04", notes="uses a forged passport")
    add(client, h1, c1, "person", given_name="Marc", family_name="Dupont",
        birth_date="1981-07-21")  # same name, same year: another man
    c2 = new_case(client, h2, "Fraud D21")
    mine = add(client, h2, c2, "person", given_name="J.P.", family_name="Dupond",
               birth_date="04/03/81")
    assert mine["properties"]["birth_date"] == "1981-03-04"  # read day first by the engine
    assert len(mine["hits"]) == 1
    hit = mine["hits"][0]
    assert hit["kind"] == "person" and 0.85 <= hit["strength"] <= 1.0
    assert hit["other"]["unit_code"] == "D11" and hit["other_access"] is False
    assert set(hit["other"]) == {"unit_code", "unit_name", "unit_phone", "contact_name",
                                 "contact_username"}
    assert "passport" not in str(mine) and "Jean-Pierre" not in str(mine)
    theirs = client.get(f"/api/v1/cases/{c1}/hits", headers=h1).json()
    assert [(x["kind"], x["strength"], x["other"]["unit_code"]) for x in theirs] == [
        ("person", hit["strength"], "D21")]


def test_person_watches_look_a_year_either_way_like_hits(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    r = client.post("/api/v1/cases/watches", json={"kind": "person", "given_name": "Paul",
                    "family_name": "Moreau", "birth_date": "04/04/1975"}, headers=h1)
    assert r.status_code == 201, r.text
    c2 = new_case(client, h2, "Thefts D21")
    add(client, h2, c2, "person", given_name="Paul", family_name="Moreau",
        birth_date="1976-04-04")  # a year off: the watch fires, as a hit would
    add(client, h2, c2, "person", given_name="Paul", family_name="Moreau",
        birth_date="1977-04-04")  # two years off: it does not
    add(client, h2, c2, "person", given_name="Sylvie", family_name="Moreau",
        birth_date="1975-09-30")  # the same block, another person
    alerts = client.get("/api/v1/cases/watch-alerts", headers=h1).json()
    assert len(alerts) == 1 and alerts[0]["strength"] >= 0.85
    assert alerts[0]["other"]["unit_code"] == "D21" and alerts[0]["other_access"] is False
    c1 = new_case(client, h1, "Thefts D11")
    hit = add(client, h1, c1, "person", given_name="Paul", family_name="Moreau",
              birth_date="1975-04-04")["hits"]
    assert [h["kind"] for h in hit] == ["person"]  # the 1976 one, not the 1977 one
