"""Storage: SQLAlchemy 2 engine and sessions, SQLite (WAL) or PostgreSQL.

A unit of work is ``with db.session() as s: ...``: it commits on success and
rolls back on any exception, so a rejected request changes nothing. Domain
events emitted inside it are published only after the commit succeeds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from tocsin.core.wal_checkpoint import WalCheckpointer, configure_connection

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a write acknowledged to a client survives a killed process and a power cut.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    configure_connection(dbapi_conn)


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL, or None (another database, or in memory)."""
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[1]
    return path if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=8,
            max_overflow=16,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take the write lock at BEGIN so two writers queue instead of deadlocking
        # on a read->write upgrade (SQLITE_BUSY_SNAPSHOT).
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _r: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get("tocsin_read_only")
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """One engine and session factory; hooks run after each successful commit. On a
    SQLite file, a thread checkpoints the write-ahead log (``wal_checkpoint``)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        path = sqlite_file(url)
        self.checkpointer = WalCheckpointer(path) if path else None
        if self.checkpointer is not None:  # a database dropped without dispose() stops it too
            weakref.finalize(self, self.checkpointer.stop)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit_hooks: list[Callable[[Session, list[Any]], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        s = self._factory()
        try:
            yield s
            s.commit()
            pending = s.info.pop("pending_events", [])
            if pending:
                for hook in self.after_commit_hooks:
                    hook(s, pending)
        except BaseException:
            s.rollback()
            s.info.pop("pending_events", None)
            raise
        finally:
            s.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work; loaded objects stay readable after it ends."""
        s = self._factory()
        try:
            s.connection(execution_options={"tocsin_read_only": True})
            yield s
        finally:
            s.close()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
