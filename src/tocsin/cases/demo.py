"""Demo cases: two regions' investigations that share a phone number (a hit)."""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import select

from tocsin.cases.models import Case
from tocsin.cases.service import get_service
from tocsin.core.errors import NotFound
from tocsin.core.runtime import Runtime

SHARED_PHONE = "06 12 34 56 78"


def populate_demo(runtime: Runtime, rng: random.Random,
                  progress: Callable[[str], None] = print) -> None:
    svc = get_service(runtime)
    with runtime.db.read() as s:
        if s.scalar(select(Case.id).where(Case.reference == "DEMO-D0101-1")):
            progress("demo cases already loaded")
            return
    try:
        inv1 = runtime.identity.principal_for("investigator1")
        inv2 = runtime.identity.principal_for("investigator2")
    except NotFound:
        progress("demo cases skipped: the demo investigators are missing")
        return
    # Region 1: a burglary ring.
    c1 = svc.create_case(inv1, title="Burglary ring, Helsinki north",
                         summary="Series of night burglaries of jewellers; stolen gold resold "
                                 "through a pawn shop.", reference="DEMO-D0101-1")
    p1 = svc.add_entity(inv1, c1.id, "person", {"given_name": "Jean", "family_name": "Dupont",
                                                "birth_date": "1984-03-12",
                                                "nationality": "FR"})
    ph = svc.add_entity(inv1, c1.id, "phone", {"number": SHARED_PHONE,
                                               "notes": "prepaid, bought with cash"})
    v1 = svc.add_entity(inv1, c1.id, "vehicle", {"plate": "AB-123-CD", "make": "Peugeot",
                                                 "model": "308", "colour": "grey"})
    a1 = svc.add_entity(inv1, c1.id, "address", {"street": "12 rue des Lilas",
                                                 "postcode": "75011", "city": "Paris"})
    p2 = svc.add_entity(inv1, c1.id, "person", {"given_name": "Karim", "family_name": "Benali",
                                                "birth_date": "1990-07-01"})
    ev = svc.add_entity(inv1, c1.id, "event", {"title": "Burglary at Kulta Oy",
                                               "date": "2026-02-14", "place": "Helsinki"})
    svc.add_link(inv1, c1.id, source_id=p1["id"], target_id=ph["id"], type="uses",
                 start_date="2026-01-01", source="phone records", confidence=0.9)
    svc.add_link(inv1, c1.id, source_id=p1["id"], target_id=v1["id"], type="owns",
                 source="vehicle register")
    svc.add_link(inv1, c1.id, source_id=p1["id"], target_id=a1["id"], type="lives_at",
                 start_date="2025-06-01")
    svc.add_link(inv1, c1.id, source_id=p1["id"], target_id=p2["id"], type="associate_of",
                 confidence=0.7, source="surveillance")
    svc.add_link(inv1, c1.id, source_id=p2["id"], target_id=ev["id"], type="met",
                 start_date="2026-02-14", source="CCTV", confidence=0.6)
    # Region 2: drug trafficking; the same prepaid phone turns up.
    c2 = svc.create_case(inv2, title="Cannabis resin supply, Nord",
                         summary="Deliveries by car from the coast; orders taken by phone.",
                         reference="DEMO-D0201-1")
    q1 = svc.add_entity(inv2, c2.id, "person", {"given_name": "Sami", "family_name": "Laine",
                                                "birth_date": "1979-11-30"})
    q2 = svc.add_entity(inv2, c2.id, "phone", {"number": "+33 6 12 34 56 78",
                                               "notes": "called 40 times in March"})
    q3 = svc.add_entity(inv2, c2.id, "vehicle", {"plate": "EF-456-GH", "make": "Renault"})
    svc.add_link(inv2, c2.id, source_id=q1["id"], target_id=q2["id"], type="called",
                 start_date="2026-03-02", source="intercept", confidence=0.8)
    svc.add_link(inv2, c2.id, source_id=q1["id"], target_id=q3["id"], type="uses")
    c3 = svc.create_case(inv2, title="Stolen car ring", summary="Vehicles re-plated and "
                         "shipped abroad.", reference="DEMO-D0201-2")
    svc.add_entity(inv2, c3.id, "vehicle", {"plate": "GH-789-IJ", "vin": "VF3ABCDEF12345678"})
    progress("demo cases created: 3 cases in two regions sharing a phone number")
