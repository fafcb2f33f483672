"""The position hub: high-rate unit positions in, to the database and to every screen.

Positions do not go through one transaction each. The path is:

1. ``ingest`` (any thread: HTTP routes, the operation websocket, the CoT listener)
   validates each position against a cached view of the operation (unit known,
   sender is a member or the staff, not from the future, not before the
   operation, not far outside it, not flooding) and appends it to two buffers.
2. Every ``TICK`` (50 ms) the tick thread publishes, per operation, one transient
   ``operations.positions.tick`` message on ``runtime.bus`` with the latest
   position of each unit that moved (Redis pub/sub between nodes when
   configured). Every node's hub hears every tick: it updates its in-memory
   latest-position cache and sends one frame to each websocket subscriber of
   that operation. Tick messages are *not* stored in the events table.
3. Every ``FLUSH`` (1 s) the flush thread writes the buffered positions with one
   multi-row insert and, in the same transaction, emits one summarising domain
   event ``operations.positions.flushed`` per operation (count, units, time
   span) for the ledger. A failed flush keeps the rows for the next attempt.

Rejected positions are never silently dropped: the sender gets the reason back
(``ingest`` returns them) and they are counted in ``stats`` and logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
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
FLUSH = 1.0
FUTURE_SKEW = 30.0  # seconds a device clock may run ahead
MARGIN_KM = 25.0  # how far outside the operation's area a position is still accepted
RATE = 5.0  # positions per second per unit and sender (see ``ingest``), sustained
BURST = 10.0
MAX_PENDING = 2_000_000  # rows kept in memory while the database is unreachable
QUEUE_FRAMES = 200
CLOSE_REVOKED = 4401
CLOSE_SLOW = 4408
UTC = dt.timezone.utc


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
    principal: Principal
    operation_id: int
    manage: bool
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_FRAMES))
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000

    def close(self, code: int) -> None:
        self.close_code = code
        self.closed.set()


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
        raise ValueError
    if isinstance(v, (int, float)):
        f = float(v)
        return f / 1000.0 if f > 1e11 else f  # epoch milliseconds or seconds
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    if isinstance(v, str):
        d = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        if d.tzinfo is None:
            raise ValueError
        return d.timestamp()
    raise ValueError


class PositionHub:
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.node = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()
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

    def ingest(self, items: list, *, source: str, client: str,
               principal: Principal | None = None, manage_ops: frozenset[int] = frozenset(),
               operation_id: int | None = None, rate_key: str | None = None) -> dict:
        """Validate and buffer positions. ``principal`` None means a trusted gateway
        (the CoT listener); otherwise the sender must be a member of each unit or
        manage its operation. The flood limit applies per unit and ``rate_key``
        (default ``client``): a key that outlives a connection (a device session, or
        one key for all CoT connections) so that reconnecting does not refill it.
        Returns ``{"accepted": n, "rejected": [...]}``."""
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
        if accepted_rows:
            with self.lock:
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
        return {"accepted": len(accepted_rows), "rejected": rejected}

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
                s.execute(insert(Position), [
                    {"operation_id": r[0], "op_unit_id": r[1],
                     "at": dt.datetime.fromtimestamp(r[2], UTC), "lat": r[3], "lon": r[4],
                     "heading": r[5], "speed": r[6], "accuracy": r[7], "source": r[8]}
                    for r in rows])
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
            self.stats["flushed"] += len(rows)
            return len(rows)
        except Exception:
            if committed.is_set():  # stored; only publishing the summary failed
                log.exception("positions stored but their summary event was not published")
                self.stats["flushed"] += len(rows)
                return len(rows)
            log.exception("could not write %d positions; keeping them for the next flush",
                          len(rows))
            with self.lock:
                self.pending[:0] = rows
                if len(self.pending) > MAX_PENDING:
                    dropped = len(self.pending) - MAX_PENDING
                    del self.pending[:dropped]
                    self.stats["dropped.db_unavailable"] += dropped
                    log.error("dropped %d oldest positions: database unreachable", dropped)
            return 0

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
            per_op = self.latest.setdefault(op_id, {})
            for r in rows:
                at_ms = int(r.at.replace(tzinfo=r.at.tzinfo or UTC).timestamp() * 1000)
                cur = per_op.get(r.op_unit_id)
                if cur is None or cur[3] < at_ms:
                    per_op[r.op_unit_id] = [r.op_unit_id, r.lat, r.lon, at_ms, r.heading,
                                            r.speed]
            self._latest_loaded.add(op_id)
        return list(self.latest.get(op_id, {}).values())

    # Bus ------------------------------------------------------------------------
    def on_event(self, event: DomainEvent) -> None:
        t = event.type
        if t == "operations.positions.tick":
            op_id = event.payload["operation_id"]
            per_op = self.latest.setdefault(op_id, {})
            for row in event.payload["u"]:
                cur = per_op.get(row[0])
                if cur is None or cur[3] <= row[3]:
                    per_op[row[0]] = row
            if self.subs.get(op_id):
                frame = json.dumps({"type": "positions", "operation_id": op_id,
                                    "u": event.payload["u"]}, separators=(",", ":"))
                self._to_loop(self._deliver, op_id, frame)
            return
        if t == "identity.session.revoked":
            self._to_loop(self._revoke, event.payload.get("session_id"))
            return
        if t.startswith("operations.") and not t.startswith("operations.positions."):
            op_id = event.payload.get("operation_id")
            self._invalidate(op_id)
            if op_id is not None and self.subs.get(op_id):
                frame = json.dumps({"type": "event", "event": json.loads(
                    event.model_dump_json())})
                self._to_loop(self._deliver, op_id, frame)

    def _to_loop(self, fn, *args) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop shutting down
                pass

    def _deliver(self, op_id: int, frame: str) -> None:
        for sub in list(self.subs.get(op_id, ())):
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:  # a screen that cannot keep up is cut, not waited for
                sub.close(CLOSE_SLOW)

    def _revoke(self, session_id: str | None) -> None:
        if not session_id:
            return
        for subs in self.subs.values():
            for sub in list(subs):
                if sub.principal.session_id == session_id:
                    sub.close(CLOSE_REVOKED)

    def subscribe(self, sub: Subscriber) -> None:
        self.loop = asyncio.get_running_loop()
        self.subs.setdefault(sub.operation_id, set()).add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subs.get(sub.operation_id, set()).discard(sub)


def get_hub(runtime: Runtime) -> PositionHub:
    hub = runtime.service("operations.positions", PositionHub)
    hub.start()
    return hub
