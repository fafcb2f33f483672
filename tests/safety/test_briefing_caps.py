"""A briefing lists the most recent operations only: it says how many more the reader
may see that the cap left out, apart from those withheld from the reader; the persons
of a listed operation are named however old it is."""

from __future__ import annotations

from tests.safety.conftest import HOME
from tests.safety.test_safety_api import briefing, operation, person
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
