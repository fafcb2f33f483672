"""The position hub: high-rate unit positions in, to the database and to every screen.

Positions do not go through one transaction each. The path is:

1. ``ingest`` (any thread: HTTP routes, the operation websocket, the CoT listener)
   validates each position against a cached view of the operation (unit known,
   sender is a member or the staff, not from the future, not before the
   operation, not far outside it, not flooding) and appends it to two buffers.
2. Every ``TICK`` (50 ms) the tick thread publishes, per operation, one transient
   ``operations.positions.tick`` message on ``runtime.bus`` with the latest
   position of each unit that moved (Redis pub/sub between nodes when
   configured). Every node's hub hears every tick, on its event loop: it keeps
   the rows newer than what it already had (so no screen ever gets an older fix of
   a unit after a newer one, even with ticks from several nodes), updates its
   in-memory latest-position cache and wakes the operation's websocket
   subscribers. Tick messages are *not* stored in the events table.
   Delivery is conflated per subscriber: a subscriber has at most one positions
   frame pending. A screen that took the previous frame gets the tick's frame,
   serialised once and shared; a screen still sending an earlier frame gets, when
   it is free, one frame with the latest position of every unit that moved since
   what it had (shared with the others that had the same), not every tick queued
   behind it. A slow screen thus gets fewer, fuller frames and what it shows is at
   most one frame's send time old; it skips intermediate fixes, which stay in the
   database (step 3) for the replay. A *paced* subscriber (the browser client, which
   says so when it authenticates) confirms each positions frame with ``seen`` once it
   has applied it, and has at most ``PACE_WINDOW`` frames unconfirmed (one being
   applied, one on its way): socket and kernel buffers, which hold megabytes of old
   frames, then never stand between a screen and the latest positions. Sending to
   screens takes turns (``_Turns``) so that it never holds the event loop for long.
   Only a socket that makes no progress (a send, or a paced ``seen``) for ``STALL``
   seconds is cut (``CLOSE_SLOW``).
3. Every ``FLUSH`` (200 ms) the flush thread writes the buffered positions with one
   multi-row insert and, in the same transaction, emits one summarising domain
   event ``operations.positions.flushed`` per operation (count, units, time
   span) for the ledger. A failed flush keeps the rows for the next attempt.
   A sender's acknowledgement waits for that commit (``accept`` gives the mark,
   ``stored``/``wait_stored`` wait for it): what is acknowledged survives a killed
   process; screens see positions at the tick, before they are stored.

Rejected positions are never silently dropped: the sender gets the reason back
(``ingest`` returns them) and they are counted in ``stats`` and logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import json
import logging
import math
import struct
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, func, insert, select
from sqlalchemy import event as sa_event

from tocsin.core.access import Principal
from tocsin.core.events import DomainEvent, emit
from tocsin.core.runtime import Runtime
from tocsin.operations import geo
from tocsin.operations.models import Operation, OpUnit, Position

log = logging.getLogger(__name__)

TICK = 0.05
FLUSH = 0.2
FUTURE_SKEW = 30.0  # seconds a device clock may run ahead
MARGIN_KM = 25.0  # how far outside the operation's area a position is still accepted
RATE = 5.0  # positions per second per unit and sender (see ``ingest``), sustained
BURST = 10.0
MAX_PENDING = 2_000_000  # rows kept in memory while the database is unreachable
STALL = 10.0  # seconds a send may make no progress before the socket is cut (CLOSE_SLOW)
PACE_WINDOW = 2  # positions frames a paced subscriber may have unconfirmed (one in flight)
SLICE = 0.02  # seconds of sending to screens per event-loop iteration (see ``_Turns``)
# a buffered row: operation_id, op_unit_id, at (epoch s), lat, lon, heading, speed,
# accuracy, source; written in this column order
POSITION_COLUMNS = ("operation_id", "op_unit_id", "at", "lat", "lon", "heading", "speed",
                    "accuracy", "source")
MAX_EVENTS = 10_000  # event frames (journal, orders...) waiting per subscriber; a bound only
CLOSE_REVOKED = 4401
CLOSE_SLOW = 4408
CLOSE_CHANGED = 4409  # the user's unit or roles changed: reconnect under what she now is
UTC = dt.UTC


@dataclass
class OpInfo:
    id: int
    unit_id: int
    status: str
    starts_ts: float
    ends_ts: float | None
    bounds: tuple[float, float, float, float] | None


@dataclass
class UnitInfo:
    id: int
    operation_id: int
    members: frozenset[int]
    callsign: str
    kind: str
    status: str
    cot_uid: str | None


@dataclass(eq=False)
class Subscriber:
    """One websocket of an operation. Its positions are not queued: ``seen`` is the
    feed sequence it has (sent or being sent); whatever the feed holds past it is
    its one pending frame. Event frames are queued in order in ``events``. A ``paced``
    subscriber has at most ``PACE_WINDOW`` positions frames unconfirmed (``seen``)."""

    principal: Principal
    operation_id: int
    manage: bool
    paced: bool = False
    binary: bool = False  # positions frames in the binary format (``encode_binary``)
    positions: bool = True  # False: a gateway that feeds positions and needs none back
    seen: int = 0
    unseen: deque = field(default_factory=deque)  # paced: when its unconfirmed frames went
    events: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000
    sending_since: float | None = None  # monotonic start of the send in progress

    def close(self, code: int) -> None:
        self.close_code = code
        self.closed.set()


def _fragment(row: list) -> str:
    """One position row as JSON, as ``json.dumps`` would write it (numbers and null)."""
    return "[" + ",".join(["null" if v is None else repr(v) for v in row]) + "]"


# The binary positions frame, for screens (the browser asks for it): a 16-byte header
# (u8 kind = 1, u8 version = 1, u16 zero, u32 operation id, u32 row count, u32 zero)
# then 28 bytes per row: u32 op_unit_id, i32 lat and i32 lon in 1e-7 degrees, f64 epoch
# milliseconds, f32 heading and f32 speed (NaN for none); little-endian. A third of the
# JSON, decoded with a DataView (or numpy) instead of parsed, and never compressed per
# connection: the same bytes go to every screen that is up to date.
BINARY_HEADER = struct.Struct("<BBHII4x")
BINARY_ROW = struct.Struct("<Iiidff")
_NAN = float("nan")


def _packed(row: list) -> bytes:
    uid, lat, lon, at, heading, speed = row[:6]
    return BINARY_ROW.pack(uid, round(lat * 1e7), round(lon * 1e7), at,
                           _NAN if heading is None else heading, _NAN if speed is None else speed)


def _binary_frame(op_id: int, packed: list[bytes]) -> bytes:
    return BINARY_HEADER.pack(1, 1, 0, op_id, len(packed)) + b"".join(packed)


def encode_binary(op_id: int, rows: list) -> bytes:
    """A binary positions frame of ``rows`` (``[uid, lat, lon, at_ms, heading, speed]``)."""
    return _binary_frame(op_id, [_packed(r) for r in rows])


def decode_binary(frame: bytes) -> tuple[int, list[list]]:
    """The operation id and rows of a binary positions frame (what a client does)."""
    if len(frame) < BINARY_HEADER.size:
        raise ValueError("not a positions frame")
    kind, version, _, op_id, count = BINARY_HEADER.unpack_from(frame)
    if kind != 1 or version != 1 or len(frame) != BINARY_HEADER.size + count * BINARY_ROW.size:
        raise ValueError("not a positions frame")
    rows = []
    for uid, lat, lon, at, heading, speed in BINARY_ROW.iter_unpack(
            memoryview(frame)[BINARY_HEADER.size:]):
        rows.append([uid, lat / 1e7, lon / 1e7, int(at), None if math.isnan(heading) else
                     heading, None if math.isnan(speed) else speed])
    return op_id, rows


class _Feed:
    """The positions sent to one operation's subscribers on this node (event loop only).

    ``rows`` holds the latest row of each unit (and, once sent, its JSON fragment and
    its packed binary form) with the sequence number of the tick that brought it, in
    the order they arrived: the units that moved after sequence ``k`` are a suffix. A subscriber
    that has everything up to ``k`` is sent that suffix, one row per unit, the latest;
    the frame is built once per ``k`` and format and shared by every subscriber at
    ``k`` (after a tick, all those that were up to date)."""

    def __init__(self, op_id: int, seq: int):
        self.op_id = op_id
        self.prefix = f'{{"type":"positions","operation_id":{op_id},"u":['
        self.seq = self.prev = seq
        # uid -> [seq, row, JSON fragment, packed row]; each form made when first sent
        self.rows: OrderedDict[int, list] = OrderedDict()
        self.frames: dict[tuple[int, bool], tuple[str | bytes, int]] = {}

    def push(self, seq: int, rows: list) -> None:
        self.prev, self.seq = self.seq, seq
        od = self.rows
        for row in rows:
            uid = row[0]
            od[uid] = [seq, row, None, None]
            od.move_to_end(uid)
        self.frames = {}

    def frame_since(self, k: int, binary: bool = False) -> tuple[str | bytes, int]:
        """The frame for a subscriber that has everything up to ``k``, and its row count."""
        got = self.frames.get((k, binary))
        if got is None:
            parts = []
            form, make = (3, _packed) if binary else (2, _fragment)
            for entry in reversed(self.rows.values()):
                if entry[0] <= k:
                    break
                part = entry[form]
                if part is None:
                    part = entry[form] = make(entry[1])
                parts.append(part)
            frame = (_binary_frame(self.op_id, parts) if binary
                     else self.prefix + ",".join(parts) + "]}")
            got = self.frames[(k, binary)] = (frame, len(parts))
        return got


class _Turns:
    """Sending to screens in turn, about ``SLICE`` of it per event-loop iteration.

    Compressing and writing frames for hundreds of screens is the heaviest work of the
    event loop. Done all at once after a tick it holds the loop for seconds, and the
    feeders' positions, the ``seen`` confirmations and new connections wait behind it.
    Here a pump sends at once while this iteration has sent for less than ``SLICE``
    and nobody is waiting; otherwise it queues, and each following iteration lets the
    next ones in the queue go, as many as fit in ``SLICE`` at the recent cost of a send.
    The loop reads its sockets between iterations: positions coming in are taken
    without delay, the screens share what is left, first come first served."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.spent = 0.0  # seconds of sending in this iteration
        self.cost = 0.001  # running mean of one send, seconds
        self.waiting: deque[asyncio.Future] = deque()
        self._armed = False

    async def turn(self) -> None:
        if not self.waiting and self.spent < SLICE:
            self._arm()
            return
        fut = self.loop.create_future()
        self.waiting.append(fut)
        self._arm()
        await fut

    def spend(self, seconds: float) -> None:
        seconds = min(seconds, SLICE)  # a send that waited on its socket did not work
        self.spent += seconds
        self.cost += (seconds - self.cost) * 0.2
        self._arm()

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            self.loop.call_soon(self._next)  # runs in the next iteration

    def _next(self) -> None:
        self._armed = False
        self.spent = 0.0
        room = max(1, int(SLICE / max(self.cost, 1e-4)))
        while self.waiting and room:
            fut = self.waiting.popleft()
            if not fut.done():  # not a pump cancelled meanwhile
                fut.set_result(None)
                room -= 1
        if self.waiting:
            self._arm()


