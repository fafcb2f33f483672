"""Matrix /sync answered from the hub's recent stream: the same answer as the database
gives, long-polls woken by a new message without a query per client, the database
again for membership changes, and a session revoked while waiting is refused."""

from __future__ import annotations

import threading
import time

from tests.messaging.helpers import C3, Mx
from tocsin.messaging.hub import get_hub
from tocsin.messaging.matrix import authenticate_token
from tocsin.messaging.service import SyncToken, get_service


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _caught_up(runtime):
    hub, svc = get_hub(runtime), get_service(runtime)
    stream, receipt = svc.positions()
    _wait(lambda: hub.recent.cursor >= stream and hub.recent.receipt_cursor >= receipt)


def _in_a_room(client, runtime, name: str):
    """patrol1 and patrol2 in a new room, patrol2 synced once (her rooms now known)."""
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name=name, invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    since = b.sync()["next_batch"]
    _caught_up(runtime)
    return a, b, room, since


def _poll(mx: Mx, since: str, timeout: int = 10000) -> tuple[threading.Thread, dict]:
    """A /sync long-poll in the background: (its thread, the answer once it came)."""
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(mx.sync(since, timeout=timeout)))
    t.start()
    return t, got


def _without_age(value):
    if isinstance(value, dict):
        return {k: _without_age(v) for k, v in value.items() if k != "age"}
    if isinstance(value, list):
        return [_without_age(v) for v in value]
    return value


