"""Fellegi–Sunter scoring with per-field comparison levels, EM, term frequencies.

Each :class:`Comparison` puts a pair of records into one *level* for its
field (level 0 = a side is missing: no evidence, weight 0; level 1 = the
values differ; higher levels = closer agreement, the last one exact). For
each level the model holds ``m`` (probability of that level among true
matches) and ``u`` (among non-matches); the level contributes
``log2(m/u)`` bits to the pair's *match weight*, which starts from the prior
``log2(λ/(1-λ))`` (λ: share of matches among *all* pairs of records). The
match probability is ``2^w / (1 + 2^w)``.

Estimation (:func:`train`)
    ``u`` from pairs drawn at random (nearly all non-matches); ``m`` and the
    number of matches by expectation-maximisation over the blocked candidate
    pairs with ``u`` held fixed, or -- when labelled true pairs are given --
    counted directly from them. λ is that number over all pairs, not over the
    candidate pairs: ``u`` describes random pairs, so the prior must too, else
    the agreement that made a pair a candidate would be counted twice (once by
    blocking, once by the weights), and a blocking key that proposes more
    near-misses (two Marie born the same month) would turn them into matches.
    So a pair's score does not depend on the blocking rules.

Term-frequency adjustment
    An exact agreement on a surname, given name or city weighs
    ``log2(m_exact / f(value))`` instead of ``log2(m_exact / u_exact)``,
    where ``f(value)`` is the value's share of the records: agreeing on
    *Martin* (common) is weaker evidence than agreeing on *Kerhervé* (rare).
    The difference is reported as ``tf_adjustment``.

Explanations
    :meth:`Model.explain` returns the prior and, field by field, the level
    that fired, both values, ``m``, ``u``, the weight and the TF adjustment;
    they add up exactly to the pair's match weight.

Thresholds
    :func:`select_threshold` (labelled pairs: the probability that maximises
    F1) and :func:`expected_f1_threshold` (no labels: maximises the F1
    expected from the model's own match probabilities).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.process import cpdist

from tocsin.engines.resolve.records import Table

LevelFn = Callable[[Table, Table, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Comparison:
    """A field comparison: ``levels`` labels (0 missing, 1 different, ..., last
    exact) and ``fn`` computing one level per pair."""

    name: str
    fields: tuple[str, ...]
    levels: tuple[str, ...]
    fn: LevelFn
    tf_column: str | None = None
    value_column: str = ""

    @property
    def exact_level(self) -> int:
        return len(self.levels) - 1


def _present(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x != "") & (y != "")


def _sim(x: np.ndarray, y: np.ndarray, rows: np.ndarray, scorer) -> np.ndarray:
    """Similarity of x[rows] and y[rows] (0 elsewhere)."""
    out = np.zeros(len(x), dtype=np.float64)
    if len(rows):
        out[rows] = cpdist(x[rows].tolist(), y[rows].tolist(), scorer=scorer, workers=1)
    return out


def _apply(level: np.ndarray, mask: np.ndarray, value: int) -> None:
    """Set ``value`` where ``mask`` holds and no higher level was set yet."""
    level[mask & (level < value)] = value


def _contains_word(text: np.ndarray, word: np.ndarray) -> np.ndarray:
    return np.fromiter((bool(w) and w in t.split() for t, w in zip(text, word)),
                       dtype=bool, count=len(text))


def _surname_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    a, b = A["surname"][ia], B["surname"][ib]
    ok = _present(a, b)
    lev = np.where(ok, 1, 0).astype(np.int8)
    rows = np.flatnonzero(ok & (a != b))
    jw = _sim(a, b, rows, JaroWinkler.normalized_similarity)
    _apply(lev, ok & (jw >= 0.80), 2)
    _apply(lev, ok & (jw >= 0.88), 3)
    pa, pb = A["surname_phon"][ia], B["surname_phon"][ib]
    _apply(lev, ok & ((jw >= 0.94) | ((pa == pb) & (pa != ""))), 4)
    alt = _contains_word(A["surname_alts"][ia], b) | _contains_word(B["surname_alts"][ib], a)
    alt |= _contains_word(A["surname_text"][ia], b) | _contains_word(B["surname_text"][ib], a)
    ga, gb = A["given_first"][ia], B["given_first"][ib]
    swapped = (a == gb) & (ga == b) & (a != "") & (b != "")
    _apply(lev, ok & (alt | swapped), 5)
    _apply(lev, ok & (a == b), 6)
    return lev


def _given_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    a, b = A["given"][ia], B["given"][ib]
    ok = _present(a, b)
    lev = np.where(ok, 1, 0).astype(np.int8)
    fa, fb = A["given_first"][ia], B["given_first"][ib]
    inits = (A["given_initials"][ia] == 1) | (B["given_initials"][ib] == 1)
    first_letter = np.fromiter((x[:1] == y[:1] for x, y in zip(fa, fb)), dtype=bool,
                               count=len(fa))
    _apply(lev, ok & inits & first_letter, 2)
    rows = np.flatnonzero(ok & (a != b))
    jw = _sim(a, b, rows, JaroWinkler.normalized_similarity)
    jw_first = _sim(fa, fb, rows, JaroWinkler.normalized_similarity)
    jw = np.maximum(jw, jw_first)
    _apply(lev, ok & (jw >= 0.80), 3)
    _apply(lev, ok & (jw >= 0.88), 4)
    pa, pb = A["given_phon"][ia], B["given_phon"][ib]
    _apply(lev, ok & ((jw >= 0.94) | ((pa == pb) & (pa != ""))), 5)
    shared = (fa == fb) | (A["given_sorted"][ia] == B["given_sorted"][ib])
    sa, sb = A["surname"][ia], B["surname"][ib]
    swapped = (fa == sb) & (sa == fb)
    _apply(lev, ok & (shared | swapped), 6)
    _apply(lev, ok & (a == b), 7)
    return lev


def _dob_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    a, b = A["dob"][ia], B["dob"][ib]
    ok = _present(a, b)
    lev = np.where(ok, 1, 0).astype(np.int8)
    ya, yb = A["dob_year"][ia], B["dob_year"][ib]
    ma, mb = A["dob_month"][ia], B["dob_month"][ib]
    da, db = A["dob_day"][ia], B["dob_day"][ib]
    same_year = ok & (ya == yb) & (ya > 0)
    _apply(lev, same_year, 2)
    partial = (da == 0) | (db == 0)
    compatible = same_year & partial & ((ma == mb) | (ma == 0) | (mb == 0))
    _apply(lev, compatible, 3)
    full = ok & ~partial
    rows = np.flatnonzero(full & (a != b))
    dist = np.full(len(a), 99.0)
    if len(rows):
        dist[rows] = cpdist(a[rows].tolist(), b[rows].tolist(), scorer=OSA.distance,
                            workers=1)
    _apply(lev, full & (dist <= 1), 4)
    alt_a, alt_b = A["dob_alt"][ia], B["dob_alt"][ib]
    swapped = ((alt_a == b) & (alt_a != "")) | ((alt_b == a) & (alt_b != ""))
    _apply(lev, full & swapped, 5)
    _apply(lev, full & (a == b), 6)
    return lev


def _address_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    a, b = A["address"][ia], B["address"][ib]
    ok = _present(a, b)
    lev = np.where(ok, 1, 0).astype(np.int8)
    rows = np.flatnonzero(ok & (a != b))
    sim = np.maximum(_sim(a, b, rows, fuzz.ratio), _sim(a, b, rows, fuzz.token_set_ratio))
    _apply(lev, ok & (sim >= 60), 2)
    _apply(lev, ok & (sim >= 80), 3)
    _apply(lev, ok & (sim >= 92), 4)
    _apply(lev, ok & (a == b), 5)
    return lev


def _edit_levels(column: str) -> LevelFn:
    def fn(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        a, b = A[column][ia], B[column][ib]
        ok = _present(a, b)
        lev = np.where(ok, 1, 0).astype(np.int8)
        rows = np.flatnonzero(ok & (a != b))
        dist = np.full(len(a), 99.0)
        if len(rows):
            dist[rows] = cpdist(a[rows].tolist(), b[rows].tolist(), scorer=OSA.distance,
                                workers=1)
        _apply(lev, ok & (dist <= 1), 2)
        _apply(lev, ok & (a == b), 3)
        return lev
    return fn


def _locality_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Postcode and city together: they are not independent (a postcode names a
    city), and Fellegi–Sunter assumes independent fields."""
    pa, pb = A["postcode"][ia], B["postcode"][ib]
    ca, cb = A["city"][ia], B["city"][ib]
    p_ok, c_ok = _present(pa, pb), _present(ca, cb)
    ok = p_ok | c_ok
    lev = np.where(ok, 1, 0).astype(np.int8)
    rows = np.flatnonzero(c_ok & (ca != cb))
    city_close = c_ok & (_sim(ca, cb, rows, JaroWinkler.normalized_similarity) >= 0.88)
    rows = np.flatnonzero(p_ok & (pa != pb))
    dist = np.full(len(pa), 99.0)
    if len(rows):
        dist[rows] = cpdist(pa[rows].tolist(), pb[rows].tolist(), scorer=OSA.distance,
                            workers=1)
    post_close = p_ok & (dist <= 1)
    p_eq, c_eq = p_ok & (pa == pb), c_ok & (ca == cb)
    _apply(lev, post_close | city_close, 2)
    _apply(lev, c_eq & ~p_ok, 3)
    _apply(lev, p_eq & ~c_ok, 3)
    _apply(lev, (c_eq & p_ok) | (p_eq & c_ok), 4)
    _apply(lev, p_eq & c_eq, 5)
    return lev


DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("given_name", ("given_name",),
               ("missing", "different", "initials agree", "jaro-winkler>=0.80",
                "jaro-winkler>=0.88", "sounds alike or jaro-winkler>=0.94",
                "same first name or other order/position", "exact"),
               _given_levels, tf_column="given", value_column="given"),
    Comparison("surname", ("surname",),
               ("missing", "different", "jaro-winkler>=0.80", "jaro-winkler>=0.88",
                "sounds alike or jaro-winkler>=0.94", "birth/usage name or swapped", "exact"),
               _surname_levels, tf_column="surname", value_column="surname"),
    Comparison("date_of_birth", ("date_of_birth",),
               ("missing", "different", "same year", "partial date agrees", "one digit off",
                "day/month swapped", "exact"), _dob_levels, value_column="dob"),
    Comparison("address", ("address",),
               ("missing", "different", "similar>=60", "similar>=80", "similar>=92", "exact"),
               _address_levels, value_column="address"),
    Comparison("locality", ("postcode", "city"),
               ("missing", "different", "postcode one edit or city jaro-winkler>=0.88",
                "postcode or city agrees (other missing)",
                "postcode or city agrees (other differs)", "postcode and city agree"),
               _locality_levels, value_column="postcode"),
    Comparison("phone", ("phone",), ("missing", "different", "one edit", "exact"),
               _edit_levels("phone"), value_column="phone"),
    Comparison("id_number", ("id_number",), ("missing", "different", "one edit", "exact"),
               _edit_levels("id_number"), value_column="id_number"),
)


