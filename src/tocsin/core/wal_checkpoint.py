"""SQLite WAL checkpoints off the request path.

By default SQLite checkpoints inside a commit: the writer whose commit takes the
write-ahead log past 1,000 pages also copies those pages into the database file
and fsyncs it (``synchronous=FULL``) before its commit returns. On a large file
those are scattered writes, so one write in a few dozen waits for them; that
is the tail of an insert's latency and of a recorded read's. Here a thread of
the process runs a PASSIVE checkpoint every ``interval`` seconds instead:
passive, so it never blocks a reader or a writer and copies only what no
reader still needs. Request connections keep SQLite's own checkpoint at a
much larger size as a fallback, so the log still stays bounded if this thread
falls behind or dies. Durability is unchanged: a commit is durable once its
log frames are synced, whether or not they have been checkpointed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

log = logging.getLogger(__name__)

# Every 2 s: on the benchmark machine (bench/bench_cases.py inserts) commits' p99 fell from
# 7-15 ms (SQLite's own checkpoints) to 5-7 ms; every 0.2 s did worse (more device flushes
# beside the commits' own), every 5 s no better (larger bursts).
INTERVAL_SECONDS = 2.0
# Request connections checkpoint themselves only past this many log pages (~64 MiB at
# 4 KiB a page): the fallback, never reached while the background checkpoints keep up.
FALLBACK_PAGES = 16_000


def configure_connection(dbapi_conn: Any) -> None:
    """Set on every request connection: SQLite's own checkpoint only as a fallback."""
    dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")


class WalCheckpointer:
    """One daemon thread and one connection of its own, per database file."""

    def __init__(self, path: str, interval: float = INTERVAL_SECONDS):
        self.path = path
        self.interval = interval
        self.runs = 0  # completed checkpoint calls (busy or not): for tests and diagnostics
        self.pages_copied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tocsin-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, pages in the log, pages copied to the file)."""
        busy, in_log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.runs += 1
        if copied > 0:
            self.pages_copied += copied
        return busy, in_log, copied

    def _loop(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if conn is None:
                        # mode=rw: never create the file (the engine does, in WAL mode)
                        conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True,
                                               timeout=1, isolation_level=None)
                        conn.execute("PRAGMA synchronous=FULL")
                        conn.execute("PRAGMA busy_timeout=1000")
                    self.checkpoint(conn)
                except sqlite3.Error as exc:
                    # another process's checkpoint holds the lock, or the file is not there
                    # yet: the next tick tries again, and the fallback bounds the log
                    log.debug("wal checkpoint skipped: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
