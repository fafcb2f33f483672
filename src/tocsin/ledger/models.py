"""Ledger tables: which event went into which leaf, and the signed checkpoints.

The Merkle tree itself lives in the log directory (``engines.ledger.Log``); the
database keeps what an auditor needs to tie a leaf to an event: the salted
commitment (never the content) and every checkpoint with its cosignatures.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.core.database import Base, utcnow


class LedgerEntry(Base):
    """Leaf ``index`` of the log is ``commitment``, the commitment of event ``event_id``."""

    __tablename__ = "ledger_entries"

    index: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                       primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerCheckpoint(Base):
    """A checkpoint signed by the log, with the witness cosignatures it gathered."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)  # signed note + cosignature lines
    cosigned_by: Mapped[str] = mapped_column(String(400), default="")  # witness names, spaced
    quorum_met: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WitnessProgress(Base):
    """The size each witness last cosigned, so the next request proves from there."""

    __tablename__ = "ledger_witness_progress"

    witness: Mapped[str] = mapped_column(String(120), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(String(400))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
