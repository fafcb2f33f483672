"""Shared helpers for the operations tests: squares near Helsinki, a ready operation."""

from __future__ import annotations

import io
from dataclasses import dataclass

LAT, LON = 60.17, 24.94


def square(lon: float, lat: float, size: float = 0.01) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat],
                                                [lon + size, lat + size], [lon, lat + size],
                                                [lon, lat]]]}


def png_bytes(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()


@dataclass
class Op:
    id: int
    sector_id: int
    unit_id: int
    other_unit_id: int
    cmd: dict
    patrol: dict


def make_operation(client, force, cot_uid: str | None = "ANDROID-patrol1") -> Op:
    cmd = force.headers(client, "commander1")
    r = client.post("/api/v1/operations", headers=cmd,
                    json={"name": "Summit", "description": "G20 summit"})
    assert r.status_code == 201, r.text
    op_id = r.json()["id"]
    r = client.post(f"/api/v1/operations/{op_id}/sectors", headers=cmd,
                    json={"name": "North", "geometry": square(LON, LAT)})
    assert r.status_code == 201, r.text
    sector_id = r.json()["id"]
    r = client.post(f"/api/v1/operations/{op_id}/units", headers=cmd,
                    json={"callsign": "ALPHA-1", "unit_code": "B1111",
                          "member_usernames": ["patrol1"], "cot_uid": cot_uid})
    assert r.status_code == 201, r.text
    unit_id = r.json()["id"]
    r = client.post(f"/api/v1/operations/{op_id}/units", headers=cmd,
                    json={"callsign": "BRAVO-2", "unit_code": "B1112", "kind": "vehicle",
                          "member_usernames": ["patrol2"]})
    assert r.status_code == 201, r.text
    return Op(op_id, sector_id, unit_id, r.json()["id"], cmd, force.headers(client, "patrol1"))
