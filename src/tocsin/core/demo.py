"""Demo data: a whole national force, reproducible from a seed.

``populate`` creates the unit tree (nation > 13 regions > departments >
companies > brigades, about 4,300 units) and its officers (about 60,000 for
``size="full"``), then lets each domain module in ``DEMO_MODULES`` add its own
records (calls, operations, cases...). Loading twice changes nothing.

Every demo account shares one published password, hashed once: hashing 60,000
Argon2id hashes would take the better part of an hour and prove nothing.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable

from sqlalchemy import func, insert, select, text

from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity import passwords
from tocsin.core.identity.models import Unit, User
from tocsin.core.runtime import Runtime

DEMO_PASSWORD = "tocsin-demo-2026"
# Modules with ``populate_demo(runtime, rng, progress)``; a domain module adds its own line.
DEMO_MODULES: list[str] = []
DEMO_MODULES.append("tocsin.operations.demo")
DEMO_MODULES.append("tocsin.safety.demo")
DEMO_MODULES.append("tocsin.messaging.api")
DEMO_MODULES.append("tocsin.cases.demo")
DEMO_MODULES.append("tocsin.dispatch.demo")

REGIONS = ["Uusimaa", "Nord", "Bretagne", "Alpes", "Provence", "Aquitaine", "Lorraine",
           "Normandie", "Auvergne", "Occitanie", "Centre", "Champagne", "Corse"]
GIVEN = ["Aino", "Mikko", "Camille", "Julien", "Léa", "Hugo", "Emma", "Lucas", "Chloé", "Louis",
         "Sofia", "Matti", "Inès", "Nathan", "Manon", "Gabriel", "Sarah", "Jules", "Elina",
         "Arthur", "Jade", "Paul", "Anna", "Tom", "Laura", "Antoine", "Clara", "Maxime", "Eva"]
SURNAMES = ["Virtanen", "Korhonen", "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit",
            "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia",
            "Nieminen", "Mäkinen", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
            "Rousseau", "Vincent", "Muller", "Lefèvre", "Faure", "André", "Mercier", "Blanc"]

# (username, role, unit code) of the accounts printed for a new user of the demo.
DEMO_LOGINS = [
    ("admin", "administrator", "NAT"),
    ("auditor", "auditor", "NAT"),
    ("calltaker", "call_taker", "D0101"),
    ("dispatcher", "dispatcher", "D0101"),
    ("patrol1", "patrol_officer", "B010101-01"),
    ("patrol2", "patrol_officer", "B010101-02"),
    ("commander", "commander", "R01"),
    ("investigator1", "investigator", "D0101"),
    ("investigator2", "investigator", "D0201"),
    ("analyst", "analyst", "R01"),
]


def _force(rng: random.Random, size: str) -> tuple[list[dict], list[dict]]:
    units: list[dict] = []
    users: list[dict] = []

    def add(code: str, name: str, kind: str, parent: dict | None) -> dict:
        uid = len(units) + 1
        unit = {"id": uid, "code": code, "name": name, "kind": kind,
                "parent_id": parent["id"] if parent else None,
                "path": f"{parent['path'] if parent else '/'}{uid}/"}
        units.append(unit)
        return unit

    full = size == "full"
    nation = add("NAT", "National Police", "nation", None)
    for r, rname in enumerate(REGIONS if full else REGIONS[:2], start=1):
        region = add(f"R{r:02d}", f"{rname} Region", "region", nation)
        for d in range(1, (rng.randint(6, 9) if full else 2) + 1):
            dept_name = "Helsinki" if (r, d) == (1, 1) else f"{rname} {d}"
            dept = add(f"D{r:02d}{d:02d}", f"{dept_name} Department", "department", region)
            for c in range(1, (rng.randint(3, 6) if full else 2) + 1):
                comp = add(f"C{r:02d}{d:02d}{c:02d}", f"{dept_name} Company {c}", "company", dept)
                for b in range(1, (rng.randint(7, 11) if full else 3) + 1):
                    add(f"B{r:02d}{d:02d}{c:02d}-{b:02d}", f"{dept_name} Brigade {c}.{b}",
                        "brigade", comp)
    hashed = passwords.hash_password(DEMO_PASSWORD)
    by_code = {u["code"]: u for u in units}
    for username, role, code in DEMO_LOGINS:
        users.append({"username": username, "display_name": f"Demo {role.replace('_', ' ')}",
                      "unit_id": by_code[code]["id"], "roles": [role], "password_hash": hashed})
    roles_by_kind = {
        "nation": ["analyst", "administrator", "auditor", "commander"],
        "region": ["commander", "investigator", "analyst"],
        "department": ["call_taker", "dispatcher", "investigator", "commander"],
        "company": ["commander", "patrol_officer", "investigator"],
        "brigade": ["patrol_officer"] * 6 + ["commander"],
    }
    for unit in units:
        n = (13 if unit["kind"] == "brigade" else 6) if full else 3
        for i in range(rng.randint(max(1, n - 4), n + 4)):
            given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
            users.append({
                "username": f"{unit['code'].lower()}.{i + 1:02d}",
                "display_name": f"{given} {surname}",
                "unit_id": unit["id"], "roles": [rng.choice(roles_by_kind[unit["kind"]])],
                "password_hash": hashed,
            })
    return units, users


def populate(runtime: Runtime, *, seed: int = 2026, size: str = "full",
             progress: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """Create the demo force unless it is there; returns the logins to print."""
    rng = random.Random(seed)
    db = runtime.db
    with db.read() as s:
        has_force = s.scalar(select(func.count()).select_from(Unit)) > 0
    if not has_force:
        units, users = _force(rng, size)
        progress(f"creating the demo force: {len(units):,} units, {len(users):,} officers ...")
        with db.session() as s:
            for i in range(0, len(units), 2000):
                s.execute(insert(Unit), units[i:i + 2000])
            for i in range(0, len(users), 5000):
                s.execute(insert(User), users[i:i + 5000])
            if db.engine.dialect.name == "postgresql":
                for table in ("units", "users"):
                    s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT max(id) FROM {table}))"))
            emit(s, DomainEvent(type="identity.demo.loaded", record_kind="unit",
                                record_id="1", unit_id=1,
                                payload={"units": len(units), "users": len(users),
                                         "seed": seed}))
        progress("demo force created")
    else:
        progress("demo force already loaded")
    for name in DEMO_MODULES:
        module = importlib.import_module(name)
        module.populate_demo(runtime, rng, progress)
    return [(u, r) for u, r, _ in DEMO_LOGINS]
