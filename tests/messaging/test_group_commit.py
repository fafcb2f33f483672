"""Group commit of sends: concurrent messages share one transaction, each keeps its own
checks (membership, replays), one bad write fails alone, and a message whose commit
succeeded is acknowledged even if publishing its events fails."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tocsin.core.errors import Forbidden, TocsinError
from tocsin.core.group_commit import GroupCommit
from tocsin.messaging.models import Event
from tocsin.messaging.service import get_service


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _device(runtime, username: str):
    """The principal of a logged-in device (replays are recognised per device)."""
    pair = runtime.identity.login(username=username, password=PASSWORD)
    return runtime.identity.authenticate(pair.access_token)


def test_concurrent_sends_share_a_transaction_with_their_own_checks(runtime, force):
    svc = get_service(runtime)
    p1, p2, outsider = (_device(runtime, u) for u in ("patrol1", "patrol2", "inv2"))
    rooms = [svc.room_mx(svc.create_room(p1, name=f"r{i}", invite=[p2.user_id]).id)
             for i in range(2)]
    for r in rooms:
        svc.join(p2, r)
    # the first batch is held until every other send is queued behind it
    gate, original = threading.Event(), svc._sends.apply
    calls: list[int] = []

    def held(s, items):
        calls.append(len(items))
        if len(calls) == 1:
            gate.wait(10)
        return original(s, items)

    svc._sends.apply = held
    results: dict[str, object] = {}

    def send(key, principal, room, body, txn):
        try:
            results[key] = svc.send(principal, room, "m.room.message",
                                    {"msgtype": "m.text", "body": body}, txn)
        except TocsinError as exc:
            results[key] = exc

    first = threading.Thread(target=send, args=("first", p1, rooms[0], "first", "t0"))
    first.start()
    _wait(lambda: calls)
    jobs = [(f"m{i}", (p1, p2)[i % 2], rooms[i % 2], f"m{i}", f"t{i + 1}") for i in range(8)]
    jobs += [("outsider", outsider, rooms[0], "not a member", "x1"),
             ("replay", p1, rooms[0], "m0", "t1")]  # m0 again: same device, same txn id
    threads = [threading.Thread(target=send, args=j) for j in jobs]
    for t in threads:
        t.start()
    _wait(lambda: len(svc._sends._items) == len(jobs))
    gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert calls == [1, len(jobs)]  # everything that queued meanwhile: one transaction
    assert isinstance(results["outsider"], Forbidden)
    assert results["replay"].event_id == results["m0"].event_id
    with runtime.db.read() as s:
        for r in rooms:
            evs = list(s.scalars(select(Event).where(Event.room_id == svc.room_local(r))
                                 .order_by(Event.stream)))
            depths = [e.depth for e in evs]
            assert depths == list(range(1, len(evs) + 1))  # room order = stream order
            bodies = [e.content.get("body") for e in evs if e.type == "m.room.message"]
            assert "not a member" not in bodies
            assert len(bodies) == len(set(bodies))  # the replay is stored once
        assert s.scalar(select(Event).where(Event.txn_id == "t1")).content["body"] == "m0"


def test_a_failing_write_is_retried_alone_and_fails_alone(runtime):
    calls: list[list[str]] = []

    def apply(s, items):
        calls.append(list(items))
        if "bad" in items:
            raise RuntimeError("constraint")
        return [f"ok:{i}" for i in items]

    gc = GroupCommit(runtime.db, apply, name="test-commit")
    gate = threading.Event()
    original = gc.apply
    gc.apply = lambda s, items: (gate.wait(10), original(s, items))[1]
    out: dict[str, object] = {}

    def run(item):
        try:
            out[item] = gc.submit(item)
        except RuntimeError as exc:
            out[item] = exc

    threads = [threading.Thread(target=run, args=("a",))]
    threads[0].start()
    _wait(lambda: gc._thread is not None and not gc._items)
    for item in ("b", "bad", "c"):
        threads.append(threading.Thread(target=run, args=(item,)))
        threads[-1].start()
    _wait(lambda: len(gc._items) == 3)
    gate.set()
    for t in threads:
        t.join(10)
    gc.close()
    assert out["a"] == "ok:a" and out["b"] == "ok:b" and out["c"] == "ok:c"
    assert isinstance(out["bad"], RuntimeError)
    assert calls == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]


def test_committed_send_is_acknowledged_when_publishing_fails(runtime, force):
    svc = get_service(runtime)
    p1 = _device(runtime, "patrol1")
    room = svc.room_mx(svc.create_room(p1, name="bus down").id)

    def broken(_s, _events):
        raise ConnectionError("bus unreachable")

    runtime.db.after_commit_hooks.append(broken)
    try:
        ev = svc.send(p1, room, "m.room.message", {"msgtype": "m.text", "body": "kept"},
                      "k1")
    finally:
        runtime.db.after_commit_hooks.remove(broken)
    with runtime.db.read() as s:
        stored = list(s.scalars(select(Event).where(Event.txn_id == "k1")))
    assert [e.event_id for e in stored] == [ev.event_id]  # stored once, not retried


def test_closed_committer_refuses_new_writes(runtime):
    gc = GroupCommit(runtime.db, lambda s, items: list(items), name="test-closed")
    assert gc.submit(1) == 1
    gc.close()
    with pytest.raises(RuntimeError):
        gc.submit(2)
