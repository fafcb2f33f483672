"""The persistent Log: agreement with the in-memory functions, durability, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.engines.ledger import merkle as M
from tocsin.engines.ledger.log import Log, LogCorrupted, LogLocked

from . import crash_child

CHILD = str(Path(crash_child.__file__))
SRC = str(Path(M.__file__).resolve().parents[3])


def test_empty_log(tmp_path: Path) -> None:
    with Log(tmp_path / "log") as log:
        assert log.size == 0
        assert log.root() == M.EMPTY_ROOT
        assert log.consistency_proof(0) == []
        with pytest.raises(ValueError, match="out of range"):
            log.inclusion_proof(0)
        with pytest.raises(ValueError, match="out of range"):
            log.leaf_hash(0)


def test_append_returns_first_index_and_reopens(tmp_path: Path) -> None:
    entries = [b"e%d" % i for i in range(100)]
    with Log(tmp_path / "log") as log:
        assert log.append_batch(entries[:10]) == 0
        assert log.append_batch(entries[10:11]) == 10
        assert log.append(entries[11]) == 11
        assert log.append_batch([]) == 12
        assert log.append_batch(entries[12:]) == 12
        root = log.root()
    with Log(tmp_path / "log") as log:
        assert log.size == 100
        assert log.root() == root == M.root_hash(entries)
        assert log.leaf_hash(42) == M.leaf_hash(entries[42])
        assert log.subtree_hash(3, 2) == M.root_hash(entries[16:24])
        with pytest.raises(ValueError):
            log.subtree_hash(3, 12)  # [96, 104) is not complete in 100 leaves


def test_storage_format_is_the_documented_in_order_layout(tmp_path: Path) -> None:
    entries = [b"leaf %d" % i for i in range(13)]
    with Log(tmp_path / "log") as log:
        log.append_batch(entries[:5])
        log.append_batch(entries[5:])
    raw = (tmp_path / "log" / "tree.bin").read_bytes()
    assert len(raw) == 32 * (2 * 13 - 1)
    for level in range(4):
        for k in range(13 >> level):
            record = k * 2 ** (level + 1) + 2 ** level - 1
            want = M.root_hash(entries[k << level:(k + 1) << level])
            assert raw[32 * record:32 * record + 32] == want, (level, k)


def test_bad_arguments(tmp_path: Path) -> None:
    with Log(tmp_path / "log") as log:
        log.append_batch([b"a", b"b", b"c"])
        with pytest.raises(TypeError):
            log.append_batch(b"abc")
        with pytest.raises(TypeError):
            log.append_batch(["text"])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="larger than the log"):
            log.root(4)
        with pytest.raises(ValueError, match="larger than the log"):
            log.inclusion_proof(0, 4)
        with pytest.raises(ValueError, match="out of range"):
            log.inclusion_proof(3, 3)
        with pytest.raises(ValueError, match="larger than new size"):
            log.consistency_proof(3, 2)
        assert log.size == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.binary(max_size=8), max_size=40), min_size=1, max_size=8), st.data())
def test_log_agrees_with_in_memory_functions(tmp_path_factory, batches, data) -> None:
    path = tmp_path_factory.mktemp("log")
    entries: list[bytes] = []
    sizes = [0]
    with Log(path, durable=False) as log:
        for batch in batches:
            assert log.append_batch(batch) == len(entries)
            entries += batch
            sizes.append(len(entries))
            assert log.size == len(entries)
            assert log.root() == M.root_hash(entries)
    with Log(path, durable=False) as log:  # and after reopening
        n = len(entries)
        for s in sizes:
            assert log.root(s) == M.root_hash(entries[:s])
        if n:
            i = data.draw(st.integers(0, n - 1))
            s = data.draw(st.integers(i + 1, n))
            assert log.inclusion_proof(i, s) == M.inclusion_proof(entries[:s], i)
            assert M.verify_inclusion(entries[i], i, s, log.inclusion_proof(i, s), log.root(s))
        old = data.draw(st.integers(0, n))
        new = data.draw(st.integers(old, n))
        proof = log.consistency_proof(old, new)
        assert proof == M.consistency_proof(entries[:new], old)
        assert M.verify_consistency(old, new, log.root(old), log.root(new), proof)


def test_proofs_at_power_of_two_boundaries(tmp_path: Path) -> None:
    entries = [b"%d" % i for i in range(1100)]
    with Log(tmp_path / "log", durable=False) as log:
        log.append_batch(entries[:1024])
        log.append_batch(entries[1024:])
        for s in (1, 2, 511, 512, 513, 1023, 1024, 1025, 1100):
            for i in {0, s // 2, s - 1}:
                assert log.inclusion_proof(i, s) == M.inclusion_proof(entries[:s], i)
        for old, new in ((512, 1024), (513, 1024), (1024, 1100), (1, 1100), (1099, 1100)):
            assert log.consistency_proof(old, new) == M.consistency_proof(entries[:new], old)


def test_single_writer_lock_and_readonly_view(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with Log(path) as log:
        log.append_batch([b"a", b"b"])
        with pytest.raises(LogLocked):
            Log(path)
        reader = Log(path, readonly=True)
        assert reader.size == 2
        log.append_batch([b"c"])
        assert reader.size == 2
        assert reader.refresh() == 3
        assert reader.root() == M.root_hash([b"a", b"b", b"c"])
        with pytest.raises(PermissionError):
            reader.append_batch([b"x"])
        reader.close()
    Log(path).close()  # lock released on close


def test_concurrent_appends_from_threads(tmp_path: Path) -> None:
    with Log(tmp_path / "log") as log:
        def worker(t: int) -> None:
            for k in range(20):
                log.append_batch([b"%d-%d-%d" % (t, k, j) for j in range(7)])

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert log.size == 4 * 20 * 7
        assert log.root() == M.tree_root(log._node, log.size)
        log.check()


def test_garbage_after_commit_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "log"
    entries = [b"%d" % i for i in range(10)]
    with Log(path) as log:
        log.append_batch(entries)
    # an interrupted batch: records written beyond the commit, HEAD untouched
    with open(path / "tree.bin", "ab") as fh:
        fh.write(os.urandom(32 * 9))
    with Log(path) as log:
        assert log.size == 10
        assert (path / "tree.bin").stat().st_size == 32 * (2 * 10 - 1)
        log.append_batch([b"x"])
        assert log.root() == M.root_hash([*entries, b"x"])
        log.check()


def test_garbage_in_holes_is_never_read(tmp_path: Path) -> None:
    path = tmp_path / "log"
    entries = [b"%d" % i for i in range(11)]
    with Log(path) as log:
        log.append_batch(entries[:6])
    # records 7 (node over leaves 0-7) and 11 (leaves 4-7) are holes at size 6,
    # 11 being past the end of the file
    with open(path / "tree.bin", "r+b") as fh:
        for rec in (7, 11):
            fh.seek(32 * rec)
            fh.write(os.urandom(32))
    with Log(path) as log:
        assert log.root() == M.root_hash(entries[:6])
        log.append_batch(entries[6:])
        assert log.root() == M.root_hash(entries)
        log.check(chunk_leaves=2)


def test_torn_head_slot_falls_back_to_previous_commit(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with Log(path) as log:
        log.append_batch([b"a"])
        log.append_batch([b"b", b"c"])  # seq 2 -> slot 0
    raw = bytearray((path / "HEAD").read_bytes())
    raw[20] ^= 0xFF  # damage slot 0 (the latest commit)
    (path / "HEAD").write_bytes(bytes(raw))
    with Log(path) as log:
        assert log.size == 1
        assert log.root() == M.root_hash([b"a"])


@pytest.mark.parametrize("chunk", [2, 4, 1 << 15])
def test_damaged_node_is_detected(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "log"
    with Log(path) as log:
        log.append_batch([b"%d" % i for i in range(13)])
        log.check(chunk_leaves=chunk)
    good = (path / "tree.bin").read_bytes()

    def damage(record: int) -> None:
        raw = bytearray(good)
        raw[32 * record] ^= 1
        (path / "tree.bin").write_bytes(bytes(raw))

    damage(5)  # node (1, 1): not on the path of the root, so opening succeeds...
    with Log(path) as log, pytest.raises(LogCorrupted, match=r"node \(1, 1\)"):
        log.check(chunk_leaves=chunk)  # ...but the full audit finds it
    damage(18)  # leaf 9: only its parent (1, 4) tells
    with Log(path) as log, pytest.raises(LogCorrupted, match=r"node \(1, 4\)"):
        log.check(chunk_leaves=chunk)
    damage(7)  # node (3, 0): part of the committed root
    with pytest.raises(LogCorrupted, match="root"):
        Log(path)
    (path / "tree.bin").write_bytes(good[:32 * 20])  # truncated below the commit
    with pytest.raises(LogCorrupted, match="needs"):
        Log(path)


# --------------------------------------------------------------- crash tests


def _run_child(path: Path, *args: str, kill_after_lines: int | None = None) -> list[int]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, CHILD, str(path), *args], stdout=subprocess.PIPE,
                            text=True, env=env)
    reported: list[int] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        reported.append(int(line))
        if kill_after_lines is not None and len(reported) >= kill_after_lines:
            proc.send_signal(signal.SIGKILL)  # lands in the middle of a later batch
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return reported


def _check_recovered(path: Path, at_least: int) -> int:
    with Log(path) as log:
        n = log.size
        assert n >= at_least
        assert n in crash_child.sizes(n), "log stopped inside a batch"
        entries = [crash_child.entry(i) for i in range(n)]
        assert log.root() == M.root_hash(entries)
        if n:
            i = n // 3
            assert M.verify_inclusion(entries[i], i, n, log.inclusion_proof(i), log.root())
        # and it keeps working
        log.append_batch([crash_child.entry(i) for i in range(n, n + 5)])
        assert log.root() == M.root_hash(entries + [crash_child.entry(i) for i in range(n, n + 5)])
    return n


def test_sigkill_during_appends_leaves_last_committed_batch(tmp_path: Path) -> None:
    path = tmp_path / "log"
    reported = _run_child(path, "loop", kill_after_lines=25)
    _check_recovered(path, reported[-1])


@pytest.mark.parametrize("at_sync", [1, 2, 3, 6, 9, 24])
def test_sigkill_between_tree_write_and_commit(tmp_path: Path, at_sync: int) -> None:
    path = tmp_path / "log"
    # sync 1 creates HEAD; then each batch k syncs tree.bin (2k+2), then HEAD (2k+3)
    reported = _run_child(path, "kill-at-sync", str(at_sync))
    last = reported[-1] if reported else 0
    n = _check_recovered(path, last)
    if at_sync % 2 == 0:  # killed before the HEAD write: the batch is not committed
        assert n == last
    else:  # killed while syncing HEAD: the commit may or may not have reached it
        assert n in (last, crash_child.sizes(last + 1)[-1])


@pytest.mark.parametrize("at_head", [2, 3, 6])
def test_sigkill_with_torn_head_write(tmp_path: Path, at_head: int) -> None:
    path = tmp_path / "log"
    with Log(path):
        pass  # HEAD exists, so the child's first HEAD write is batch 0's commit
    reported = _run_child(path, "torn-head", str(at_head))
    n = _check_recovered(path, reported[-1] if reported else 0)
    assert n == (reported[-1] if reported else 0)
