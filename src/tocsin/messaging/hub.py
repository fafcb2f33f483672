"""Live delivery on one app node: websocket devices and waiting Matrix /sync requests.

Every messenger write publishes a small notification on the bus (no content).
Each node's hub then reads the events after its cursor from the shared database,
in stream order, and hands each one to the sockets of its members. Because each
node walks the one global stream in order, a device receives every event of its
rooms exactly once and in order, whichever node the event was posted on; and a
membership change (a user removed from a channel) takes effect for the events
after it, including on sockets already open.

The hub keeps the recent stream in memory (``recent.RecentStream``): a waiting
Matrix /sync request is woken from the stream position it waits for and answered
from there, without a database query per client per message; clients in the same
room share one serialised answer. The sessions of the woken requests are checked
again against the database in one query per wake-up, not one per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy import select

from tocsin.core.access import Principal
from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import TocsinError
from tocsin.core.events import DomainEvent
from tocsin.core.identity.models import DeviceSession, User
from tocsin.core.runtime import Runtime
from tocsin.messaging.models import Event, ReceiptLog, Room, RoomAudience
from tocsin.messaging.recent import Receipt, Recent, RecentStream
from tocsin.messaging.service import MessagingService, SyncToken, get_service

log = logging.getLogger(__name__)
BATCH = 500
QUEUE_LIMIT = 5000
CLOSE_REVOKED = 4401
CLOSE_SLOW = 4408
CLOSE_CHANGED = 4409  # the user's unit or roles changed: reconnect under what she now is
AUTH_TIMEOUT = 10
CATCH_UP = 2.0  # seconds a /sync waits for the hub to read what was committed before it


@dataclass(frozen=True)
class RoomInfo:
    members: frozenset[int]  # explicit joins
    excluded: frozenset[int]  # explicit leave/ban overriding an audience
    paths: tuple[str, ...]  # audience unit paths


@dataclass
class Item:
    stream: int
    room_id: str
    info: RoomInfo
    extra: frozenset[int]
    text: str
    own_text: str | None
    session_id: str | None
    recent: Recent | None = None  # as /sync shows it
    redacts: tuple[str, dict] | None = None  # (event id, that event as now redacted)


@dataclass(eq=False)
class Conn:
    principal: Principal
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000
    last_stream: int = 0
    catching_up: bool = True
    buffer: list = field(default_factory=list)

    def put(self, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:  # a device that cannot keep up reconnects and catches up
            self.close_code = CLOSE_SLOW
            self.closed.set()

    def offer(self, item: Item) -> bool:
        if item.stream <= self.last_stream:
            return False  # already sent (catch-up overlap, or a duplicate notification)
        if self.catching_up:
            self.buffer.append(item)
            return False
        self.last_stream = item.stream
        own = item.own_text is not None and item.session_id == self.principal.session_id
        self.put(item.own_text if own else item.text)
        return True


@dataclass(eq=False)
class Waiter:
    principal: Principal
    event: asyncio.Event = field(default_factory=asyncio.Event)
    checked: bool = False  # its session was found live when it was woken
    stale: bool = False  # revoked or changed: authenticate again


class Listeners:
    """Sockets or waiting /sync requests, found by user (explicit members) and by unit
    path (audience members: each distinct unit path tested once, not each listener)."""

    def __init__(self) -> None:
        self.all: set = set()
        self.by_user: dict[int, set] = {}
        self.by_path: dict[str, set] = {}
        self._under: dict[tuple[str, ...], list[str]] = {}  # audience -> unit paths in it

    def __iter__(self):
        return iter(list(self.all))

    def __len__(self) -> int:
        return len(self.all)

    def add(self, x) -> None:
        self.all.add(x)
        self.by_user.setdefault(x.principal.user_id, set()).add(x)
        path = x.principal.unit_path
        if path not in self.by_path:
            self.by_path[path] = set()
            self._under.clear()  # a unit path not seen yet: recompute which rooms reach it
        self.by_path[path].add(x)

    def discard(self, x) -> None:
        self.all.discard(x)
        peers = self.by_user.get(x.principal.user_id)
        if peers is not None:
            peers.discard(x)
            if not peers:
                del self.by_user[x.principal.user_id]
        # by_path keeps its (few) unit paths, so the audience -> unit paths cache stays valid
        self.by_path.get(x.principal.unit_path, set()).discard(x)

    def targets(self, info: RoomInfo | None, extra: frozenset[int] = frozenset()) -> list:
        """The listeners of a room's members (None: everyone)."""
        if info is None:
            return list(self.all)
        found: list = []
        explicit = info.members | extra
        for uid in explicit:
            found.extend(self.by_user.get(uid, ()))
        if info.paths:
            excluded = info.excluded - extra
            for unit_path in self._paths_under(info.paths):
                for x in self.by_path.get(unit_path, ()):
                    uid = x.principal.user_id
                    if uid not in explicit and uid not in excluded:
                        found.append(x)
        return found

    def _paths_under(self, paths: tuple[str, ...]) -> list[str]:
        found = self._under.get(paths)
        if found is None:
            found = [u for u in self.by_path if any(u.startswith(p) for p in paths)]
            self._under[paths] = found
        return found


