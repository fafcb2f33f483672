"""Typo candidates over the token vocabulary: a SymSpell-style deletion
neighbourhood stored as two numpy arrays (64-bit hashes of every deletion
variant, sorted, and the token id each one came from).

Building is vectorised: tokens become a code-point matrix and the hash of
"token with characters i and k deleted" is assembled from three shifted
prefix sums, so a vocabulary of 100,000 tokens yields its few million
variants in about a second.  A query token generates its own deletion
variants in Python (a few dozen), looks them up with ``searchsorted`` and the
candidates are verified with a real optimal-string-alignment distance.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from rapidfuzz.distance import OSA

WIDTH = 24  # longer tokens are matched exactly or by prefix only
_P = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_POW = [pow(_P, j + 1, 1 << 64) for j in range(WIDTH + 2)]
_POW_NP = np.array(_POW, dtype=np.uint64)


def max_distance(n: int) -> int:
    """Allowed edit distance for a typed token of ``n`` characters."""
    if n < 4:
        return 0
    return 1 if n < 8 else 2


def _hash(s: str) -> int:
    h = 0
    for j, c in enumerate(s):
        h = (h + ord(c) * _POW[j]) & _MASK
    return h


def build(vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted hashes uint64, token ids int32) for the deletion variants
    (0, 1 and, for tokens of 6+ characters, 2 deletions)."""
    lens = np.fromiter((len(t) for t in vocab), dtype=np.int32, count=len(vocab))
    ids = np.flatnonzero((lens >= 3) & (lens <= WIDTH)).astype(np.int32)
    if len(ids) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int32)
    mat = np.zeros((len(ids), WIDTH), dtype=np.uint64)
    for r, i in enumerate(ids.tolist()):
        t = vocab[i]
        mat[r, : len(t)] = [ord(c) for c in t]
    L = lens[ids]
    W = WIDTH
    with np.errstate(over="ignore"):
        # exclusive prefix sums with weight shifts 0, 1, 2:  A_s[:, i] = sum_{j<i} c_j P_{j-s}
        shifted = []
        for s in range(3):
            pw = np.zeros(W, dtype=np.uint64)
            pw[s:] = _POW_NP[: W - s]
            a = np.zeros((len(ids), W + 1), dtype=np.uint64)
            np.cumsum(mat * pw, axis=1, out=a[:, 1:])
            shifted.append(a)
        A0, A1, A2 = shifted
        hashes = [A0[:, W]]
        owners = [ids]
        for i in range(W):
            m = L > i
            if not m.any():
                break
            h = A0[m, i] + (A1[m, W] - A1[m, i + 1])
            hashes.append(h)
            owners.append(ids[m])
        for i, k in combinations(range(W), 2):
            m = (L > k) & (L >= 6)
            if not m.any():
                continue
            h = A0[m, i] + (A1[m, k] - A1[m, i + 1]) + (A2[m, W] - A2[m, k + 1])
            hashes.append(h)
            owners.append(ids[m])
    H = np.concatenate(hashes)
    O = np.concatenate(owners).astype(np.int32)
    order = np.argsort(H, kind="stable")
    H, O = H[order], O[order]
    # drop duplicate (hash, owner) pairs
    keep = np.ones(len(H), dtype=bool)
    keep[1:] = (H[1:] != H[:-1]) | (O[1:] != O[:-1])
    return H[keep], O[keep]


def deletions(s: str, d: int) -> set[str]:
    out = {s}
    frontier = {s}
    for _ in range(d):
        nxt = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1:])
        out |= nxt
        frontier = nxt
    return out


def lookup(token: str, hashes: np.ndarray, owners: np.ndarray, vocab: list[str],
           d: int | None = None) -> dict[int, int]:
    """Token ids within edit distance ``d`` (default by length) of ``token``,
    with their distance (the token itself excluded)."""
    if d is None:
        d = max_distance(len(token))
    if d == 0 or len(hashes) == 0 or len(token) > WIDTH + d:
        return {}
    hs = np.array(sorted({_hash(v) for v in deletions(token, d)}), dtype=np.uint64)
    lo = np.searchsorted(hashes, hs, "left")
    hi = np.searchsorted(hashes, hs, "right")
    out: dict[int, int] = {}
    for a, b in zip(lo.tolist(), hi.tolist()):
        for tid in owners[a:b].tolist():
            if tid in out:
                continue
            cand = vocab[tid]
            if cand == token:
                continue
            dist = OSA.distance(token, cand, score_cutoff=d)
            if dist <= d:
                out[tid] = dist
    return out
