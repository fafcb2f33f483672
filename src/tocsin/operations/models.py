"""Operations tables.

Geometry is stored as GeoJSON (``geometry``) plus a bounding box (``min_lon`` ...)
so that it works the same on SQLite and PostgreSQL; shapely checks the shapes.
Rows that the replay needs (sectors, map points) are never rewritten: a redraw
retires the old row (``valid_to``) and adds a new one. Journal entries are
append-only; a decision is superseded by a new entry, never edited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.core.database import Base, utcnow

BIGID = BigInteger().with_variant(Integer, "sqlite")


class BBoxMixin:
    min_lon: Mapped[float | None] = mapped_column(Float)
    min_lat: Mapped[float | None] = mapped_column(Float)
    max_lon: Mapped[float | None] = mapped_column(Float)
    max_lat: Mapped[float | None] = mapped_column(Float)


class Operation(BBoxMixin, Base):
    __tablename__ = "op_operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    commander_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # the perimeter (GeoJSON Polygon); positions far outside it are refused
    perimeter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Staff(Base):
    """The commander's staff: users with a function in the operation."""

    __tablename__ = "op_staff"
    __table_args__ = (UniqueConstraint("operation_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    function: Mapped[str] = mapped_column(String(100))


class Participant(Base):
    """A core unit (of any region) taking part; it also holds a core ``Share``."""

    __tablename__ = "op_participants"
    __table_args__ = (UniqueConstraint("operation_id", "unit_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))


class Phase(Base):
    __tablename__ = "op_phases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Sector(BBoxMixin, Base):
    __tablename__ = "op_sectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    commander_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MapPoint(BBoxMixin, Base):
    """Checkpoint, command post, assembly area or restricted zone."""

    __tablename__ = "op_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OpUnit(Base):
    """A team or vehicle with a callsign, from a core unit, possibly in a sector."""

    __tablename__ = "op_units"
    # Named by hand: the naming convention would give both the same name,
    # which PostgreSQL refuses.
    __table_args__ = (UniqueConstraint("operation_id", "callsign", name="uq_op_units_callsign"),
                      UniqueConstraint("operation_id", "cot_uid", name="uq_op_units_cot_uid"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    callsign: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(30), default="team")
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    member_user_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("op_sectors.id"))
    status: Mapped[str] = mapped_column(String(30), default="available")
    cot_uid: Mapped[str | None] = mapped_column(String(120), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Position(Base):
    """A position report; written in batches by the position hub, never one by one."""

    __tablename__ = "op_positions"
    __table_args__ = (Index("ix_op_positions_op_at", "operation_id", "at"),
                      Index("ix_op_positions_unit_at", "op_unit_id", "at"))

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    operation_id: Mapped[int] = mapped_column(Integer)
    op_unit_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(10))


class JournalEntry(Base):
    """One line of the operation's single log: reports, orders, decisions, changes."""

    __tablename__ = "op_journal"
    __table_args__ = (Index("ix_op_journal_op_at", "operation_id", "at"),
                      UniqueConstraint("operation_id", "source_ref"))

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sector_id: Mapped[int | None] = mapped_column(Integer)
    op_unit_id: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    photo_type: Mapped[str | None] = mapped_column(String(20))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("op_journal.id"))
    signature: Mapped[str | None] = mapped_column(String(200))
    # the bus event an entry came from (dispatch incidents): recorded once across nodes
    source_ref: Mapped[str | None] = mapped_column(String(80))


class Order(Base):
    __tablename__ = "op_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    op_unit_id: Mapped[int | None] = mapped_column(ForeignKey("op_units.id"))
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("op_sectors.id"))
    text: Mapped[str] = mapped_column(Text)
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="issued")
    issued_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """A published alert, kept with the exact CAP 1.2 document that was sent."""

    __tablename__ = "op_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("op_operations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    headline: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    area: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    op_unit_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    photo_type: Mapped[str | None] = mapped_column(String(20))
    cap_xml: Mapped[str] = mapped_column(Text)
    sent_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
