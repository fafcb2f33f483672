"""Conflated delivery of live positions: a screen that lags gets the latest position of each
unit, never an older one after a newer; storage and replay keep every fix; only a socket
that takes nothing is cut. No timing assertions: sockets are simulated by sends that
complete when the test lets them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import random
import time

import pytest

from tests.operations.helpers import LAT, LON, make_operation
from tocsin.core.events import DomainEvent
from tocsin.operations import positions
from tocsin.operations.positions import CLOSE_SLOW, PositionHub, Subscriber, get_hub

OP = 7


def _run(coro):
    """``asyncio.run`` in a thread of its own: a browser test's Playwright (sync API) may
    hold a running loop in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _tick(op_id: int, rows: list, node: str = "a") -> DomainEvent:
    return DomainEvent(type="operations.positions.tick",
                       payload={"operation_id": op_id, "node": node, "u": rows})


def _row(uid: int, at: int, lat: float = LAT) -> list:
    return [uid, round(lat, 6), LON, at, None, None]


async def _settle(rounds: int = 6) -> None:
    """Let the loop run the scheduled ticks and the pumps they wake."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class Socket:
    """A websocket whose sends complete only while it is open (``flowing``)."""

    def __init__(self, flowing: bool = True):
        self.frames: list[str] = []
        self.flowing = asyncio.Event()
        self.sending = asyncio.Event()
        if flowing:
            self.flowing.set()

    async def send(self, frame: str) -> None:
        self.sending.set()
        await self.flowing.wait()
        self.frames.append(frame)

    def rows(self) -> list[list[list]]:
        return [json.loads(f)["u"] for f in self.frames
                if json.loads(f)["type"] == "positions"]


def _assert_in_order(frames: list[list[list]]) -> dict[int, list]:
    """No unit twice in a frame, never an older fix of a unit after a newer one; returns
    the screen's picture (the last row of each unit)."""
    seen: dict[int, list] = {}
    for rows in frames:
        assert len({r[0] for r in rows}) == len(rows)
        for r in rows:
            if r[0] in seen:
                assert r[3] >= seen[r[0]][3], (r, seen[r[0]])
            seen[r[0]] = r
    return seen


def test_a_lagging_screen_gets_the_latest_of_every_unit_in_one_frame(runtime, force,
                                                                      monkeypatch):
    monkeypatch.setattr(positions, "SLICE", 60.0)  # counts frames: no turn-taking here
    hub = PositionHub(runtime)  # not started: the test plays the ticks
    principal = force.principal("commander1")

    async def scenario() -> None:
        slow, fast, fast2 = (Subscriber(principal, OP, True) for _ in range(3))
        sockets = {slow: Socket(flowing=False), fast: Socket(), fast2: Socket()}
        for sub in sockets:
            assert hub.subscribe(sub) == []
        pumps = [asyncio.create_task(hub.pump(sub, s.send)) for sub, s in sockets.items()]
        hub.on_event(_tick(OP, [_row(1, 1000), _row(2, 1000)]))
        await _settle()
        assert sockets[slow].sending.is_set()  # busy with its first frame, which does not go
        for i in range(1, 301):  # 300 ticks meanwhile (more than a queue ever held)
            rows = [_row(1, 1000 + 50 * i, LAT + i * 1e-5)]
            if i == 100:
                rows.append(_row(2, 6000, LAT + 0.002))
            if i == 150:
                rows.append(_row(3, 8500, LAT + 0.003))
            if i == 200:
                rows.append(_row(2, 900, LAT - 0.5))  # a late fix from another node: older
            hub.on_event(_tick(OP, rows, node="b" if i % 2 else "a"))
            await _settle()
        assert not slow.closed.is_set()  # lagging is not dead
        sockets[slow].flowing.set()
        await _settle()
        got = sockets[slow].rows()
        assert len(got) == 2  # the first frame, then everything else merged into one
        assert sorted(got[1]) == [_row(1, 16000, LAT + 300e-5), _row(2, 6000, LAT + 0.002),
                                  _row(3, 8500, LAT + 0.003)]
        assert hub.stats["sent.merged_frames"] == 1
        # the screens that kept up had every tick, serialised once: the very same string
        assert len(sockets[fast].frames) == 301
        assert all(a is b for a, b in zip(sockets[fast].frames, sockets[fast2].frames,
                                          strict=True))
        for sub, s in sockets.items():
            picture = _assert_in_order(s.rows())
            assert picture == {r[0]: r for r in hub.snapshot(OP)}, sub
        # the frame format is what json.dumps writes
        first = sockets[fast].frames[0]
        assert first == json.dumps(json.loads(first), separators=(",", ":"))
        for t in pumps:
            t.cancel()

    _run(scenario())


