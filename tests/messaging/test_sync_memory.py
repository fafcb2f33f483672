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
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Wake up", invite=[b.user_id])
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    since = b.sync()["next_batch"]
    _caught_up(runtime)
    hub = get_hub(runtime)
    answered, declined = hub.recent.answered, dict(hub.recent.declined)
    got = {}
    t = threading.Thread(target=lambda: got.update(b.sync(since, timeout=10000)))
    t.start()
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
