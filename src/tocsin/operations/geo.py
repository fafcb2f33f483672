"""Geometry checks for sectors, points and alert areas (GeoJSON in, shapely inside)."""

from __future__ import annotations

import math
from typing import Any

from shapely.geometry import Point, Polygon, shape
from shapely.validation import explain_validity

from tocsin.core.errors import BadInput

# Two sectors may share a border; an overlap smaller than this (square degrees,
# about 1 m² at 60°N) is a rounding artefact of a shared edge, not an overlap.
OVERLAP_TOLERANCE = 1e-10
MAX_VERTICES = 2000


def _check_lonlat(lon: Any, lat: Any) -> tuple[float, float]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lon, lat)):
        raise BadInput("coordinates must be numbers [lon, lat]", code="geometry.bad_coordinates")
    lon, lat = float(lon), float(lat)
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise BadInput("coordinates out of range", code="geometry.bad_coordinates")
    return lon, lat


def polygon(geometry: dict[str, Any]) -> Polygon:
    """A valid, simple GeoJSON Polygon (one outer ring, optional holes) or BadInput."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise BadInput("geometry must be a GeoJSON Polygon", code="geometry.not_polygon")
    rings = geometry.get("coordinates")
    if not isinstance(rings, list) or not rings:
        raise BadInput("a Polygon needs at least one ring", code="geometry.not_polygon")
    clean = []
    for ring in rings:
        if not isinstance(ring, list) or not all(isinstance(p, list) and len(p) in (2, 3)
                                                 for p in ring):
            raise BadInput("a ring is a list of [lon, lat] points",
                           code="geometry.bad_coordinates")
        pts = [_check_lonlat(p[0], p[1]) for p in ring]
        if len(pts) > MAX_VERTICES:
            raise BadInput(f"more than {MAX_VERTICES} vertices", code="geometry.too_complex")
        if pts and pts[0] != pts[-1]:
            pts.append(pts[0])  # close the ring for the caller
        if len(set(pts)) < 3:
            raise BadInput("a ring needs at least three distinct points",
                           code="geometry.too_few_points")
        clean.append(pts)
    poly = Polygon(clean[0], clean[1:])
    if not poly.is_valid:
        reason = explain_validity(poly)
        code = ("geometry.self_intersection" if "Self-intersection" in reason
                or "Ring Self-intersection" in reason else "geometry.invalid")
        raise BadInput(f"the polygon is not valid: {reason}", code=code,
                       details={"reason": reason})
    if poly.area <= 0:
        raise BadInput("the polygon has no area", code="geometry.invalid")
    return poly


def normalised(poly: Polygon) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[x, y] for x, y in ring.coords]
                            for ring in [poly.exterior, *poly.interiors]]}


def point_or_polygon(geometry: dict[str, Any]):
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        c = geometry.get("coordinates")
        if not isinstance(c, list) or len(c) not in (2, 3):
            raise BadInput("a Point is [lon, lat]", code="geometry.bad_coordinates")
        lon, lat = _check_lonlat(c[0], c[1])
        return Point(lon, lat), {"type": "Point", "coordinates": [lon, lat]}
    poly = polygon(geometry)
    return poly, normalised(poly)


def bbox(geom) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in geom.bounds)  # (min_lon, min_lat, max_lon, max_lat)


def overlaps(a, b) -> bool:
    return a.intersects(b) and a.intersection(b).area > OVERLAP_TOLERANCE


def to_shape(geometry: dict[str, Any]):
    return shape(geometry)


def expand(box: tuple[float, float, float, float], km: float) -> tuple[float, float, float, float]:
    min_lon, min_lat, max_lon, max_lat = box
    dlat = km / 111.32
    mid = math.radians((min_lat + max_lat) / 2)
    dlon = km / (111.32 * max(math.cos(mid), 0.01))
    return (min_lon - dlon, min_lat - dlat, max_lon + dlon, max_lat + dlat)
