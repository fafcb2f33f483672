"""The incident-type catalogue: default priority and response plan per type.

A response plan names the capabilities the incident needs and how many units
of each (``{"patrol": 2, "dog": 1}``). The built-in catalogue below is replaced
by ``$TOCSIN_DATA_DIR/dispatch/catalogue.json`` when that file exists (same
shape: ``{"types": [...], "deadlines": {...}}``), so a force sets its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tocsin.core.errors import BadInput

UNIT_KINDS = {
    # kind: (default capabilities, travel-time factor against a car on the same roads)
    "patrol_car": (["patrol"], 1.0),
    "motorbike": (["patrol", "traffic"], 0.9),
    "foot": (["patrol"], 6.0),
    "dog": (["patrol", "dog"], 1.0),
    "tactical": (["tactical", "armed"], 1.0),
    "traffic": (["traffic", "patrol"], 1.0),
}

DEFAULT_TYPES = [
    {"code": "burglary", "title": "Burglary in progress", "priority": 1, "plan": {"patrol": 2}},
    {"code": "assault", "title": "Assault", "priority": 1, "plan": {"patrol": 2}},
    {"code": "armed_person", "title": "Armed person", "priority": 1,
     "plan": {"patrol": 2, "tactical": 1}},
    {"code": "domestic", "title": "Domestic violence", "priority": 1, "plan": {"patrol": 2}},
    {"code": "traffic_accident", "title": "Traffic accident", "priority": 2,
     "plan": {"patrol": 1, "traffic": 1}},
    {"code": "missing_person", "title": "Missing person", "priority": 2,
     "plan": {"patrol": 1, "dog": 1}},
    {"code": "theft", "title": "Theft", "priority": 3, "plan": {"patrol": 1}},
    {"code": "disturbance", "title": "Public disturbance", "priority": 3, "plan": {"patrol": 1}},
    {"code": "alarm", "title": "Intrusion alarm", "priority": 3, "plan": {"patrol": 1}},
    {"code": "suspicious", "title": "Suspicious activity", "priority": 4, "plan": {"patrol": 1}},
]
# Seconds allowed per priority: from creation to the first dispatch, and to arrival.
DEFAULT_DEADLINES = {
    "1": {"dispatch": 60, "on_scene": 600},
    "2": {"dispatch": 180, "on_scene": 1200},
    "3": {"dispatch": 600, "on_scene": 3600},
    "4": {"dispatch": 1800, "on_scene": 7200},
}


@dataclass(frozen=True)
class IncidentType:
    code: str
    title: str
    priority: int
    plan: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalogue:
    types: dict[str, IncidentType]
    deadlines: dict[int, dict[str, int]]

    def get(self, code: str) -> IncidentType:
        try:
            return self.types[code]
        except KeyError:
            raise BadInput(f"unknown incident type {code!r}", code="dispatch.type_unknown",
                           details={"known": sorted(self.types)}) from None

    def to_dict(self) -> dict:
        return {"types": [t.__dict__ for t in self.types.values()],
                "deadlines": {str(k): v for k, v in self.deadlines.items()},
                "unit_kinds": {k: {"capabilities": c, "factor": f}
                               for k, (c, f) in UNIT_KINDS.items()}}


def parse(data: dict) -> Catalogue:
    """Validate a catalogue document; raises ``ValueError`` naming the bad entry."""
    types: dict[str, IncidentType] = {}
    for i, t in enumerate(data.get("types") or []):
        try:
            code, title, prio = str(t["code"]), str(t["title"]), int(t["priority"])
            plan = {str(k): int(v) for k, v in (t.get("plan") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"catalogue type #{i}: {exc!r}") from None
        if not code or not 1 <= prio <= 4 or any(v < 1 for v in plan.values()):
            raise ValueError(f"catalogue type #{i} ({code!r}): bad code, priority or plan")
        types[code] = IncidentType(code, title, prio, plan)
    if not types:
        raise ValueError("catalogue has no incident types")
    raw = data.get("deadlines") or DEFAULT_DEADLINES
    deadlines = {int(k): {s: int(v[s]) for s in ("dispatch", "on_scene")} for k, v in raw.items()}
    return Catalogue(types, deadlines)


def load(data_dir: Path) -> Catalogue:
    path = data_dir / "dispatch" / "catalogue.json"
    if path.is_file():
        return parse(json.loads(path.read_text(encoding="utf-8")))
    return parse({"types": DEFAULT_TYPES, "deadlines": DEFAULT_DEADLINES})
