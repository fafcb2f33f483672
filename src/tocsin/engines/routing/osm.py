"""Reading drivable roads out of OpenStreetMap data (``.osm.pbf`` or ``.osm`` XML).

Only the tag rules live here (which ways a police car may drive, in which
direction, how fast); :mod:`tocsin.engines.routing.graph` turns the result into
a compact graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike

import numpy as np

#: Default speeds in km/h per ``highway=*`` class, used when ``maxspeed`` is
#: absent or unparseable. Conservative urban figures for a car.
DEFAULT_SPEEDS_KMH: dict[str, float] = {
    "motorway": 100.0,
    "trunk": 80.0,
    "primary": 60.0,
    "secondary": 50.0,
    "tertiary": 40.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 15.0,
    "motorway_link": 60.0,
    "trunk_link": 50.0,
    "primary_link": 40.0,
    "secondary_link": 40.0,
    "tertiary_link": 30.0,
}

#: ``highway=*`` values that are routable by car. Everything else (footway,
#: cycleway, path, steps, pedestrian, track, construction, ...) is dropped.
DRIVABLE_HIGHWAYS: frozenset[str] = frozenset(DEFAULT_SPEEDS_KMH)

#: Highway classes on which a one-way direction is implied by OSM convention.
IMPLIED_ONEWAY_HIGHWAYS: frozenset[str] = frozenset({"motorway"})
IMPLIED_ONEWAY_JUNCTIONS: frozenset[str] = frozenset({"roundabout", "circular"})

#: Implicit ``maxspeed`` values (``CC:context``) in km/h. Only the contexts seen
#: in Nordic/European data are listed; unknown ones fall back to the class speed.
IMPLICIT_MAXSPEEDS_KMH: dict[str, float] = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 120.0,
    "trunk": 100.0,
    "living_street": 10.0,
    "walk": 7.0,
    "bicycle_road": 30.0,
}
#: Per-country overrides of :data:`IMPLICIT_MAXSPEEDS_KMH`.
COUNTRY_IMPLICIT_MAXSPEEDS_KMH: dict[str, dict[str, float]] = {
    "FI": {"urban": 50.0, "rural": 80.0, "motorway": 120.0},
    "SE": {"urban": 50.0, "rural": 70.0, "motorway": 110.0},
    "NO": {"urban": 50.0, "rural": 80.0, "motorway": 110.0},
    "DK": {"urban": 50.0, "rural": 80.0, "motorway": 130.0},
    "DE": {"urban": 50.0, "rural": 100.0, "motorway": 130.0},
    "FR": {"urban": 50.0, "rural": 80.0, "motorway": 130.0},
    "GB": {"urban": 48.3, "rural": 96.6, "motorway": 112.7, "nsl_single": 96.6,
           "nsl_dual": 112.7},
    "RU": {"urban": 60.0, "rural": 90.0, "motorway": 110.0},
}

_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_ZONE = re.compile(r"^[A-Za-z]{2}:zone:?(\d+)$")
_MPH = 1.609344
_KNOT = 1.852


def parse_maxspeed(value: str | None) -> float | None:
    """Parse an OSM ``maxspeed`` value into km/h, or ``None`` if unusable.

    Handles ``"50"``, ``"50 km/h"``, ``"30 mph"``, ``"FI:urban"``,
    ``"DE:zone30"``/``"DE:zone:30"``, ``"walk"``, and lists like ``"60;40"``
    (the lowest wins). ``"none"`` (no limit), ``"signals"``, ``"variable"`` and
    garbage return ``None`` so the class default applies.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if ";" in value:
        parts = [parse_maxspeed(p) for p in value.split(";")]
        known = [p for p in parts if p is not None]
        return min(known) if known else None
    m = _NUMBER_UNIT.match(value)
    if m:
        speed = float(m.group(1).replace(",", "."))
        unit = (m.group(2) or "").lower()
        if unit == "mph":
            speed *= _MPH
        elif unit == "knots":
            speed *= _KNOT
        return speed if speed > 0 else None
    if value.lower() == "walk":
        return IMPLICIT_MAXSPEEDS_KMH["walk"]
    m = _ZONE.match(value)
    if m:
        speed = float(m.group(1))
        return speed if speed > 0 else None
    if ":" in value:
        country, _, context = value.partition(":")
        country = country.upper()
        context = context.lower()
        table = COUNTRY_IMPLICIT_MAXSPEEDS_KMH.get(country, {})
        if context in table:
            return table[context]
        if context in IMPLICIT_MAXSPEEDS_KMH:
            return IMPLICIT_MAXSPEEDS_KMH[context]
    return None


