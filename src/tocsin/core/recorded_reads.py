"""Recorded reads: the event saying who saw what, stored before the reader sees it.

A sensitive read (a briefing, a case file, a search) reads in a read-only unit of
work, so it never holds the write lock while it reads, and then hands its event
to ``ReadRecorder.record``, which returns once the event is committed. Readers
that arrive while a commit is on its way to disk share the next one (group
commit): under load, many reads cost one transaction and one fsync instead of
queueing one by one behind the write lock. If the commit fails, every reader of
that batch gets ``Unavailable`` and shows nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from tocsin.core.database import Database
from tocsin.core.errors import Unavailable
from tocsin.core.events import DomainEvent, emit_many, stored_row

log = logging.getLogger(__name__)

MAX_BATCH = 500  # events per transaction; more wait for the next one


@dataclass
class _Ticket:
    events: list[DomainEvent]
    rows: list[dict[str, Any]]  # made by the reader: a bad event fails its reader alone
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class ReadRecorder:
    """Leader/follower group commit of read events, without a thread of its own.

    The first reader to find no commit in progress becomes the leader: it takes
    every queued ticket (its own included), commits them in one transaction and
    wakes the others. A reader whose ticket a leader took waits for that commit;
    one that arrived too late for it leads the next."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._writing = False
        self.commits = 0  # transactions written, for tests and benchmarks
        self.recorded = 0  # events stored

    @property
    def writing(self) -> bool:
        """A commit is on its way to disk."""
        return self._writing

    @property
    def waiting(self) -> int:
        """Readers queued for the next commit."""
        with self._cond:
            return len(self._queue)

    def record(self, *events: DomainEvent) -> None:
        """Store ``events`` durably; returns once they are committed."""
        if not events:
            return
        ticket = _Ticket(list(events), [stored_row(e) for e in events])
        with self._cond:
            self._queue.append(ticket)
        while True:
            with self._cond:
                while self._writing and not ticket.done:
                    self._cond.wait()
                if ticket.done:
                    break
                self._writing = True  # nobody is writing and ours is still queued: lead
                batch, size = [], 0
                while self._queue and (not batch or size + len(self._queue[0].events)
                                       <= MAX_BATCH):
                    batch.append(self._queue.pop(0))
                    size += len(batch[-1].events)
            self._commit(batch)
        if ticket.error is not None:
            raise Unavailable("the read could not be recorded, so nothing is shown; "
                              "try again", code="audit.not_recorded") from ticket.error

    def _commit(self, batch: list[_Ticket]) -> None:
        error: BaseException | None = RuntimeError("the recording was interrupted")
        try:
            with self.db.session() as s:
                emit_many(s, [e for t in batch for e in t.events],
                          [r for t in batch for r in t.rows])
            error = None
        except Exception as exc:  # every reader of the batch is told; none is shown
            log.warning("recorded reads: a commit of %d reads failed (%s)", len(batch),
                        type(exc).__name__)
            error = exc
        finally:
            with self._cond:
                for t in batch:
                    t.done, t.error = True, error
                if error is None:
                    self.commits += 1
                    self.recorded += sum(len(t.events) for t in batch)
                self._writing = False
                self._cond.notify_all()
