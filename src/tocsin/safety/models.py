"""Field-safety tables: persons (clusters of identity records), merges and their
suggestions, places on a spatial grid, risk flags, field operations.

A *person* is a cluster of *identity records*, each from one source. A merge
moves the records of one person under another and leaves a ``SafetyMerge`` row
naming exactly what moved, so it can be undone. Flags and operation links keep
pointing at the person they were made on; reads follow ``merged_into_id`` to the
person that stands for it now, so undoing a merge needs to move nothing else.

Places carry an integer grid ``cell`` (see ``tocsin.safety.geo``), indexed with the
point, so a briefing for a point and radius reads a handful of cells, never a table scan.
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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.core.database import Base, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class SafetyPerson(Base):
    __tablename__ = "safety_persons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | merged
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("safety_persons.id"),
                                                       index=True)
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class SafetyIdentityRecord(Base):
    """One source's view of a person: what it says, who entered it, when."""

    __tablename__ = "safety_identity_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    source: Mapped[str] = mapped_column(String(40))
    source_ref: Mapped[str | None] = mapped_column(String(120))
    given_names: Mapped[str] = mapped_column(String(400))
    surname: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[str | None] = mapped_column(String(10))  # ISO, may be partial: 1981-03
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300))  # as written
    id_number: Mapped[str | None] = mapped_column(String(40))  # canonical: A-Z and 0-9
    birth_name: Mapped[str | None] = mapped_column(String(200))  # maiden name
    usage_name: Mapped[str | None] = mapped_column(String(200))  # married or usage name
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    # Handed out in commit order (``tocsin.safety.matching.stamp_records``), unlike ``id``:
    # what the person directory of every node reads to catch up, so none is ever skipped.
    index_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SafetyCounter(Base):
    """A named counter; taking values locks its row until the transaction ends."""

    __tablename__ = "safety_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class SafetyMerge(Base):
    __tablename__ = "safety_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target_person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    source_person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    record_ids: Mapped[list[Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500))
    suggestion_id: Mapped[int | None] = mapped_column(Integer)
    actor_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by: Mapped[int | None] = mapped_column(Integer)


class SafetyMergeSuggestion(Base):
    __tablename__ = "safety_merge_suggestions"
    __table_args__ = (UniqueConstraint("person_a_id", "person_b_id", name="uq_safety_sugg_pair"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_a_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    person_b_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    explanation: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # accepted | rejected
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_by: Mapped[int | None] = mapped_column(Integer)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SafetyPlace(Base):
    __tablename__ = "safety_places"
    # The places near a point are found from this index alone: cells, then the bounding
    # box and a distance on lat/lon, with no row read but those kept (migration safety_0004).
    __table_args__ = (Index("ix_safety_places_cell_point", "cell", "lat", "lon"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str | None] = mapped_column(String(300))
    address_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    cell: Mapped[int] = mapped_column(BigInteger)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SafetyRiskFlag(Base):
    __tablename__ = "safety_risk_flags"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    place_id: Mapped[int | None] = mapped_column(ForeignKey("safety_places.id"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(Integer)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    # pending (awaiting review, shown as unconfirmed) | active | rejected | withdrawn
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    reviewed_by: Mapped[int | None] = mapped_column(Integer)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    review_note: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)


class SafetyOperation(Base):
    __tablename__ = "safety_operations"
    # What a briefing reads at its places: counts (by who may see them, with force,
    # with injury) and the most recent, from the index alone (migration safety_0004).
    __table_args__ = (Index("ix_safety_operations_briefing", "place_id", "started_at", "id",
                            "unit_id", "force_used", "injury"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("safety_places.id"))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    nature: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(80))
    summary: Mapped[str | None] = mapped_column(Text)
    force_used: Mapped[bool] = mapped_column(Boolean, default=False)
    injury: Mapped[bool] = mapped_column(Boolean, default=False)
    units: Mapped[list[Any]] = mapped_column(JSON)  # unit codes that took part
    client_ref: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SafetyOperationPerson(Base):
    __tablename__ = "safety_operation_persons"

    operation_id: Mapped[int] = mapped_column(ForeignKey("safety_operations.id"),
                                              primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), primary_key=True,
                                           index=True)
    role: Mapped[str] = mapped_column(String(20))
