"""A user moved to another unit (or whose roles change) while connected: her messenger
sockets are closed with 4409 and reconnect under what she now is; a waiting /sync is
authenticated again and answers for her new unit, not her old one."""

from __future__ import annotations

import threading
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.messaging.helpers import C3, Mx
from tests.messaging.test_live import Sock, _bodies
from tocsin.messaging.hub import get_hub


def _channel(client, mx: Mx, code: str) -> str:
    r = client.post(f"/api/v1/messaging/units/{code}/channel", headers=mx.h)
    assert r.status_code == 200, r.text
    return r.json()["room_id"]


def _move(client, force, username: str, unit_code: str) -> None:
    r = client.patch(f"/api/v1/users/{force.users[username]}",
                     headers=force.headers(client, "admin"), json={"unit_code": unit_code})
    assert r.status_code == 200, r.text


def test_moved_users_socket_is_closed_with_4409_and_reconnects_under_her_new_unit(
        client, force):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    old = _channel(client, a, "C111")  # patrol2's company (B1112 is in C111)
    inv2 = Mx(client, "inv2")  # in D21
    new = _channel(client, inv2, "D21")
    other = Mx(client, "patrol1", device="other desk")  # a socket of someone else stays open
    sock, stays = Sock(client, b.token), Sock(client, other.token)
    try:
        a.send_ok(old, "before the move")
        assert _bodies(sock.events(1)) == ["before the move"]
        _move(client, force, "patrol2", "D21")
        seen = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(sock.ws.receive_json())
        assert closed.value.code == 4409 and {"type": "closed", "code": 4409} in seen
        a.send_ok(old, "still for C111")
        assert _bodies(stays.events(2)) == ["before the move", "still for C111"]  # not moved
    finally:
        sock.close()
        stays.close()
    again = Sock(client, b.token)  # the same device reconnects: she is now in D21
    try:
        a.send_ok(old, "C111 only")
        inv2.send_ok(new, "welcome to D21")
        got = again.events(1)
        assert got[0]["room_id"] == new and _bodies(got) == ["welcome to D21"]
    finally:
        again.close()


def test_waiting_sync_of_a_moved_user_answers_for_her_new_unit(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    old = _channel(client, a, "C111")
    direct = a.create_room(name="Still ours", invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{direct}/join").status_code == 200
    since = b.sync()["next_batch"]
    hub = get_hub(runtime)
    got = {}
    t = threading.Thread(target=lambda: got.update(b.sync(since, timeout=10000)))
    t.start()
    deadline = time.monotonic() + 10
    while len(hub.waiters) != 1:
        assert time.monotonic() < deadline, "the long-poll never waited"
        time.sleep(0.01)
    _move(client, force, "patrol2", "D21")
    a.send_ok(old, "for C111 only")  # after the move: not hers any more
    a.send_ok(direct, "for b")
    t.join(15)
    rooms = got["rooms"]["join"]
    assert old not in rooms
    assert [e["content"].get("body") for e in rooms[direct]["timeline"]["events"]
            if e["type"] == "m.room.message"] == ["for b"]
