"""In-memory index of resolved persons: "who is this?" in milliseconds.

:class:`PersonIndex` keeps the normalised persons as columns and, for each
exact blocking key of :data:`INDEX_RULES`, a sorted ``uint64`` array of key
hashes with the matching row numbers (each distinct value hashed once). A lookup normalises the query, hashes
its keys (and the day/month-swapped birth date when there is one), finds each
key's block of rows with a binary search and scores the candidates with the
Fellegi–Sunter :class:`~tocsin.engines.resolve.scoring.Model`. A person's
other surnames (``Martin née Dupont``: birth, usage, alias) are keyed with the
given name too, so a lookup by either surname finds the person without a
birth date.

Candidates, rarest keys first: a key shared by at most ``max_per_key``
persons (a phone, a birth date with a given name...) brings its whole block;
a common one (``Martin`` + ``Jean``, a big town + ``Ma``) brings only the rows
it shares with another common key of the query (Jean Martins of that town),
found by binary searches of the smaller block in the larger one; and at most
``max_candidates`` rows are scored, those of the rarest keys first. So the
work per lookup is a few binary searches plus scoring at most a few hundred
candidates, whatever the number of persons and however common the name (on
3 million persons, 100/500 instead of 300/1000 halved the p99 CPU time of a
lookup, 6.2 to 2.6 ms, and found the same persons first).

The index lives for long in one process and holds millions of strings: after
each build it moves the objects then alive out of the cyclic garbage
collector's sight (``gc.freeze``, unless ``freeze_gc=False``), so that a
collection never walks them and stalls a lookup (they are still freed by
reference counting when the index is rebuilt or dropped).

Keys are hashed with Python's ``hash`` (salted per process): the index lives
in one process's memory and is rebuilt from the source data at start-up.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tocsin.engines.resolve.phonetic import fonem_skeleton
from tocsin.engines.resolve.records import Table, concat, prepare
from tocsin.engines.resolve.scoring import (
    DEFAULT_COMPARISONS,
    Explanation,
    Model,
    _initial_m,
    estimate_u,
    term_frequencies,
)

_MASK = (1 << 64) - 1
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _h(col: np.ndarray, fn: Callable[[object], object] | None = None) -> np.ndarray:
    """``uint64`` hash of each value (of ``fn(value)``), 0 for an empty one. With
    ``fn``, each distinct value goes through it once (one dictionary pass over
    the rows)."""
    values = col.tolist()
    if fn is None:  # a value hashing to 0 would be taken as empty: a 2^-64 chance
        return np.fromiter((hash(v) if v else 0 for v in values), dtype=np.int64,
                           count=len(values)).view(np.uint64)
    distinct: dict[object, int] = dict.fromkeys(values)  # type: ignore[assignment]
    for v in distinct:
        x = fn(v) if fn is not None else v
        distinct[v] = (hash(x) & _MASK) or 1 if x else 0
    return np.fromiter(map(distinct.__getitem__, values), dtype=np.uint64, count=len(values))


def _mix(*hashes: np.ndarray) -> np.ndarray:
    """One key hash from the parts' hashes; 0 (no key) when a part is empty."""
    out = hashes[0].copy()
    ok = out != 0
    for h in hashes[1:]:
        out = out * _MIX + h  # wraps around, as a hash should
        ok &= h != 0
    out[~ok] = 0
    return out


def _mix_unordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _mix(np.minimum(a, b), np.maximum(a, b))


def _first(k: int) -> Callable[[object], object]:
    return lambda s: s[:k]  # type: ignore[index]


# Each rule: name, function of a Table giving one uint64 key hash per row (0 = none).
INDEX_RULES: tuple[tuple[str, Callable[[Table], np.ndarray]], ...] = (
    ("surname_phonetic+birth_year", lambda t: _mix(_h(t["surname_phon"]), _h(t["dob_year"]))),
    ("given_phonetic+date_of_birth", lambda t: _mix(_h(t["given_phon"]), _h(t["dob"]))),
    ("postcode+surname_prefix",
     lambda t: _mix(_h(t["postcode"]), _h(t["surname"], _first(2)))),
    ("phone", lambda t: _h(t["phone"])),
    ("id_number", lambda t: _h(t["id_number"])),
    ("names_skeleton_unordered",
     lambda t: _mix_unordered(_h(t["given_skel"]), _h(t["surname_skel"]))),
    ("date_of_birth+given_initial",
     lambda t: _mix(_h(t["dob"]), _h(t["given_first"], _first(1)))),
    ("surname+city", lambda t: _mix(_h(t["surname"]), _h(t["city"]))),
)
_DOB_RULES = frozenset({"surname_phonetic+birth_year", "given_phonetic+date_of_birth",
                        "date_of_birth+given_initial"})
