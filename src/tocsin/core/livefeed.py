"""Live feed: pushes domain events over a websocket to each user who may see them.

The client connects to ``/api/v1/live`` and sends ``{"type": "auth",
"access_token": ...}`` first (browsers cannot set headers on a websocket, and a
token in the URL would end up in logs). Each event is sent to a connection
only if it names the user in its audience or ``core.access`` lets the user read
the record it is about. When a session is revoked (on any node: the bus
carries the event) its sockets are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

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
        runtime.bus.subscribe(self.on_event)

    def may_see(self, principal: Principal, event: DomainEvent) -> bool:
        if event.audience is not None:
            return principal.user_id in event.audience
        if not event.record_kind:
            return False
        try:
            resource = Resource(event.record_kind,
                                self.runtime.units.path(event.unit_id))
            return access.decide(principal, "read", resource).allowed
        except KeyError:  # kind not declared to core.access: never pushed
            return False

    def on_event(self, event: DomainEvent) -> None:
        """Bus handler (any thread): hand over to the event loop."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: DomainEvent) -> None:
        revoked = None
        if event.type == "identity.session.revoked":
            revoked = event.payload.get("session_id")
        message = None
        for conn in list(self.connections):
            if revoked and conn.principal.session_id == revoked:
                conn.close_code = CLOSE_REVOKED
                conn.closed.set()
                continue
            try:
                visible = self.may_see(conn.principal, event)
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
        except (TocsinError, asyncio.TimeoutError, ValueError, WebSocketDisconnect) as exc:
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