def comparison_levels(A: Table, B: Table, ia: np.ndarray, ib: np.ndarray,
                      comparisons: Sequence[Comparison]) -> np.ndarray:
    """Level matrix (pairs x comparisons), int8."""
    out = np.zeros((len(ia), len(comparisons)), dtype=np.int8)
    for k, c in enumerate(comparisons):
        if len(ia):
            out[:, k] = c.fn(A, B, ia, ib)
    return out


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class FieldContribution:
    """One field's part of a pair's match weight."""

    field: str
    level: str
    value_a: object
    value_b: object
    m: float
    u: float
    weight: float
    tf_adjustment: float = 0.0

    @property
    def total(self) -> float:
        return self.weight + self.tf_adjustment


@dataclass(frozen=True)
class Explanation:
    """Why a pair scored what it scored: the prior plus one row per field."""

    prior_weight: float
    contributions: tuple[FieldContribution, ...]
    match_weight: float
    probability: float

    def __str__(self) -> str:
        lines = [f"{'field':<14}{'level':<42}{'weight':>8}{'tf':>7}  values",
                 f"{'(prior)':<14}{'':<42}{self.prior_weight:>8.2f}"]
        for c in self.contributions:
            lines.append(f"{c.field:<14}{c.level:<42}{c.weight:>8.2f}{c.tf_adjustment:>7.2f}"
                         f"  {c.value_a!r} / {c.value_b!r}")
        lines.append(f"{'total':<14}{'':<42}{self.match_weight:>8.2f}"
                     f"   probability {self.probability:.4f}")
        return "\n".join(lines)


