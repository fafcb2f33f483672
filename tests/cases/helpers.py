"""Small helpers shared by the investigation tests."""

from __future__ import annotations


def new_case(client, h, title="A case", **extra) -> int:
    r = client.post("/api/v1/cases", json={"title": title, **extra}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def add(client, h, case_id, etype, **props) -> dict:
    r = client.post(f"/api/v1/cases/{case_id}/entities", json={"type": etype, "properties": props},
                    headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def link(client, h, case_id, a, b, type_="associate_of", **extra) -> dict:
    r = client.post(f"/api/v1/cases/{case_id}/links",
                    json={"source_id": a, "target_id": b, "type": type_, **extra}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def search(client, h, **criteria) -> dict:
    r = client.post("/api/v1/cases/search", json=criteria, headers=h)
    assert r.status_code == 200, r.text
    return r.json()
