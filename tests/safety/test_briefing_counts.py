"""A briefing counts the operations at every place within its radius, not only at the
nearest few it lists, and says when a cap on places leaves some out; the most recent
operations are the most recent of all, however far back they are."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import insert, select

from tests.safety.conftest import HOME
from tocsin.core.database import utcnow
from tocsin.core.events import EventRecord
from tocsin.core.identity.models import Unit
from tocsin.safety import geo, service
from tocsin.safety.models import SafetyOperation, SafetyOperationPerson, SafetyPlace
from tocsin.safety.schemas import IdentityRecordIn


def _unit(rt, code: str) -> int:
    with rt.db.read() as s:
        return s.scalar(select(Unit.id).where(Unit.code == code))


def _places_on_a_ring(rt, n: int, radius_m: float, first_m: float = 20.0, name: str = "Ring"
                      ) -> list[int]:
    """``n`` places around HOME, from ``first_m`` to ``radius_m`` away; their ids, nearest
    first."""
    unit = _unit(rt, "B1111")
    ky = math.radians(geo.EARTH_M)
    kx = ky * math.cos(math.radians(HOME[0]))
    rows = []
    for i in range(n):
        d = first_m + (radius_m - first_m) * i / max(1, n - 1)
        a = 2 * math.pi * i / 7.3
        lat, lon = HOME[0] + d * math.sin(a) / ky, HOME[1] + d * math.cos(a) / kx
        rows.append({"address": f"{name} {i}", "address_key": f"{name.lower()} {i}", "lat": lat, "lon": lon,
                     "cell": geo.cell_of(lat, lon), "unit_id": unit})
    with rt.db.session() as s:
        ids = [s.scalar(insert(SafetyPlace).values(**r).returning(SafetyPlace.id))
               for r in rows]
    return ids


def _operations(rt, place_ids: list[int], unit: str, days_ago: list[float], **extra
                ) -> list[int]:
    unit_id, now = _unit(rt, unit), utcnow()
    out = []
    with rt.db.session() as s:
        for pid, days in zip(place_ids, days_ago, strict=True):
            start = now - dt.timedelta(days=days)
            out.append(s.scalar(insert(SafetyOperation).values(
                unit_id=unit_id, place_id=pid, started_at=start, ended_at=start,
                nature="noise complaint", outcome="advice", units=[], **extra)
                .returning(SafetyOperation.id)))
    return out


def test_counts_cover_every_place_in_the_radius(force):
    rt = force.runtime
    ring = _places_on_a_ring(rt, 120, 240)
    _operations(rt, ring, "B1111", [1 + i for i in range(120)])
    _operations(rt, ring[:30], "B1112", [2 + i for i in range(30)], force_used=True)
    outside = _places_on_a_ring(rt, 5, 300, first_m=270, name="Far")
    _operations(rt, outside, "B1111", [1] * 5)

    b = service.briefing_for(rt, force.principal("dispatcher"), *HOME, radius_m=250)
    assert b["operations_stats"] == {"total": 150, "force_used": 30, "injury": 0}
    assert b["places_count"] == 120 and b["places_truncated"] is False
    assert [p["id"] for p in b["places"]] == ring[:10]  # the nearest listed, all counted
    assert b["summary"][-1].startswith("150 prior operation(s) within 250 m; force used in 30")

    mine = service.briefing_for(rt, force.principal("patrol1"), *HOME, radius_m=250)
    assert mine["operations_stats"]["total"] == 120
    assert mine["withheld"]["operations"] == 30


def test_a_cap_on_places_is_said(force, monkeypatch):
    rt = force.runtime
    ring = _places_on_a_ring(rt, 30, 200)
    _operations(rt, ring, "B1111", [3] * 30)
    monkeypatch.setattr(service, "BRIEFING_PLACES", 12)

    b = service.briefing_for(rt, force.principal("dispatcher"), *HOME, radius_m=250)
    assert b["places_truncated"] is True and b["places_count"] == 12
    assert b["operations_stats"]["total"] == 12
    assert "within 250 m (at the 12 nearest places)" in b["summary"][-1]


def test_the_most_recent_and_their_persons(force, monkeypatch):
    rt = force.runtime
    monkeypatch.setattr(service, "BRIEFING_OPERATIONS", 2)
    monkeypatch.setattr(service, "BRIEFING_LINKED_OPERATIONS", 2)
    ring = _places_on_a_ring(rt, 12, 45)
    days = [400, 300, 250, 200, 150, 100, 90, 80, 70, 60, 2.5, 40]
    ids = _operations(rt, ring, "B1111", days)
    # patrol2's, not shown to patrol1 but among the most recent at the place: its person's
    # force-wide warning still counts, the person unnamed
    hidden = _operations(rt, ring[:1], "B1112", [20])[0]
    dispatcher = force.principal("dispatcher")
    old, recent = (service.add_record(rt, dispatcher, IdentityRecordIn(
        source="rms", given_names=g, surname="Virtanen", birth_date="1970-01-01"))["person_id"]
        for g in ("Aino", "Eino"))
    with rt.db.session() as s:
        s.execute(insert(SafetyOperationPerson), [
            {"operation_id": ids[0], "person_id": old, "role": "suspect"},  # 400 days: too old
            {"operation_id": hidden, "person_id": recent, "role": "occupant"}])

    b = service.briefing_for(rt, force.principal("patrol1"), *HOME, radius_m=50)
    by_recency = [i for _, i in sorted(zip(days, ids))]
    assert [o["id"] for o in b["operations"]] == by_recency[:2]  # 2.5 days, then 40
    assert b["operations_not_shown"]["count"] == 10 and b["withheld"]["operations"] == 1
    assert b["persons"] == [] and b["withheld"]["persons"] == 1  # recent's, unit B1112's

    b = service.briefing_for(rt, dispatcher, *HOME, radius_m=50)
    assert [o["id"] for o in b["operations"]] == [by_recency[0], hidden]
    assert [(p["id"], p["roles_here"]) for p in b["persons"]] == [(recent, ["occupant"])]
    # every briefing's read is stored with what it showed
    with rt.db.read() as s:
        shown = [e.payload["operation_ids"] for e in s.scalars(
            select(EventRecord).where(EventRecord.type == "safety.briefing.read")
            .order_by(EventRecord.seq))]
    assert shown == [by_recency[:2], [by_recency[0], hidden]]


@pytest.mark.parametrize("days", [
    [1] + [1000 + i for i in range(11)],  # too few in any span: the whole history is read
    [50, 300] + [900 + 3 * i for i in range(38)],  # found once the first span is widened
    [5 * i + 1 for i in range(40)],  # found in the first span
], ids=["whole history", "widened", "first span"])
def test_the_most_recent_are_the_most_recent_of_all(force, monkeypatch, days):
    """The recent spans are only a shortcut: the list is the same as a full sort's."""
    rt = force.runtime
    monkeypatch.setattr(service, "BRIEFING_OPERATIONS", 2)
    ring = _places_on_a_ring(rt, len(days), 45)
    ids = _operations(rt, ring, "B1111", days)
    b = service.briefing_for(rt, force.principal("patrol1"), *HOME, radius_m=50)
    assert [o["id"] for o in b["operations"]] == [i for _, i in sorted(zip(days, ids))][:2]
