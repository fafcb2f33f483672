"""Messenger tables (prefix ``msg_``).

Every Matrix event of a room (messages, state, edits, redactions, reactions) is a
row of ``msg_events``; its ``stream`` is the global order used for sync tokens and
live delivery, and ``depth`` the order inside the room. Writes to the stream are
serialised (see ``service.lock_stream``) so a reader never sees position N+1
committed while N is still pending.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.core.database import Base, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class Room(Base):
    """A conversation: direct, group, unit channel, bound channel or broadcast."""

    __tablename__ = "msg_rooms"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # direct|group|unit|bound|broadcast
    name: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(1000))
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    bound_kind: Mapped[str | None] = mapped_column(String(40))
    bound_id: Mapped[str | None] = mapped_column(String(64))
    post_roles: Mapped[list[Any] | None] = mapped_column(JSON)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_msg_rooms_bound", "bound_kind", "bound_id"),)


class RoomAudience(Base):
    """Dynamic membership: everyone whose unit lies in this unit's subtree is a member."""

    __tablename__ = "msg_room_audience"

    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"),
                                         primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    unit_path: Mapped[str] = mapped_column(String(400), index=True)


class Member(Base):
    """Explicit membership (direct, group, bound channels; invites and bans anywhere)."""

    __tablename__ = "msg_members"

    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    membership: Mapped[str] = mapped_column(String(10))  # join|invite|leave|ban
    stream: Mapped[int] = mapped_column(BigId)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    __tablename__ = "msg_events"

    stream: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(48), unique=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"))
    depth: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(100))
    state_key: Mapped[str | None] = mapped_column(String(255))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    session_id: Mapped[str | None] = mapped_column(String(32))
    txn_id: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin_ts: Mapped[int] = mapped_column(BigInteger)
    relates_to: Mapped[str | None] = mapped_column(String(48), index=True)
    rel_type: Mapped[str | None] = mapped_column(String(40))
    redacted_by: Mapped[str | None] = mapped_column(String(48))
    search_text: Mapped[str | None] = mapped_column(Text)
    core_event_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("room_id", "depth", name="uq_msg_events_room_depth"),
        UniqueConstraint("session_id", "txn_id", name="uq_msg_events_txn"),
        Index("ix_msg_events_room_stream", "room_id", "stream"),
    )


class ReceiptLog(Base):
    """Append-only log of read receipts (its ``seq`` is the receipt part of a sync token)."""

    __tablename__ = "msg_receipts"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    event_id: Mapped[str] = mapped_column(String(48))
    event_stream: Mapped[int] = mapped_column(BigId)
    receipt_type: Mapped[str] = mapped_column(String(40))
    ts: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_msg_receipts_room_user", "room_id", "user_id"),)


class Delivery(Base):
    """How far each recipient's devices have received a room (delivery state)."""

    __tablename__ = "msg_delivery"

    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    stream: Mapped[int] = mapped_column(BigId)


class RoomKey(Base):
    """A conversation's media key, wrapped (AES-GCM) by the master key."""

    __tablename__ = "msg_keys"

    scope: Mapped[str] = mapped_column(String(48), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Media(Base):
    __tablename__ = "msg_media"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(48))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    uploader_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    room_id: Mapped[str | None] = mapped_column(String(40))
    thumbnail_id: Mapped[str | None] = mapped_column(String(40))
    is_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)
    scene: Mapped[bool] = mapped_column(Boolean, default=False)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MediaRef(Base):
    """Media referenced by an event of a room: the room's members may download it."""

    __tablename__ = "msg_media_refs"

    media_id: Mapped[str] = mapped_column(ForeignKey("msg_media.id", ondelete="CASCADE"),
                                          primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id", ondelete="CASCADE"),
                                         primary_key=True)


class Upload(Base):
    """A resumable upload in progress (chunks kept encrypted until completion)."""

    __tablename__ = "msg_uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    room_id: Mapped[str | None] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    filename: Mapped[str | None] = mapped_column(String(255))
    scene: Mapped[bool] = mapped_column(Boolean, default=False)
    media_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alert(Base):
    """A broadcast alert (missing or wanted person...) and its acknowledgement target."""

    __tablename__ = "msg_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("msg_rooms.id"))
    event_id: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    audience_count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertAck(Base):
    __tablename__ = "msg_alert_acks"

    alert_id: Mapped[str] = mapped_column(ForeignKey("msg_alerts.id", ondelete="CASCADE"),
                                          primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MatrixToken(Base):
    """Opaque Matrix access token -> Tocsin device session (only its SHA-256 is kept)."""

    __tablename__ = "msg_matrix_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("device_sessions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
