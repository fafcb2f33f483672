"""The spatial grid of places: an integer cell per point, neighbouring cells per query.

A cell is 0.0005 degree of latitude by 0.0005 degree of longitude (about 55 m by
28 m at Helsinki's latitude). Cells are numbered row by row, so the cells of one
latitude row that a query touches form one contiguous integer range: a query for
a point and radius is a few ``cell BETWEEN a AND b`` ranges on an indexed column,
the same on SQLite and PostgreSQL, then an exact distance test.
"""

from __future__ import annotations

import math

STEP = 0.0005
_ROWS_OFFSET = 180_000  # 90 / STEP
_COLS = 720_001         # 360 / STEP + 1
_COLS_OFFSET = 360_000  # 180 / STEP
EARTH_M = 6_371_008.8
MAX_RADIUS_M = 2_000.0


def cell_of(lat: float, lon: float) -> int:
    row = math.floor(lat / STEP) + _ROWS_OFFSET
    col = math.floor(lon / STEP) + _COLS_OFFSET
    return row * _COLS + col


def cell_ranges(lat: float, lon: float, radius_m: float) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` cell ranges covering the circle, one per grid row."""
    dlat = math.degrees(radius_m / EARTH_M)
    coslat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    dlon = math.degrees(radius_m / (EARTH_M * coslat))
    r0 = math.floor((lat - dlat) / STEP) + _ROWS_OFFSET
    r1 = math.floor((lat + dlat) / STEP) + _ROWS_OFFSET
    c0 = math.floor((lon - dlon) / STEP) + _COLS_OFFSET
    c1 = math.floor((lon + dlon) / STEP) + _COLS_OFFSET
    return [(r * _COLS + c0, r * _COLS + c1) for r in range(r0, r1 + 1)]


def bbox(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(south, north, west, east) of the circle, for a cheap pre-filter."""
    dlat = math.degrees(radius_m / EARTH_M)
    coslat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    dlon = math.degrees(radius_m / (EARTH_M * coslat))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))
