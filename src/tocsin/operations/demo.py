"""Demo data: an ongoing operation in Helsinki (sectors, points, units, journal)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from sqlalchemy import select

from tocsin.core.access import Principal
from tocsin.core.identity.models import Unit, User
from tocsin.core.runtime import Runtime
from tocsin.operations import schemas as sc
from tocsin.operations.models import Operation
from tocsin.operations.positions import get_hub
from tocsin.operations.service import get_service

NAME = "Operation Baltic Summit"
# Central Helsinki: three sectors sharing borders (lon, lat)
SECTORS = [
    ("Senate Square", [[24.945, 60.168], [24.956, 60.168], [24.956, 60.173], [24.945, 60.173]]),
    ("Esplanadi", [[24.938, 60.164], [24.956, 60.164], [24.956, 60.168], [24.938, 60.168]]),
    ("Railway Station", [[24.936, 60.168], [24.945, 60.168], [24.945, 60.174], [24.936, 60.174]]),
]
POINTS = [
    ("command_post", "Command post Kaartin", {"type": "Point", "coordinates": [24.9495, 60.1665]}),
    ("checkpoint", "CP Aleksanterinkatu", {"type": "Point", "coordinates": [24.9470, 60.1690]}),
    ("assembly_area", "Assembly Kansalaistori", {"type": "Point", "coordinates": [24.9370, 60.1740]}),
    ("restricted_zone", "Delegates' hotel", {"type": "Polygon", "coordinates": [[
        [24.9485, 60.1655], [24.9510, 60.1655], [24.9510, 60.1665], [24.9485, 60.1665],
        [24.9485, 60.1655]]]}),
]


def populate_demo(runtime: Runtime, rng: random.Random, progress: Callable[[str], None]) -> None:
    with runtime.db.read() as s:
        if s.scalar(select(Operation.id).where(Operation.name == NAME)):
            progress("demo operation already loaded")
            return
        commander = s.scalar(select(User).where(User.username == "commander"))
        if commander is None:
            progress("no demo commander: skipping the demo operation")
            return
        brigades = s.scalars(select(Unit.code).where(Unit.kind == "brigade",
                                                     Unit.code.like("B0101%"))
                             .order_by(Unit.code).limit(6)).all()
        members = dict(s.execute(select(User.username, User.id).where(
            User.username.in_(["patrol1", "patrol2"]))).all())
    p: Principal = runtime.identity.principal_for("commander")
    svc = get_service(runtime)
    now = dt.datetime.now(dt.timezone.utc)
    op = svc.create_operation(p, sc.OperationIn(
        name=NAME, description="Heads of government summit; demonstrations expected",
        unit_code="R01", starts_at=now - dt.timedelta(hours=3),
        ends_at=now + dt.timedelta(hours=21)))
    op_id = op["id"]
    svc.add_phase(p, op_id, sc.PhaseIn(name="Arrival of delegations",
                                       starts_at=now - dt.timedelta(hours=3),
                                       ends_at=now + dt.timedelta(hours=1)))
    svc.add_phase(p, op_id, sc.PhaseIn(name="Summit sessions", starts_at=now + dt.timedelta(
        hours=1), ends_at=now + dt.timedelta(hours=21)))
    sectors = []
    for name, ring in SECTORS:
        sectors.append(svc.create_sector(p, op_id, sc.SectorIn(
            name=name, geometry={"type": "Polygon", "coordinates": [ring + [ring[0]]]}))["id"])
    for kind, name, geom in POINTS:
        svc.create_point(p, op_id, sc.PointIn(kind=kind, name=name, geometry=geom))
    units = []
    for i, code in enumerate(brigades):
        member = []
        if code.endswith("-01") and "patrol1" in members:
            member = ["patrol1"]
        elif code.endswith("-02") and "patrol2" in members:
            member = ["patrol2"]
        u = svc.create_unit(p, op_id, sc.OpUnitIn(
            callsign=f"{'ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT'.split()[i]}-{i + 1}",
            unit_code=code, kind="vehicle" if i % 2 else "team", member_usernames=member,
            cot_uid=f"TOCSIN-DEMO-{i + 1}"))
        units.append(u["id"])
        svc.assign_unit(p, op_id, u["id"], sectors[i % len(sectors)])
    svc.decide(p, op_id, sc.DecisionIn(
        text="Close Aleksanterinkatu to traffic between Senate Square and Esplanadi",
        rationale="delegation motorcade route; 2,000 demonstrators announced",
        sector_id=sectors[0]))
    svc.create_order(p, op_id, sc.OrderIn(text="Hold checkpoint Aleksanterinkatu",
                                          op_unit_id=units[0],
                                          due_at=now + dt.timedelta(minutes=30)))
    svc.create_order(p, op_id, sc.OrderIn(text="Report crowd size at the station",
                                          sector_id=sectors[2],
                                          due_at=now - dt.timedelta(minutes=10)))
    patrol = runtime.identity.principal_for("patrol1") if "patrol1" in members else p
    svc.add_entry(patrol, op_id, sc.EntryIn(kind="report", text="About 300 people gathering "
                                            "peacefully at Kansalaistori", op_unit_id=units[0],
                                            lat=60.1738, lon=24.9372))
    # positions: the last twenty minutes of movement, through the batched path
    hub = get_hub(runtime)
    items = []
    for k, uid in enumerate(units):
        ring = SECTORS[k % len(SECTORS)][1]
        lon = (ring[0][0] + ring[2][0]) / 2
        lat = (ring[0][1] + ring[2][1]) / 2
        for minute in range(20, -1, -1):
            lat += rng.uniform(-0.0004, 0.0004)
            lon += rng.uniform(-0.0006, 0.0006)
            items.append({"op_unit_id": uid, "lat": lat, "lon": lon,
                          "at": (now - dt.timedelta(minutes=minute)).timestamp()})
    hub.buckets.clear()
    for i in range(0, len(items), 5):
        hub.ingest(items[i:i + 5], source="api", client=f"demo:{i}")
    hub.flush()
    progress(f"demo operation {NAME!r} with {len(units)} units and {len(SECTORS)} sectors")
