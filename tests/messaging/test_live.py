"""Live delivery over the messenger websocket: order, exactly once, resume without loss,
removal and revocation take effect on open sockets."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.messaging.helpers import C3, Mx

WS = "/api/v1/messaging/ws"


class Sock:
    def __init__(self, client, token: str, since: int | None = None):
        self.cm = client.websocket_connect(WS)
        self.ws = self.cm.__enter__()
        hello = {"type": "auth", "access_token": token}
        if since is not None:
            hello["since"] = since
        self.ws.send_json(hello)
        self.ready = self.ws.receive_json()
        assert self.ready["type"] == "ready", self.ready

    def events(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            msg = self.ws.receive_json()
            if msg["type"] == "event":
                out.append(msg)
        return out

    def close(self):
        self.cm.__exit__(None, None, None)


def _bodies(msgs):
    return [m["event"]["content"].get("body") for m in msgs
            if m["event"]["type"] == "m.room.message"]


def test_socket_gets_room_events_in_order_once_and_resumes_without_loss(client, force):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Live", invite=[b.user_id])
    sock = Sock(client, b.token)
    try:
        b.post(f"{C3}/rooms/{room}/join")
        first = sock.events(1)[0]
        assert first["event"]["type"] == "m.room.member"
        for i in range(5):
            a.send_ok(room, f"m{i}")
        got = sock.events(5)
        assert _bodies(got) == [f"m{i}" for i in range(5)]
        streams = [m["stream"] for m in got]
        assert streams == sorted(streams) and len(set(streams)) == 5
        # the device's own message carries its transaction id, others' do not
        b.send_ok(room, "mine", txn="own-1")
        own = sock.events(1)[0]
        assert own["event"]["unsigned"]["transaction_id"] == "own-1"
        last = own["stream"]
    finally:
        sock.close()
    # offline: messages keep coming; on reconnect the device gets exactly what it missed
    for i in range(3):
        a.send_ok(room, f"offline{i}")
    again = Sock(client, b.token, since=last)
    try:
        a.send_ok(room, "after")
        got = again.events(4)
        assert _bodies(got) == ["offline0", "offline1", "offline2", "after"]
        assert len({m["stream"] for m in got}) == 4
        assert all(m["stream"] > last for m in got)
    finally:
        again.close()


def test_removed_member_socket_stops_at_once_and_outsiders_see_nothing(client, force):
    a, b, c = Mx(client, "patrol1"), Mx(client, "patrol2"), Mx(client, "inv2")
    room = a.create_room(name="Need to know", invite=[b.user_id])
    b.post(f"{C3}/rooms/{room}/join")
    other = a.create_room(name="Other", invite=[c.user_id])
    c.post(f"{C3}/rooms/{other}/join")
    sb, sc = Sock(client, b.token), Sock(client, c.token)
    try:
        a.send_ok(room, "before")
        assert _bodies(sb.events(1)) == ["before"]
        a.post(f"{C3}/rooms/{room}/kick", {"user_id": b.user_id})
        kicked = sb.events(1)[0]["event"]
        assert kicked["type"] == "m.room.member" and kicked["content"]["membership"] == "leave"
        a.send_ok(room, "secret after removal")
        a.send_ok(other, "marker")  # b is not in "other": b's next event must not be the secret
        b_room = b.create_room(name="b's own")
        nxt = sb.events(1)[0]
        assert nxt["room_id"] == b_room
        # c only ever sees its own room
        seen = sc.events(1)
        assert _bodies(seen) == ["marker"]
    finally:
        sb.close()
        sc.close()


def test_revoked_device_socket_is_closed(client, force):
    a = Mx(client, "patrol1", device="phone")
    sock = Sock(client, a.token)
    try:
        admin = force.headers(client, "admin")
        assert client.delete(f"/api/v1/users/{force.users['patrol1']}/sessions",
                             headers=admin).status_code == 200
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                sock.ws.receive_json()
        assert closed.value.code == 4401
    finally:
        sock.close()


def test_bad_socket_auth_is_refused(client, force):
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "auth", "access_token": "mat_nope"})
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_unit_channel_reaches_the_units_sockets_only_and_not_removed_members(client, force):
    a, b, outsider = Mx(client, "patrol1"), Mx(client, "patrol2"), Mx(client, "inv1")
    r = client.post("/api/v1/messaging/units/C111/channel", headers=a.h)
    assert r.status_code == 200, r.text
    room = r.json()["room_id"]  # C111's subtree: patrol1 (B1111) and patrol2 (B1112)
    sa, sb, so = Sock(client, a.token), Sock(client, b.token), Sock(client, outsider.token)
    try:
        a.send_ok(room, "to the company")
        assert _bodies(sa.events(1)) == ["to the company"]
        assert _bodies(sb.events(1)) == ["to the company"]
        # the outsider's next event is its own room's, not the company's message
        own = outsider.create_room(name="inv1's own")
        assert so.events(1)[0]["room_id"] == own
        assert a.post(f"{C3}/rooms/{room}/kick", {"user_id": b.user_id}).status_code == 200
        assert sb.events(1)[0]["event"]["content"]["membership"] == "leave"
        a.send_ok(room, "after removal")
        assert _bodies(sa.events(2)) == ["after removal"]  # (the kick, then the message)
        b_room = b.create_room(name="b's own")
        assert sb.events(1)[0]["room_id"] == b_room
    finally:
        for s in (sa, sb, so):
            s.close()
