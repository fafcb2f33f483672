"""Domain events and the bus that carries them.

Every state change is a typed ``DomainEvent``. A service emits it inside its
unit of work (``emit(session, event)``): the event row is stored in the same
transaction as the change, so an acknowledged change always has its event
(the ledger reads this table). After the commit the event is published on the
bus, which delivers it to ``subscribe``-d handlers on every app node: in-process
by default, over Redis pub/sub when ``TOCSIN_BUS_URL`` is set.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String, insert, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from tocsin.core.database import Base, utcnow

log = logging.getLogger(__name__)

Handler = Callable[["DomainEvent"], None]


class DomainEvent(BaseModel):
    """A fact that happened. ``unit_id`` and ``record_kind`` decide who may see it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    occurred_at: dt.datetime = Field(default_factory=utcnow)
    actor_id: int | None = None
    unit_id: int | None = None
    record_kind: str | None = None
    record_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    audience: list[int] | None = None  # explicit user ids (direct notifications)


class EventRecord(Base):
    """The durable copy of every event; content and salt can be erased later."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(80), index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    unit_id: Mapped[int | None] = mapped_column(Integer)
    record_kind: Mapped[str | None] = mapped_column(String(40))
    record_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    salt: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    erased_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def to_event(self) -> DomainEvent:
        return DomainEvent(
            id=self.id, type=self.type, occurred_at=self.occurred_at, actor_id=self.actor_id,
            unit_id=self.unit_id, record_kind=self.record_kind, record_id=self.record_id,
            payload=self.payload or {},
        )


def stored_row(event: DomainEvent) -> dict[str, Any]:
    """The stored columns of ``event`` (a fresh salt); the payload as JSON gives it back."""
    return {"id": event.id, "type": event.type, "occurred_at": event.occurred_at,
            "actor_id": event.actor_id, "unit_id": event.unit_id,
            "record_kind": event.record_kind, "record_id": event.record_id,
            "payload": json.loads(event.model_dump_json(include={"payload"}))["payload"],
            "salt": secrets.token_bytes(32)}


def emit(session: Session, event: DomainEvent) -> DomainEvent:
    """Store ``event`` in the caller's transaction; publish it after commit."""
    session.add(EventRecord(**stored_row(event)))
    session.info.setdefault("pending_events", []).append(event)
    return event


def emit_many(session: Session, events: list[DomainEvent],
              rows: list[dict[str, Any]] | None = None) -> None:
    """Store ``events`` in one statement (the ORM would send one per row to learn each
    ``seq``, which nothing reads before the commit); publish them after commit.
    ``rows``: their ``stored_row``-s, when the caller made them already."""
    if events:
        session.execute(insert(EventRecord), rows or [stored_row(e) for e in events])
        session.info.setdefault("pending_events", []).extend(events)


def erase(session: Session, event_ids: list[str]) -> int:
    """Delete the content and salt of stored events (retention expired, GDPR).

    Their ledger leaves stay, so the log still verifies, but without the salt
    nobody can link a leaf to what the event said. Returns how many were erased.
    """
    erased = 0
    for i in range(0, len(event_ids), 500):
        result = session.execute(
            update(EventRecord)
            .where(EventRecord.id.in_(event_ids[i:i + 500]), EventRecord.erased_at.is_(None))
            .values(payload=None, salt=None, erased_at=utcnow()))
        erased += result.rowcount or 0
    return erased


class LocalBus:
    """In-process delivery: handlers run in the publishing thread, in order."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def unsubscribe(self, handler: Handler) -> None:
        with self._lock:
            if handler in self._handlers:
                self._handlers.remove(handler)

    def _deliver(self, event: DomainEvent) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:  # one broken listener must not starve the others
                log.exception("event handler %r failed on %s", handler, event.type)

    def publish(self, events: list[DomainEvent]) -> None:
        for event in events:
            self._deliver(event)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class RedisBus(LocalBus):
    """Redis pub/sub between app nodes.

    A node's own events also come back through Redis, so every handler on every
    node sees each event once and in the order it was published.
    """

    CHANNEL = "tocsin:events"

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis

        self._redis = redis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    def publish(self, events: list[DomainEvent]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.publish(self.CHANNEL, event.model_dump_json())
        pipe.execute()

    def start(self) -> None:
        self._pubsub.subscribe(self.CHANNEL)
        self._thread = threading.Thread(target=self._run, name="tocsin-bus", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        self._ready.set()
        while not self._stopping.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.5)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("redis bus read failed; retrying")
                self._stopping.wait(1)
                continue
            if message and message.get("type") == "message":
                self._deliver(DomainEvent.model_validate_json(message["data"]))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=2)
        try:
            self._pubsub.close()
            self._redis.close()
        except Exception:
            pass


def make_bus(url: str | None) -> LocalBus:
    return RedisBus(url) if url else LocalBus()
