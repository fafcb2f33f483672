"""Two app processes share events through a real Redis; a SIGKILL loses no acknowledged write."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import PASSWORD
from tests.servers import Node

pytestmark = pytest.mark.redis


def _login(node: Node, username: str) -> dict:
    r = httpx.post(node.url + "/api/v1/auth/login",
                   json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _ws(node: Node, token: str):
    ws = connect(node.ws_url, open_timeout=10)
    ws.send(json.dumps({"type": "auth", "access_token": token}))
    assert json.loads(ws.recv(10))["type"] == "ready"
    return ws


def test_event_on_one_node_reaches_websocket_on_the_other(force, settings, database_url,
                                                          redis_server):
    a = Node(settings.data_dir, database_url, redis_server)
    b = Node(settings.data_dir, database_url, redis_server)
    try:
        admin = _login(a, "radmin")
        patrol = _login(a, "patrol1")
        watcher = _ws(b, admin["access_token"])
        victim = _ws(b, patrol["access_token"])
        r = httpx.post(a.url + "/api/v1/users",
                       headers={"Authorization": f"Bearer {admin['access_token']}"},
                       json={"username": "crossnode", "display_name": "Cross Node",
                             "unit_code": "D11", "roles": ["dispatcher"],
                             "password": "cross node pass 1"}, timeout=10)
        assert r.status_code == 201, r.text
        msg = json.loads(watcher.recv(10))
        assert msg["event"]["type"] == "identity.user.created"
        assert msg["event"]["record_id"] == str(r.json()["id"])
        # revoking on node A closes the socket held by node B at once
        r = httpx.delete(a.url + f"/api/v1/users/{force.users['patrol1']}/sessions",
                         headers={"Authorization": f"Bearer {admin['access_token']}"}, timeout=10)
        assert r.status_code == 200
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(json.loads(victim.recv(10)))
        assert closed.value.rcvd.code == 4401
        watcher.close()
    finally:
        a.stop()
        b.stop()


def test_sigkill_loses_no_acknowledged_write(force, settings, database_url):
    node = Node(settings.data_dir, database_url)
    token = _login(node, "admin")["access_token"]
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=node.url, timeout=5,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            i = 0
            while not stop.is_set():
                code = f"K{worker}-{i}"
                try:
                    r = c.post("/api/v1/units", json={"code": code, "name": code,
                                                      "kind": "brigade", "parent_code": "C111"})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 201:
                    with lock:
                        acked.append(code)
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while True:
        with lock:
            if len(acked) >= 60:
                break
        threading.Event().wait(0.02)
    node.kill()  # SIGKILL in the middle of writes
    stop.set()
    for t in threads:
        t.join(10)
    node.stop()
    from sqlalchemy import select

    from tocsin.core.database import Database
    from tocsin.core.identity.models import Unit

    db = Database(database_url)
    with db.read() as s:
        stored = set(s.scalars(select(Unit.code).where(Unit.code.like("K%"))))
    db.dispose()
    assert acked and set(acked) <= stored
