"""In-memory index of resolved persons: "who is this?" in milliseconds.

:class:`PersonIndex` keeps the normalised persons as columns and, for each
exact blocking key of :data:`INDEX_RULES`, a sorted ``int64`` array of key
hashes with the matching row numbers. A lookup normalises the query, hashes
its keys (and the day/month-swapped birth date when there is one), finds each
key's rows with a binary search, unions them (at most ``max_per_key`` rows
per key) and scores that small candidate set with the Fellegi–Sunter
:class:`~tocsin.engines.resolve.scoring.Model`. A person's other surnames
(``Martin née Dupont``: birth, usage, alias) are keyed with the given name too,
so a lookup by either surname finds the person without a birth date. Cost: a few binary searches
plus scoring a few hundred candidates, whatever the number of persons.

Keys are hashed with Python's ``hash`` (salted per process): the index lives
in one process's memory and is rebuilt from the source data at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tocsin.engines.resolve.blocking import _join, _prefix, _unordered
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

INDEX_RULES = (
    ("surname_phonetic+birth_year", lambda t: _join(t["surname_phon"], t["dob_year"])),
    ("given_phonetic+date_of_birth", lambda t: _join(t["given_phon"], t["dob"])),
    ("postcode+surname_prefix", lambda t: _join(t["postcode"], _prefix(t["surname"], 2))),
    ("phone", lambda t: t["phone"]),
    ("id_number", lambda t: t["id_number"]),
    ("names_skeleton_unordered", lambda t: _unordered(t["given_skel"], t["surname_skel"])),
    ("date_of_birth+given_initial", lambda t: _join(t["dob"], _prefix(t["given_first"], 1))),
    ("surname+city", lambda t: _join(t["surname"], t["city"])),
)
_DOB_RULES = frozenset({"surname_phonetic+birth_year", "given_phonetic+date_of_birth",
                        "date_of_birth+given_initial"})
# A person's other surnames (birth/maiden, usage/married, alias: ``Martin née Dupont``):
# each indexed with the given name, under the key a query's main surname makes
# (``names_skeleton_unordered``), and a query's other surnames looked up there too.
# So "Sophie Dupont" finds "Sophie Martin née Dupont" without a birth date, and back.
MAX_OTHER_SURNAMES = 2
_NAMES_RULE = "names_skeleton_unordered"


def _other_surname_keys(t: Table) -> list[np.ndarray]:
    """One key array per rank of other surname (empty where a row has none)."""
    alts = [a.split() if a and " " in a else () for a in t["surname_alts"]]
    out = []
    for k in range(1, MAX_OTHER_SURNAMES + 1):
        if not any(len(a) > k for a in alts):
            break
        skel = np.empty(len(alts), dtype=object)
        skel[:] = [fonem_skeleton(a[k]) if len(a) > k else "" for a in alts]
        out.append(_unordered(t["given_skel"], skel))
    return out


def _hashes(keys: np.ndarray) -> np.ndarray:
    """int64 hash per key; 0 for the empty key."""
    return np.fromiter((hash(k) if k else 0 for k in keys), dtype=np.int64, count=len(keys))


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
                 model: Model | None = None, *, max_per_key: int = 2000, seed: int = 0):
        table = persons if isinstance(persons, Table) else prepare(persons)
        self.max_per_key = max_per_key
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

    @staticmethod
    def _sorted(key_arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted key hashes, their rows) of one or more key arrays over the rows."""
        hashes, rows = [], []
        for keys in key_arrays:
            h = _hashes(keys)
            r = np.flatnonzero(h != 0)
            hashes.append(h[r])
            rows.append(r.astype(np.int64))
        h = np.concatenate(hashes) if hashes else np.empty(0, np.int64)
        r = np.concatenate(rows) if rows else np.empty(0, np.int64)
        order = np.argsort(h, kind="stable")
        return h[order], r[order]

    def __len__(self) -> int:
        return len(self.table)

    def add(self, persons: Iterable[Mapping[str, object]] | Table) -> None:
        """Add persons (the key arrays are rebuilt: add in batches)."""
        more = persons if isinstance(persons, Table) else prepare(persons)
        self._set_table(concat(self.table, more))

    def candidates(self, query: Table, row: int = 0) -> np.ndarray:
        """Rows sharing at least one blocking key with ``query[row]``."""
        q = query.subset(np.array([row]))
        variants = [q]
        alt = q["dob_alt"][0]
        if alt:
            swapped = q.subset(np.array([0]))
            swapped.columns["dob"] = np.array([alt], dtype=object)
            swapped.columns["dob_month"] = np.array([int(alt[4:6])], dtype=np.int32)
            swapped.columns["dob_day"] = np.array([int(alt[6:])], dtype=np.int32)
            variants.append(swapped)
        found = []

        def probe(index: tuple[np.ndarray, np.ndarray], h: int) -> None:
            hashes, rows = index
            if h == 0:
                return
            lo = np.searchsorted(hashes, h, side="left")
            hi = np.searchsorted(hashes, h, side="right")
            if hi > lo:
                found.append(rows[lo:min(hi, lo + self.max_per_key)])

        for name, fn in INDEX_RULES:
            for k, v in enumerate(variants):
                if k and name not in _DOB_RULES:
                    continue
                probe(self._keys[name], _hashes(fn(v))[0])
        names = dict(INDEX_RULES)[_NAMES_RULE]
        probe(self._other, _hashes(names(q))[0])  # our main surname, their other ones
        for keys in _other_surname_keys(q):  # our other surnames, their main or other ones
            h = _hashes(keys)[0]
            probe(self._keys[_NAMES_RULE], h)
            probe(self._other, h)
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
