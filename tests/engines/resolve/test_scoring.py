from __future__ import annotations

import math

import numpy as np
import pytest

from tocsin.engines.resolve import dedupe, explain, link, select_threshold
from tocsin.engines.resolve.records import prepare
from tocsin.engines.resolve.scoring import expected_f1_threshold


def prf(got: set, truth: set) -> tuple[float, float, float]:
    tp = len(got & truth)
    p, r = tp / max(len(got), 1), tp / len(truth)
    return p, r, 2 * p * r / max(p + r, 1e-12)


@pytest.fixture(scope="module")
def febrl4_pairs(febrl4):
    a, b, truth = febrl4
    return link(a, b), truth


def test_febrl4_f1(febrl4_pairs):
    pairs, truth = febrl4_pairs
    _, _, f1 = prf({(p.id_a, p.id_b) for p in pairs}, truth)
    assert f1 >= 0.998, f1


def test_febrl3_f1(febrl3):
    records, truth = febrl3
    pairs = dedupe(records)
    p, r, f1 = prf({frozenset((x.id_a, x.id_b)) for x in pairs}, truth)
    assert f1 >= 0.97, (p, r, f1)
    # the prior is the share of matches among all pairs: EM found about as many as there are
    all_pairs = len(records) * (len(records) - 1) // 2
    assert 0.8 < pairs.summary.model.prior * all_pairs / len(truth) < 1.25


def test_explanations_add_up(febrl4_pairs):
    pairs, _ = febrl4_pairs
    for pair in pairs[:: max(1, len(pairs) // 25)]:
        e = explain(pair)
        total = e.prior_weight + sum(c.weight + c.tf_adjustment for c in e.contributions)
        assert total == pytest.approx(pair.match_weight, abs=1e-9)
        assert e.probability == pytest.approx(pair.score)
        assert {c.field for c in e.contributions} >= {"surname", "given_name", "date_of_birth"}
        assert "total" in str(e)
        for c in e.contributions:
            if c.level == "missing":
                assert c.weight == 0.0


def test_levels_fire_as_described(febrl4_pairs):
    pairs, _ = febrl4_pairs
    levels = {c.level for p in pairs[:2000] for c in explain(p).contributions}
    assert {"exact", "missing", "sounds alike or jaro-winkler>=0.94"} <= levels


def _people(surname_of_pair: str, filler: str, n_filler: int):
    """Two near-identical records named ``surname_of_pair`` among fillers."""
    recs = []
    for k in range(n_filler):
        recs.append({"id": f"f{k}", "surname": filler if k % 2 else f"Name{k}x",
                     "given_name": ["Paul", "Anne", "Luc", "Marie"][k % 4],
                     "date_of_birth": f"19{50 + k % 40}-0{1 + k % 9}-1{k % 9}",
                     "city": ["Paris", "Lyon", "Brest"][k % 3]})
    recs.append({"id": "a", "surname": surname_of_pair, "given_name": "Yves",
                 "date_of_birth": "1966-06-06", "city": "Quimper"})
    recs.append({"id": "b", "surname": surname_of_pair, "given_name": "Yves",
                 "date_of_birth": "1966-06-06", "city": "Quimper"})
    return recs


def test_term_frequency_rare_surname_weighs_more():
    common = dedupe(_people("Martin", "Martin", 400), keep_all=True)
    rare = dedupe(_people("Kerhervé", "Martin", 400), keep_all=True)

    def surname_part(pairs):
        pair = next(p for p in pairs if {p.id_a, p.id_b} == {"a", "b"})
        c = next(c for c in explain(pair).contributions if c.field == "surname")
        assert c.level == "exact"
        return c

    c_common, c_rare = surname_part(common), surname_part(rare)
    assert c_rare.tf_adjustment > 0 > c_common.tf_adjustment
    assert c_rare.total > c_common.total + 3


def test_date_swap_and_maiden_name_levels():
    recs = [{"id": "1", "surname": "Martin née Dupont", "given_name": "Marie",
             "date_of_birth": "04/03/1981"},
            {"id": "2", "surname": "Dupont", "given_name": "Marie", "date_of_birth": "03/04/1981"}]
    pairs = dedupe(recs, keep_all=True)
    levels = {c.field: c.level for c in explain(pairs[0]).contributions}
    assert levels["surname"] == "birth/usage name or swapped"
    assert levels["date_of_birth"] == "day/month swapped"


def test_labels_replace_em(febrl4):
    a, b, truth = febrl4
    pairs = link(a[:1500], b, labels=truth)
    sub_truth = {t for t in truth if t[0] in {r["id"] for r in a[:1500]}}
    _, _, f1 = prf({(p.id_a, p.id_b) for p in pairs}, sub_truth)
    assert f1 >= 0.99
    assert pairs.summary.model.em_iterations == 0


def test_threshold_selection():
    p = np.array([0.99, 0.9, 0.8, 0.4, 0.2, 0.1])
    y = np.array([True, True, False, True, False, False])
    thr, f1 = select_threshold(p, y)
    assert thr == 0.4 and f1 == pytest.approx(2 * 3 / (4 + 3))
    assert expected_f1_threshold(np.array([0.99, 0.98, 0.02, 0.01])) == 0.98
    assert math.isclose(select_threshold(np.array([]), np.array([], bool))[1], 0.0)


def test_empty_and_tiny_inputs():
    assert list(dedupe([{"id": "1", "surname": "Martin"}])) == []
    t = prepare([])
    assert len(t) == 0
    assert list(link([{"id": "1", "surname": "A"}], [])) == []