@pytest.mark.parametrize("slice_", [positions.SLICE, 0.0], ids=["slice", "one-send-a-turn"])
def test_screens_lagging_at_random_never_see_an_older_fix(runtime, force, monkeypatch, slice_):
    """Ticks from two nodes with late fixes, screens that stall and resume at random
    (and, with no slice, screens that take turns to send): each screen ends with the
    latest position of every unit and never went back."""
    monkeypatch.setattr(positions, "SLICE", slice_)
    hub = PositionHub(runtime)
    principal = force.principal("commander1")
    rnd = random.Random(20260501)

    async def scenario() -> None:
        subs = [Subscriber(principal, OP, False) for _ in range(6)]
        sockets = [Socket(flowing=rnd.random() < 0.5) for _ in subs]
        starts = [hub.subscribe(sub) for sub in subs[:3]]
        pumps = [asyncio.create_task(hub.pump(sub, s.send)) for sub, s in zip(subs[:3],
                                                                              sockets[:3])]
        for i in range(400):
            if i == 150:  # three screens open in the middle, from the latest positions
                starts += [hub.subscribe(sub) for sub in subs[3:]]
                pumps += [asyncio.create_task(hub.pump(sub, s.send))
                          for sub, s in zip(subs[3:], sockets[3:])]
            rows = [_row(u, 1000 + 10 * i + rnd.randint(-300, 0), LAT + rnd.random() / 100)
                    for u in rnd.sample(range(1, 30), 8)]
            hub.on_event(_tick(OP, rows, node=rnd.choice("ab")))
            for s in sockets:
                if rnd.random() < 0.1:
                    s.flowing.clear()
                elif rnd.random() < 0.3:
                    s.flowing.set()
            await _settle(rnd.randint(1, 4))
        for s in sockets:
            s.flowing.set()
        await _settle(60)
        latest = {r[0]: r for r in hub.snapshot(OP)}
        assert len(latest) == 29
        for start, s in zip(starts, sockets, strict=True):
            picture = _assert_in_order([start, *s.rows()])
            assert picture == latest
        assert hub.stats["sent.merged_frames"] > 0
        for t in pumps:
            t.cancel()

    _run(scenario())


def test_a_dead_socket_is_closed_and_a_slow_one_is_not(runtime, force, monkeypatch):
    monkeypatch.setattr(positions, "STALL", 0.05)
    monkeypatch.setattr(positions, "SLICE", 60.0)
    hub = PositionHub(runtime)
    principal = force.principal("commander1")

    async def scenario() -> None:
        dead, alive = Subscriber(principal, OP, False), Subscriber(principal, OP, False)
        dead_socket, alive_socket = Socket(flowing=False), Socket(flowing=False)
        hub.subscribe(dead)
        hub.subscribe(alive)
        pumps = [asyncio.create_task(hub.pump(dead, dead_socket.send)),
                 asyncio.create_task(hub.pump(alive, alive_socket.send))]
        hub.on_event(_tick(OP, [_row(1, 1000)]))
        await _settle()
        assert dead_socket.sending.is_set() and alive_socket.sending.is_set()
        await asyncio.sleep(0.1)  # longer than STALL, the sends still hang
        alive_socket.flowing.set()  # this one takes its frame: progress
        await _settle()
        hub.on_event(_tick(OP, [_row(1, 2000)]))
        await _settle()
        assert dead.closed.is_set() and dead.close_code == CLOSE_SLOW
        assert not alive.closed.is_set()
        assert [r[0][3] for r in alive_socket.rows()] == [1000, 2000]
        for t in pumps:
            t.cancel()

    _run(scenario())


def test_the_websocket_tells_a_cut_screen_why(client, force):
    op = make_operation(client, force)
    hub = get_hub(force.runtime)
    with client.websocket_connect("/api/v1/operations/live") as ws:
        ws.send_json({"type": "auth", "access_token": force.login(client, "commander1")[
            "access_token"], "operation_id": op.id})
        assert ws.receive_json()["type"] == "ready"
        (sub,) = hub.subs[op.id]
        hub.loop.call_soon_threadsafe(sub.close, CLOSE_SLOW)
        assert ws.receive_json() == {"type": "closed", "code": CLOSE_SLOW}
        with pytest.raises(Exception) as closed:
            ws.receive_json()
        assert getattr(closed.value, "code", None) == CLOSE_SLOW
    assert op.id not in hub.subs and op.id not in hub.feeds


