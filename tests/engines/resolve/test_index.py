from __future__ import annotations

import pytest

from tocsin.engines.resolve import PersonIndex, dedupe
from tocsin.engines.resolve.records import prepare_columns
from tocsin.engines.resolve.synthetic_fr import generate, index_columns


@pytest.fixture(scope="module")
def index():
    ids, cols = index_columns(30_000, seed=3)
    train = generate(1500, seed=4)
    model = dedupe(train.records).summary.model
    return PersonIndex(prepare_columns(ids, cols), model=model), ids, cols


def _query(cols, k, **changes):
    q = {f: cols[f][k] for f in cols}
    q.update(changes)
    return q


def test_exact_lookup(index):
    idx, ids, cols = index
    for k in (0, 1234, 29_999):
        hits = idx.lookup(_query(cols, k))
        assert hits[0].id == ids[k] and hits[0].score > 0.99


def test_corrupted_lookups(index):
    idx, ids, cols = index
    k = 777
    d, m, y = cols["date_of_birth"][k].split("/")
    variants = [
        _query(cols, k, surname=cols["surname"][k].upper() + "E", phone="", id_number=""),
        _query(cols, k, date_of_birth=f"{y}-{d}-{m}" if int(d) <= 12 else f"{y}-{m}-{d}"),
        {"surname": cols["surname"][k], "given_name": cols["given_name"][k],
         "date_of_birth": cols["date_of_birth"][k]},
        {"phone": "+33 " + cols["phone"][k][1:], "surname": cols["surname"][k]},
    ]
    for q in variants:
        hits = idx.lookup(q, top_k=3)
        assert hits and hits[0].id == ids[k], q


def test_unknown_person_scores_low(index):
    idx, _, _ = index
    hits = idx.lookup({"surname": "Zyxwvut", "given_name": "Quentin",
                       "date_of_birth": "01/01/1901", "phone": "0199999999"})
    assert all(h.score < 0.5 for h in hits)


def test_explain_and_add(index):
    idx, _, cols = index
    q = _query(cols, 5)
    hit = idx.lookup(q)[0]
    e = idx.explain(q, hit)
    assert e.match_weight == pytest.approx(hit.match_weight)
    small = PersonIndex([{"id": "x", "surname": "Kerhervé", "given_name": "Yann",
                          "date_of_birth": "1970-01-02"}])
    small.add([{"id": "y", "surname": "Le Gall", "given_name": "Anne",
                "date_of_birth": "1980-05-06"}])
    assert len(small) == 2
    assert small.lookup({"surname": "Legall", "given_name": "Anne",
                         "date_of_birth": "06/05/1980"})[0].id == "y"


def test_lookup_by_birth_or_usage_surname_without_a_birth_date(index):
    idx, _, _ = index
    small = PersonIndex([
        {"id": "married", "surname": "Martin née Dupont", "given_name": "Sophie"},
        {"id": "maiden", "surname": "Lefèvre", "given_name": "Claire"},
        {"id": "other", "surname": "Dupont", "given_name": "Marc"},
    ], model=idx.model)
    # by her birth name: the index keys her other surname with her given name
    hits = small.lookup({"surname": "Dupont", "given_name": "Sophie"}, top_k=3)
    assert hits and hits[0].id == "married"
    assert small.explain({"surname": "Dupont", "given_name": "Sophie"}, hits[0]) \
        .contributions[1].level == "birth/usage name or swapped"
    # a query naming her married name finds the record kept under her birth name
    hits = small.lookup({"surname": "Bernard née Lefebvre", "given_name": "Claire"}, top_k=3)
    assert hits and hits[0].id == "maiden"
    assert not small.lookup({"surname": "Dupont", "given_name": "Zoé"}, min_score=0.5)
