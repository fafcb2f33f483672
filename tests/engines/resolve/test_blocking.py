from __future__ import annotations

import numpy as np

from tocsin.engines.resolve.blocking import DEFAULT_RULES, BlockingRule, candidate_pairs
from tocsin.engines.resolve.records import prepare
from tocsin.engines.resolve.synthetic_fr import generate


def test_febrl3_recall_and_size(febrl3):
    records, truth = febrl3
    t = prepare(records)
    ia, ib, report = candidate_pairs(t)
    assert (ia < ib).all()
    got = {frozenset((t.ids[i], t.ids[j])) for i, j in zip(ia, ib)}
    recall = len(got & truth) / len(truth)
    assert recall >= 0.999, recall
    assert report.total == len(got) <= 15 * len(records)  # a few pairs per record
    assert report.reduction > 0.99
    assert sum(report.added.values()) == report.total


def test_febrl4_recall_and_size(febrl4):
    a, b, truth = febrl4
    A, B = prepare(a), prepare(b)
    ia, ib, report = candidate_pairs(A, B)
    got = {(A.ids[i], B.ids[j]) for i, j in zip(ia, ib)}
    assert len(got & truth) / len(truth) >= 0.999
    assert len(got) <= 15 * len(a)
    assert report.max_pairs == len(a) * len(b)


def test_french_set_recall_and_size():
    """The generated French set (the benchmark's: married names with and without
    ``née``, partial and swapped dates, initials, typos, moves) keeps 99.9+%."""
    data = generate(5000, seed=2026)
    truth = data.true_pairs()
    t = prepare(data.records)
    ia, ib, report = candidate_pairs(t)
    got = {frozenset((t.ids[i], t.ids[j])) for i, j in zip(ia, ib)}
    recall = len(got & truth) / len(truth)
    assert recall >= 0.999, (recall, len(truth - got))
    assert report.total == len(got) <= 10 * len(data.records)
    # the keys made for it: every surname of a record, dates with a part left out
    # or in either order, numbers one edit apart
    for rule in ("names_skeleton_any_order", "given_initial+birth_year_month",
                 "phone_one_edit"):
        assert report.added[rule] > 0, rule


def test_multi_key_rules_pair_any_key_with_any_key():
    t = prepare([{"id": "a", "surname": "Martin née Dupont", "given_name": "Sophie"},
                 {"id": "b", "surname": "Dupont", "given_name": "Sophie"},
                 {"id": "c", "surname": "Durand", "given_name": "Sophie"},
                 {"id": "d", "phone": "06 12 34 56 78"}, {"id": "e", "phone": "06 12 43 56 78"},
                 {"id": "f", "phone": "06 99 99 99 99"}])
    rules = tuple(r for r in DEFAULT_RULES
                  if r.name in ("names_skeleton_any_order", "phone_one_edit"))
    ia, ib, report = candidate_pairs(t, rules=rules)
    assert set(zip(ia.tolist(), ib.tolist())) == {(0, 1), (3, 4)}
    assert report.proposed == {"names_skeleton_any_order": 1, "phone_one_edit": 1}


def test_single_rule_needs_the_union(febrl4):
    """No single pass reaches the union's recall: the passes complement each other."""
    a, b, truth = febrl4
    A, B = prepare(a), prepare(b)
    for rule in DEFAULT_RULES[:3]:
        ia, ib, _ = candidate_pairs(A, B, rules=(rule,))
        got = {(A.ids[i], B.ids[j]) for i, j in zip(ia, ib)}
        assert len(got & truth) / len(truth) < 0.99, rule.name


def test_big_blocks_are_capped_and_sorted_neighbourhood_finds_typos():
    recs = [{"id": str(k), "surname": "martin", "given_name": "jean",
             "date_of_birth": "1980-01-01"} for k in range(300)]
    t = prepare(recs)
    rule = BlockingRule("surname", lambda t: t["surname"], ("surname",))
    ia, ib, _ = candidate_pairs(t, rules=(rule,), max_block=10)
    assert 0 < len(ia) <= 300 * 9  # not 300*299/2
    ids = prepare([{"id": "a", "id_number": "4137877"}, {"id": "b", "id_number": "4137787"},
                   {"id": "c", "id_number": "9999999"}])
    sn = BlockingRule("sn", lambda t: t["id_number"], ("id_number",),
                      sorted_neighbourhood=True, window=1)
    ia, ib, _ = candidate_pairs(ids, rules=(sn,))
    assert (0, 1) in set(zip(ia.tolist(), ib.tolist()))
    exact = BlockingRule("exact", lambda t: t["id_number"], ("id_number",))
    assert len(candidate_pairs(ids, rules=(exact,))[0]) == 0


def test_rules_on_absent_fields_are_skipped():
    t = prepare([{"id": "1", "surname": "a", "given_name": "b"},
                 {"id": "2", "surname": "a", "given_name": "b"}])
    ia, ib, report = candidate_pairs(t)
    assert "phone" not in report.proposed
    assert np.array_equal(ia, [0]) and np.array_equal(ib, [1])
