"""The live feed pushes each event only to those who may see it, and cuts revoked sessions."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect


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
