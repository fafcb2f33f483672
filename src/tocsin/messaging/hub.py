"""Live delivery on one app node: websocket devices and waiting Matrix /sync requests.

Every messenger write publishes a small notification on the bus (no content).
Each node's hub then reads the events after its cursor from the shared database,
in stream order, and hands each one to the sockets of its members. Because each
node walks the one global stream in order, a device receives every event of its
rooms exactly once and in order, whichever node the event was posted on; and a
membership change (a user removed from a channel) takes effect for the events
after it, including on sockets already open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy import select

from tocsin.core.access import Principal
from tocsin.core.errors import TocsinError
from tocsin.core.events import DomainEvent
from tocsin.core.identity.models import User
from tocsin.core.runtime import Runtime
from tocsin.messaging.models import Event, Room, RoomAudience
from tocsin.messaging.service import MessagingService, get_service

log = logging.getLogger(__name__)
BATCH = 500
QUEUE_LIMIT = 5000
CLOSE_REVOKED = 4401
CLOSE_SLOW = 4408
AUTH_TIMEOUT = 10


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


def _wants(info: RoomInfo, extra: frozenset[int], principal: Principal) -> bool:
    uid = principal.user_id
    if uid in info.members or uid in extra:
        return True
    if uid in info.excluded:
        return False
    return any(principal.unit_path.startswith(p) for p in info.paths)


class Hub:
    def __init__(self, runtime: Runtime, svc: MessagingService):
        self.rt = runtime
        self.svc = svc
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cursor: int | None = None
        self.rooms: dict[str, RoomInfo] = {}
        self.conns: set[Conn] = set()
        self.by_user: dict[int, set[Conn]] = {}
        self.by_path: dict[str, set[Conn]] = {}  # unit path -> sockets of its officers
        self._under: dict[tuple[str, ...], list[str]] = {}  # audience -> unit paths in it
        self.waiters: set[Waiter] = set()
        self.typing: dict[str, dict[int, float]] = {}
        self.typing_versions: dict[str, int] = {}
        self.typing_version = 0
        self._fetching = False
        self._again = False
        self._user_ids: dict[str, int] = {}
        runtime.bus.subscribe(self.on_bus)

    # Bus (any thread) -> loop ------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is None or self.loop.is_closed():
            self.loop = loop
            self.cursor = self.svc.positions()[0]
            # the messenger's writer thread also writes the sockets' delivery state, once a second
            self.svc.start()

    def on_bus(self, event: DomainEvent) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        if event.type.startswith("messaging.") or event.type == "identity.session.revoked":
            self.loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: DomainEvent) -> None:
        p = event.payload
        if event.type == "identity.session.revoked":
            sid = p.get("session_id")
            for conn in list(self.conns):
                if conn.principal.session_id == sid:
                    conn.close_code = CLOSE_REVOKED
                    conn.closed.set()
            for w in list(self.waiters):
                if w.principal.session_id == sid:
                    w.event.set()
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
            self._fanout_ephemeral(info, text)
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
        for conn in list(self.conns):
            if not conn.catching_up and (info is None or _wants(info, frozenset(),
                                                                conn.principal)):
                conn.put(text)
        for w in list(self.waiters):
            if info is None or _wants(info, frozenset(), w.principal):
                w.event.set()

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
                items = await asyncio.to_thread(self._load, self.cursor or 0)
                for item in items:
                    self._dispatch(item)
                    self.cursor = item.stream
                if len(items) < BATCH and not self._again:
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

    def _load(self, cursor: int) -> list[Item]:
        """(worker thread) Events after ``cursor``, with their recipients at that point."""
        out: list[Item] = []
        with self.rt.db.read() as s:
            rows = list(s.scalars(select(Event).where(Event.stream > cursor)
                                  .order_by(Event.stream).limit(BATCH)))
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
                body = {"type": "event", "stream": ev.stream,
                        "room_id": self.svc.room_mx(ev.room_id),
                        "event": self.svc.client_event(ev)}
                text = json.dumps(body)
                own = None
                if ev.txn_id and ev.session_id:
                    body["event"]["unsigned"]["transaction_id"] = ev.txn_id
                    own = json.dumps(body)
                out.append(Item(ev.stream, ev.room_id, info, extra, text, own, ev.session_id))
        return out

    def _targets(self, info: RoomInfo, extra: frozenset[int]) -> list[Conn]:
        """The sockets of a room's members: explicit members by user, audience members
        by unit path (each distinct unit path tested once, not each socket)."""
        targets: list[Conn] = []
        for uid in info.members | extra:
            targets.extend(self.by_user.get(uid, ()))
        if info.paths:
            explicit = info.members | extra
            excluded = info.excluded - extra
            for unit_path in self._paths_under(info.paths):
                for conn in self.by_path.get(unit_path, ()):
                    uid = conn.principal.user_id
                    if uid not in explicit and uid not in excluded:
                        targets.append(conn)
        return targets

    def _paths_under(self, paths: tuple[str, ...]) -> list[str]:
        found = self._under.get(paths)
        if found is None:
            found = [u for u in self.by_path if any(u.startswith(p) for p in paths)]
            self._under[paths] = found
        return found

    def _dispatch(self, item: Item) -> None:
        info = item.info
        delivered = [conn.principal.user_id for conn in self._targets(info, item.extra)
                     if conn.offer(item)]
        if delivered:
            self.svc.note_delivered(delivered, item.room_id, item.stream)
        for w in list(self.waiters):
            if _wants(info, item.extra, w.principal):
                w.event.set()

    # Matrix /sync long-poll --------------------------------------------
    @contextlib.contextmanager
    def waiting(self, principal: Principal):
        w = Waiter(principal)
        self.waiters.add(w)
        try:
            yield w
        finally:
            self.waiters.discard(w)

    # Websocket ---------------------------------------------------------
    def _add(self, conn: Conn) -> None:
        self.conns.add(conn)
        self.by_user.setdefault(conn.principal.user_id, set()).add(conn)
        path = conn.principal.unit_path
        if path not in self.by_path:
            self.by_path[path] = set()
            self._under.clear()  # a unit path not seen yet: recompute which rooms reach it
        self.by_path[path].add(conn)

    def _remove(self, conn: Conn) -> None:
        self.conns.discard(conn)
        peers = self.by_user.get(conn.principal.user_id)
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del self.by_user[conn.principal.user_id]
        # by_path keeps its (few) unit paths, so the room -> unit paths cache stays valid
        self.by_path.get(conn.principal.unit_path, set()).discard(conn)

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