_YES = frozenset({"yes", "1", "true"})
_REVERSE = frozenset({"-1", "reverse"})
_NO = frozenset({"no", "0", "false"})
_BLOCKED_ACCESS = frozenset({"no", "private"})
_EMERGENCY_OK = frozenset({"yes", "designated"})


def is_drivable(tags: dict[str, str] | object) -> bool:
    """True if a way with these tags may be driven by an emergency car."""
    highway = _get(tags, "highway")
    if highway not in DRIVABLE_HIGHWAYS:
        return False
    if _get(tags, "area") == "yes":
        return False
    access = _get(tags, "access")
    return not (access in _BLOCKED_ACCESS and _get(tags, "emergency") not in _EMERGENCY_OK)


def oneway_direction(tags: dict[str, str] | object) -> int:
    """``1`` forward only, ``-1`` backward only, ``0`` both ways."""
    value = _get(tags, "oneway")
    if value in _YES:
        return 1
    if value in _REVERSE:
        return -1
    if value in _NO:
        return 0
    if _get(tags, "junction") in IMPLIED_ONEWAY_JUNCTIONS:
        return 1
    if _get(tags, "highway") in IMPLIED_ONEWAY_HIGHWAYS:
        return 1
    return 0


def way_speed_kmh(tags: dict[str, str] | object) -> float:
    """Speed used on a way: its parseable ``maxspeed``, else the class default."""
    parsed = parse_maxspeed(_get(tags, "maxspeed"))
    if parsed is not None:
        return parsed
    return DEFAULT_SPEEDS_KMH.get(_get(tags, "highway") or "", 30.0)


def _get(tags: dict[str, str] | object, key: str) -> str | None:
    value = tags.get(key)  # type: ignore[attr-defined]
    return value.strip().lower() if isinstance(value, str) else value


EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres; works on scalars and numpy arrays."""
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


@dataclass
class RawRoads:
    """Directed road segments as read from OSM, before compaction."""

    osm_ids: list[int] = field(default_factory=list)        # node id per local index
    lats: list[float] = field(default_factory=list)
    lons: list[float] = field(default_factory=list)
    src: list[int] = field(default_factory=list)            # local node index
    dst: list[int] = field(default_factory=list)
    speed_kmh: list[float] = field(default_factory=list)
    ways: int = 0
    skipped_ways: int = 0


def read_osm_roads(path: str | PathLike[str]) -> RawRoads:
    """Read drivable ways and their nodes from an OSM file with pyosmium."""
    import osmium

    roads = RawRoads()
    index: dict[int, int] = {}

    def local(ref: int, lat: float, lon: float) -> int:
        i = index.get(ref)
        if i is None:
            i = index[ref] = len(roads.osm_ids)
            roads.osm_ids.append(ref)
            roads.lats.append(lat)
            roads.lons.append(lon)
        return i

    class Handler(osmium.SimpleHandler):
        def way(self, w) -> None:
            tags = w.tags
            if not is_drivable(tags):
                if tags.get("highway") is not None:
                    roads.skipped_ways += 1
                return
            direction = oneway_direction(tags)
            speed = way_speed_kmh(tags)
            roads.ways += 1
            prev = None
            for n in w.nodes:
                loc = n.location
                if not loc.valid():  # node outside the extract: break the chain
                    prev = None
                    continue
                cur = local(n.ref, loc.lat, loc.lon)
                if prev is not None and prev != cur:
                    if direction >= 0:
                        roads.src.append(prev)
                        roads.dst.append(cur)
                        roads.speed_kmh.append(speed)
                    if direction <= 0:
                        roads.src.append(cur)
                        roads.dst.append(prev)
                        roads.speed_kmh.append(speed)
                prev = cur

    Handler().apply_file(str(path), locations=True)
    return roads


__all__ = [
    "DEFAULT_SPEEDS_KMH",
    "DRIVABLE_HIGHWAYS",
    "RawRoads",
    "haversine_m",
    "is_drivable",
    "oneway_direction",
    "parse_maxspeed",
    "read_osm_roads",
    "way_speed_kmh",
]