def test_every_fix_is_stored_and_replayed_while_a_screen_lags(client, force):
    op = make_operation(client, force)
    hub = get_hub(force.runtime)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fixes = [(now - dt.timedelta(seconds=120 - i), LAT + i * 1e-4) for i in range(60)]

    async def scenario() -> list[list[list]]:
        sub = Subscriber(force.principal("commander1"), op.id, True)
        await asyncio.to_thread(hub.snapshot, op.id)
        hub.subscribe(sub)
        socket = Socket(flowing=False)
        pump = asyncio.create_task(hub.pump(sub, socket.send))
        for k in range(0, len(fixes), 6):  # six fixes a batch, one tick each
            result = hub.ingest([{"op_unit_id": op.unit_id, "lat": lat, "lon": LON,
                                  "at": at.isoformat()} for at, lat in fixes[k:k + 6]],
                                source="test", client=f"gateway-{k}")
            assert result == {"accepted": 6, "rejected": []}
            await asyncio.to_thread(hub.tick)
            await _settle()
        socket.flowing.set()
        await _settle()
        pump.cancel()
        hub.unsubscribe(sub)
        return socket.rows()

    frames = _run(scenario())
    assert len(frames) == 2 and frames[-1][0][1] == round(fixes[-1][1], 6)  # the screen
    hub.flush()
    from sqlalchemy import func, select

    from tocsin.operations.models import Position

    with force.runtime.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(Position)
                          .where(Position.operation_id == op.id))
    assert stored == len(fixes)  # ... and storage kept each of them
    base = f"/api/v1/operations/{op.id}"
    for at, lat in fixes[1::7]:
        when = (at + dt.timedelta(milliseconds=500)).isoformat()
        rep = client.get(f"{base}/replay", headers=op.cmd, params={"at": when})
        assert [(p["op_unit_id"], p["lat"]) for p in rep.json()["positions"]] == [
            (op.unit_id, lat)]


def test_a_paced_screen_has_at_most_two_frames_unconfirmed(runtime, force, monkeypatch):
    monkeypatch.setattr(positions, "STALL", 0.05)
    monkeypatch.setattr(positions, "SLICE", 60.0)
    hub = PositionHub(runtime)
    principal = force.principal("commander1")

    async def scenario() -> None:
        paced, mute = (Subscriber(principal, OP, False, paced=True) for _ in range(2))
        sockets = {paced: Socket(), mute: Socket()}
        for sub in sockets:
            hub.subscribe(sub)
        pumps = [asyncio.create_task(hub.pump(sub, s.send)) for sub, s in sockets.items()]
        for at in (1000, 2000, 3000, 4000):  # taken at once by the socket, never confirmed
            hub.on_event(_tick(OP, [_row(1, at), _row(2, 1000)] if at == 1000 else
                               [_row(1, at)]))
            await _settle()
        assert [len(s.frames) for s in sockets.values()] == [2, 2]  # the window: then wait
        hub.confirm(paced)
        await _settle()
        assert [[r[:4] for r in rows] for rows in sockets[paced].rows()] == [
            [[2, LAT, LON, 1000], [1, LAT, LON, 1000]], [[1, LAT, LON, 2000]],
            [[1, LAT, LON, 4000]]]  # 3000 was merged away
        hub.confirm(paced)
        hub.confirm(paced)
        await asyncio.sleep(0.1)  # longer than STALL: the one that never confirms is cut
        hub.on_event(_tick(OP, [_row(1, 5000)]))
        await _settle()
        assert mute.closed.is_set() and mute.close_code == CLOSE_SLOW
        assert not paced.closed.is_set() and len(sockets[paced].frames) == 4
        for t in pumps:
            t.cancel()

    _run(scenario())


def test_the_browser_pacing_over_the_websocket(client, force):
    op = make_operation(client, force)
    hub = get_hub(force.runtime)
    now = dt.datetime.now(dt.UTC)
    with client.websocket_connect("/api/v1/operations/live") as cmd, \
            client.websocket_connect("/api/v1/operations/live") as device:
        cmd.send_json({"type": "auth", "access_token": force.login(client, "commander1")[
            "access_token"], "operation_id": op.id, "paced": True})
        device.send_json({"type": "auth", "access_token": force.login(client, "patrol1")[
            "access_token"], "operation_id": op.id})
        assert cmd.receive_json()["type"] == device.receive_json()["type"] == "ready"
        for k, ago in enumerate((4, 3, 2, 1)):
            at = now - dt.timedelta(seconds=ago)
            device.send_json({"type": "position", "op_unit_id": op.unit_id, "lat": LAT + k / 1000,
                              "lon": LON, "at": at.isoformat()})
            while device.receive_json()["type"] != "ack":
                pass
            hub.tick()  # each fix its own tick, taken in by the hub before the next one
            while [r[3] for r in hub.snapshot(op.id)] != [int(at.timestamp() * 1000)]:
                time.sleep(0.01)
            if k < 2:  # the first two frames go unconfirmed, then the screen must say "seen"
                frame = cmd.receive_json()
                assert frame["type"] == "positions"
                assert frame["u"][0][1] == round(LAT + k / 1000, 6)
        cmd.send_json({"type": "seen"})
        merged = cmd.receive_json()  # the last fix, not the one in between
        assert merged["type"] == "positions"
        assert [r[:2] for r in merged["u"]] == [[op.unit_id, round(LAT + 0.003, 6)]]
