"""Demo data for field safety, and the bulk generator the benchmark uses.

``populate_demo`` puts Helsinki addresses with a history on the map: past
operations (some with force or injury), the persons involved, a dangerous dog,
a man violent towards police, a fortified door, all written through the
service as the demo officers (so every change has its event), plus a few
thousand background operations from :func:`generate` across the city.

:func:`generate` writes places, persons (one identity record each), operations
and their person links in large batches, straight into the tables, with the
same grid cells and shapes the service writes; it is how the benchmark stores
ten million operations in minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable

from sqlalchemy import func, insert, select, text

from tocsin.core.database import utcnow
from tocsin.core.errors import NotFound
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Unit
from tocsin.core.runtime import Runtime
from tocsin.safety import geo, matching
from tocsin.safety.models import (
    SafetyIdentityRecord,
    SafetyOperation,
    SafetyOperationPerson,
    SafetyPerson,
    SafetyPlace,
)

HELSINKI = (60.150, 60.200, 24.900, 25.000)  # south, north, west, east
NATURES = ["domestic dispute", "noise complaint", "burglary", "assault", "theft", "drunk person",
           "traffic accident", "welfare check", "threat", "vandalism", "missing person"]
OUTCOMES = ["resolved on site", "arrest", "report filed", "no action", "transported to care",
            "fine issued"]
GIVEN = ["Aino", "Mikko", "Jari", "Sanna", "Timo", "Elina", "Pekka", "Laura", "Juha", "Anna",
         "Ville", "Katja", "Antti", "Minna", "Olli", "Heidi", "Leo", "Sari", "Kari", "Emilia"]
SURNAMES = ["Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine",
            "Heikkinen", "Koskinen", "Järvinen", "Lehtonen", "Lehtinen", "Saarinen", "Salminen",
            "Heinonen", "Niemi", "Heikkilä", "Kinnunen", "Salonen", "Turunen"]
STREETS = ["Mannerheimintie", "Aleksanterinkatu", "Hämeentie", "Mechelininkatu", "Runeberginkatu",
           "Fredrikinkatu", "Bulevardi", "Itämerenkatu", "Sturenkatu", "Mäkelänkatu",
           "Helsinginkatu", "Fleminginkatu", "Tehtaankatu", "Albertinkatu", "Lapinlahdenkatu"]

# (address, lat, lon, story) of the demo addresses with a history
STORIES = [
    ("Fleminginkatu 12", 60.18905, 24.95520, "dog"),
    ("Sturenkatu 27", 60.19245, 24.94890, "violent"),
    ("Hämeentie 44", 60.18780, 24.96310, "fortified"),
    ("Mechelininkatu 21", 60.17570, 24.91920, "quiet"),
]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(size, n - start)


def generate(runtime: Runtime, *, places: int, operations: int, persons: int,
             unit_ids: list[int], rng: random.Random, box=HELSINKI, link_share: float = 0.2,
             progress: Callable[[str], None] = print, batch: int = 100_000) -> dict[str, int]:
    """Store ``places`` places, ``persons`` persons and ``operations`` operations (a
    share ``link_share`` of them with one person) in ``box``; returns the counts."""
    db = runtime.db
    south, north, west, east = box
    now = utcnow()
    with db.read() as s:
        place0 = (s.scalar(select(func.max(SafetyPlace.id))) or 0) + 1
        person0 = (s.scalar(select(func.max(SafetyPerson.id))) or 0) + 1
        record0 = (s.scalar(select(func.max(SafetyIdentityRecord.id))) or 0) + 1
        op0 = (s.scalar(select(func.max(SafetyOperation.id))) or 0) + 1
    coords = []
    for start, n in _batches(places, batch):
        rows = []
        for i in range(start, start + n):
            lat, lon = rng.uniform(south, north), rng.uniform(west, east)
            coords.append((lat, lon))
            address = f"{rng.choice(STREETS)} {i // len(STREETS) + 1} gen{place0 + i}"
            rows.append({"id": place0 + i, "address": address, "address_key": address.lower(),
                         "lat": lat, "lon": lon, "cell": geo.cell_of(lat, lon),
                         "unit_id": rng.choice(unit_ids), "created_at": now})
        with db.session() as s:
            s.execute(insert(SafetyPlace), rows)
    progress(f"  {places:,} places")
    for start, n in _batches(persons, batch):
        prow, rrow = [], []
        for i in range(start, start + n):
            unit = rng.choice(unit_ids)
            prow.append({"id": person0 + i, "unit_id": unit, "status": "active", "version": 1,
                         "created_at": now})
            year = rng.randint(1940, 2005)
            rrow.append({"id": record0 + i, "person_id": person0 + i, "source": "generated",
                         "source_ref": f"G-{person0 + i}", "given_names": rng.choice(GIVEN),
                         "surname": rng.choice(SURNAMES),
                         "birth_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                         "fingerprint": hashlib.sha256(f"gen|{person0 + i}".encode()).hexdigest(),
                         "created_at": now})
        with db.session() as s:
            first = matching.allocate(s, len(rrow))  # the person directory reads these
            for k, row in enumerate(rrow):
                row["index_seq"] = first + k
            s.execute(insert(SafetyPerson), prow)
            s.execute(insert(SafetyIdentityRecord), rrow)
    progress(f"  {persons:,} persons")
    span = 5 * 365 * 86400
    for start, n in _batches(operations, batch):
        orow, lrow = [], []
        for i in range(start, start + n):
            oid = op0 + i
            started = now - dt.timedelta(seconds=rng.randrange(span))
            orow.append({"id": oid, "unit_id": rng.choice(unit_ids),
                         "place_id": place0 + rng.randrange(places), "started_at": started,
                         "ended_at": started + dt.timedelta(minutes=rng.randint(10, 180)),
                         "nature": rng.choice(NATURES), "outcome": rng.choice(OUTCOMES),
                         "force_used": rng.random() < 0.03, "injury": rng.random() < 0.01,
                         "units": [], "created_at": now})
            if persons and rng.random() < link_share:
                lrow.append({"operation_id": oid, "person_id": person0 + rng.randrange(persons),
                             "role": rng.choice(("suspect", "victim", "witness", "occupant"))})
        with db.session() as s:
            s.execute(insert(SafetyOperation), orow)
            if lrow:
                s.execute(insert(SafetyOperationPerson), lrow)
        if (start // batch) % 10 == 9 or start + n == operations:
            progress(f"  {start + n:,} / {operations:,} operations")
    if db.engine.dialect.name == "postgresql":
        with db.session() as s:
            for table in ("safety_places", "safety_persons", "safety_identity_records",
                          "safety_operations"):
                s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))"))
    return {"places": places, "persons": persons, "operations": operations}


def populate_demo(runtime: Runtime, rng: random.Random, progress: Callable[[str], None]) -> None:
    from tocsin.safety import service
    from tocsin.safety.schemas import FlagIn, FlagReviewIn, IdentityRecordIn, OperationIn

    with runtime.db.read() as s:
        if s.scalar(select(func.count()).select_from(SafetyOperation)):
            progress("field safety demo already loaded")
            return
        units = list(s.scalars(select(Unit.id).where(Unit.code.like("B0101%"))))
    ident = runtime.identity
    try:
        patrol = ident.principal_for("patrol1")
        commander = ident.principal_for("commander")
    except NotFound:  # a force without the demo logins: nothing to attach the stories to
        progress("field safety demo skipped: no demo logins")
        return
    now = utcnow()
    progress("field safety: Helsinki addresses with a history ...")

    def person(given: str, surname: str, dob: str, ref: str) -> int:
        return service.add_record(runtime, patrol, IdentityRecordIn(
            source="rms", source_ref=ref, given_names=given, surname=surname,
            birth_date=dob))["person_id"]

    def op(addr, lat, lon, days, nature, outcome, persons=(), force=False, injury=False):
        service.record_operation(runtime, patrol, OperationIn(
            lat=lat, lon=lon, address=addr, started_at=now - dt.timedelta(days=days),
            ended_at=now - dt.timedelta(days=days) + dt.timedelta(hours=1), nature=nature,
            outcome=outcome, force_used=force, injury=injury, units=["B010101-01"],
            persons=[{"person_id": p, "role": r} for p, r in persons]))

    def flag(category, reason, source, days, person_id=None, place=None):
        f = service.create_flag(runtime, patrol, FlagIn(
            category=category, reason=reason, source=source,
            expires_at=now + dt.timedelta(days=days), person_id=person_id, place=place))
        service.review_flag(runtime, commander, f["id"], FlagReviewIn(
            decision="approve", version=f["version"], note="checked against the report"))

    for addr, lat, lon, story in STORIES:
        if story == "dog":
            owner = person("Timo", "Heikkinen", "1979-06-14", "DEMO-1")
            op(addr, lat, lon, 33, "welfare check", "report filed", [(owner, "occupant")])
            op(addr, lat, lon, 12, "noise complaint", "resolved on site", [(owner, "occupant")],
               injury=True)
            flag("dangerous_dog", "Large dog bit an officer's leg at the door on the last visit; "
                 "ask the owner to shut it in before entering.", f"operation report, {addr}",
                 180, person_id=owner)
        elif story == "violent":
            man = person("Jari", "Mäkelä", "1986-11-02", "DEMO-2")
            partner = person("Sanna", "Mäkelä", "1988-03-21", "DEMO-3")
            op(addr, lat, lon, 27, "domestic dispute", "arrest",
               [(man, "suspect"), (partner, "victim")], force=True, injury=True)
            op(addr, lat, lon, 90, "threat", "report filed", [(man, "suspect")])
            flag("violent_towards_police", "Attacked a colleague with a kitchen knife during the "
                 "arrest last month; two officers at least.", "arrest report 2026/4411", 365,
                 person_id=man)
            flag("protection_order", "Must not approach Sanna Mäkelä or this address.",
                 "Helsinki district court", 200, person_id=man)
        elif story == "fortified":
            op(addr, lat, lon, 60, "burglary", "report filed")
            flag("fortified_door", "Steel door with two bolts; the rescue service opens it in "
                 "about ten minutes.", "patrol observation", 400,
                 place={"lat": lat, "lon": lon, "address": addr})
        else:
            op(addr, lat, lon, 400, "noise complaint", "no action")
    progress("field safety: background operations across Helsinki ...")
    generate(runtime, places=500, operations=3000, persons=300, unit_ids=units or [1], rng=rng,
             progress=lambda _m: None, batch=5000)
    with runtime.db.session() as s:
        emit(s, DomainEvent(type="safety.demo.loaded", unit_id=units[0] if units else None,
                            record_kind="field_operation", record_id="demo",
                            payload={"places": 500, "operations": 3000 + 7}))
    progress("field safety demo loaded")
