from __future__ import annotations

import itertools

from tocsin.engines.resolve import cluster, cluster_pairs, dedupe


def test_chain_is_split():
    # a~b and b~c strongly, but a and c plainly differ: no single cluster of three
    pairs = [("a", "b", 0.99), ("b", "c", 0.99), ("a", "c", 0.01)]
    got = cluster_pairs(pairs, min_average=0.8)
    assert sorted(len(c) for c in got) == [1, 2]
    assert any(c.split for c in got)
    plain = cluster_pairs(pairs, min_average=0.0)
    assert [c.ids for c in plain] == [("a", "b", "c")]


def test_unscored_pairs_use_the_callback():
    pairs = [("a", "b", 0.99), ("b", "c", 0.99)]
    assert [len(c) for c in cluster_pairs(pairs)] == [2, 1]  # a-c unknown counts as 0
    joined = cluster_pairs(pairs, missing_score=lambda ps: [0.97] * len(ps))
    assert [c.ids for c in joined] == [("a", "b", "c")]


def test_threshold_and_singletons():
    got = cluster_pairs([("a", "b", 0.3), ("c", "d", 0.9)], singletons=["e"])
    assert [c.ids for c in got] == [("c", "d"), ("a",), ("b",), ("e",)]


def test_febrl3_clusters(febrl3):
    records, truth = febrl3
    pairs = dedupe(records)
    groups = cluster(pairs)
    got = {frozenset(p) for c in groups for p in itertools.combinations(c.ids, 2)}
    tp = len(got & truth)
    precision, recall = tp / len(got), tp / len(truth)
    assert precision >= 0.995 and recall >= 0.99, (precision, recall)
    assert max(len(c) for c in groups) <= 6  # FEBRL3: an original and at most 5 copies