def test_answer_from_memory_is_the_database_answer(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Same answer", invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    since = b.sync()["next_batch"]  # the database: b's rooms are now known
    a.send_ok(room, "one")
    b.send_ok(room, "two", txn="b-own")  # b's own message carries its transaction id
    three = a.send_ok(room, "three")
    edit = {"msgtype": "m.text", "body": "* 3", "m.new_content": {"msgtype": "m.text",
            "body": "3"}, "m.relates_to": {"rel_type": "m.replace", "event_id": three}}
    a.send_ok(room, content=edit)
    assert a.put(f"{C3}/rooms/{room}/redact/{three}/r1", {"reason": "typo"}).status_code == 200
    assert a.post(f"{C3}/rooms/{room}/receipt/m.read/{three}").status_code == 200
    _caught_up(runtime)
    hub = get_hub(runtime)
    answered = hub.recent.answered
    fast = b.sync(since)
    assert hub.recent.answered == answered + 1
    p = authenticate_token(runtime, b.token)
    slow = get_service(runtime).sync(p, SyncToken.parse(since)).body
    assert _without_age(fast) == _without_age(slow)
    timeline = fast["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"][:2] \
        == ["one", "two"]
    assert timeline[2]["content"] == {}  # redacted, as the database shows it now
    assert timeline[1]["unsigned"]["transaction_id"] == "b-own"
    assert "m.receipt" in {e["type"] for e in fast["rooms"]["join"][room]["ephemeral"]["events"]}
    # a limit smaller than the news: the latest events, marked limited
    small = b.get(C3 + "/sync", params={"since": since, "filter": '{"room":{"timeline":'
                                                                  '{"limit":2}}}'}).json()
    assert small["rooms"]["join"][room]["timeline"]["limited"] is True
    assert len(small["rooms"]["join"][room]["timeline"]["events"]) == 2


def test_long_poll_is_woken_and_answered_from_memory(client, force, runtime):
    a, b, room, since = _in_a_room(client, runtime, "Wake up")
    hub = get_hub(runtime)
    answered, declined = hub.recent.answered, dict(hub.recent.declined)
    t, got = _poll(b, since)
    _wait(lambda: len(hub.waiters) == 1 and hub.recent.answered > answered)  # waiting
    a.send_ok(room, "wake up")
    t.join(15)
    timeline = got["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in timeline] == ["wake up"]
    assert hub.recent.answered >= answered + 2 and hub.recent.declined == declined
    # the next token continues after it: nothing again
    assert room not in b.sync(got["next_batch"])["rooms"]["join"]


def test_membership_changes_are_answered_by_the_database(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Changes", invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    since = b.sync()["next_batch"]
    other = a.create_room(name="New for b", invite=[b.user_id])
    _caught_up(runtime)
    hub = get_hub(runtime)
    before = hub.recent.declined.get("membership changed", 0)
    inc = b.sync(since)
    assert other in inc["rooms"]["invite"]
    assert hub.recent.declined["membership changed"] == before + 1
    assert a.post(f"{C3}/rooms/{room}/kick", {"user_id": b.user_id}).status_code == 200
    a.send_ok(room, "after the kick")
    _caught_up(runtime)
    after = b.sync(inc["next_batch"])
    assert room in after["rooms"]["leave"] and room not in after["rooms"]["join"]
    # from then on memory again, and the room stays closed to b
    a.send_ok(room, "still closed")
    _caught_up(runtime)
    answered = hub.recent.answered
    assert room not in b.sync(after["next_batch"])["rooms"]["join"]
    assert hub.recent.answered == answered + 1


def test_session_revoked_while_waiting_is_refused(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2", device="lost phone")
    room = a.create_room(name="Revoked", invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    since = b.sync()["next_batch"]
    hub = get_hub(runtime)
    got = {}

    def poll():
        r = b.get(C3 + "/sync", params={"since": since, "timeout": 10000})
        got["status"], got["body"] = r.status_code, r.json()

    t = threading.Thread(target=poll)
    t.start()
    _wait(lambda: len(hub.waiters) == 1)
    admin = force.headers(client, "admin")
    assert client.delete(f"/api/v1/users/{force.users['patrol2']}/sessions",
                         headers=admin).status_code == 200
    t.join(15)
    assert got["status"] == 401 and got["body"]["errcode"] == "M_UNKNOWN_TOKEN"


class _Gate:
    """Holds the hub's reading of the stream until opened (what the hub has not read yet
    is what a /sync answered from memory could miss)."""

    def __init__(self, hub, monkeypatch):
        self.open = threading.Event()
        load = hub._load

        def held(*args):
            self.open.wait(10)
            return load(*args)

        monkeypatch.setattr(hub, "_load", held)


def test_own_join_is_in_the_next_sync_before_the_hub_has_read_it(client, force, runtime,
                                                                  monkeypatch):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Join race", invite=[b.user_id])
    since = b.sync()["next_batch"]  # the database: b's rooms known, the room only invited
    _caught_up(runtime)
    hub = get_hub(runtime)
    gate = _Gate(hub, monkeypatch)
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200  # committed, not read yet
    got = {}
    t = threading.Thread(target=lambda: got.update(b.sync(since)))
    t.start()
    _wait(lambda: len(hub.waiters) == 1 or got)  # asked while the hub is held
    gate.open.set()
    t.join(15)
    assert room in got["rooms"]["join"]  # her own join, never an answer without it
    joined = got["rooms"]["join"][room]
    assert b.user_id in {e.get("state_key") for e in joined["timeline"]["events"]
                         + joined["state"]["events"] if e["type"] == "m.room.member"}
    # her next long-poll waits for news, not for the join again
    t, poll = _poll(b, got["next_batch"])
    _wait(lambda: len(hub.waiters) == 1)
    a.send_ok(room, "after the join")
    t.join(15)
    assert [e["content"].get("body") for e in poll["rooms"]["join"][room]["timeline"]["events"]
            ] == ["after the join"]


def test_room_created_for_a_waiting_user_reaches_her_long_poll(client, force, runtime):
    a, b, _, since = _in_a_room(client, runtime, "Before")
    hub = get_hub(runtime)
    t, got = _poll(b, since)
    _wait(lambda: len(hub.waiters) == 1)  # waiting, her rooms known
    other = a.create_room(name="While she waits", invite=[b.user_id])
    t.join(15)
    assert other in got["rooms"]["invite"]
    assert b.post(f"{C3}/rooms/{other}/join").status_code == 200
    a.send_ok(other, "welcome")
    after = b.sync(got["next_batch"])
    bodies = [e["content"].get("body") for e in after["rooms"]["join"][other]["timeline"]["events"]
              if e["type"] == "m.room.message"]
    assert bodies == ["welcome"]
