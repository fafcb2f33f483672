"""The pipeline: normalise -> block -> train (EM) -> score -> threshold -> pairs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tocsin.engines.resolve.blocking import (
    DEFAULT_RULES,
    BlockingReport,
    BlockingRule,
    candidate_pairs,
)
from tocsin.engines.resolve.cluster import Cluster, cluster_pairs
from tocsin.engines.resolve.records import Table, prepare
from tocsin.engines.resolve.scoring import (
    DEFAULT_COMPARISONS,
    Comparison,
    Explanation,
    Model,
    expected_f1_threshold,
    train,
)

Records = Iterable[Mapping[str, object]] | Table


@dataclass
class _Context:
    model: Model
    a: Table
    b: Table
    dedupe: bool
    _rows: dict[str, tuple[Table, int]] | None = None

    def rows(self) -> dict[str, tuple[Table, int]]:
        if self._rows is None:
            rows = {x: (self.b, j) for j, x in enumerate(self.b.ids.tolist())}
            rows.update({x: (self.a, i) for i, x in enumerate(self.a.ids.tolist())})
            self._rows = rows
        return self._rows

    def score_ids(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Probabilities of arbitrary id pairs (used to check clusters)."""
        rows = self.rows()
        out = []
        for x, y in pairs:
            (tx, i), (ty, j) = rows[x], rows[y]
            _, p = self.model.score(tx, ty, np.array([i]), np.array([j]))
            out.append(float(p[0]))
        return out


@dataclass(frozen=True)
class ScoredPair:
    """A scored pair of records: ``score`` is the match probability,
    ``match_weight`` the log2 odds. :func:`explain` says why."""

    id_a: str
    id_b: str
    score: float
    match_weight: float
    _ctx: _Context | None = field(default=None, repr=False, compare=False)
    _i: int = field(default=-1, repr=False, compare=False)
    _j: int = field(default=-1, repr=False, compare=False)


@dataclass
class Summary:
    """What a run did."""

    records_a: int
    records_b: int | None
    candidate_pairs: int
    matches: int
    threshold: float
    blocking: BlockingReport
    issues: list = field(default_factory=list)
    seconds: float = 0.0
    model: Model | None = None


class PairList(list):
    """A ``list[ScoredPair]`` that also carries the run's :class:`Summary`."""

    summary: Summary


class Resolver:
    """Entity resolution with one configuration.

    ``threshold``: a match probability, or ``"auto"`` to pick the one that
    maximises the model's expected F1. ``labels``: optional iterable of
    known true ``(id_a, id_b)`` pairs; when given, ``m`` and the prior are
    counted from them instead of estimated by EM.
    """

    def __init__(self, *, comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
                 rules: Sequence[BlockingRule] = DEFAULT_RULES,
                 threshold: float | str = 0.5, max_block: int = 60,
                 u_sample: int = 200_000, seed: int = 0, strict: bool = False,
                 default_country: str = "FR"):
        if not (threshold == "auto" or (isinstance(threshold, float | int)
                                        and 0.0 <= float(threshold) <= 1.0)):
            raise ValueError("threshold: a probability in [0, 1] or 'auto'")
        self.comparisons = tuple(comparisons)
        self.rules = tuple(rules)
        self.threshold = threshold
        self.max_block = max_block
        self.u_sample = u_sample
        self.seed = seed
        self.strict = strict
        self.default_country = default_country

    def _table(self, records: Records) -> Table:
        if isinstance(records, Table):
            return records
        return prepare(records, strict=self.strict, default_country=self.default_country)

    def _run(self, A: Table, B: Table | None,
             labels: Iterable[tuple[str, str]] | None, keep_all: bool) -> PairList:
        start = time.perf_counter()
        ia, ib, report = candidate_pairs(A, B, rules=self.rules, max_block=self.max_block)
        BB = A if B is None else B
        y = None
        if labels is not None:
            truth = {(str(x), str(z)) for x, z in labels}
            if B is None:
                truth |= {(z, x) for x, z in truth}
            y = np.fromiter(((A.ids[i], BB.ids[j]) in truth for i, j in zip(ia, ib)),
                            dtype=bool, count=len(ia))
        model = train(A, B, ia, ib, comparisons=self.comparisons, labels=y,
                      u_sample=self.u_sample, seed=self.seed)
        w, p = model.score(A, BB, ia, ib)
        threshold = expected_f1_threshold(p) if self.threshold == "auto" else \
            float(self.threshold)
        ctx = _Context(model, A, BB, B is None)
        keep = np.arange(len(p)) if keep_all else np.flatnonzero(p >= threshold)
        keep = keep[np.argsort(-w[keep], kind="stable")]
        out = PairList(ScoredPair(A.ids[i], BB.ids[j], float(p[k]), float(w[k]), ctx, int(i),
                                  int(j))
                       for k, i, j in zip(keep.tolist(), ia[keep].tolist(), ib[keep].tolist()))
        issues = A.issues + ([] if B is None else B.issues)
        out.summary = Summary(len(A), None if B is None else len(B), len(ia),
                              int((p >= threshold).sum()), threshold, report, issues,
                              time.perf_counter() - start, model)
        return out

    def dedupe(self, records: Records, *, labels: Iterable[tuple[str, str]] | None = None,
               keep_all: bool = False) -> PairList:
        """Pairs of records of one source judged to be the same person
        (``keep_all``: every scored candidate pair, matched or not)."""
        return self._run(self._table(records), None, labels, keep_all)

    def link(self, records_a: Records, records_b: Records, *,
             labels: Iterable[tuple[str, str]] | None = None, keep_all: bool = False
             ) -> PairList:
        """Pairs (record of A, record of B) judged to be the same person."""
        return self._run(self._table(records_a), self._table(records_b), labels, keep_all)


def explain(pair: ScoredPair) -> Explanation:
    """Per-field explanation of a pair's score (fields add up to its weight)."""
    if pair._ctx is None:
        raise ValueError("this pair carries no model: it did not come from dedupe/link")
    ctx = pair._ctx
    return ctx.model.explain(ctx.a, ctx.b, pair._i, pair._j)


def cluster(pairs: Sequence[ScoredPair], *, threshold: float | None = None,
            min_average: float = 0.8, singletons: Iterable[str] = ()) -> list[Cluster]:
    """Group matched pairs into persons (see :mod:`.cluster`).

    Member pairs that were never scored (blocking did not propose them) are
    scored with the pairs' model before the average-linkage check.
    """
    ctx = next((p._ctx for p in pairs if p._ctx is not None), None)
    if threshold is None:
        summary = getattr(pairs, "summary", None)
        threshold = summary.threshold if summary else 0.5
    return cluster_pairs(((p.id_a, p.id_b, p.score) for p in pairs), threshold=threshold,
                         min_average=min_average,
                         missing_score=ctx.score_ids if ctx else None, singletons=singletons)


def dedupe(records: Records, **options) -> PairList:
    """``Resolver(**options).dedupe(records)``; see :class:`Resolver`."""
    labels = options.pop("labels", None)
    keep_all = options.pop("keep_all", False)
    return Resolver(**options).dedupe(records, labels=labels, keep_all=keep_all)


def link(records_a: Records, records_b: Records, **options) -> PairList:
    """``Resolver(**options).link(records_a, records_b)``; see :class:`Resolver`."""
    labels = options.pop("labels", None)
    keep_all = options.pop("keep_all", False)
    return Resolver(**options).link(records_a, records_b, labels=labels, keep_all=keep_all)
