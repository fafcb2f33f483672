"""Bad input gets a clear 4xx with a machine-readable code, and changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from tocsin.core.identity.models import Unit, User


def _counts(rt):
    with rt.db.read() as s:
        return (s.scalar(select(func.count()).select_from(User)),
                s.scalar(select(func.count()).select_from(Unit)))


def test_malformed_json_wrong_types_unknown_fields(client, force):
    before = _counts(force.runtime)
    h = force.headers(client, "admin")
    r = client.post("/api/v1/users", content=b"{not json", headers={**h,
                    "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    good = {"username": "newbie", "display_name": "New Bie", "unit_code": "D11",
            "roles": ["patrol_officer"], "password": "a fine password 1"}
    r = client.post("/api/v1/users", json={**good, "roles": "patrol_officer"}, headers=h)
    assert r.status_code == 422
    r = client.post("/api/v1/users", json={**good, "is_superuser": True}, headers=h)
    assert r.status_code == 422
    assert any(d["type"] == "extra_forbidden" for d in r.json()["error"]["details"])
    r = client.post("/api/v1/users", json={**good, "roles": ["emperor"]}, headers=h)
    assert r.status_code == 422
    r = client.post("/api/v1/users", json={**good, "display_name": "a\x00b"}, headers=h)
    assert r.status_code == 422
    r = client.post("/api/v1/users", json={**good, "unit_code": "NOPE"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unit.not_found"
    r = client.post("/api/v1/users", json={**good, "password": "short"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "user.weak_password"
    r = client.post("/api/v1/users", json={**good, "username": "admin"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "user.duplicate"
    assert _counts(force.runtime) == before


def test_errors_never_echo_passwords(client, force):
    r = client.post("/api/v1/auth/login", json={"username": "x", "password": "hunter2-secret",
                                                 "extra": 1})
    assert r.status_code == 422
    assert "hunter2-secret" not in r.text


def test_oversize_body(client, force):
    h = force.headers(client, "admin")
    limit = force.runtime.settings.max_body_bytes
    r = client.post("/api/v1/units", content=b"{" + b" " * (limit + 10) + b"}",
                    headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the limit applies to what is streamed
        for _ in range(limit // 1000 + 5):
            yield b" " * 1000

    r = client.post("/api/v1/units", content=chunks(), headers={**h,
                    "Content-Type": "application/json"})
    assert r.status_code == 413


def test_sql_metacharacters_are_plain_text(client, force):
    h = force.headers(client, "admin")
    nasty = "Robert'); DROP TABLE users;-- \" OR 1=1 %_\\"
    r = client.post("/api/v1/units", headers=h, json={"code": "X-1", "name": nasty,
                                                      "kind": "brigade", "parent_code": "C111"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == nasty
    r = client.get("/api/v1/users", params={"unit": "' OR '1'='1"}, headers=h)
    assert r.status_code == 404
    r = client.post("/api/v1/auth/login", json={"username": "' OR 1=1 --", "password": "x"})
    assert r.status_code == 401
    assert _counts(force.runtime)[0] == len(force.users)


def test_unit_nesting_rules(client, force):
    h = force.headers(client, "admin")
    r = client.post("/api/v1/units", headers=h, json={"code": "BAD", "name": "Bad",
                                                      "kind": "region", "parent_code": "B1111"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unit.bad_nesting"
    r = client.post("/api/v1/units", headers=h, json={"code": "ORPHAN", "name": "Orphan",
                                                      "kind": "brigade"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unit.parent_required"
    # a regional administrator cannot create units in another region
    r = client.post("/api/v1/units", headers=force.headers(client, "radmin"),
                    json={"code": "X2", "name": "X2", "kind": "company", "parent_code": "D21"})
    assert r.status_code == 403


def test_unknown_route_and_method(client, force):
    assert client.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"
    assert client.put("/api/v1/auth/login").status_code == 405


def test_user_read_is_recorded(client, force):
    from tocsin.core.events import EventRecord

    h = force.headers(client, "radmin")
    r = client.get(f"/api/v1/users/{force.users['patrol1']}", headers=h)
    assert r.status_code == 200
    with force.runtime.db.read() as s:
        reads = list(s.scalars(select(EventRecord).where(EventRecord.type == "identity.user.read")))
    assert [(e.actor_id, e.record_id) for e in reads] == [
        (force.users["radmin"], str(force.users["patrol1"]))]
    assert client.get(f"/api/v1/users/{force.users['inv2']}", headers=h).status_code == 403