def _float_or_none(v) -> float | None:
    if v is None:
        return None
    f = float(v)
    if not math.isfinite(f):
        raise ValueError
    return f


def _timestamp(v, now: float) -> float:
    if v is None:
        return now
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, (int, float)):
        f = float(v)
        return f / 1000.0 if f > 1e11 else f  # epoch milliseconds or seconds
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    if isinstance(v, str):
        d = dt.datetime.fromisoformat(v)  # "Z" too, since Python 3.11
        if d.tzinfo is None:
            raise ValueError
        return d.timestamp()
    raise ValueError


class PositionHub:
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.node = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()
        # rows accepted so far, rows settled (written, or dropped: the oldest first),
        # the last dropped one; waiters for a mark, on the event loop and in threads
        self._accepted_n = self._settled_n = self._lost_upto = 0
        self._settled = threading.Condition(self.lock)
        self._waiters: list[tuple[int, int, asyncio.Future, int]] = []
        self._waiter_ids = itertools.count()
        self._insert: tuple | None = None  # (dialect, SQL, parameter order, time processor)
        self.pending: list[tuple] = []
        self.outgoing: dict[int, dict[int, list]] = {}
        self.latest: dict[int, dict[int, list]] = {}
        self._latest_loaded: set[int] = set()
        self.ops: dict[int, OpInfo] = {}
        self.units: dict[int, UnitInfo] = {}
        self._unknown: dict[int, float] = {}
        self._uid_index: dict[str, list[int]] | None = None
        self._load_lock = threading.Lock()
        self.buckets: dict[tuple, list[float]] = {}
        self.subs: dict[int, set[Subscriber]] = {}
        self.feeds: dict[int, _Feed] = {}
        self._seq = 0
        self._turns: _Turns | None = None
        self._latest_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stats: Counter = Counter()
        self._log_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        runtime.bus.subscribe(self.on_event)

    # Lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        with self.lock:
            if self._threads:
                return
            for name, fn in (("tick", self._tick_loop), ("flush", self._flush_loop)):
                t = threading.Thread(target=fn, name=f"tocsin-positions-{name}", daemon=True)
                t.start()
                self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self.flush()

    # Cached view of operations ----------------------------------------------
    def _load_op(self, op_id: int) -> OpInfo | None:
        from tocsin.operations.service import get_service

        with self._load_lock:
            if op_id in self.ops:
                return self.ops[op_id]
            with self.rt.db.read() as s:
                op = s.get(Operation, op_id)
                if op is None:
                    return None
                bounds = get_service(self.rt).bounds(s, op)
                units = s.scalars(select(OpUnit).where(OpUnit.operation_id == op_id)).all()
            info = OpInfo(op.id, op.unit_id, op.status, op.starts_at.replace(
                tzinfo=op.starts_at.tzinfo or UTC).timestamp(),
                op.ends_at.replace(tzinfo=op.ends_at.tzinfo or UTC).timestamp()
                if op.ends_at else None,
                geo.expand(bounds, MARGIN_KM) if bounds else None)
            for u in units:
                self.units[u.id] = UnitInfo(u.id, u.operation_id,
                                            frozenset(u.member_user_ids or []), u.callsign,
                                            u.kind, u.status, u.cot_uid)
            self.ops[op_id] = info
            return info

    def unit(self, op_unit_id: int) -> UnitInfo | None:
        u = self.units.get(op_unit_id)
        if u is not None and u.operation_id in self.ops:
            return u
        miss = self._unknown.get(op_unit_id)
        if miss is not None and time.monotonic() - miss < 5:
            return None
        with self.rt.db.read() as s:
            op_id = s.scalar(select(OpUnit.operation_id).where(OpUnit.id == op_unit_id))
        if op_id is None:
            self._unknown[op_unit_id] = time.monotonic()
            return None
        self._load_op(op_id)
        return self.units.get(op_unit_id)

    def op(self, op_id: int) -> OpInfo | None:
        return self.ops.get(op_id) or self._load_op(op_id)

    def units_of(self, op_id: int) -> list[UnitInfo]:
        self.op(op_id)
        return [u for u in list(self.units.values()) if u.operation_id == op_id]

    def units_for_cot_uid(self, uid: str) -> list[int]:
        index = self._uid_index
        if index is None:
            index = {}
            with self.rt.db.read() as s:
                for unit_id, cot_uid in s.execute(
                        select(OpUnit.id, OpUnit.cot_uid).join(
                            Operation, Operation.id == OpUnit.operation_id)
                        .where(OpUnit.cot_uid.is_not(None), Operation.status != "closed")):
                    index.setdefault(cot_uid, []).append(unit_id)
            self._uid_index = index
        return index.get(uid, [])

    def _invalidate(self, op_id: int | None) -> None:
        if op_id is not None:
            self.ops.pop(op_id, None)
        self._uid_index = None
        self._unknown.clear()

    # Ingest ------------------------------------------------------------------
    def _reject(self, rejected: list, index: int, reason: str) -> None:
        rejected.append({"index": index, "reason": reason})
        self.stats["rejected." + reason] += 1

    def accept(self, items: list, *, source: str, client: str,
               principal: Principal | None = None, manage_ops: frozenset[int] = frozenset(),
               operation_id: int | None = None,
               rate_key: str | None = None) -> tuple[dict, tuple[int, int]]:
        """Validate and buffer positions. ``principal`` None means a trusted gateway
        (the CoT listener); otherwise the sender must be a member of each unit or
        manage its operation. The flood limit applies per unit and ``rate_key``
        (default ``client``): a key that outlives a connection (a device session, or
        one key for all CoT connections) so that reconnecting does not refill it.
        Returns ``{"accepted": n, "rejected": [...]}`` and the mark of the accepted rows
        (``stored`` tells when they are in the database)."""
        now = time.time()
        rejected: list[dict] = []
        accepted_rows: list[tuple] = []
        for i, item in enumerate(items):
            try:
                uid = int(item["op_unit_id"])
                lat, lon = float(item["lat"]), float(item["lon"])
                at = _timestamp(item.get("at"), now)
                heading = _float_or_none(item.get("heading"))
                speed = _float_or_none(item.get("speed"))
                acc = _float_or_none(item.get("accuracy"))
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                self._reject(rejected, i, "malformed")
                continue
            if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
                    and -180 <= lon <= 180) or not math.isfinite(at):
                self._reject(rejected, i, "bad_coordinates")
                continue
            unit = self.unit(uid)
            if unit is None or (operation_id is not None and unit.operation_id != operation_id):
                self._reject(rejected, i, "unknown_unit")
                continue
            op = self.op(unit.operation_id)
            if op is None:
                self._reject(rejected, i, "unknown_unit")
                continue
            if principal is not None and principal.user_id not in unit.members \
                    and op.id not in manage_ops:
                self._reject(rejected, i, "not_your_unit")
                continue
            if at > now + FUTURE_SKEW:
                self._reject(rejected, i, "future")
                continue
            if at < op.starts_ts - 3600:
                self._reject(rejected, i, "before_operation")
                continue
            if op.status == "closed" and op.ends_ts is not None and at > op.ends_ts:
                self._reject(rejected, i, "operation_closed")
                continue
            b = op.bounds
            if b is not None and not (b[0] <= lon <= b[2] and b[1] <= lat <= b[3]):
                self._reject(rejected, i, "outside_operation")
                continue
            key = (rate_key or client, uid)
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = [BURST, now]
            else:
                bucket[0] = min(BURST, bucket[0] + (now - bucket[1]) * RATE)
                bucket[1] = now
            if bucket[0] < 1.0:
                self._reject(rejected, i, "rate_limited")
                continue
            bucket[0] -= 1.0
            accepted_rows.append((op.id, uid, at, lat, lon, heading, speed, acc, source))
        mark = (0, 0)
        if accepted_rows:
            with self.lock:
                mark = (self._accepted_n + 1, self._accepted_n + len(accepted_rows))
                self._accepted_n = mark[1]
                self.pending.extend(accepted_rows)
                for op_id, uid, at, lat, lon, heading, speed, _acc, _src in accepted_rows:
                    per_op = self.outgoing.setdefault(op_id, {})
                    cur = per_op.get(uid)
                    at_ms = int(at * 1000)
                    if cur is None or cur[3] <= at_ms:
                        per_op[uid] = [uid, round(lat, 6), round(lon, 6), at_ms, heading, speed]
            self.stats["accepted"] += len(accepted_rows)
        if rejected:
            self._log_rejections(client)
        return {"accepted": len(accepted_rows), "rejected": rejected}, mark

    def ingest(self, items: list, **kw) -> dict:
        """``accept`` without waiting for storage (its result only)."""
        return self.accept(items, **kw)[0]

    # Storage marks ---------------------------------------------------------------
    def wait_stored(self, mark: tuple[int, int], timeout: float) -> bool | None:
        """Wait (a thread) until the rows of ``mark`` are written: True, or False if they
        were dropped (database unreachable too long), None if not yet after ``timeout``."""
        first, last = mark
        if not last:
            return True  # nothing was accepted
        with self._settled:
            if not self._settled.wait_for(lambda: self._settled_n >= last, timeout):
                return None
            return first > self._lost_upto

    async def stored(self, mark: tuple[int, int]) -> bool:
        """Wait (the event loop) until the rows of ``mark`` are written: True, or False if
        they were dropped (database unreachable too long)."""
        first, last = mark
        if not last:
            return True  # nothing was accepted
        with self.lock:
            if self._settled_n >= last:
                return first > self._lost_upto
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        fut = loop.create_future()
        heapq.heappush(self._waiters, (last, next(self._waiter_ids), fut, first))
        self._wake_stored()  # settled meanwhile, on another loop turn
        return await fut

    def _settle(self, rows: int, dropped: int = 0) -> None:
        """(flush, under ``lock``) ``rows`` more written, ``dropped`` more given up."""
        self._settled_n += rows + dropped
        if dropped:
            self._lost_upto = self._settled_n
        self._settled.notify_all()

    def _wake_stored(self) -> None:
        """(event loop) Resolve the waiters whose rows are settled."""
        with self.lock:
            settled, lost = self._settled_n, self._lost_upto
        while self._waiters and self._waiters[0][0] <= settled:
            _, _, fut, first = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(first > lost)

    def _log_rejections(self, client: str) -> None:
        now = time.monotonic()
        if now - self._log_at > 5:
            self._log_at = now
            reasons = {k: v for k, v in self.stats.items() if k.startswith("rejected.")}
            log.warning("positions rejected (last from %s); totals so far: %s", client, reasons)

    # Tick: publish what moved ------------------------------------------------
    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.tick()
            except Exception:
                log.exception("position tick failed")

    def tick(self) -> None:
        with self.lock:
            out, self.outgoing = self.outgoing, {}
        if not out:
            return
        events = [DomainEvent(type="operations.positions.tick",
                              payload={"operation_id": op_id, "node": self.node,
                                       "u": list(units.values())})
                  for op_id, units in out.items()]
        self.rt.bus.publish(events)  # transient: not stored, not ledgered (see flush)
        self.stats["ticks"] += 1

    # Flush: batched writes -----------------------------------------------------
    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH):
            self.flush()

    def flush(self) -> int:
        with self.lock:
            rows, self.pending = self.pending, []
        if not rows:
            return 0
        committed = threading.Event()
        try:
            summary: dict[int, dict] = {}
            for op_id, uid, at, *_ in rows:
                s_ = summary.setdefault(op_id, {"count": 0, "units": set(), "first": at,
                                                "last": at})
                s_["count"] += 1
                s_["units"].add(uid)
                s_["first"], s_["last"] = min(s_["first"], at), max(s_["last"], at)
            with self.rt.db.session() as s:
                sa_event.listen(s, "after_commit", lambda _s: committed.set())
                self._write_rows(s, rows)
                for op_id, sm in summary.items():
                    info = self.op(op_id)
                    emit(s, DomainEvent(
                        type="operations.positions.flushed", unit_id=info.unit_id if info
                        else None, record_kind="operation", record_id=str(op_id),
                        payload={"operation_id": op_id, "count": sm["count"],
                                 "units": len(sm["units"]),
                                 "first": dt.datetime.fromtimestamp(sm["first"], UTC)
                                 .isoformat(),
                                 "last": dt.datetime.fromtimestamp(sm["last"], UTC)
                                 .isoformat()}))
            self._stored(len(rows))
            return len(rows)
        except Exception:
            if committed.is_set():  # stored; only publishing the summary failed
                log.exception("positions stored but their summary event was not published")
                self._stored(len(rows))
                return len(rows)
            log.exception("could not write %d positions; keeping them for the next flush",
                          len(rows))
            with self.lock:
                self.pending[:0] = rows
                if len(self.pending) > MAX_PENDING:
                    dropped = len(self.pending) - MAX_PENDING
                    del self.pending[:dropped]
                    self._settle(0, dropped)  # their senders are told: not stored
                    self.stats["dropped.db_unavailable"] += dropped
                    log.error("dropped %d oldest positions: database unreachable", dropped)
            self._to_loop(self._wake_stored)
            return 0

    def _write_rows(self, s, rows: list[tuple]) -> None:
        """One executemany of the rows, straight to the driver: at 10,000 positions a
        second SQLAlchemy's per-value processing held the GIL long enough to delay the
        event loop's sends. The statement is compiled once by the dialect; only the
        time column needs converting (its type's own bind processor)."""
        conn = s.connection()
        dialect = conn.dialect
        if self._insert is None or self._insert[0] is not dialect:
            table = Position.__table__
            compiled = insert(table).compile(dialect=dialect, column_keys=POSITION_COLUMNS,
                                             for_executemany=True)
            # positional drivers: where each bound parameter is in a buffered row
            order = ([POSITION_COLUMNS.index(k) for k in compiled.positiontup]
                     if compiled.positional else None)
            self._insert = (dialect, str(compiled), order,
                            table.c.at.type.dialect_impl(dialect).bind_processor(dialect))
        _, sql, order, at_proc = self._insert
        params = []
        for r in rows:
            at = dt.datetime.fromtimestamp(r[2], UTC)
            values = (r[0], r[1], at_proc(at) if at_proc else at, *r[3:9])
            params.append(tuple(values[i] for i in order) if order is not None
                          else dict(zip(POSITION_COLUMNS, values, strict=True)))
        conn.exec_driver_sql(sql, params)

    def _stored(self, n: int) -> None:
        with self.lock:
            self._settle(n)
        self.stats["flushed"] += n
        self._to_loop(self._wake_stored)

    def pending_for(self, op_id: int) -> list[dict]:
        with self.lock:
            rows = [r for r in self.pending if r[0] == op_id]
        return [{"operation_id": r[0], "op_unit_id": r[1],
                 "at": dt.datetime.fromtimestamp(r[2], UTC), "lat": r[3], "lon": r[4],
                 "heading": r[5], "speed": r[6]} for r in rows]

    # Latest positions -------------------------------------------------------------
    def snapshot(self, op_id: int) -> list[list]:
        """The latest known position of each unit (last hour), from memory."""
        if op_id not in self._latest_loaded:
            since = dt.datetime.now(UTC) - dt.timedelta(hours=1)
            with self.rt.db.read() as s:
                last = (select(Position.op_unit_id, func.max(Position.at).label("at"))
                        .where(Position.operation_id == op_id, Position.at >= since)
                        .group_by(Position.op_unit_id).subquery())
                rows = s.scalars(select(Position).join(last, and_(
                    Position.op_unit_id == last.c.op_unit_id, Position.at == last.c.at))).all()
            with self._latest_lock:
                per_op = self.latest.setdefault(op_id, {})
                for r in rows:
                    at_ms = int(r.at.replace(tzinfo=r.at.tzinfo or UTC).timestamp() * 1000)
                    cur = per_op.get(r.op_unit_id)
                    if cur is None or cur[3] < at_ms:
                        per_op[r.op_unit_id] = [r.op_unit_id, r.lat, r.lon, at_ms, r.heading,
                                                r.speed]
                self._latest_loaded.add(op_id)
        with self._latest_lock:
            return list(self.latest.get(op_id, {}).values())

    def _advance(self, op_id: int, rows: list) -> list:
        """Keep the rows of a tick that are not older than what is known of their unit."""
        fresh = []
        with self._latest_lock:
            per_op = self.latest.setdefault(op_id, {})
            for row in rows:
                cur = per_op.get(row[0])
                if cur is None or cur[3] <= row[3]:
                    per_op[row[0]] = row
                    fresh.append(row)
        return fresh

    # Bus ------------------------------------------------------------------------
    def on_event(self, event: DomainEvent) -> None:
        t = event.type
        if t == "operations.positions.tick":
            op_id, rows = event.payload["operation_id"], event.payload["u"]
            # on the loop, in order, so that what a subscriber is sent and the latest
            # positions it gets on subscribing agree; without a loop, here
            if not self._to_loop(self._on_tick, op_id, rows):
                self._advance(op_id, rows)
            return
        if t == "identity.session.revoked":
            self._to_loop(self._revoke, event.payload.get("session_id"))
            return
        if t == "identity.user.changed":  # moved, roles, (de)activated: decide again
            self._to_loop(self._user_changed, event.payload.get("user_id"))
            return
        if t.startswith("operations.") and not t.startswith("operations.positions."):
            op_id = event.payload.get("operation_id")
            self._invalidate(op_id)
            if op_id is not None and self.subs.get(op_id):
                frame = json.dumps({"type": "event", "event": json.loads(
                    event.model_dump_json())})
                self._to_loop(self._deliver_event, op_id, frame)

    def _to_loop(self, fn, *args) -> bool:
        loop = self.loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(fn, *args)
                return True
            except RuntimeError:  # loop shutting down
                pass
        return False

    # Delivery (event loop) ---------------------------------------------------------
    def _on_tick(self, op_id: int, rows: list) -> None:
        fresh = self._advance(op_id, rows)
        feed = self.feeds.get(op_id)
        if feed is None or not fresh:
            return
        self._seq += 1
        feed.push(self._seq, fresh)
        self._wake(op_id)

    def _deliver_event(self, op_id: int, frame: str) -> None:
        for sub in list(self.subs.get(op_id, ())):
            if len(sub.events) >= MAX_EVENTS:
                sub.close(CLOSE_SLOW)
                continue
            sub.events.append(frame)
        self._wake(op_id)

    def _wake(self, op_id: int) -> None:
        now = time.monotonic()
        for sub in list(self.subs.get(op_id, ())):
            since = sub.sending_since
            if since is None and sub.unseen:
                since = sub.unseen[0]
            if since is not None and now - since > STALL:  # a dead socket: cut
                if not sub.closed.is_set():
                    log.warning("closing a websocket of operation %s (session %s): %s for "
                                "%.0f s", op_id, sub.principal.session_id,
                                "a send hangs" if sub.sending_since is not None else
                                "no 'seen' for its last frame", now - since)
                sub.close(CLOSE_SLOW)
            else:
                sub.wake.set()

    def confirm(self, sub: Subscriber) -> None:
        """A paced subscriber has applied its last positions frame (``seen``)."""
        if sub.unseen:
            sub.unseen.popleft()
        sub.wake.set()

    def next_frame(self, sub: Subscriber) -> str | bytes | None:
        """What ``sub`` is to be sent now: its oldest event frame, else one positions
        frame with the latest row of each unit that moved since its last one."""
        if sub.events:
            return sub.events.popleft()
        if not self._has_frame(sub):
            return None
        feed = self.feeds[sub.operation_id]
        frame, n = feed.frame_since(sub.seen, sub.binary)
        if sub.seen < feed.prev:
            self.stats["sent.merged_frames"] += 1  # it missed ticks: they were merged
        sub.seen = feed.seq
        if sub.paced:
            sub.unseen.append(time.monotonic())
        self.stats["sent.frames"] += 1
        self.stats["sent.positions"] += n
        return frame

    def _has_frame(self, sub: Subscriber) -> bool:
        if sub.events:
            return True
        feed = self.feeds.get(sub.operation_id)
        return feed is not None and sub.seen < feed.seq and len(sub.unseen) < PACE_WINDOW \
            and sub.positions

    async def pump(self, sub: Subscriber,
                   send: Callable[[str | bytes], Awaitable[None]]) -> None:
        """Send ``sub`` its frames, one at a time, as fast as its socket takes them (and,
        paced, as it confirms them), in turn with the other subscribers (``_Turns``)."""
        while True:
            if not self._has_frame(sub):
                sub.wake.clear()
                await sub.wake.wait()
                continue
            turns = self._turns
            if turns is None or turns.loop is not asyncio.get_running_loop():
                turns = self._turns = _Turns(asyncio.get_running_loop())
            await turns.turn()
            frame = self.next_frame(sub)  # built now: the freshest there is
            if frame is None:
                continue
            sub.sending_since = time.monotonic()
            await send(frame)
            turns.spend(time.monotonic() - sub.sending_since)
            sub.sending_since = None

    def _revoke(self, session_id: str | None) -> None:
        if session_id:
            self._close_where(lambda p: p.session_id == session_id, CLOSE_REVOKED)

    def _user_changed(self, user_id: int | None) -> None:
        self._close_where(lambda p: p.user_id == user_id, CLOSE_CHANGED)

    def _close_where(self, whose: Callable[[Principal], bool], code: int) -> None:
        for subs in self.subs.values():
            for sub in list(subs):
                if whose(sub.principal):
                    sub.close(code)

    def subscribe(self, sub: Subscriber) -> list[list]:
        """Register ``sub`` (on the event loop) and return the latest position of each
        unit to start from: every frame it is sent afterwards is newer. Call
        ``snapshot`` first (in a thread) so that the stored positions are loaded."""
        self.loop = asyncio.get_running_loop()
        op_id = sub.operation_id
        if op_id not in self.feeds:
            self.feeds[op_id] = _Feed(op_id, self._seq)
        sub.seen = self.feeds[op_id].seq
        self.subs.setdefault(op_id, set()).add(sub)
        with self._latest_lock:
            return list(self.latest.get(op_id, {}).values())

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subs.get(sub.operation_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subs[sub.operation_id]
                self.feeds.pop(sub.operation_id, None)


def get_hub(runtime: Runtime) -> PositionHub:
    hub = runtime.service("operations.positions", PositionHub)
    hub.start()
    return hub
