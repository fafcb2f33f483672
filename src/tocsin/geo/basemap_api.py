"""The map's data under /api/v1/geo (signed-in users, like every geo route).

    GET /api/v1/geo/map-config              how the map page draws its basemap, and where
    GET /api/v1/geo/basemap?bbox=w,s,e,n&zoom=z   the basemap drawn from the OSM data

``map-config`` is ``{"tile_url", "basemap", "bounds", "center"}``: ``tile_url`` is
``TOCSIN_TILE_URL`` (a Leaflet template with ``{z}``, ``{x}``, ``{y}``) when the
deployment has a tile server, and then ``basemap`` is ``"tiles"``; otherwise it
is null and ``basemap`` is ``"osm"`` (the page draws ``/basemap``). ``bounds``
([[south, west], [north, east]]) and ``center`` are those of the current
area's road network, the one dispatch places calls on. The map pages open only
after login, and a tile URL may carry a provider key, so the route needs a
signed-in user too.
"""

from __future__ import annotations

import asyncio
import logging
import math

from fastapi import APIRouter, Query

from tocsin.core.errors import BadInput
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.core.runtime import Runtime
from tocsin.geo.service import get_geo

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/geo", tags=["geo"])
MAX_SPAN_DEG = 2.0


def tile_url(runtime: Runtime) -> str | None:
    """The configured tile URL template, or None (also when it lacks {z}, {x} or {y})."""
    url = (runtime.settings.tile_url or "").strip()
    if not url:
        return None
    if not all(part in url for part in ("{z}", "{x}", "{y}")):
        log.warning("TOCSIN_TILE_URL %r lacks {z}, {x} or {y}: drawing the OSM basemap", url)
        return None
    return url


@router.get("/map-config")
async def map_config(principal: PrincipalDep, rt: RuntimeDep) -> dict:
    url = tile_url(rt)
    area = await asyncio.to_thread(get_geo(rt).area)
    return {"tile_url": url, "basemap": "tiles" if url else "osm", **area}


@router.get("/basemap")
async def basemap(principal: PrincipalDep, rt: RuntimeDep,
                  bbox: str = Query(..., max_length=200),
                  zoom: int = Query(14, ge=0, le=22)) -> dict:
    try:
        w, s, e, n = (float(v) for v in bbox.split(","))
    except ValueError:
        raise BadInput("bbox must be west,south,east,north in degrees",
                       code="geo.bad_bbox") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)) or not (
            -180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise BadInput("bbox must be west,south,east,north with west < east, south < north",
                       code="geo.bad_bbox")
    if e - w > MAX_SPAN_DEG or n - s > MAX_SPAN_DEG:
        raise BadInput(f"bbox wider than {MAX_SPAN_DEG} degrees; zoom in",
                       code="geo.bbox_too_large")
    bm = await asyncio.to_thread(get_geo(rt).basemap)
    return await asyncio.to_thread(bm.query, w, s, e, n, zoom)
