"""Dispatch tables: calls, incidents, units (vehicles and teams), assignments,
the incident timeline and attachments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.core.database import Base, utcnow

CALL_STATUSES = ("open", "linked", "closed")
INCIDENT_STATUSES = ("new", "dispatched", "en_route", "on_scene", "closed")
UNIT_STATUSES = ("available", "dispatched", "en_route", "on_scene", "unavailable")
ASSIGNMENT_STATUSES = ("dispatched", "en_route", "on_scene", "released", "cancelled")


class DispatchUnit(Base):
    """A patrol car, motorbike, foot patrol or specialised team, owned by a brigade."""

    __tablename__ = "dispatch_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sign: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    capabilities: Mapped[list[Any]] = mapped_column(JSON, default=list)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="available", index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    position_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_incidents.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CrewMember(Base):
    """A user riding in a unit; the crew receives the unit's assignments."""

    __tablename__ = "dispatch_crew"

    dispatch_unit_id: Mapped[int] = mapped_column(
        ForeignKey("dispatch_units.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


class Incident(Base):
    __tablename__ = "dispatch_incidents"
    __table_args__ = (Index("ix_dispatch_incidents_place", "lat", "lon"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    type_code: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    close_reason: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    en_route_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    on_scene_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)


class Call(Base):
    __tablename__ = "dispatch_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    caller_number: Mapped[str | None] = mapped_column(String(40))
    caller_lat: Mapped[float | None] = mapped_column(Float)
    caller_lon: Mapped[float | None] = mapped_column(Float)
    caller_accuracy_m: Mapped[float | None] = mapped_column(Float)
    location_source: Mapped[str | None] = mapped_column(String(20))
    location_raw: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    narrative: Mapped[str] = mapped_column(Text, default="")
    call_taker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    close_reason: Mapped[str | None] = mapped_column(String(200))  # closed without incident
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_incidents.id"),
                                                    index=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """One unit sent to one incident, from dispatch to release."""

    __tablename__ = "dispatch_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("dispatch_incidents.id"), index=True)
    dispatch_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispatch_units.id", ondelete="SET NULL"), index=True)
    call_sign: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="dispatched")
    end_reason: Mapped[str | None] = mapped_column(String(200))
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    travel_time_s: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    route: Mapped[list[Any] | None] = mapped_column(JSON)


class TimelineEntry(Base):
    """What happened to an incident, in order: the incident's full history."""

    __tablename__ = "dispatch_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("dispatch_incidents.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Attachment(Base):
    """A file attached to an incident; content lives under media/ by its SHA-256."""

    __tablename__ = "dispatch_attachments"
    __table_args__ = (UniqueConstraint("incident_id", "sha256", name="incident_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("dispatch_incidents.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
