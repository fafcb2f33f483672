"""The SQLite write-ahead log is checkpointed by a thread of its own, not by the commits of
requests: a commit that takes the log past SQLite's default 1,000 pages returns without
copying them, the thread copies them soon after, and nothing committed is lost."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from tocsin.core.database import Database, sqlite_file
from tocsin.core.wal_checkpoint import FALLBACK_PAGES, WalCheckpointer

ROW = "x" * 3000  # about one page a row


def _log_state(path: Path) -> tuple[int, int]:
    """(pages in the log, pages of it already in the file), asked of another connection."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        _busy, in_log, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return in_log, copied
    finally:
        con.close()


def _write(db: Database, rows: int, batch: int = 100) -> None:
    for start in range(0, rows, batch):
        with db.session() as s:
            s.execute(text("INSERT INTO t (body) VALUES (:b)"),
                      [{"b": f"{start + i}{ROW}"} for i in range(batch)])


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_commits_leave_the_log_to_the_background_thread(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        db.checkpointer.stop()  # hold the thread: what do commits alone do?
        with db.session() as s:
            s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == FALLBACK_PAGES
        _write(db, 1500)
        # the log holds every page written: no commit copied it into the file and restarted it
        frames = (path.with_name(path.name + "-wal").stat().st_size - 32) // (4096 + 24)
        assert frames > 1500

        worker = WalCheckpointer(str(path), interval=0.05)
        try:
            assert _wait(lambda: worker.pages_copied >= 1500)
        finally:
            worker.stop()
        in_log, copied = _log_state(path)
        assert copied == in_log  # all of it is in the database file now
        with db.read() as s:
            assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1500
    finally:
        db.dispose()
    con = sqlite3.connect(path)  # and in a fresh connection of another process's kind
    assert con.execute("SELECT count(*), min(id), max(id) FROM t").fetchone() == (1500, 1, 1500)
    con.close()


def test_the_thread_runs_while_the_database_is_open_and_stops_with_it(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    db = Database(f"sqlite:///{path}")
    worker = db.checkpointer
    with db.session() as s:
        s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
    _write(db, 300)
    assert _wait(lambda: worker.pages_copied >= 300)
    db.dispose()
    assert not worker._thread.is_alive()
    runs = worker.runs
    time.sleep(3 * worker.interval)
    assert worker.runs == runs


def test_a_missing_file_is_not_created(tmp_path: Path):
    path = tmp_path / "absent.sqlite3"
    worker = WalCheckpointer(str(path), interval=0.02)
    time.sleep(0.2)
    worker.stop()
    assert not path.exists()
    assert worker.runs == 0


def test_only_a_sqlite_file_has_a_log_to_checkpoint():
    assert sqlite_file("sqlite:////srv/tocsin/tocsin.sqlite3") == "/srv/tocsin/tocsin.sqlite3"
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql://tocsin@db/tocsin"):
        assert sqlite_file(url) is None
