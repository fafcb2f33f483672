"""Two app processes, one Redis: a message posted on either node reaches the websocket
devices on both nodes, in order and exactly once; a removal applies on every node."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import PASSWORD
from tests.servers import Node

pytestmark = pytest.mark.redis
C3 = "/_matrix/client/v3"


def _login(node: Node, user: str) -> dict:
    r = httpx.post(node.url + C3 + "/login", json={"type": "m.login.password", "user": user,
                                                   "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _ws(node: Node, token: str):
    ws = connect(f"ws://127.0.0.1:{node.port}/api/v1/messaging/ws", open_timeout=10)
    ws.send(json.dumps({"type": "auth", "access_token": token}))
    assert json.loads(ws.recv(10))["type"] == "ready"
    return ws


def _collect(ws, room: str, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        msg = json.loads(ws.recv(15))
        if msg["type"] == "event" and msg["room_id"] == room and \
                msg["event"]["type"] == "m.room.message":
            out.append(msg)
    return out


def test_messages_from_both_nodes_reach_devices_on_both_in_order_once(
        force, settings, database_url, redis_server):
    env = {"TOCSIN_MESSAGING_RATE_PER_SECOND": "500", "TOCSIN_MESSAGING_RATE_BURST": "500"}
    a = Node(settings.data_dir, database_url, redis_server, extra_env=env)
    b = Node(settings.data_dir, database_url, redis_server, extra_env=env)
    try:
        p1, p2, inv1 = _login(a, "patrol1"), _login(b, "patrol2"), _login(a, "inv1")
        h1 = {"Authorization": f"Bearer {p1['access_token']}"}
        h2 = {"Authorization": f"Bearer {p2['access_token']}"}
        h3 = {"Authorization": f"Bearer {inv1['access_token']}"}
        room = httpx.post(a.url + C3 + "/createRoom", headers=h1, timeout=10, json={
            "name": "Cross node", "invite": [p2["user_id"], inv1["user_id"]]}).json()["room_id"]
        assert httpx.post(b.url + f"{C3}/rooms/{room}/join", headers=h2).status_code == 200
        assert httpx.post(a.url + f"{C3}/rooms/{room}/join", headers=h3).status_code == 200
        on_a, on_b = _ws(a, p2["access_token"]), _ws(b, p1["access_token"])
        inv_b = _ws(b, inv1["access_token"])
        per_sender = 25

        def post(node: Node, headers: dict, tag: str) -> None:
            with httpx.Client(base_url=node.url, headers=headers, timeout=10) as c:
                for i in range(per_sender):
                    r = c.put(f"{C3}/rooms/{room}/send/m.room.message/{tag}{i}",
                              json={"msgtype": "m.text", "body": f"{tag}{i}"})
                    assert r.status_code == 200, r.text

        threads = [threading.Thread(target=post, args=(a, h1, "a")),
                   threading.Thread(target=post, args=(b, h2, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = 2 * per_sender
        seen_a, seen_b = _collect(on_a, room, total), _collect(on_b, room, total)
        for seen in (seen_a, seen_b):
            streams = [m["stream"] for m in seen]
            assert streams == sorted(streams) and len(set(streams)) == total
            bodies = [m["event"]["content"]["body"] for m in seen]
            assert sorted(bodies) == sorted([f"a{i}" for i in range(per_sender)] +
                                            [f"b{i}" for i in range(per_sender)])
            # each sender's messages keep their order
            assert [x for x in bodies if x[0] == "a"] == [f"a{i}" for i in range(per_sender)]
        assert [m["stream"] for m in seen_a] == [m["stream"] for m in seen_b]
        _collect(inv_b, room, total)
        # removed on node A: the socket on node B stops receiving the room at once
        r = httpx.post(a.url + f"{C3}/rooms/{room}/kick", headers=h1,
                       json={"user_id": inv1["user_id"]})
        assert r.status_code == 200
        httpx.put(a.url + f"{C3}/rooms/{room}/send/m.room.message/secret", headers=h1,
                  json={"msgtype": "m.text", "body": "after removal"})
        own = httpx.post(b.url + C3 + "/createRoom", headers=h3,
                         json={"name": "marker"}).json()["room_id"]
        while True:
            msg = json.loads(inv_b.recv(15))
            if msg["type"] != "event":
                continue
            assert msg["event"]["content"].get("body") != "after removal"
            if msg["room_id"] == own:
                break
        for ws in (on_a, on_b, inv_b):
            ws.close()
    finally:
        a.stop()
        b.stop()
