"""The live feed pushes each event only to those who may see it, and cuts revoked sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from starlette.websockets import WebSocketDisconnect

from tocsin.core import access
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Unit

OWNERS: dict[str, int] = {}  # record id -> owning user, as a module's own table would hold it
access.register_kind("test_feed_doc", read=["investigator"], write=["investigator"],
                     describe=lambda _s, rid: {"owner_user_id": OWNERS.get(rid)})


def _connect(client, token):
    ws = client.websocket_connect("/api/v1/live")
    conn = ws.__enter__()
    conn.send_json({"type": "auth", "access_token": token})
    assert conn.receive_json()["type"] == "ready"
    return ws, conn


def test_events_reach_only_users_who_may_see_them(client, force):
    radmin = force.login(client, "radmin")
    patrol = force.login(client, "patrol1")
    ws_a, admin_ws = _connect(client, radmin["access_token"])
    ws_p, patrol_ws = _connect(client, patrol["access_token"])
    try:
        r = client.post("/api/v1/users", headers={"Authorization": f"Bearer {radmin['access_token']}"},
                        json={"username": "rookie", "display_name": "Rookie", "unit_code": "B1111",
                              "roles": ["patrol_officer"], "password": "rookie password 1"})
        assert r.status_code == 201
        msg = admin_ws.receive_json()
        assert msg["event"]["type"] == "identity.user.created"
        assert msg["event"]["record_id"] == str(r.json()["id"])
        # the patrol officer may not read user records: the next thing it gets is
        # an event addressed to it, not the user creation
        second = force.login(client, "patrol1", device_name="second")
        client.delete(f"/api/v1/auth/sessions/{second['session_id']}",
                      headers={"Authorization": f"Bearer {patrol['access_token']}"})
        msg = patrol_ws.receive_json()
        assert msg["event"]["type"] == "identity.session.created"
        msg = patrol_ws.receive_json()
        assert msg["event"]["type"] == "identity.session.revoked"
        assert msg["event"]["payload"]["session_id"] == second["session_id"]
    finally:
        ws_a.__exit__(None, None, None)
        ws_p.__exit__(None, None, None)


def test_revoked_session_socket_is_closed_at_once(client, force):
    patrol = force.login(client, "patrol1")
    ws, conn = _connect(client, patrol["access_token"])
    try:
        admin = force.headers(client, "admin")
        assert client.delete(f"/api/v1/users/{force.users['patrol1']}/sessions",
                             headers=admin).status_code == 200
        seen = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(conn.receive_json())
        assert closed.value.code == 4401
        assert {"type": "closed", "code": 4401} in seen
    finally:
        ws.__exit__(None, None, None)


def test_bad_token_is_refused(client, force):
    with client.websocket_connect("/api/v1/live") as ws:
        ws.send_json({"type": "auth", "access_token": "forged"})
        assert ws.receive_json() == {"type": "error", "code": "token_invalid"}
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()
    with client.websocket_connect("/api/v1/live") as ws:
        ws.send_json(["not", "an", "object"])
        assert ws.receive_json()["type"] == "error"


def _emit(rt, **fields) -> None:
    with rt.db.session() as s:
        emit(s, DomainEvent(**fields))


def _doc_event(rt, unit_id, record_id) -> None:
    _emit(rt, type="test.doc.updated", unit_id=unit_id, record_kind="test_feed_doc",
          record_id=record_id)


def _next_types(rt, conns: dict, n: int = 1) -> dict[str, list[str]]:
    """The next event types each connection gets, up to and including a marker event
    addressed to all of them (everything sent before it has been dispatched)."""
    _emit(rt, type="test.marker", audience=list(conns))
    out = {}
    for user_id, conn in conns.items():
        types = []
        while not types or types[-1] != "test.marker":
            types.append(conn.receive_json()["event"]["type"])
        out[user_id] = types[:-1]
    return out


def test_shared_and_owned_records_reach_their_users(client, force):
    """inv2 (D21) sees a D11 record only through a share; patrol1 (no role for it) only
    as its owner. Granting and revoking take effect on the very next event."""
    rt = force.runtime
    inv2, patrol = force.users["inv2"], force.users["patrol1"]
    with rt.db.read() as s:
        d11 = s.scalar(select(Unit.id).where(Unit.code == "D11"))
    OWNERS["owned-by-patrol"] = patrol
    sockets = [_connect(client, force.login(client, u)["access_token"])
               for u in ("inv2", "patrol1")]
    conns = {inv2: sockets[0][1], patrol: sockets[1][1]}
    try:
        _next_types(rt, conns)  # the logins' own events
        _doc_event(rt, d11, "doc-1")
        assert _next_types(rt, conns) == {inv2: [], patrol: []}
        with rt.db.session() as s:
            share = access.grant(s, "test_feed_doc", "doc-1", user_id=inv2)
        _doc_event(rt, d11, "doc-1")
        assert _next_types(rt, conns) == {inv2: ["test.doc.updated"], patrol: []}
        with rt.db.session() as s:
            access.revoke(s, "test_feed_doc", "doc-1", share.id)
        _doc_event(rt, d11, "doc-1")
        assert _next_types(rt, conns) == {inv2: [], patrol: []}
        _doc_event(rt, d11, "owned-by-patrol")
        assert _next_types(rt, conns) == {inv2: [], patrol: ["test.doc.updated"]}
    finally:
        for ws, _conn in sockets:
            ws.__exit__(None, None, None)


def test_one_share_lookup_per_record_whatever_the_number_of_sockets(client, force):
    rt = force.runtime
    with rt.db.read() as s:
        d21 = s.scalar(select(Unit.id).where(Unit.code == "D21"))
    users = ("inv2", "inv1", "patrol1", "inv2")
    sockets = [_connect(client, force.login(client, u)["access_token"]) for u in users]
    conns = {force.users[u]: c for u, (_ws, c) in zip(users, sockets)}
    lookups: list[str] = []

    def count(_conn, _cur, statement, _params, _ctx, _many):
        if "FROM shares" in statement:
            lookups.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        _next_types(rt, conns)
        lookups.clear()
        for _ in range(3):
            _doc_event(rt, d21, "doc-2")
        seen = _next_types(rt, conns)
        assert seen[force.users["inv2"]] == ["test.doc.updated"] * 3
        assert seen[force.users["inv1"]] == []
        assert len(lookups) == 1  # once for four sockets and three events
        with rt.db.session() as s:
            access.grant(s, "test_feed_doc", "doc-2", user_id=force.users["inv1"])
        _doc_event(rt, d21, "doc-2")
        assert _next_types(rt, conns)[force.users["inv1"]] == ["test.doc.updated"]
        assert len(lookups) == 2  # the share event dropped the record's facts
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)
        for ws, _conn in sockets:
            ws.__exit__(None, None, None)
