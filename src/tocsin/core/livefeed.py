"""Live feed: pushes domain events over a websocket to each user who may see them.

The client connects to ``/api/v1/live`` and sends ``{"type": "auth",
"access_token": ...}`` first (browsers cannot set headers on a websocket, and a
token in the URL would end up in logs). Each event is sent to a connection
only if it names the user in its audience or ``core.access`` lets the user read
the record it is about: the same decision as every read, with the record's
owner and shares (``access.resource_of``). Those facts are looked up once per
record, not once per connection, and kept in a small cache that drops a record
on its ``access.*`` events (a share granted or revoked, members changed: the bus
brings them from every node) and after ``ACCESS_TTL`` seconds at the latest
(shares expire; a module may still write a share without ``access.grant``).
When a session is revoked (on any node) its sockets are closed at once; when a
user is moved or her roles change, her sockets are closed with ``CLOSE_CHANGED`` so
the client reconnects under what she now is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.errors import TocsinError
from tocsin.core.events import DomainEvent
from tocsin.core.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter()
AUTH_TIMEOUT = 10
QUEUE_LIMIT = 1000
CLOSE_REVOKED = 4401
CLOSE_SLOW = 4408
CLOSE_CHANGED = 4409  # the user's unit or roles changed: reconnect
ACCESS_TTL = 10.0  # seconds the access facts of one record are trusted
ACCESS_CACHE = 10_000  # records whose access facts are kept


@dataclass(eq=False)
class Connection:
    principal: Principal
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000


class LiveFeed:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.connections: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        # (kind, record id) -> (access facts without the owning unit, monotonic deadline)
        self._facts: OrderedDict[tuple[str, str], tuple[Resource, float]] = OrderedDict()
        runtime.bus.subscribe(self.on_event)

    def _forget(self, event: DomainEvent) -> None:
        if event.type.startswith(access.CHANGE_EVENTS) and event.record_kind:
            self._facts.pop((event.record_kind, event.record_id or ""), None)

    def resource_for(self, event: DomainEvent) -> Resource:
        """What ``core.access`` needs about the record of ``event`` (KeyError for a kind
        not declared to it). The owning unit is the event's: a record can move."""
        path = self.runtime.units.path(event.unit_id)
        if event.record_id is None:
            return Resource(event.record_kind, path)
        key = (event.record_kind, event.record_id)
        access.rule_for(event.record_kind)
        cached = self._facts.get(key)
        now = time.monotonic()
        if cached is None or cached[1] <= now:
            with self.runtime.db.read() as s:
                facts = access.resource_of(s, event.record_kind, event.record_id, None)
            cached = (facts, now + ACCESS_TTL)
            self._facts[key] = cached
            while len(self._facts) > ACCESS_CACHE:
                self._facts.popitem(last=False)
        self._facts.move_to_end(key)
        return replace(cached[0], owner_unit_path=path)

    def may_see(self, principal: Principal, event: DomainEvent,
                resource: Resource | None = None) -> bool:
        if event.audience is not None:
            return principal.user_id in event.audience
        if not event.record_kind:
            return False
        try:
            resource = resource or self.resource_for(event)
            return access.decide(principal, "read", resource).allowed
        except KeyError:  # kind not declared to core.access: never pushed
            return False

    def on_event(self, event: DomainEvent) -> None:
        """Bus handler (any thread): hand over to the event loop."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: DomainEvent) -> None:
        self._forget(event)
        revoked = changed = None
        if event.type == "identity.session.revoked":
            revoked = event.payload.get("session_id")
        elif event.type == "identity.user.changed":
            changed = event.payload.get("user_id")
        message = None
        resource: Resource | None = None  # looked up once, for the first who needs it
        for conn in list(self.connections):
            if revoked and conn.principal.session_id == revoked:
                conn.close_code = CLOSE_REVOKED
                conn.closed.set()
                continue
            if changed is not None and conn.principal.user_id == changed:
                conn.close_code = CLOSE_CHANGED
                conn.closed.set()
                continue
            try:
                if resource is None and event.audience is None and event.record_kind:
                    resource = self.resource_for(event)
                visible = self.may_see(conn.principal, event, resource)
            except KeyError:  # kind not declared to core.access: never pushed
                visible = False
            except Exception:  # a failed check hides the event; it never leaks it
                log.exception("visibility check failed for %s", event.type)
                visible = False
            if not visible:
                continue
            if message is None:
                message = json.dumps({"type": "event", "event": json.loads(
                    event.model_dump_json())})
            try:
                conn.queue.put_nowait(message)
            except asyncio.QueueFull:  # a client that cannot keep up is cut, not waited for
                conn.close_code = CLOSE_SLOW
                conn.closed.set()

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        self.loop = asyncio.get_running_loop()
        try:
            first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
            token = first.get("access_token") if isinstance(first, dict) else None
            if not isinstance(token, str):
                raise TocsinError("first message must be {type: auth, access_token}",
                                  code="token_missing")
            principal = await asyncio.to_thread(self.runtime.identity.authenticate, token)
        except (TimeoutError, TocsinError, ValueError, WebSocketDisconnect) as exc:
            code = getattr(exc, "code", "token_missing")
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "code": code})
                await ws.close(code=4401)
            return
        conn = Connection(principal)
        self.connections.add(conn)
        await ws.send_json({"type": "ready", "user_id": principal.user_id})
        sender = asyncio.create_task(self._pump(ws, conn))
        receiver = asyncio.create_task(self._drain(ws, conn))
        closer = asyncio.create_task(conn.closed.wait())
        try:
            await asyncio.wait({sender, receiver, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.connections.discard(conn)
            for task in (sender, receiver, closer):
                task.cancel()
            if conn.close_code != 1000:
                with contextlib.suppress(Exception):
                    await ws.send_json({"type": "closed", "code": conn.close_code})
            with contextlib.suppress(Exception):
                await ws.close(code=conn.close_code)

    async def _pump(self, ws: WebSocket, conn: Connection) -> None:
        while True:
            await ws.send_text(await conn.queue.get())

    async def _drain(self, ws: WebSocket, conn: Connection) -> None:
        """Read client frames (pings) until the client goes away."""
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return


def get_feed(runtime: Runtime) -> LiveFeed:
    return runtime.service("livefeed", LiveFeed)


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    await get_feed(ws.app.state.runtime).serve(ws)
