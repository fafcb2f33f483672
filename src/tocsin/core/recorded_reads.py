"""Recorded reads: the event saying who saw what, stored before the reader sees it.

A sensitive read (a briefing, a case file, a search, a conversation's history)
reads in a read-only unit of work, so it never holds the write lock while it
reads, then hands its event to ``ReadRecorder.record``, which returns once the
event is committed. Reads arriving while a commit is on its way to disk share
the next one (``core.group_commit``): under load, many reads cost one
transaction and one fsync instead of queueing one by one for the write lock. If
the commit fails, the reader gets ``Unavailable`` and is shown nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tocsin.core.database import Database
from tocsin.core.errors import Unavailable
from tocsin.core.events import DomainEvent, emit_many, stored_row
from tocsin.core.group_commit import GroupCommit

_Read = tuple[list[DomainEvent], list[dict[str, Any]]]


def _store(s: Session, reads: list[_Read]) -> list[None]:
    emit_many(s, [e for events, _ in reads for e in events],
              [r for _, rows in reads for r in rows])
    return [None] * len(reads)


class ReadRecorder:
    def __init__(self, db: Database) -> None:
        self._commit: GroupCommit[_Read] = GroupCommit(db, _store, name="tocsin-reads",
                                                       max_batch=500)

    @property
    def commits(self) -> int:
        """Transactions that stored reads (for tests and benchmarks)."""
        return self._commit.batches

    @property
    def recorded(self) -> int:
        """Reads stored."""
        return self._commit.items

    @property
    def waiting(self) -> int:
        """Reads queued for the next commit."""
        return self._commit.waiting

    @property
    def writing(self) -> bool:
        """A commit of reads is on its way to disk."""
        return self._commit.writing

    def record(self, *events: DomainEvent) -> None:
        """Store ``events`` durably; returns once they are committed."""
        if not events:
            return
        # rows made by the reader: an event that cannot be stored fails its reader alone
        rows = [stored_row(e) for e in events]
        try:
            self._commit.submit((list(events), rows))
        except Exception as exc:
            raise Unavailable("the read could not be recorded, so nothing is shown; "
                              "try again", code="audit.not_recorded") from exc

    def close(self) -> None:
        self._commit.close()
