"""Explicit grants on cases: a share carries its action (read, or read and write)."""

from __future__ import annotations

from sqlalchemy import select

from tests.cases.helpers import new_case
from tocsin.core import access


def _share(force, case_id, username, action):
    with force.runtime.db.session() as s:
        access.grant(s, "case", str(case_id), user_id=force.users[username], action=action)


def test_a_read_share_reads_a_write_share_also_changes(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    phone = {"type": "phone", "properties": {"number": "0611111111"}}
    read_only = new_case(client, h1, "read only for inv2")
    _share(force, read_only, "inv2", "read")
    opened = client.get(f"/api/v1/cases/{read_only}", headers=h2)
    assert opened.status_code == 200 and opened.json()["can_write"] is False
    r = client.post(f"/api/v1/cases/{read_only}/entities", json=phone, headers=h2)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    assert client.patch(f"/api/v1/cases/{read_only}", json={"title": "x"},
                        headers=h2).status_code == 403

    writable = new_case(client, h1, "inv2 helps")
    _share(force, writable, "inv2", "write")
    opened = client.get(f"/api/v1/cases/{writable}", headers=h2)
    assert opened.status_code == 200 and opened.json()["can_write"] is True
    r = client.post(f"/api/v1/cases/{writable}/entities", json=phone, headers=h2)
    assert r.status_code == 201, r.text
    assert client.patch(f"/api/v1/cases/{writable}", json={"title": "renamed"},
                        headers=h2).status_code == 200
    # both are listed for her
    listed = {c["id"] for c in client.get("/api/v1/cases", headers=h2).json()}
    assert {read_only, writable} <= listed


def test_decisions_taken_together_are_those_taken_one_by_one(client, force):
    """``access.resources_of`` (hit lists, alert lists) decides as ``resource_of`` does, for
    open, need-to-know, shared and missing cases, read and write."""
    from tocsin.core.identity.models import Unit

    h1 = force.headers(client, "inv1")
    plain = new_case(client, h1, "plain")
    secret = new_case(client, h1, "secret", classification="secret")
    shared = new_case(client, h1, "shared", classification="confidential")
    _share(force, shared, "inv2", "write")
    rt = force.runtime
    with rt.db.read() as s:
        path = s.scalar(select(Unit.path).where(Unit.code == "D11"))
        owners = {str(plain): path, str(secret): path, str(shared): path, "999999": path}
        together = access.resources_of(s, "case", owners)
        alone = {rid: access.resource_of(s, "case", rid, p) for rid, p in owners.items()}
    assert together == alone
    seen = set()
    for user in ("inv1", "inv2", "analyst", "patrol1", "auditor"):
        principal = force.principal(user)
        for action in ("read", "write"):
            got = {rid: bool(access.decide(principal, action, r)) for rid, r in together.items()}
            assert got == {rid: bool(access.decide(principal, action, r))
                           for rid, r in alone.items()}
            seen |= {(rid, v) for rid, v in got.items()}
    assert (str(shared), True) in seen and (str(secret), False) in seen  # both outcomes met
