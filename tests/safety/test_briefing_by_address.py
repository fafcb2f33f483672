"""A briefing for an address (geocoded by the platform, or a place field safety already
knows) and for persons expected there, known by name and birth date only."""

from __future__ import annotations

from sqlalchemy import select

from tests.safety.test_safety_api import flag, operation, person
from tocsin.core.events import EventRecord
from tocsin.safety import service
from tocsin.safety.schemas import ExpectedPersonIn

MANNERHEIMINTIE_5 = (60.1694, 24.9398)  # where the bundled geocoder puts it


def test_briefing_for_a_typed_address_uses_the_platform_geocoder(client, h, force):
    # recorded by its point, under another spelling of the address
    op = operation(client, h, "patrol1", lat=MANNERHEIMINTIE_5[0], lon=MANNERHEIMINTIE_5[1],
                   address="Mannerheimintie 5, 00100 Helsinki (shop)", force_used=True)
    r = client.get("/api/v1/safety/briefing?address=Mannerheimintie%205&radius=60",
                   headers=h("patrol1"))
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["query"]["located"]["by"] == "geocoder"
    assert b["query"]["located"]["label"].startswith("Mannerheimintie 5")
    assert abs(b["query"]["lat"] - MANNERHEIMINTIE_5[0]) < 0.001
    assert [o["id"] for o in b["operations"]] == [op["id"]]
    assert b["operations_stats"]["force_used"] == 1
    with force.runtime.db.read() as s:
        ev = s.scalars(select(EventRecord).where(EventRecord.type == "safety.briefing.read")).one()
    assert ev.payload["address"] == "Mannerheimintie 5"


def test_briefing_for_an_address_field_safety_knows_needs_no_geocoder(client, h, force):
    """A place recorded with its address (here outside the map) is found by that address."""
    op = operation(client, h, "patrol1", lat=45.7640, lon=4.8357, address="12 Rue des Lilas")
    r = flag(client, h, "patrol1", category="fortified_door",
             place={"lat": 45.7640, "lon": 4.8357, "address": "12 Rue des Lilas"})
    assert r.status_code == 201, r.text
    b = service.briefing_for(force.runtime, force.principal("patrol1"),
                             address="12, rue des lilas")
    assert b["query"]["located"]["by"] == "known_place"
    assert [o["id"] for o in b["operations"]] == [op["id"]]
    assert [f["category"] for f in b["flags"]] == ["fortified_door"]


def test_unknown_address_and_bad_location_are_clear_errors(client, h, force):
    r = client.get("/api/v1/safety/briefing?address=Qwzxv%20Plokjstrasse%2099999",
                   headers=h("patrol1"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.briefing.address_not_found"
    r = client.get("/api/v1/safety/briefing", headers=h("patrol1"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "safety.briefing.location_required"
    r = client.get("/api/v1/safety/briefing?lat=60.17", headers=h("patrol1"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.briefing.bad_point"
    r = client.post("/api/v1/safety/briefing", headers=h("patrol1"), json={"radius_m": 50})
    assert r.status_code == 422


def test_expected_persons_by_name_and_birth_date_are_resolved(client, h, force):
    p = person(client, h, "patrol1", "Jean-Pierre", "Dupont", "1981-03-04")["person_id"]
    person(client, h, "patrol1", "Marie", "Dupont", "1950-11-30")  # same surname, not him
    assert flag(client, h, "patrol1", category="armed", person_id=p).status_code == 201
    body = {"address": "Mannerheimintie 5",
            "expected": [{"given_names": "Jean Pierre", "surname": "DUPOND",
                          "birth_date": "04/03/1981"},
                         {"given_names": "Zyxw", "surname": "Qqqqv", "birth_date": "2001"}]}
    r = client.post("/api/v1/safety/briefing", headers=h("patrol1"), json=body)
    assert r.status_code == 200, r.text
    b = r.json()
    assert [x["id"] for x in b["persons"]] == [p]
    him = b["persons"][0]
    assert him["expected"] is True and him["match"]["query"] == 0
    assert him["match"]["probability"] >= 0.9
    assert any(row["field"] == "surname" for row in him["match"]["explanation"])
    assert [f["category"] for f in b["flags"]] == ["armed"]
    assert b["flags"][0]["subject"]["id"] == p
    assert b["expected"][0]["person_ids"] == [p] and b["expected"][1]["person_ids"] == []
    assert b["expected"][0]["birth_date"] == "1981-03-04"

    # another region: the force-wide warning reaches it, the person stays withheld
    other = client.post("/api/v1/safety/briefing", headers=h("inv2"), json=body).json()
    assert other["persons"] == [] and other["expected"][0] == {
        **b["expected"][0], "person_ids": [], "withheld": 1}
    assert [f["category"] for f in other["flags"]] == ["armed"]
    assert other["flags"][0]["subject"]["withheld"] is True
    assert "Dupont" not in str(other["flags"]) and other["withheld"]["persons"] == 1

    # the service takes the same, for the dispatch desk
    b2 = service.briefing_for(force.runtime, force.principal("dispatcher"), 60.1694, 24.9398,
                              expected=[ExpectedPersonIn(given_names="Jean-Pierre",
                                                         surname="Dupont",
                                                         birth_date="1981-03-04")])
    assert [x["id"] for x in b2["persons"]] == [p]
    with force.runtime.db.read() as s:
        ev = s.scalars(select(EventRecord).where(EventRecord.type == "safety.briefing.read")
                       .order_by(EventRecord.seq)).all()
    assert ev[0].payload["expected"] == 2 and ev[0].payload["expected_matched"] == [p]
    assert "Dupond" not in str(ev[0].payload)  # the names asked for stay out of the event


def test_expected_persons_bad_input(client, h, force):
    post = lambda body: client.post("/api/v1/safety/briefing", headers=h("patrol1"),
                                    json={"lat": 60.17, "lon": 24.94, **body})
    r = post({"expected": [{"given_names": "Jean", "surname": "Dupont",
                            "birth_date": "31/02/1990"}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.record.bad_date_of_birth"
    r = post({"expected": [{"given_names": "Jean", "surname": ""}]})
    assert r.status_code == 422
    many = [{"given_names": "Jean", "surname": f"Dupont{i}"} for i in range(21)]
    r = post({"expected": many})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "safety.briefing.too_many_persons"
    with force.runtime.db.read() as s:
        assert s.scalars(select(EventRecord).where(
            EventRecord.type == "safety.briefing.read")).all() == []
