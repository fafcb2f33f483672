"""Recorded reads: each reader returns only once its event is stored; readers that
arrive while a commit is on disk share the next one; a failed commit fails every
reader of its batch and leaves the recorder usable."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from sqlalchemy import func, select, text

from tocsin.core.errors import Unavailable
from tocsin.core.events import DomainEvent, EventRecord


def _read(i: int) -> DomainEvent:
    return DomainEvent(type="test.record.read", actor_id=1, record_kind="test",
                       record_id=str(i), payload={"i": i})


def _until(cond, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def _write_lock_held(runtime):
    """Another connection holds the write lock on ``events`` until the block ends."""
    conn = runtime.db.engine.connect()
    tx = conn.begin()  # BEGIN IMMEDIATE on SQLite
    if not runtime.db.is_sqlite:
        conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
    else:
        conn.exec_driver_sql("SELECT 1")
    try:
        yield
    finally:
        tx.rollback()
        conn.close()


def _stored(runtime) -> list[str]:
    with runtime.db.read() as s:
        return sorted(s.scalars(select(EventRecord.record_id)
                                .where(EventRecord.type == "test.record.read")))


def _run(target, *args) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target(*args)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    return t, errors


def test_readers_arriving_during_a_commit_share_the_next_one(runtime):
    rec = runtime.reads
    with _write_lock_held(runtime):
        first, errors = _run(rec.record, _read(0))
        _until(lambda: rec.writing and rec.waiting == 0, "the first reader to lead")
        others = [_run(rec.record, _read(i)) for i in range(1, 10)]
        _until(lambda: rec.waiting == 9, "nine readers to queue behind the commit")
        assert _stored(runtime) == []  # nobody returned: nothing is stored yet
        assert first.is_alive() and all(t.is_alive() for t, _ in others)
    for t, errs in [(first, errors), *others]:
        t.join(10)
        assert not errs
    assert _stored(runtime) == sorted(str(i) for i in range(10))
    assert (rec.commits, rec.recorded) == (2, 10)  # the first alone, then the nine together


def test_a_reader_alone_is_stored_before_it_returns(runtime):
    runtime.reads.record(_read(1), _read(2))
    assert _stored(runtime) == ["1", "2"]
    assert runtime.reads.commits == 1


def test_a_failed_commit_fails_its_readers_and_the_next_ones_are_stored(runtime):
    with runtime.db.session() as s:
        s.execute(text("ALTER TABLE events RENAME TO events_away"))
    with pytest.raises(Unavailable) as exc:
        runtime.reads.record(_read(1))
    assert exc.value.code == "audit.not_recorded"
    assert exc.value.status == 503
    with runtime.db.session() as s:
        s.execute(text("ALTER TABLE events_away RENAME TO events"))
    assert _stored(runtime) == []
    runtime.reads.record(_read(2))  # not stuck: the failed leader handed over
    assert _stored(runtime) == ["2"]


def test_an_event_that_cannot_be_stored_fails_its_reader_alone(runtime):
    with pytest.raises(Exception, match="serial"):
        runtime.reads.record(DomainEvent(type="test.record.read", payload={"x": object()}))
    assert runtime.reads.waiting == 0
    runtime.reads.record(_read(3))
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 1
