"""GET /api/v1/geo/basemap?bbox=w,s,e,n&zoom=z: the basemap drawn from the OSM data."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

from fastapi import APIRouter, Query

from tocsin.core.errors import BadInput
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.core.runtime import Runtime
from tocsin.geo.basemap import load_or_extract
from tocsin.geo.service import helsinki_pbf

router = APIRouter(prefix="/api/v1/geo", tags=["geo"])
MAX_SPAN_DEG = 2.0


def map_pbf(runtime: Runtime) -> Path:
    """The OSM extract the deployment imported (the bundled Helsinki by default)."""
    configured = os.environ.get("TOCSIN_MAP_PBF")
    if configured:
        return Path(configured)
    return helsinki_pbf()


def get_basemap(runtime: Runtime):
    return load_or_extract(map_pbf(runtime), runtime.settings.geo_dir / "basemap")


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
    bm = await asyncio.to_thread(get_basemap, rt)
    return await asyncio.to_thread(bm.query, w, s, e, n, zoom)
