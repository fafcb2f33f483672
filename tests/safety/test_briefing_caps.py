"""A briefing lists the most recent operations only: it says how many more the reader
may see that the cap left out, apart from those withheld from the reader; the persons
of a listed operation are named however old it is."""

from __future__ import annotations

from tests.safety.conftest import HOME
from tests.safety.test_safety_api import briefing, flag, operation, person
from tocsin.safety import service


def test_operations_over_the_cap_are_counted_apart_from_the_withheld(client, h, force,
                                                                     monkeypatch):
    monkeypatch.setattr(service, "BRIEFING_OPERATIONS", 2)
    mine = [operation(client, h, "patrol1", days_ago=d)["id"] for d in (30, 20, 10)]
    operation(client, h, "patrol2", days_ago=1)  # sister brigade: withheld from patrol1

    b = briefing(client, h, "patrol1").json()
    assert [o["id"] for o in b["operations"]] == [mine[2], mine[1]]  # most recent first
    assert b["operations_stats"]["total"] == 3
    assert b["operations_not_shown"] == {
        "count": 1, "message": "1 more operation not shown (the 2 most recent are listed)"}
    assert b["withheld"]["operations"] == 1 and b["withheld"]["message"] == "1 item withheld"

    d = briefing(client, h, "dispatcher").json()  # sees all four
    assert d["operations_not_shown"]["count"] == 2 and d["withheld"]["operations"] == 0
    assert d["operations_not_shown"]["message"].startswith("2 more operations not shown")

    few = briefing(client, h, "patrol2").json()
    assert len(few["operations"]) == 1
    assert few["operations_not_shown"] == {"count": 0, "message": None}
    assert few["withheld"]["operations"] == 3


def test_persons_of_a_listed_operation_are_named_past_the_recent_links(client, h, force,
                                                                       monkeypatch):
    """Persons come from the links of the most recent operations at the place, seen or
    not; an operation the reader is shown is always among them, however old."""
    monkeypatch.setattr(service, "BRIEFING_LINKED_OPERATIONS", 2)
    p = person(client, h, "patrol2", "Olli", "Salonen", "1977-07-07")["person_id"]
    old = operation(client, h, "patrol2", days_ago=300, persons=[(p, "suspect")])["id"]
    for d in (3, 2, 1):  # more recent, patrol1's: not shown to patrol2
        operation(client, h, "patrol1", lat=HOME[0], lon=HOME[1], days_ago=d)

    b = briefing(client, h, "patrol2").json()
    assert [o["id"] for o in b["operations"]] == [old]
    assert b["operations"][0]["persons"] == [{"id": p, "role": "suspect",
                                              "name": "Olli Salonen"}]
    assert [(x["id"], x["roles_here"]) for x in b["persons"]] == [(p, ["suspect"])]


def test_persons_listed_fit_one_screen_flagged_and_expected_first(client, h, force,
                                                                  monkeypatch):
    """Many persons linked to the operations at an address: every expected one is
    listed, then the flagged, then those of the listed operations; the rest are counted,
    and their flags are still shown."""
    monkeypatch.setattr(service, "BRIEFING_PERSONS_LISTED", 3)
    monkeypatch.setattr(service, "BRIEFING_OPERATIONS", 1)
    people = [person(client, h, "patrol1", f"Given{i}", f"Surname{i}",
                     f"19{60 + i}-01-0{1 + i % 9}")["person_id"] for i in range(6)]
    operation(client, h, "patrol1", days_ago=30, persons=[(p, "witness") for p in people[:5]])
    latest = operation(client, h, "patrol1", days_ago=2, persons=[(people[5], "suspect")])
    r = flag(client, h, "patrol1", person_id=people[4], category="violent_towards_police")
    assert r.status_code == 201, r.text
    expected = people[0]

    b = briefing(client, h, "patrol1", persons=[expected]).json()
    assert [o["id"] for o in b["operations"]] == [latest["id"]]
    # the expected one, the flagged one, the suspect of the listed operation
    assert [x["id"] for x in b["persons"]] == [expected, people[4], people[5]]
    assert b["persons"][1]["flags"] == [b["flags"][0]["id"]]
    assert b["flags"][0]["subject"] == {"kind": "person", "id": people[4],
                                        "name": "Given4 Surname4", "withheld": False}
    assert b["operations"][0]["persons"][0]["name"] == "Given5 Surname5"
    assert b["persons_not_shown"] == {
        "count": 3, "message": "3 more persons linked to operations here not shown (their "
                               "flags are listed)"}
    monkeypatch.setattr(service, "BRIEFING_PERSONS_LISTED", 8)
    everyone = briefing(client, h, "patrol1").json()
    assert len(everyone["persons"]) == 6
    assert everyone["persons_not_shown"] == {"count": 0, "message": None}
