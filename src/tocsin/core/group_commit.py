"""Group commit: concurrent writes of one kind share one database transaction
(the messenger's sends, the recorded reads of ``core.recorded_reads``).

Each request hands its write to ``GroupCommit.submit`` and blocks until it is
committed. One thread takes every write that arrived while the previous
transaction was committing and applies them together: one write lock taken, one
commit (one fsync), instead of one per request. On SQLite this also stops the
requests from polling each other's write lock (its busy handler sleeps up to
100 ms between tries, whoever frees the lock).

``apply(session, items)`` gets the whole batch inside the transaction and
returns one outcome per item: a value, or an exception for an item it refused
*without writing anything for it*. Anything ``apply`` raises aborts the batch,
which is then retried one item per transaction, so one bad write fails alone.
A write is acknowledged only after its commit; if the commit succeeded and only
publishing the events failed, the writes stand and are acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from tocsin.core.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, db: Database, apply: Callable[[Session, list[T]], list[Any]], *,
                 name: str, max_batch: int = 256,
                 idle: Callable[[], None] | None = None, idle_every: float = 1.0):
        self.db = db
        self.apply = apply
        self.name = name
        self.max_batch = max_batch
        self.idle = idle  # other writes of this module, run by the same thread (no contention)
        self.idle_every = idle_every
        self._items: list[tuple[T, Future]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._writing = False
        self.batches = 0
        self.items = 0

    @property
    def waiting(self) -> int:
        """Writes queued for the next transaction."""
        with self._cond:
            return len(self._items)

    @property
    def writing(self) -> bool:
        """A transaction is being applied and committed."""
        return self._writing

    def start(self) -> None:
        """Start the thread now (it also starts on the first write)."""
        with self._cond:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def submit(self, item: T) -> Any:
        """Apply ``item`` in the next group transaction; its outcome once committed."""
        if threading.current_thread() is self._thread:  # a bus listener of our own commit
            return self._run_alone(item)
        fut: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"{self.name} is closed")
            self._items.append((item, fut))
            self._start()
            self._cond.notify()
        return fut.result()

    def _loop(self) -> None:
        last_idle = time.monotonic()
        while True:
            with self._cond:
                if not self._items and not self._stopping:
                    self._cond.wait(self.idle_every if self.idle else None)
                if not self._items and self._stopping:
                    break
                batch = self._items[:self.max_batch]
                del self._items[:self.max_batch]
                self._writing = bool(batch)
            if batch:
                try:
                    self._commit(batch)
                except BaseException as exc:  # never leave a request waiting forever
                    log.exception("%s: batch failed", self.name)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                finally:
                    self._writing = False
            if self.idle is not None and time.monotonic() - last_idle >= self.idle_every:
                last_idle = time.monotonic()
                try:
                    self.idle()
                except Exception:
                    log.exception("%s: background write failed", self.name)
        if self.idle is not None:  # closing: the last background write
            try:
                self.idle()
            except Exception:
                log.exception("%s: background write failed", self.name)

    def _commit(self, batch: list[tuple[T, Future]]) -> None:
        items = [i for i, _ in batch]
        committed = False
        try:
            with self.db.session() as s:
                def _committed(_s: Session) -> None:
                    nonlocal committed
                    committed = True

                sa_event.listen(s, "after_commit", _committed)
                outcomes = self.apply(s, items)
        except Exception as exc:
            if not committed:
                if len(batch) > 1:  # find the bad write: each alone in its transaction
                    for one in batch:
                        self._commit([one])
                    return
                batch[0][1].set_exception(exc)
                return
            # Committed; only publishing failed. The writes stand: acknowledge them.
            log.exception("%s: events committed but not published", self.name)
        self.batches += 1
        self.items += len(batch)
        for (_, fut), outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)

    def _run_alone(self, item: T) -> Any:
        with self.db.session() as s:
            outcome = self.apply(s, [item])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
