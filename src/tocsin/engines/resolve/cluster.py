"""Clustering matched pairs into persons, with a guard against chaining.

Plain connected components over the matched pairs chain: A~B and B~C put A
and C together even when A and C plainly differ (two brothers linked through
a badly typed record). Here every component of more than two records is
checked: the *average linkage* of the component (mean match probability over
all of its pairs; a pair that was never scored counts as the ``missing_score``
callback says, 0 by default) must reach ``min_average``. A component that
fails is split by average-linkage agglomerative clustering: groups are merged,
best first, while their average linkage stays at or above ``min_average``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MissingScorer = Callable[[Sequence[tuple[str, str]]], Sequence[float]]


@dataclass(frozen=True)
class Cluster:
    """A group of record ids judged to be one person.

    ``average``: mean probability over all pairs of members (1.0 for a
    singleton); ``split``: true when the connected component was split.
    """

    ids: tuple[str, ...]
    average: float
    split: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def _average_linkage(sim: np.ndarray, min_average: float) -> list[list[int]]:
    """Agglomerative average linkage on a similarity matrix (diagonal ignored)."""
    k = len(sim)
    total = sim.astype(np.float64).copy()
    np.fill_diagonal(total, 0.0)
    size = np.ones(k)
    members: list[list[int] | None] = [[i] for i in range(k)]
    alive = np.ones(k, dtype=bool)
    while alive.sum() > 1:
        avg = total / np.outer(size, size)
        avg[~alive, :] = -1.0
        avg[:, ~alive] = -1.0
        np.fill_diagonal(avg, -1.0)
        flat = int(np.argmax(avg))
        a, b = divmod(flat, k)
        if avg[a, b] < min_average:
            break
        total[a, :] += total[b, :]
        total[:, a] += total[:, b]
        total[a, a] = 0.0
        size[a] += size[b]
        alive[b] = False
        members[a] = members[a] + members[b]  # type: ignore[operator]
        members[b] = None
    return [m for m in members if m is not None]


def cluster_pairs(pairs: Iterable[tuple[str, str, float]], *, threshold: float = 0.5,
                  min_average: float = 0.8, missing_score: MissingScorer | None = None,
                  singletons: Iterable[str] = ()) -> list[Cluster]:
    """Clusters from ``(id_a, id_b, probability)`` triples.

    Pairs under ``threshold`` are not edges but still count in averages.
    ``singletons``: ids to return as one-record clusters when unmatched.
    Clusters come largest first, then by their first id.
    """
    score: dict[tuple[str, str], float] = {}
    for a, b, p in pairs:
        key = (a, b) if a <= b else (b, a)
        score[key] = max(float(p), score.get(key, 0.0))
    ids = sorted({x for key in score for x in key} | set(singletons))
    index = {x: i for i, x in enumerate(ids)}
    edges = [(index[a], index[b]) for (a, b), p in score.items() if p >= threshold]
    n = len(ids)
    if edges:
        r, c = np.array(edges).T
        graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
    else:
        labels = np.arange(n)
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        groups.setdefault(lab, []).append(i)
    out: list[Cluster] = []
    for members in groups.values():
        if len(members) == 1:
            out.append(Cluster((ids[members[0]],), 1.0))
            continue
        names = [ids[i] for i in members]
        k = len(names)
        sim = np.zeros((k, k))
        unknown = []
        for x in range(k):
            for y in range(x + 1, k):
                key = (names[x], names[y]) if names[x] <= names[y] else (names[y], names[x])
                if key in score:
                    sim[x, y] = sim[y, x] = score[key]
                else:
                    unknown.append((x, y))
        if unknown and missing_score is not None:
            got = missing_score([(names[x], names[y]) for x, y in unknown])
            for (x, y), p in zip(unknown, got):
                sim[x, y] = sim[y, x] = float(p)
        average = float(sim[np.triu_indices(k, 1)].mean())
        if average >= min_average:
            out.append(Cluster(tuple(sorted(names)), average))
            continue
        for part in _average_linkage(sim, min_average):
            sub = sim[np.ix_(part, part)]
            avg = float(sub[np.triu_indices(len(part), 1)].mean()) if len(part) > 1 else 1.0
            out.append(Cluster(tuple(sorted(names[i] for i in part)), avg, split=True))
    out.sort(key=lambda c: (-len(c), c.ids[0]))
    return out