def probability(weight: np.ndarray | float) -> np.ndarray | float:
    """Match probability of a match weight (bits)."""
    w = np.clip(weight, -60, 60)
    return 1.0 / (1.0 + np.power(2.0, -w))


@dataclass
class Model:
    """Fitted Fellegi–Sunter parameters (see the module docstring)."""

    comparisons: tuple[Comparison, ...]
    m: list[np.ndarray]
    u: list[np.ndarray]
    prior: float
    tf: dict[str, dict[str, float]] = field(default_factory=dict)
    active: tuple[bool, ...] = ()
    em_iterations: int = 0

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def level_weights(self) -> list[np.ndarray]:
        out = []
        for k, (m, u) in enumerate(zip(self.m, self.u)):
            w = np.log2(m / u)
            w[0] = 0.0
            if self.active and not self.active[k]:
                w[:] = 0.0
            out.append(w)
        return out

    def tf_adjustments(self, A: Table, ia: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Per-pair, per-comparison TF adjustment (0 unless exact on a TF field)."""
        adj = np.zeros(levels.shape, dtype=np.float64)
        for k, c in enumerate(self.comparisons):
            if c.tf_column is None or c.tf_column not in self.tf:
                continue
            if self.active and not self.active[k]:
                continue
            rows = np.flatnonzero(levels[:, k] == c.exact_level)
            if not len(rows):
                continue
            freq = self.tf[c.tf_column]
            floor = min(freq.values()) if freq else 1.0
            u_exact = self.u[k][c.exact_level]
            values = A[c.tf_column][ia[rows]]
            f = np.fromiter((freq.get(v, floor) for v in values), dtype=np.float64,
                            count=len(rows))
            adj[rows, k] = np.log2(u_exact / f)
        return adj

    def weights(self, levels: np.ndarray, tf_adj: np.ndarray | None = None) -> np.ndarray:
        """Match weight of each pair."""
        total = np.full(len(levels), self.prior_weight)
        for k, w in enumerate(self.level_weights()):
            total += w[levels[:, k]]
        if tf_adj is not None:
            total += tf_adj.sum(axis=1)
        return total

    def score(self, A: Table, B: Table, ia: np.ndarray, ib: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """(match weights, probabilities) of pairs ``(A[ia], B[ib])``."""
        levels = comparison_levels(A, B, ia, ib, self.comparisons)
        w = self.weights(levels, self.tf_adjustments(A, ia, levels))
        return w, probability(w)

    def explain(self, A: Table, B: Table, i: int, j: int) -> Explanation:
        """Per-field explanation of the pair ``(A[i], B[j])``."""
        ia, ib = np.array([i]), np.array([j])
        levels = comparison_levels(A, B, ia, ib, self.comparisons)
        adj = self.tf_adjustments(A, ia, levels)
        lw = self.level_weights()
        parts = []
        for k, c in enumerate(self.comparisons):
            lv = int(levels[0, k])
            col = c.value_column or c.tf_column
            parts.append(FieldContribution(
                c.name, c.levels[lv], A[col][i] if col else None, B[col][j] if col else None,
                float(self.m[k][lv]), float(self.u[k][lv]), float(lw[k][lv]),
                float(adj[0, k])))
        w = self.prior_weight + sum(p.total for p in parts)
        return Explanation(self.prior_weight, tuple(parts), w, float(probability(w)))

    def summary(self) -> str:
        """The fitted m, u and weights, level by level."""
        lines = [f"prior λ = {self.prior:.4g} ({self.prior_weight:+.2f} bits)"]
        for k, (c, w) in enumerate(zip(self.comparisons, self.level_weights())):
            state = "" if not self.active or self.active[k] else " (absent from the data)"
            lines.append(f"{c.name}{state}")
            for lv, label in enumerate(c.levels[1:], start=1):
                lines.append(f"  {label:<42} m={self.m[k][lv]:.4f} u={self.u[k][lv]:.6f}"
                             f" w={w[lv]:+.2f}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- estimation


def term_frequencies(tables: Sequence[Table], comparisons: Sequence[Comparison]
                     ) -> dict[str, dict[str, float]]:
    """Share of records holding each value, for every TF column."""
    out: dict[str, dict[str, float]] = {}
    for c in comparisons:
        if c.tf_column is None:
            continue
        counts: Counter[str] = Counter()
        for t in tables:
            counts.update(t[c.tf_column].tolist())
        counts.pop("", None)
        total = sum(counts.values())
        if total:
            out[c.tf_column] = {v: k / total for v, k in counts.items()}
    return out


def random_pairs(na: int, nb: int | None, count: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random pairs (dedupe when ``nb`` is None: distinct rows)."""
    if nb is None:
        if na < 2:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        i = rng.integers(0, na, count)
        j = rng.integers(0, na - 1, count)
        j = np.where(j >= i, j + 1, j)
        return np.minimum(i, j), np.maximum(i, j)
    if na == 0 or nb == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return rng.integers(0, na, count), rng.integers(0, nb, count)


def _level_probs(levels: np.ndarray, k: int, n_levels: int, weights: np.ndarray | None
                 ) -> np.ndarray:
    col = levels[:, k]
    w = np.ones(len(col)) if weights is None else weights
    counts = np.bincount(col, weights=w, minlength=n_levels).astype(np.float64)
    counts[0] = 0.0
    # smoothing relative to the total: an unseen level gets the same tiny m and u
    counts[1:] += max(counts.sum(), 1.0) * 1e-6
    return counts / counts[1:].sum()


def estimate_u(A: Table, B: Table | None, comparisons: Sequence[Comparison], *,
               sample: int = 200_000, seed: int = 0) -> list[np.ndarray]:
    """u probabilities from random pairs."""
    rng = np.random.default_rng(seed)
    nb = None if B is None else len(B)
    ia, ib = random_pairs(len(A), nb, sample, rng)
    levels = comparison_levels(A, A if B is None else B, ia, ib, comparisons)
    out = []
    for k, c in enumerate(comparisons):
        u = _level_probs(levels, k, len(c.levels), None)
        u[0] = 1.0
        out.append(u)
    return out


def _initial_m(c: Comparison) -> np.ndarray:
    n = len(c.levels)
    m = np.zeros(n)
    m[1:] = np.linspace(0.02, 1.0, n - 1) ** 3
    m[-1] += 2.0
    m[1:] /= m[1:].sum()
    m[0] = 1.0
    return m


_ANCHORS = ("date_of_birth", "id_number")


def sure_matches(levels: np.ndarray, comparisons: Sequence[Comparison],
                 active: Sequence[bool] | None = None, min_exact: int = 4) -> np.ndarray:
    """Pairs that are matches beyond reasonable doubt: at least ``min_exact``
    fields exact, one of them the date of birth or the identity number (a
    family shares a surname, an address and a phone, not a birth date)."""
    exact = np.zeros(len(levels), dtype=np.int32)
    anchor = np.zeros(len(levels), dtype=bool)
    for k, c in enumerate(comparisons):
        if active and not active[k]:
            continue
        top = levels[:, k] == c.exact_level
        exact += top
        if c.name in _ANCHORS:
            anchor |= top
    return anchor & (exact >= min_exact)


def em(levels: np.ndarray, comparisons: Sequence[Comparison], u: list[np.ndarray], *,
       prior: float = 0.1, iterations: int = 100, tol: float = 1e-6,
       active: Sequence[bool] | None = None, ignore: frozenset[str] = frozenset()
       ) -> tuple[list[np.ndarray], float, int]:
    """EM for ``m`` and λ with ``u`` fixed; returns (m, λ, iterations run).

    Started from the :func:`sure_matches` (their share as λ, their levels
    blended with a generic prior as ``m``), which keeps EM away from the
    "same town, same surname" solution that correlated fields invite.
    """
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    m = [_initial_m(c) for c in comparisons]
    lam = prior
    sure = sure_matches(patterns, comparisons, active)
    if (sure * counts).sum() >= 10:
        lam = float(np.clip((sure * counts).sum() / counts.sum(), 1e-6, 0.5))
        for k, c in enumerate(comparisons):
            seen = _level_probs(patterns[sure], k, len(c.levels), counts[sure])
            m[k][1:] = 0.5 * seen[1:] + 0.5 * m[k][1:]
            m[k][0] = 1.0
    it = 0
    for it in range(1, iterations + 1):
        log_m = np.zeros(len(patterns))
        log_u = np.zeros(len(patterns))
        for k in range(len(comparisons)):
            if comparisons[k].name in ignore:
                continue
            lv = patterns[:, k]
            present = lv > 0
            log_m += np.where(present, np.log(m[k][lv]), 0.0)
            log_u += np.where(present, np.log(u[k][lv]), 0.0)
        a = math.log(lam) + log_m
        b = math.log(1 - lam) + log_u
        post = 1.0 / (1.0 + np.exp(np.clip(b - a, -700, 700)))
        wts = post * counts
        new_lam = float(np.clip(wts.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        new_m = []
        for k, c in enumerate(comparisons):
            mk = _level_probs(patterns, k, len(c.levels), wts)
            mk[0] = 1.0
            new_m.append(mk)
        delta = max(abs(new_lam - lam), *(float(np.abs(x - y).max()) for x, y in zip(new_m, m)))
        m, lam = new_m, new_lam
        if delta < tol:
            break
    return m, lam, it


def train(A: Table, B: Table | None, ia: np.ndarray, ib: np.ndarray, *,
          comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
          labels: np.ndarray | None = None, u_sample: int = 200_000,
          em_iterations: int = 100, seed: int = 0) -> Model:
    """Fit a :class:`Model` on candidate pairs ``(ia, ib)``.

    ``labels``: optional boolean array (true match per candidate pair); when
    given, ``m`` and λ are counted from it instead of estimated by EM.
    """
    comparisons = tuple(comparisons)
    BB = A if B is None else B
    present = A.present | BB.present
    active = tuple(any(f in present for f in c.fields) for c in comparisons)
    u = estimate_u(A, B, comparisons, sample=u_sample, seed=seed)
    levels = comparison_levels(A, BB, ia, ib, comparisons)
    iterations = 0
    if labels is not None:
        labels = np.asarray(labels, dtype=bool)
        if not labels.any():
            raise ValueError("labels: no true pair among the candidate pairs")
        m = []
        for k, c in enumerate(comparisons):
            mk = _level_probs(levels[labels], k, len(c.levels), None)
            mk[0] = 1.0
            m.append(mk)
        lam = float(np.clip(labels.mean(), 1e-9, 1 - 1e-9))
    elif len(levels):
        m, lam, iterations = _train_sessions(levels, comparisons, u, active, em_iterations)
    else:
        m, lam = [_initial_m(c) for c in comparisons], 0.1
    # λ above is the share of matches among the candidate pairs; the prior is the
    # share among *all* pairs, the population ``u`` was drawn from (see the module
    # docstring): the same model, and the same scores, whatever the blocking.
    na = len(A)
    all_pairs = na * (na - 1) // 2 if B is None else na * len(B)
    prior = float(np.clip(lam * len(ia) / max(all_pairs, 1), 1e-12, 0.5))
    tables = [A] if B is None else [A, B]
    return Model(comparisons, m, u, prior, term_frequencies(tables, comparisons), active,
                 iterations)


def _train_sessions(levels: np.ndarray, comparisons: Sequence[Comparison],
                    u: list[np.ndarray], active: Sequence[bool], iterations: int
                    ) -> tuple[list[np.ndarray], float, int]:
    """EM in two sessions, each on the candidate pairs that agree on some fields
    and estimating ``m`` for the *other* fields only.

    Candidate pairs were chosen for agreeing on names, birth dates or places, so
    among their non-matches those fields agree far more often than ``u`` (from
    random pairs) says, and one EM over all of them drifts to "same town, same
    surname" as its match class. Among the pairs that share a birth date,
    names and places are as independent as in random pairs (session 1, which
    estimates every ``m`` except the birth date's), and among pairs whose names
    sound alike, birth dates are (session 2, the birth date's ``m``). λ comes from
    session 1: matches with the same birth date / m(birth date exact).
    """
    names = {c.name: k for k, c in enumerate(comparisons)}
    need = ("date_of_birth", "given_name", "surname")
    if not all(n in names and active[names[n]] for n in need):
        return em(levels, comparisons, u, iterations=iterations, active=active)
    kd, kg, ks = (names[n] for n in need)
    dob_exact = levels[:, kd] == comparisons[kd].exact_level
    names_alike = (levels[:, kg] >= 5) & (levels[:, ks] >= 4)
    if dob_exact.sum() < 50 or names_alike.sum() < 50:
        return em(levels, comparisons, u, iterations=iterations, active=active)
    m1, lam1, it1 = em(levels[dob_exact], comparisons, u, iterations=iterations, active=active,
                       ignore=frozenset({"date_of_birth"}))
    m2, _, it2 = em(levels[names_alike], comparisons, u, iterations=iterations, active=active,
                    ignore=frozenset({"given_name", "surname"}))
    m = list(m1)
    m[kd] = m2[kd]
    matches = lam1 * dob_exact.sum() / max(m2[kd][comparisons[kd].exact_level], 1e-3)
    lam = float(np.clip(matches / len(levels), 1e-6, 1 - 1e-6))
    return m, lam, it1 + it2


# --------------------------------------------------------------------------- thresholds


def select_threshold(probabilities: np.ndarray, labels: np.ndarray,
                     total_true: int | None = None) -> tuple[float, float]:
    """Probability threshold maximising F1 on labelled pairs: (threshold, F1).

    ``total_true``: true pairs in all (including pairs blocking dropped);
    defaults to the labelled positives among the given pairs.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if not len(p):
        return 0.5, 0.0
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(y[order])
    k = np.arange(1, len(p) + 1)
    positives = int(y.sum()) if total_true is None else total_true
    f1 = 2 * tp / (k + positives)
    # a threshold can only sit between distinct probabilities
    ps = p[order]
    last = np.r_[ps[1:] != ps[:-1], True]
    best = int(np.flatnonzero(last)[np.argmax(f1[last])])
    return float(ps[best]), float(f1[best])


def expected_f1_threshold(probabilities: np.ndarray) -> float:
    """Threshold maximising the F1 expected under the model's own probabilities."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1]
    if not len(p):
        return 0.5
    expected_tp = np.cumsum(p)
    f1 = 2 * expected_tp / (np.arange(1, len(p) + 1) + p.sum())
    return float(p[int(np.argmax(f1))])
