"""RFC 9162 section 2.1 Merkle tree hashing, proofs and proof verification.

Hashing (RFC 9162 2.1.1, identical to RFC 6962):

* the hash of the empty tree is ``SHA-256(b"")``;
* a leaf hash is ``SHA-256(0x00 || entry)``;
* an interior node is ``SHA-256(0x01 || left || right)``, where the left
  subtree holds the largest power of two strictly smaller than the number of
  leaves.

Every subtree of that tree is *aligned*: it covers leaves ``[k*2^l, k*2^l + w)``
where ``w <= 2^l``.  A subtree with ``w == 2^l`` is *complete* and is named by
``(level l, index k)``.  The proof generators below are written against a
``node(level, index)`` callback that returns the hash of a complete subtree,
so the same code serves the in-memory functions of this module and the
persistent :class:`tocsin.engines.ledger.log.Log`, whose storage answers
``node(level, index)`` with one read.  A hash of an incomplete subtree is
recomputed from the O(log n) complete subtrees that tile it.

The public functions take the *raw entries* (not their hashes).  Structurally
invalid arguments (negative sizes, an index outside the tree, an old size
larger than the new one) raise :class:`ValueError`; a well-formed proof that
does not check out makes the ``verify_*`` functions return ``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

NodeFn = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``."""
    return _sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


# ---------------------------------------------------------------------------
# Generic algorithms over a node(level, index) oracle of complete subtrees
# ---------------------------------------------------------------------------


def range_hash(node: NodeFn, lo: int, hi: int) -> bytes:
    """Hash of the (aligned) subtree over leaves ``[lo, hi)``.

    ``lo`` must be a multiple of the smallest power of two ``>= hi - lo``, as it
    is for every subtree of an RFC 9162 tree.  The range is tiled, left to
    right, by complete subtrees whose sizes are the set bits of ``hi - lo`` in
    decreasing order; the hash folds them from the right.  Uses at most
    ``popcount(hi - lo)`` calls to ``node``.
    """
    width = hi - lo
    if width <= 0:
        raise ValueError(f"empty or negative range [{lo}, {hi})")
    parts: list[bytes] = []
    pos = lo
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            parts.append(node(level, pos >> level))
            pos += 1 << level
    acc = parts[-1]
    for h in reversed(parts[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


def tree_root(node: NodeFn, size: int) -> bytes:
    """Root hash of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return range_hash(node, 0, size)


def inclusion_path(node: NodeFn, index: int, size: int) -> list[bytes]:
    """RFC 9162 2.1.3.1 ``PATH(index, D[size])``, leaf-side hash first."""
    _check_size("size", size)
    _check_size("index", index)
    if index >= size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    out: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root, collecting sibling subtree hashes (root side
    # first), then reverse so the proof starts next to the leaf.
    while hi - lo > 1:
        k = _largest_pow2_below(hi - lo)
        mid = lo + k
        if index < mid:
            out.append(range_hash(node, mid, hi))
            hi = mid
        else:
            # [lo, mid) is a complete subtree of 2^j leaves: one read.
            out.append(node(k.bit_length() - 1, lo >> (k.bit_length() - 1)))
            lo = mid
    out.reverse()
    return out


def consistency_path(node: NodeFn, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 2.1.4.1 ``PROOF(old_size, D[new_size])``."""
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    out: list[bytes] = []
    # m is an absolute leaf count (the old tree is D[0:m]); [lo, hi) is the
    # current subtree of the new tree.
    lo, hi, m = 0, new_size, old_size
    complete = True  # the "b" flag of SUBPROOF
    while True:
        if m == hi:
            if not complete:
                out.append(range_hash(node, lo, hi))
            break
        k = _largest_pow2_below(hi - lo)
        mid = lo + k
        if m - lo <= k:
            out.append(range_hash(node, mid, hi))
            hi = mid
        else:
            out.append(node(k.bit_length() - 1, lo >> (k.bit_length() - 1)))
            lo = mid
            complete = False
    out.reverse()
    return out


# ---------------------------------------------------------------------------
# In-memory tree over raw entries
# ---------------------------------------------------------------------------


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All complete-subtree hashes: ``levels[l][k]`` covers ``[k*2^l, (k+1)*2^l)``."""
    level = [_sha256(b"\x00" + bytes(e)).digest() for e in leaves]
    levels = [level]
    while len(level) >= 2:
        level = [
            _sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        levels.append(level)
    return levels


def _node_fn(levels: list[list[bytes]]) -> NodeFn:
    def node(level: int, index: int) -> bytes:
        return levels[level][index]

    return node


def _check_leaves(leaves: Sequence[bytes]) -> None:
    if isinstance(leaves, (bytes, bytearray, str)):
        raise TypeError("leaves must be a list of byte strings, not a single value")


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash ``MTH(D[n])`` of the raw entries ``leaves``."""
    _check_leaves(leaves)
    if not leaves:
        return EMPTY_ROOT
    return tree_root(_node_fn(_levels(leaves)), len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of all ``leaves``."""
    _check_leaves(leaves)
    _check_size("index", index)
    if index >= len(leaves):
        raise ValueError(f"leaf index {index} out of range for tree size {len(leaves)}")
    return inclusion_path(_node_fn(_levels(leaves)), index, len(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all ``leaves``."""
    _check_leaves(leaves)
    _check_size("old_size", old_size)
    if old_size > len(leaves):
        raise ValueError(f"old size {old_size} is larger than tree size {len(leaves)}")
    if old_size == 0 or old_size == len(leaves):
        return []
    return consistency_path(_node_fn(_levels(leaves)), old_size, len(leaves))


# ---------------------------------------------------------------------------
# Verification (RFC 9162 2.1.3.2 and 2.1.4.2)
# ---------------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == HASH_SIZE


def root_from_inclusion_proof(
    leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """Root implied by an audit path, or ``None`` if the path has the wrong shape."""
    _check_size("size", size)
    _check_size("index", index)
    if index >= size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    if not _is_hash(leaf_hash_value) or not all(_is_hash(p) for p in proof):
        return None
    fn, sn = index, size - 1
    r = bytes(leaf_hash_value)
    for p in proof:
        if sn == 0:
            return None
        p = bytes(p)
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check that raw entry ``leaf`` is at ``index`` in the tree ``(size, root)``.

    ``leaf`` is the raw entry; its leaf hash ``SHA-256(0x00 || leaf)`` is
    computed here.  Raises :class:`ValueError` if ``index >= size``.
    """
    computed = root_from_inclusion_proof(leaf_hash(leaf), index, size, proof)
    return computed is not None and _is_hash(root) and computed == bytes(root)


def verify_inclusion_hash(
    leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Like :func:`verify_inclusion` but given the leaf *hash*."""
    computed = root_from_inclusion_proof(leaf_hash_value, index, size, proof)
    return computed is not None and _is_hash(root) and computed == bytes(root)


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Check that tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    Follows RFC 9162 2.1.4.2 for ``0 < old_size < new_size``.  Edge cases:
    ``old_size == new_size`` requires an empty proof and equal roots;
    ``old_size == 0`` requires an empty proof and ``old_root`` equal to the
    empty-tree hash.  Raises :class:`ValueError` if ``old_size > new_size``.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if not _is_hash(old_root) or not _is_hash(new_root):
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    old_root, new_root = bytes(old_root), bytes(new_root)
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if old_size == 0:
        return len(proof) == 0 and old_root == EMPTY_ROOT
    if len(proof) == 0:
        return False
    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:  # exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