# A person's other surnames (birth/maiden, usage/married, alias: ``Martin née Dupont``):
# each indexed with the given name, under the key a query's main surname makes
# (``names_skeleton_unordered``), and a query's other surnames looked up there too.
# So "Sophie Dupont" finds "Sophie Martin née Dupont" without a birth date, and back.
MAX_OTHER_SURNAMES = 2
_NAMES_RULE = "names_skeleton_unordered"


def _other_skeleton(k: int) -> Callable[[object], object]:
    def fn(alts: object) -> str:
        words = str(alts).split()
        return fonem_skeleton(words[k]) if len(words) > k else ""
    return fn


def _other_surname_keys(t: Table) -> list[np.ndarray]:
    """One key hash array per rank of other surname (0 where a row has none)."""
    alts = t["surname_alts"]
    ranks = max((a.count(" ") for a in dict.fromkeys(alts.tolist())), default=0)
    given = _h(t["given_skel"])
    return [_mix_unordered(given, _h(alts, _other_skeleton(k)))
            for k in range(1, min(ranks, MAX_OTHER_SURNAMES) + 1)]


def _common(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows in both blocks (each sorted ascending): the smaller searched in the larger."""
    if len(a) > len(b):
        a, b = b, a
    if not len(a):
        return a
    at = np.searchsorted(b, a)
    at[at == len(b)] = 0
    return a[b[at] == a]


@dataclass(frozen=True)
class Hit:
    """A person found by :meth:`PersonIndex.lookup`."""

    id: str
    score: float
    match_weight: float
    row: int


class PersonIndex:
    """Fast lookup of a query identity among many resolved persons.

    ``model``: a fitted :class:`Model` (e.g. ``dedupe(...).summary.model``);
    its term frequencies are recomputed on the indexed persons. Without one,
    ``u`` is estimated from the persons, ``m`` takes generic values and the
    prior is 1%: hits are well ranked but their probabilities uncalibrated.
    """

    def __init__(self, persons: Iterable[Mapping[str, object]] | Table,
                 model: Model | None = None, *, max_per_key: int = 100,
                 max_candidates: int = 500, seed: int = 0, freeze_gc: bool = True):
        table = persons if isinstance(persons, Table) else prepare(persons)
        self.max_per_key = max_per_key
        self.max_candidates = max_candidates
        self.freeze_gc = freeze_gc
        self._seed = seed
        self._base_model = model
        self._set_table(table)

    def _set_table(self, table: Table) -> None:
        self.table = table
        model = self._base_model
        if model is None:
            comps = DEFAULT_COMPARISONS
            u = estimate_u(table, None, comps, sample=min(200_000, 20 * len(table) + 1000),
                           seed=self._seed)
            present = table.present
            model = Model(comps, [_initial_m(c) for c in comps], u, 0.01,
                          active=tuple(any(f in present for f in c.fields) for c in comps))
        self.model = dataclasses.replace(
            model, tf=term_frequencies([table], model.comparisons))
        self._keys: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, fn in INDEX_RULES:
            self._keys[name] = self._sorted([fn(table)])
        self._other = self._sorted(_other_surname_keys(table))
        if self.freeze_gc:
            gc.collect()
            gc.freeze()

    @staticmethod
    def _sorted(hash_arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted key hashes, their rows) of one or more key hash arrays over the rows."""
        hashes, rows = [], []
        for h in hash_arrays:
            r = np.flatnonzero(h != 0)
            hashes.append(h[r])
            rows.append(r.astype(np.int64))
        h = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        r = np.concatenate(rows) if rows else np.empty(0, np.int64)
        # by hash, then row: each block's rows ascending (one array: rows already are)
        order = np.argsort(h, kind="stable") if len(hash_arrays) == 1 else np.lexsort((r, h))
        return h[order], r[order]

    def __len__(self) -> int:
        return len(self.table)

    def add(self, persons: Iterable[Mapping[str, object]] | Table) -> None:
        """Add persons (the key arrays are rebuilt: add in batches)."""
        more = persons if isinstance(persons, Table) else prepare(persons)
        self._set_table(concat(self.table, more))

    def _blocks(self, query: Table, row: int) -> list[np.ndarray]:
        """The query's blocks (rows sharing one of its keys), smallest first."""
        q = query.subset(np.array([row]))
        variants = [q]
        alt = q["dob_alt"][0]
        if alt:
            swapped = q.subset(np.array([0]))
            swapped.columns["dob"] = np.array([alt], dtype=object)
            swapped.columns["dob_month"] = np.array([int(alt[4:6])], dtype=np.int32)
            swapped.columns["dob_day"] = np.array([int(alt[6:])], dtype=np.int32)
            variants.append(swapped)
        blocks: list[np.ndarray] = []
        seen: set[tuple[int, int]] = set()

        def probe(index: tuple[np.ndarray, np.ndarray], h: np.uint64) -> None:
            hashes, rows = index
            if h == 0 or (id(hashes), int(h)) in seen:
                return
            seen.add((id(hashes), int(h)))
            lo = int(np.searchsorted(hashes, h, side="left"))
            hi = int(np.searchsorted(hashes, h, side="right"))
            if hi > lo:
                blocks.append(rows[lo:hi])

        for name, fn in INDEX_RULES:
            for k, v in enumerate(variants):
                if k and name not in _DOB_RULES:
                    continue
                probe(self._keys[name], fn(v)[0])
        names = dict(INDEX_RULES)[_NAMES_RULE]
        probe(self._other, names(q)[0])  # our main surname, their other ones
        for keys in _other_surname_keys(q):  # our other surnames, their main or other ones
            probe(self._keys[_NAMES_RULE], keys[0])
            probe(self._other, keys[0])
        blocks.sort(key=len)
        return blocks

    def candidates(self, query: Table, row: int = 0) -> np.ndarray:
        """Rows worth scoring for ``query[row]``, rarest keys first (see the
        module docstring): whole blocks of at most ``max_per_key`` rows, then
        the rows two larger blocks share, at most ``max_candidates`` in all."""
        blocks = self._blocks(query, row)
        budget = self.max_candidates
        found: list[np.ndarray] = []
        small = [b for b in blocks if len(b) <= self.max_per_key]
        large = blocks[len(small):]
        for b in small:
            if budget <= 0:
                break
            found.append(b[:budget])
            budget -= len(found[-1])
        shared: list[np.ndarray] = []
        for i in range(len(large)):
            for j in range(i + 1, len(large)):
                shared.append(_common(large[i], large[j]))
        for b in shared:
            if budget <= 0:
                break
            found.append(b[:budget])
            budget -= len(found[-1])
        if not found and large:  # one common key and nothing rarer: its first rows
            found.append(large[0][:budget])
        if not found:
            return np.empty(0, np.int64)
        return np.unique(np.concatenate(found))

    def lookup(self, query: Mapping[str, object] | Table, *, top_k: int = 10,
               min_score: float = 0.0) -> list[Hit]:
        """The best ``top_k`` persons for ``query`` (a record without ``id``
        is fine), best first, with probability at least ``min_score``."""
        if isinstance(query, Table):
            q = query
        else:
            q = prepare([{"id": "?query", **{k: v for k, v in query.items() if k != "id"}}])
        cand = self.candidates(q)
        if not len(cand):
            return []
        w, p = self.model.score(q, self.table, np.zeros(len(cand), dtype=np.int64), cand)
        keep = np.flatnonzero(p >= min_score)
        best = keep[np.argsort(-w[keep], kind="stable")[:top_k]]
        return [Hit(str(self.table.ids[cand[k]]), float(p[k]), float(w[k]), int(cand[k]))
                for k in best]

    def explain(self, query: Mapping[str, object], hit: Hit) -> Explanation:
        """Why ``hit`` scored what it did for ``query``."""
        q = prepare([{"id": "?query", **{k: v for k, v in query.items() if k != "id"}}])
        return self.model.explain(q, self.table, 0, hit.row)