class Hub:
    def __init__(self, runtime: Runtime, svc: MessagingService):
        self.rt = runtime
        self.svc = svc
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cursor: int | None = None
        self.receipt_cursor = 0
        self.rooms: dict[str, RoomInfo] = {}
        self.sockets = Listeners()
        self.waiters = Listeners()
        self.recent = RecentStream(0, 0, svc.room_mx)
        self._to_wake: set[Waiter] = set()
        self._waking = False
        self.typing: dict[str, dict[int, float]] = {}
        self.typing_versions: dict[str, int] = {}
        self.typing_version = 0
        self._fetching = False
        self._again = False
        self._user_ids: dict[str, int] = {}
        # The highest stream and receipt positions known committed (this node's commits as
        # they end, other nodes' from the bus): a /sync answered from memory first waits for
        # the hub to have read that far, so a client sees what it did before it asked (its
        # own join, a room it created) and no answer is older than one it could expect.
        self._committed = (0, 0)
        self._committed_lock = threading.Lock()
        self._advanced = asyncio.Event()  # set (and replaced) each time the hub reads on
        runtime.db.after_commit_hooks.append(self._on_commit)
        runtime.bus.subscribe(self.on_bus)

    # Bus (any thread) -> loop ------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is None or self.loop.is_closed():
            self.loop = loop
            self.cursor, self.receipt_cursor = self.svc.positions()
            self.recent = RecentStream(self.cursor, self.receipt_cursor, self.svc.room_mx)
            self._advanced = asyncio.Event()
            # the messenger's writer thread also writes the sockets' delivery state, once a second
            self.svc.start()

    def _on_commit(self, _s, events: list) -> None:
        """(committing thread, before the request that wrote returns)"""
        self._note_committed(events)

    def _note_committed(self, events: list) -> None:
        stream = seq = 0
        for e in events:
            if e.type.startswith("messaging."):
                p = e.payload or {}
                if isinstance(p.get("stream"), int):
                    stream = max(stream, p["stream"])
                if e.type == "messaging.receipt" and isinstance(p.get("seq"), int):
                    seq = max(seq, p["seq"])
        if stream or seq:
            with self._committed_lock:
                old = self._committed
                self._committed = (max(old[0], stream), max(old[1], seq))

    def on_bus(self, event: DomainEvent) -> None:
        self._note_committed([event])
        if self.loop is None or self.loop.is_closed():
            return
        if event.type.startswith("messaging.") or event.type in (
                "identity.session.revoked", "identity.user.changed"):
            self.loop.call_soon_threadsafe(self._on_event, event)

    @property
    def conns(self) -> set[Conn]:
        return self.sockets.all

    def _on_event(self, event: DomainEvent) -> None:
        p = event.payload
        if event.type in ("identity.session.revoked", "identity.user.changed"):
            sid, uid = p.get("session_id"), p.get("user_id")
            changed = event.type == "identity.user.changed"
            if changed:
                self.recent.forget(uid)
            for conn in list(self.conns):
                if (conn.principal.user_id == uid) if changed else \
                        (conn.principal.session_id == sid):
                    conn.close_code = CLOSE_CHANGED if changed else CLOSE_REVOKED
                    conn.closed.set()
            for w in list(self.waiters):
                if (w.principal.user_id == uid) if changed else (w.principal.session_id == sid):
                    w.stale = True
                    w.event.set()
            return
        if event.type == "messaging.retention.purged":
            self.recent.reset()
            return
        if event.type == "messaging.typing":
            self._typing(p)
            return
        if event.type == "messaging.receipt":
            room = p.get("room_id")
            info = self.rooms.get(room)
            text = json.dumps({"type": "receipt", "room_id": self.svc.room_mx(room),
                               "event_id": p.get("event_id"),
                               "user_id": self.svc.mxid(p.get("user_id")),
                               "receipt_type": p.get("receipt_type"), "ts": p.get("ts")})
            for conn in self.sockets.targets(info):
                if not conn.catching_up:
                    conn.put(text)
            self._kick()  # /sync clients get it once read from the database, in order
            return
        if event.type.startswith("messaging.alert."):
            text = json.dumps({"type": "alert", "alert_id": p.get("alert_id"),
                               "change": event.type.rsplit(".", 1)[-1]})
            for conn in list(self.conns):
                if event.audience is None or conn.principal.user_id in (event.audience or []) \
                        or event.type in ("messaging.alert.updated",):
                    conn.put(text)
            return
        if "stream" in p:
            self._kick()

    def _fanout_ephemeral(self, info: RoomInfo | None, text: str) -> None:
        for conn in self.sockets.targets(info):
            if not conn.catching_up:
                conn.put(text)
        self._wake(self.waiters.targets(info))

    def _typing(self, p: dict) -> None:
        room, uid = p.get("room_id"), p.get("user_id")
        now = time.monotonic()
        users = self.typing.setdefault(room, {})
        if p.get("typing"):
            users[uid] = now + p.get("timeout_ms", 30000) / 1000
        else:
            users.pop(uid, None)
        self.typing_version += 1
        self.typing_versions[room] = self.typing_version
        ids = [u for u, exp in users.items() if exp > now]
        text = json.dumps({"type": "typing", "room_id": self.svc.room_mx(room),
                           "user_ids": [self.svc.mxid(u) for u in ids]})
        self._fanout_ephemeral(self.rooms.get(room), text)

    def typing_since(self, version: int) -> dict[str, list[int]]:
        now = time.monotonic()
        out = {}
        for room, v in self.typing_versions.items():
            if v > version:
                out[room] = [u for u, exp in self.typing.get(room, {}).items() if exp > now]
        return out

    # Waking /sync requests -----------------------------------------------
    def _wake(self, waiters) -> None:
        """Wake waiting /sync requests once their sessions are checked again: one query
        for all the requests woken together."""
        self._to_wake.update(waiters)
        if self._to_wake and not self._waking:
            self._waking = True
            asyncio.ensure_future(self._wake_loop())

    async def _wake_loop(self) -> None:
        try:
            while self._to_wake:
                batch, self._to_wake = self._to_wake, set()
                ready = [w for w in batch if not w.stale]
                try:
                    live = await asyncio.to_thread(
                        self._live_sessions, [w.principal for w in ready])
                except Exception:
                    log.exception("could not check the sessions of waiting /sync requests")
                    live = set()
                for w in batch:
                    w.checked = not w.stale and w.principal.session_id in live
                    w.event.set()
        finally:
            self._waking = False

    def _live_sessions(self, principals: list[Principal]) -> set[str]:
        """(worker thread) The sessions among these still live: not revoked, not expired,
        their user active (the others authenticate again, one by one, and fail there)."""
        ids = {p.session_id: p.user_id for p in principals if p.session_id}
        live: set[str] = set()
        if not ids:
            return live
        now = utcnow()
        keys = list(ids)
        with self.rt.db.read() as s:
            for i in range(0, len(keys), 500):
                for sid, uid, revoked, expires, active in s.execute(
                        select(DeviceSession.id, DeviceSession.user_id,
                               DeviceSession.revoked_at, DeviceSession.expires_at, User.active)
                        .join(User, User.id == DeviceSession.user_id)
                        .where(DeviceSession.id.in_(keys[i:i + 500]))):
                    if uid == ids[sid] and revoked is None and active and \
                            as_utc(expires) > now:
                        live.add(sid)
        return live

    async def caught_up(self, stream: int, receipt: int) -> bool:
        """Wait (CATCH_UP seconds at most) until the hub has read the stream up to
        ``stream`` and the receipts up to ``receipt``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP
        while self.recent.cursor < stream or self.recent.receipt_cursor < receipt:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            advanced = self._advanced
            self._kick()
            try:
                await asyncio.wait_for(advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def sync(self, principal: Principal, token: SyncToken | None, limit: int,
                   full_state: bool, *, fresh: bool = False) -> tuple[bytes, bool]:
        """A Matrix /sync answer (serialised) and whether it carries news: from the
        recent stream in memory when it can, else from the database. ``fresh``: the
        request's first look, which must see everything committed before it arrived
        (the hub may not have read it yet: the client's own join, say)."""
        memory = token is not None and not full_state
        if memory and fresh:
            memory = await self.caught_up(*self._committed)
        version = self.typing_version
        typing = self.typing_since(token.typing if token else 0)
        if memory:
            mx = {r: [self.svc.mxid(u) for u in ids] for r, ids in typing.items()}
            found = self.recent.answer(principal, token, limit, mx, version)
            if found is not None:
                for rid, stream in found.delivered.items():
                    self.svc.note_delivered((principal.user_id,), rid, stream)
                return found.body, found.news
        from fastapi.concurrency import run_in_threadpool

        result = await run_in_threadpool(
            lambda: self.svc.sync(principal, token, timeline_limit=limit,
                                  full_state=full_state, typing=typing,
                                  typing_version=version))
        self.recent.remember(principal, result.joined, result.stream)
        return json.dumps(result.body).encode(), result.news

    # Reading the stream ------------------------------------------------
    def _kick(self) -> None:
        if self._fetching:
            self._again = True
            return
        self._fetching = True
        asyncio.ensure_future(self._fetch_loop())

    async def _fetch_loop(self) -> None:
        try:
            while True:
                self._again = False
                items, receipts, top, rtop = await asyncio.to_thread(
                    self._load, self.cursor or 0, self.receipt_cursor)
                woken: set[Waiter] = set()
                for item in items:
                    self._dispatch(item, woken)
                    self.cursor = item.stream
                self.cursor = max(self.cursor or 0, top)
                self.recent.advance(self.cursor)
                for r in receipts:
                    self.recent.add_receipt(r)
                    woken.update(self.waiters.targets(self.rooms.get(r.room_id)))
                self.receipt_cursor = max(self.receipt_cursor, rtop)
                self.recent.advance_receipts(self.receipt_cursor)
                self._wake(woken)
                self._advanced.set()
                self._advanced = asyncio.Event()
                if len(items) < BATCH and len(receipts) < BATCH and not self._again:
                    break
        except Exception:
            log.exception("messaging hub failed to read the stream")
        finally:
            self._fetching = False
        if self._again:
            self._kick()

    def _user_id(self, s, mxid: str) -> int | None:
        uid = self._user_ids.get(mxid)
        if uid is None:
            name = mxid[1:].split(":", 1)[0]
            uid = s.scalar(select(User.id).where(User.username == name))
            if uid is not None:
                self._user_ids[mxid] = uid
        return uid

    def _room_info(self, s, room_id: str, at_stream: int) -> RoomInfo:
        """Membership of a room just before ``at_stream`` (folded from its member events)."""
        info = self.rooms.get(room_id)
        if info is None:
            state: dict[str, str] = {}
            for key, content in s.execute(
                    select(Event.state_key, Event.content).where(
                        Event.room_id == room_id, Event.type == "m.room.member",
                        Event.stream < at_stream).order_by(Event.stream)):
                state[key] = (content or {}).get("membership", "leave")
            joined, other = set(), set()
            for mxid, membership in state.items():
                uid = self._user_id(s, mxid)
                if uid is not None:
                    (joined if membership == "join" else other).add(uid)
            paths = tuple(s.scalars(select(RoomAudience.unit_path)
                                    .where(RoomAudience.room_id == room_id)))
            info = RoomInfo(frozenset(joined), frozenset(other), paths)
            self.rooms[room_id] = info
        return info

    def _load(self, cursor: int, receipt_cursor: int
              ) -> tuple[list[Item], list[Receipt], int, int]:
        """(worker thread) Events after ``cursor``, with their recipients at that point,
        and read receipts after ``receipt_cursor``; with the positions read up to."""
        out: list[Item] = []
        with self.rt.db.read() as s:
            rows = list(s.scalars(select(Event).where(Event.stream > cursor)
                                  .order_by(Event.stream).limit(BATCH)))
            receipts = [Receipt(r.seq, r.room_id, r.event_id, r.receipt_type,
                                self.svc.mxid(r.user_id), r.ts)
                        for r in s.scalars(select(ReceiptLog)
                                           .where(ReceiptLog.seq > receipt_cursor)
                                           .order_by(ReceiptLog.seq).limit(BATCH))]
            top = rows[-1].stream if rows else cursor
            rtop = receipts[-1].seq if receipts else receipt_cursor
            for ev in rows:
                if s.get(Room, ev.room_id) is None:
                    continue
                info = self._room_info(s, ev.room_id, ev.stream)
                extra: frozenset[int] = frozenset()
                if ev.type == "m.room.member" and ev.state_key:
                    uid = self._user_id(s, ev.state_key)
                    if uid is not None:
                        membership = ev.content.get("membership")
                        members, excluded = set(info.members), set(info.excluded)
                        if membership == "join":
                            members.add(uid)
                            excluded.discard(uid)
                        else:
                            members.discard(uid)
                            excluded.add(uid)
                        info = RoomInfo(frozenset(members), frozenset(excluded), info.paths)
                        self.rooms[ev.room_id] = info
                        extra = frozenset({uid})  # the user learns of their own change
                event = self.svc.client_event(ev)
                body = {"type": "event", "stream": ev.stream,
                        "room_id": self.svc.room_mx(ev.room_id), "event": event}
                text = json.dumps(body)
                recent = Recent(ev.stream, ev.room_id,
                                {k: v for k, v in event.items() if k != "room_id"},
                                ev.session_id, ev.txn_id)
                own = None
                if ev.txn_id and ev.session_id:
                    body["event"] = {**event, "unsigned": {**event["unsigned"],
                                                           "transaction_id": ev.txn_id}}
                    own = json.dumps(body)
                redacts = None
                if ev.type == "m.room.redaction" and ev.relates_to:
                    target = s.scalar(select(Event).where(Event.event_id == ev.relates_to))
                    if target is not None:
                        redacts = (target.event_id,
                                   self.svc.client_event(target, with_room=False))
                out.append(Item(ev.stream, ev.room_id, info, extra, text, own, ev.session_id,
                                recent, redacts))
        return out, receipts, top, rtop

    def _dispatch(self, item: Item, woken: set[Waiter]) -> None:
        info = item.info
        if item.recent is not None:
            member_of = next(iter(item.extra)) if item.extra else None
            audience = info.paths if item.recent.event["type"] == "m.room.create" else ()
            self.recent.add(item.recent, member_of=member_of, audience=audience)
        if item.redacts is not None:
            self.recent.redact(*item.redacts)
        delivered = [conn.principal.user_id for conn in self.sockets.targets(info, item.extra)
                     if conn.offer(item)]
        if delivered:
            self.svc.note_delivered(delivered, item.room_id, item.stream)
        woken.update(self.waiters.targets(info, item.extra))

    # Matrix /sync long-poll --------------------------------------------
    @contextlib.contextmanager
    def waiting(self, principal: Principal):
        w = Waiter(principal)
        self.waiters.add(w)
        try:
            yield w
        finally:
            self.waiters.discard(w)

    def rewait(self, w: Waiter, principal: Principal) -> None:
        """A waiting request authenticated again (its user may have moved)."""
        self.waiters.discard(w)
        w.principal, w.stale = principal, False
        self.waiters.add(w)

    # Websocket ---------------------------------------------------------
    def _add(self, conn: Conn) -> None:
        self.sockets.add(conn)

    def _remove(self, conn: Conn) -> None:
        self.sockets.discard(conn)

    async def serve(self, ws: WebSocket) -> None:
        """Protocol: client sends {type: auth, access_token, since?}; server sends
        {type: ready, stream}, then {type: event, stream, room_id, event} in stream
        order, plus typing/receipt/alert notices. ``since`` resumes after a drop."""
        await ws.accept()
        self.attach(asyncio.get_running_loop())
        try:
            first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
            token = first.get("access_token") if isinstance(first, dict) else None
            if not isinstance(token, str):
                raise TocsinError("first message must be {type: auth, access_token}",
                                  code="token_missing")
            from tocsin.messaging.matrix import authenticate_token

            principal = await asyncio.to_thread(authenticate_token, self.rt, token)
            since = first.get("since")
            if since is not None and (not isinstance(since, int) or since < 0):
                raise TocsinError("since must be a stream position", code="messaging.bad_token")
        except (TimeoutError, TocsinError, ValueError, WebSocketDisconnect) as exc:
            code = getattr(exc, "code", "token_missing")
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "code": code})
                await ws.close(code=4401)
            return
        conn = Conn(principal)
        self._add(conn)
        sender = receiver = closer = None
        try:
            if since is None:
                # "now" is what is committed, not how far this node's hub has read yet:
                # the device gets exactly the events committed after it connected
                committed = await asyncio.to_thread(self.svc.stream_position)
                conn.last_stream = max(self.cursor or 0, committed)
            else:
                backlog, overflow = await asyncio.to_thread(
                    self.svc.events_since, principal, since, self.svc.config.ws_backlog_limit)
                if overflow:
                    conn.last_stream = self.svc.positions()[0]
                    conn.put(json.dumps({"type": "reset", "stream": conn.last_stream}))
                else:
                    for stream, room_id, event in backlog:
                        if stream > conn.last_stream:
                            conn.last_stream = stream
                            conn.put(json.dumps({"type": "event", "stream": stream,
                                                 "room_id": self.svc.room_mx(room_id),
                                                 "event": event}))
                    conn.last_stream = max(conn.last_stream, since)
            conn.catching_up = False
            for item in conn.buffer:
                conn.offer(item)
            conn.buffer.clear()
            await ws.send_json({"type": "ready", "user_id": self.svc.mxid(principal.user_id),
                                "stream": conn.last_stream})
            sender = asyncio.create_task(self._pump(ws, conn))
            receiver = asyncio.create_task(self._drain(ws, conn))
            closer = asyncio.create_task(conn.closed.wait())
            await asyncio.wait({sender, receiver, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._remove(conn)
            for task in (sender, receiver, closer):
                if task is not None:
                    task.cancel()
            if conn.close_code != 1000:
                with contextlib.suppress(Exception):
                    await ws.send_json({"type": "closed", "code": conn.close_code})
            with contextlib.suppress(Exception):
                await ws.close(code=conn.close_code)

    async def _pump(self, ws: WebSocket, conn: Conn) -> None:
        while True:
            await ws.send_text(await conn.queue.get())

    async def _drain(self, ws: WebSocket, conn: Conn) -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return


def get_hub(runtime: Runtime) -> Hub:
    svc = get_service(runtime)  # built first: runtime.service is not re-entrant
    return runtime.service("messaging.hub", lambda rt: Hub(rt, svc))


def on_startup(runtime: Runtime) -> None:
    """Attach the hub to the server's event loop so it follows the stream from the start,
    and start the periodic retention purge."""
    from tocsin.messaging.retention import get_retention

    get_hub(runtime).attach(asyncio.get_running_loop())
    get_retention(runtime).start()
