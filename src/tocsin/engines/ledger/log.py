"""A persistent, append-only RFC 9162 Merkle log.

Storage format (a directory owned by the log)
---------------------------------------------

``tree.bin``
    Every complete-subtree hash, 32 bytes each, at a position computed from
    its coordinates: the node over leaves ``[k*2^l, (k+1)*2^l)`` (level ``l``,
    index ``k``) lives at record ``k*2^(l+1) + 2^l - 1``, i.e. byte offset 32
    times that.  This is the in-order ("flat tree") numbering: leaf ``i`` is
    record ``2i``, the node over leaves 0-1 is record 1, over 0-3 record 3, and
    so on.  Once ``n`` leaves are committed, every complete subtree sits in
    records ``[0, 2n-1)``; records of subtrees that are not complete yet are
    holes, filled in by the batch that completes them.  The file is
    ``32*(2n-1)`` bytes long for ``n`` leaves.

``HEAD``
    Two 64-byte commit slots.  A slot is ``magic "TOCSLOG1" | seq u64 |
    size u64 | root 32 bytes | first 8 bytes of SHA-256 of the previous 56``.
    Commit number ``seq`` is written to slot ``seq % 2``, so the previous
    commit is never overwritten by the one being written.  On open the valid
    slot with the higher ``seq`` wins; a torn slot fails its checksum.

``LOCK``
    ``flock``-ed exclusively by the one writer process.

Why this format:

* The hash of any complete subtree ``[k*2^l, (k+1)*2^l)`` is one ``pread`` at
  a computed offset: no index lookup, no B-tree.  A proof at 10^7 leaves is
  ~25-50 reads of 32 bytes, i.e. tens of microseconds.  Hashes of incomplete
  subtrees (the right edge of the tree) are recomputed from the O(log n)
  complete subtrees that tile them (see :mod:`.merkle`).
* All the nodes a batch of leaves ``[old, new)`` completes fall in records
  ``[2*old-1, 2*new-1)``, except at most one per level (a large subtree whose
  left part was already there).  So appending a batch is one sequential
  ``pwrite`` of that region (assembled with numpy strided assignment), a few
  32-byte writes, *one* ``fdatasync``, then one 64-byte ``HEAD`` write
  and ``fdatasync``: two syncs per batch whatever its size, which is what
  makes >100k durable appends/s possible.  (One file per level would need a
  sync per level, ~log2(batch) of them.)
* Crash safety comes from ordering: tree data is synced *before* the HEAD
  slot that commits it.  Whatever an interrupted batch wrote lies in records
  of subtrees that are not complete at the committed size; nothing reads
  them, the tail is truncated on open, and the batch that completes those
  subtrees later rewrites every one of them.  The committed root is
  recomputed from ``tree.bin`` on open (O(log n) reads), and :meth:`Log.check`
  audits every node, so a damaged file is detected rather than served.
* Only O(batch + log n) hashes are ever in memory: leaves are never held.

Entries themselves are not stored, only their leaf hashes.  Callers keep the
entries (in Tocsin: salted commitments) where they need them.
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

import numpy as np

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
        self._lock_fd: int | None = None
        self._head_fd: int | None = None
        self._tree_fd: int | None = None
        # (seq, size, root) of the last commit, swapped as one tuple so that
        # readers never see a size with another commit's root.
        self._state: tuple[int, int, bytes] = (0, 0, merkle.EMPTY_ROOT)
        self._closed = False
        if readonly:
            if not os.path.isdir(self.path):
                raise FileNotFoundError(f"no log at {self.path}")
            self._head_fd = os.open(os.path.join(self.path, "HEAD"), os.O_RDONLY)
            self._tree_fd = os.open(os.path.join(self.path, "tree.bin"), os.O_RDONLY)
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
        self._tree_fd = os.open(os.path.join(self.path, "tree.bin"), os.O_RDWR | os.O_CREAT,
                                0o644)
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
        want = _H * (2 * size - 1) if size else 0
        have = os.fstat(self._tree_fd).st_size
        if have < want:
            raise LogCorrupted(
                f"tree.bin holds {have} bytes, the committed size {size} needs {want}")
        if have > want:
            os.ftruncate(self._tree_fd, want)
            self._sync(self._tree_fd)
        self._check_root()

    def _check_root(self) -> None:
        _, size, root = self._state
        computed = merkle.tree_root(self._node, size)
        if computed != root:
            raise LogCorrupted(
                f"tree.bin of {self.path} gives root {computed.hex()} but HEAD committed "
                f"{root.hex()} at size {size}")

    def refresh(self) -> int:
        """Re-read the committed HEAD (read-only logs); returns the size."""
        head = self._read_head()
        if head is None:
            raise LogCorrupted(f"{self.path}/HEAD is empty")
        self._state = head
        return head[1]

    def _sync(self, fd: int) -> None:
        if self.durable:
            os.fdatasync(fd)

    # ------------------------------------------------------------------ reads

    def _node(self, level: int, index: int) -> bytes:
        pos = (index << (level + 1)) + (1 << level) - 1
        data = os.pread(self._tree_fd, _H, pos * _H)
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

    def check(self, chunk_leaves: int = 1 << 15) -> None:
        """Full audit: every stored interior node must hash its two children.

        Reads ``tree.bin`` in aligned chunks of ``chunk_leaves`` leaves (a
        power of two), so it runs in O(n) time and O(chunk) memory.  Raises
        :class:`LogCorrupted` naming the first bad node.  (Opening a log only
        checks the O(log n) nodes that make up the committed root.)
        """
        _, size, _ = self._state
        if chunk_leaves < 2 or chunk_leaves & (chunk_leaves - 1):
            raise ValueError("chunk_leaves must be a power of two >= 2")
        c = chunk_leaves.bit_length() - 1
        sha = _sha256

        def bad(level: int, index: int) -> LogCorrupted:
            return LogCorrupted(f"node ({level}, {index}) does not hash its children")

        full = size >> c  # chunks lying wholly inside the tree
        for j in range(full):
            base = 2 * (j << c)  # record of the chunk's first leaf
            raw = os.pread(self._tree_fd, _H * (2 * chunk_leaves - 1), _H * base)
            if len(raw) != _H * (2 * chunk_leaves - 1):
                raise LogCorrupted("tree.bin is short")
            for level in range(1, c + 1):
                half = 1 << (level - 1)
                for k in range(chunk_leaves >> level):
                    p = (k << (level + 1)) + (1 << level) - 1
                    left, right = p - half, p + half
                    want = sha(b"\x01" + raw[_H * left:_H * left + _H]
                               + raw[_H * right:_H * right + _H]).digest()
                    if raw[_H * p:_H * p + _H] != want:
                        raise bad(level, (j << (c - level)) + k)
        # nodes above the chunk level, and those of the last partial chunk
        for level in range(1, size.bit_length()):
            first = 0 if level > c else (full << c) >> level
            for k in range(first, size >> level):
                if self._node(level, k) != sha(b"\x01" + self._node(level - 1, 2 * k)
                                               + self._node(level - 1, 2 * k + 1)).digest():
                    raise bad(level, k)
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
            new = old + len(entries)
            fd = self._tree_fd
            sha = _sha256
            lo = 2 * old - 1 if old else 0  # first record the batch can fill
            region = np.zeros((2 * new - 1 - lo, _H), dtype=np.uint8)
            stragglers: list[tuple[int, bytes]] = []
            cur = b"".join([sha(b"\x00" + bytes(e)).digest() for e in entries])
            level, start = 0, old  # cur holds the new nodes (level, start...)
            while cur:
                count = len(cur) // _H
                pos = (start << (level + 1)) + (1 << level) - 1
                step = 1 << (level + 1)
                nodes = np.frombuffer(cur, dtype=np.uint8).reshape(count, _H)
                if pos < lo:  # at most the first node of a level lies before lo
                    stragglers.append((pos, cur[:_H]))
                    nodes, pos, count = nodes[1:], pos + step, count - 1
                if count:
                    region[pos - lo:pos - lo + step * (count - 1) + 1:step] = nodes
                end = start + len(cur) // _H
                pstart, pend = start >> 1, end >> 1
                if pend <= pstart:
                    break
                if start & 1:
                    buf = self._node(level, start - 1) + cur
                else:
                    buf = cur
                mv = memoryview(buf)
                cur = b"".join([sha(b"\x01" + mv[64 * i:64 * i + 64]).digest()
                                for i in range(pend - pstart)])
                level, start = level + 1, pstart
            os.pwrite(fd, region.data, _H * lo)
            for pos, h in stragglers:
                os.pwrite(fd, h, _H * pos)
            self._sync(fd)
            root = merkle.tree_root(self._node, new)
            seq += 1
            os.pwrite(self._head_fd, _slot_bytes(seq, new, root), (seq % 2) * _SLOT_SIZE)
            self._sync(self._head_fd)
            self._state = (seq, new, root)
            return old

    # ---------------------------------------------------------------- closing

    def close(self) -> None:
        self._closed = True
        for name in ("_tree_fd", "_head_fd", "_lock_fd"):  # closing LOCK releases the flock
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Log({self.path!r}, size={self._state[1]})"
