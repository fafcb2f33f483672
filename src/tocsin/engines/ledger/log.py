"""A persistent, append-only RFC 9162 Merkle log.

Storage format (a directory owned by the log)
---------------------------------------------

``level-LL.bin`` (``LL`` = 00, 01, ...)
    The hashes of the complete subtrees of level ``LL``, back to back: the
    32 bytes at offset ``32*k`` are the hash of leaves ``[k*2^LL, (k+1)*2^LL)``.
    ``level-00.bin`` holds the leaf hashes.  A tree of ``n`` leaves has exactly
    ``n >> LL`` committed records in level ``LL``; files only ever grow.

``HEAD``
    Two 64-byte commit slots.  A slot is ``magic "TOCSLOG1" | seq u64 |
    size u64 | root 32 bytes | first 8 bytes of SHA-256 of the previous 56``.
    Commit number ``seq`` is written to slot ``seq % 2``, so the previous
    commit is never overwritten by the one being written.  On open the valid
    slot with the higher ``seq`` wins; a torn slot fails its checksum.

``LOCK``
    ``flock``-ed exclusively by the one writer process.

Why this format:

* Any complete subtree hash is one ``pread`` at a computed offset: no index
  lookup, no B-tree, O(1) per node.  A proof at 10^7 leaves is ~25-50 reads
  of 32 bytes, i.e. tens of microseconds.  Hashes of incomplete subtrees (the
  right edge of the tree) are recomputed from the O(log n) complete subtrees
  that tile them (see :mod:`.merkle`).
* Appending a batch is one sequential ``pwrite`` per level that gained nodes,
  one ``fdatasync`` per such file, then one 64-byte ``HEAD`` write and
  ``fdatasync``.  That is ~log2(batch) + 2 syncs per batch, independent of
  the log size, which is what makes >100k durable appends/s possible.
* Crash safety comes from ordering: level data is synced *before* the HEAD
  slot that commits it.  Anything beyond the committed size in a level file
  is garbage from an interrupted batch; it is truncated away on open (and
  would be overwritten in place anyway, since a record's offset is a function
  of its index).  The HEAD root is recomputed from the level files on open, so
  a damaged file is detected rather than served.
* Only O(log n) hashes are ever needed in memory: the leaves are never held.

Entries themselves are not stored: the log stores their leaf hashes.  Callers
keep the entries (in Tocsin: salted commitments) where they need them.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
import threading
from collections.abc import Sequence
from typing import Self

from . import merkle

__all__ = ["Log", "LogCorrupted", "LogLocked"]

_MAGIC = b"TOCSLOG1"
_SLOT = struct.Struct(">8sQQ32s8s")
_SLOT_SIZE = _SLOT.size  # 64
_H = merkle.HASH_SIZE
_sha256 = hashlib.sha256


class LogCorrupted(Exception):
    """The on-disk log does not match its committed HEAD."""


class LogLocked(Exception):
    """Another process holds the log open for writing."""


def _slot_bytes(seq: int, size: int, root: bytes) -> bytes:
    body = _SLOT.pack(_MAGIC, seq, size, root, b"\0" * 8)[:56]
    return body + _sha256(body).digest()[:8]


def _parse_slot(raw: bytes) -> tuple[int, int, bytes] | None:
    if len(raw) != _SLOT_SIZE:
        return None
    magic, seq, size, root, check = _SLOT.unpack(raw)
    if magic != _MAGIC or _sha256(raw[:56]).digest()[:8] != check:
        return None
    return seq, size, root


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Log:
    """Persistent Merkle log in directory ``path`` (created if missing).

    ``durable=False`` skips the ``fdatasync`` calls (for throwaway logs in
    tests); ordering and format are unchanged.  ``readonly=True`` opens an
    existing log without taking the writer lock; call :meth:`refresh` to see
    batches committed since by the writer.

    All methods are thread-safe; appends are serialised.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True,
                 readonly: bool = False) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        self.readonly = readonly
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}
        self._lock_fd: int | None = None
        # (seq, size, root) of the last commit, swapped as one tuple so that
        # readers never see a size with another commit's root.
        self._state: tuple[int, int, bytes] = (0, 0, merkle.EMPTY_ROOT)
        self._closed = False
        if readonly:
            if not os.path.isdir(self.path):
                raise FileNotFoundError(f"no log at {self.path}")
            self._head_fd = os.open(os.path.join(self.path, "HEAD"), os.O_RDONLY)
            self.refresh()
            return
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LogLocked(f"log {self.path} is open for writing elsewhere") from exc
            raise
        try:
            self._open_writable()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- opening

    def _level_path(self, level: int) -> str:
        return os.path.join(self.path, f"level-{level:02d}.bin")

    def _read_head(self) -> tuple[int, int, bytes] | None:
        raw = os.pread(self._head_fd, 2 * _SLOT_SIZE, 0)
        if not raw:
            return None
        slots = [_parse_slot(raw[i:i + _SLOT_SIZE]) for i in (0, _SLOT_SIZE)]
        valid = [s for s in slots if s is not None]
        if not valid:
            raise LogCorrupted(f"{self.path}/HEAD has no valid commit slot")
        return max(valid)

    def _open_writable(self) -> None:
        head_path = os.path.join(self.path, "HEAD")
        fresh = not os.path.exists(head_path)
        self._head_fd = os.open(head_path, os.O_RDWR | os.O_CREAT, 0o644)
        head = None if fresh else self._read_head()
        if head is None:
            # New log (or a crash before the very first commit): start empty.
            self._state = (0, 0, merkle.EMPTY_ROOT)
            os.pwrite(self._head_fd, _slot_bytes(0, 0, merkle.EMPTY_ROOT), 0)
            self._sync(self._head_fd)
            if self.durable:
                _fsync_dir(self.path)
        else:
            self._state = head
        size = self._state[1]
        # Discard whatever an interrupted batch left beyond the commit.
        for name in os.listdir(self.path):
            if not (name.startswith("level-") and name.endswith(".bin")):
                continue
            level = int(name[6:-4])
            want = (size >> level) * _H
            fd = self._fd(level, create=False)
            have = os.fstat(fd).st_size
            if have < want:
                raise LogCorrupted(
                    f"{name} holds {have} bytes, the committed size {size} needs {want}")
            if have > want:
                os.ftruncate(fd, want)
                self._sync(fd)
        for level in range(size.bit_length()):
            if (size >> level) and not os.path.exists(self._level_path(level)):
                raise LogCorrupted(f"level file {level} is missing for size {size}")
        self._check_root()

    def _check_root(self) -> None:
        _, size, root = self._state
        computed = merkle.tree_root(self._node, size)
        if computed != root:
            raise LogCorrupted(
                f"level files of {self.path} give root {computed.hex()} but HEAD committed "
                f"{root.hex()} at size {size}")

    def refresh(self) -> int:
        """Re-read the committed HEAD (read-only logs); returns the size."""
        head = self._read_head()
        if head is None:
            raise LogCorrupted(f"{self.path}/HEAD is empty")
        self._state = head
        return head[1]

    def _fd(self, level: int, *, create: bool) -> int:
        fd = self._fds.get(level)
        if fd is None:
            path = self._level_path(level)
            if self.readonly:
                flags = os.O_RDONLY
            else:
                flags = os.O_RDWR | (os.O_CREAT if create else 0)
            existed = os.path.exists(path)
            fd = os.open(path, flags, 0o644)
            if create and not existed and self.durable:
                _fsync_dir(self.path)
            self._fds[level] = fd
        return fd

    def _sync(self, fd: int) -> None:
        if self.durable:
            os.fdatasync(fd)

    # ------------------------------------------------------------------ reads

    def _node(self, level: int, index: int) -> bytes:
        data = os.pread(self._fd(level, create=False), _H, index * _H)
        if len(data) != _H:
            raise LogCorrupted(f"short read of node ({level}, {index})")
        return data

    @property
    def size(self) -> int:
        """Number of committed leaves."""
        return self._state[1]

    def __len__(self) -> int:
        return self._state[1]

    def _check_tree_size(self, size: int | None) -> int:
        committed = self._state[1]
        if size is None:
            return committed
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"tree size must be a non-negative int, got {size!r}")
        if size > committed:
            raise ValueError(f"tree size {size} is larger than the log ({committed} leaves)")
        return size

    def subtree_hash(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree over leaves ``[index*2^level, (index+1)*2^level)``."""
        size = self._state[1]
        if level < 0 or index < 0 or (index + 1) << level > size:
            raise ValueError(
                f"subtree ({level}, {index}) is not complete in a log of {size} leaves")
        return self._node(level, index)

    def leaf_hash(self, index: int) -> bytes:
        """``SHA-256(0x00 || entry)`` of leaf ``index``."""
        size = self._state[1]
        if not isinstance(index, int) or index < 0 or index >= size:
            raise ValueError(f"leaf index {index} out of range for log size {size}")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all committed leaves)."""
        _, committed_size, committed_root = self._state
        if size is None or size == committed_size:
            return committed_root
        size = self._check_tree_size(size)
        return merkle.tree_root(self._node, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self._check_tree_size(size)
        return merkle.inclusion_path(self._node, index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """Consistency proof between tree sizes ``old`` and ``new`` (default: current)."""
        new = self._check_tree_size(new)
        if not isinstance(old, int) or old < 0:
            raise ValueError(f"old size must be a non-negative int, got {old!r}")
        return merkle.consistency_path(self._node, old, new)

    def check(self, chunk: int = 1 << 16) -> None:
        """Full audit of the stored tree: every interior node is recomputed
        from its two children, level by level, in O(n) time and O(chunk)
        memory.  Raises :class:`LogCorrupted` naming the first bad node.

        (Opening a log only checks the O(log n) nodes that make up the
        committed root.)
        """
        _, size, _ = self._state
        chunk -= chunk % 2
        for level in range(size.bit_length() - 1):
            parents = size >> (level + 1)
            for start in range(0, parents, chunk // 2):
                count = min(chunk // 2, parents - start)
                kids = os.pread(self._fd(level, create=False), 64 * count, 64 * start)
                have = os.pread(self._fd(level + 1, create=False), _H * count, _H * start)
                if len(kids) != 64 * count or len(have) != _H * count:
                    raise LogCorrupted(f"level {level} or {level + 1} is short")
                for j in range(count):
                    want = _sha256(b"\x01" + kids[64 * j:64 * j + 64]).digest()
                    if have[_H * j:_H * j + _H] != want:
                        raise LogCorrupted(
                            f"node ({level + 1}, {start + j}) does not hash its children")
        self._check_root()

    # ---------------------------------------------------------------- appends

    def append(self, entry: bytes) -> int:
        """Append one entry (a batch of one); returns its index."""
        return self.append_batch([entry])

    def append_batch(self, entries: Sequence[bytes]) -> int:
        """Append ``entries`` atomically and durably; returns the first new index.

        When this returns, the batch is on stable storage.  A crash before
        that leaves the log at the previous batch, with nothing half-written.
        """
        if self.readonly:
            raise PermissionError("log opened read-only")
        if isinstance(entries, (bytes, bytearray, str)):
            raise TypeError("append_batch takes a list of byte strings")
        for e in entries:
            if not isinstance(e, (bytes, bytearray, memoryview)):
                raise TypeError(f"log entries must be bytes, got {type(e).__name__}")
        with self._lock:
            if self._closed:
                raise ValueError("log is closed")
            seq, old, _ = self._state
            if not entries:
                return old
            sha = _sha256
            cur = [sha(b"\x00" + bytes(e)).digest() for e in entries]
            level, start = 0, old
            touched: list[int] = []
            while cur:
                fd = self._fd(level, create=True)
                os.pwrite(fd, b"".join(cur), start * _H)
                touched.append(fd)
                end = start + len(cur)
                pstart, pend = start >> 1, end >> 1
                if pend <= pstart:
                    break
                if start & 1:
                    buf = self._node(level, start - 1) + b"".join(cur)
                else:
                    buf = b"".join(cur)
                mv = memoryview(buf)
                cur = [sha(b"\x01" + mv[64 * i:64 * i + 64]).digest()
                       for i in range(pend - pstart)]
                level, start = level + 1, pstart
            for fd in touched:
                self._sync(fd)
            new = old + len(entries)
            root = merkle.tree_root(self._node, new)
            seq += 1
            os.pwrite(self._head_fd, _slot_bytes(seq, new, root), (seq % 2) * _SLOT_SIZE)
            self._sync(self._head_fd)
            self._state = (seq, new, root)
            return old

    # ---------------------------------------------------------------- closing

    def close(self) -> None:
        self._closed = True
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        head = getattr(self, "_head_fd", None)
        if head is not None:
            os.close(head)
            self._head_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Log({self.path!r}, size={self._state[1]})"
