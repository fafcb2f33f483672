from __future__ import annotations

from tocsin.engines.resolve import dedupe
from tocsin.engines.resolve.normalise import parse_surname
from tocsin.engines.resolve.synthetic_fr import (
    generate,
    given_vocabulary,
    split_for_linking,
    surname_vocabulary,
)


def test_vocabulary_is_wide_and_french():
    surnames = surname_vocabulary()
    male, female = given_vocabulary()
    assert len(surnames) >= 2500 and len(male) + len(female) >= 700
    for name in ("Martin", "Le Gall", "Etcheverry", "Santoni", "Muller", "de la Fontaine",
                 "Payet", "Kervella"):
        assert name in surnames
    assert any("-" in s for s in surnames) and any("-" in g for g in male)


def test_reproducible_and_varied():
    a, b = generate(300, seed=5), generate(300, seed=5)
    assert a.records == b.records
    assert generate(300, seed=6).records != a.records
    truth = a.true_pairs()
    assert len(truth) > 100
    ids = {r["id"]: r for r in a.records}
    differing = sum(ids[x]["surname"] != ids[y]["surname"] for x, y in map(sorted, truth))
    assert differing > 10  # corrupted copies, not clones
    assert any("née" in r["surname"] or "épouse" in r["surname"] for r in a.records)
    assert all(parse_surname(r["surname"]) for r in a.records)


def test_linking_split_and_engine_quality():
    data = generate(1500, seed=8)
    a, b, truth = split_for_linking(data)
    assert len(a) == 1500 and len(b) == len(truth)
    pairs = dedupe(data.records)
    got = {frozenset((p.id_a, p.id_b)) for p in pairs}
    all_truth = data.true_pairs()
    tp = len(got & all_truth)
    p, r = tp / len(got), tp / len(all_truth)
    assert 2 * p * r / (p + r) >= 0.95, (p, r)
