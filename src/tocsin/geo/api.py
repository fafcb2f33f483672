"""Geocoding routes under /api/v1/geo (the basemap is in ``basemap_api``).

    GET  /api/v1/geo/search?q=&limit=&autocomplete=&lat=&lon=   ranked candidates
    GET  /api/v1/geo/reverse?lat=&lon=[&radius_m=]              nearest address and street
    POST /api/v1/geo/parse-location                             AML SMS / HTTPS, PIDF-LO

Every route needs a signed-in user. Bad input is a 422 whose ``error.code``
says what was wrong (``geo.query_empty``, ``geo.query_too_long``,
``geo.query_control_character``, ``geo.bad_coordinates``, ``geo.bad_limit``,
``geo.location_unreadable`` with ``details.reason`` from the parser...).
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request

from tocsin.core.errors import BadInput
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.geo.service import get_geo

router = APIRouter(prefix="/api/v1/geo", tags=["geo"])


@router.get("/search")
def search(principal: PrincipalDep, rt: RuntimeDep, q: str | None = None, limit: int = 10,
           autocomplete: bool = False, lat: float | None = None,
           lon: float | None = None) -> dict:
    """Forward geocoding and autocomplete; ``lat``/``lon`` favour results near that point."""
    near = None
    if lat is not None or lon is not None:
        if lat is None or lon is None:
            raise BadInput("give both lat and lon to search near a point",
                           code="geo.bad_coordinates")
        near = (lat, lon)
    candidates = get_geo(rt).search_json(q, limit=limit, autocomplete=autocomplete, near=near)
    return {"query": q, "autocomplete": autocomplete, "candidates": candidates}


@router.get("/reverse")
def reverse(principal: PrincipalDep, rt: RuntimeDep, lat: float | None = None,
            lon: float | None = None, radius_m: float = 200.0) -> dict:
    """The nearest address and the nearest street to a point, with their distances."""
    return get_geo(rt).reverse_json(lat, lon, radius_m=radius_m)


@router.post("/parse-location")
async def parse_location(request: Request, principal: PrincipalDep, rt: RuntimeDep) -> dict:
    """The caller's location from an AML SMS, an AML HTTPS form body or a PIDF-LO document,
    sent as the raw body (any content type) or as JSON ``{"text": ...}``."""
    data: str | bytes = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        data = obj.get("text") if isinstance(obj, dict) else None
        if not isinstance(data, str):
            raise BadInput('give the location as JSON {"text": ...} or as the raw body',
                           code="geo.bad_body")
    return await asyncio.to_thread(get_geo(rt).caller_location_json, data)
