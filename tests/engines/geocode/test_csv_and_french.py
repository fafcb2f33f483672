"""CSV import (streamed) with French street names and abbreviations, and the
synthetic national generator."""

from __future__ import annotations

import gzip
from itertools import islice

import pytest

from tocsin.engines.geocode import AddressIndex, CSVImportError, import_csv
from tocsin.engines.geocode.index import haversine_m
from tocsin.engines.geocode.synthetic import generate, write_csv

ROWS = [
    # id, housenumber, street, postcode, city, lat, lon
    ("1", "12", "Rue de la Gare", "69007", "Lyon", 45.7485, 4.8420),
    ("2", "14", "Rue de la Gare", "69007", "Lyon", 45.7487, 4.8422),
    ("3", "12", "Rue de la Gare", "38000", "Grenoble", 45.1900, 5.7150),
    ("4", "3", "Avenue Jean Jaurès", "69007", "Lyon", 45.7450, 4.8400),
    ("5", "7", "Avenue Jean Jaurès", "69007", "Lyon", 45.7458, 4.8404),
    ("6", "2", "Boulevard Saint-Germain", "75005", "Paris", 48.8510, 2.3480),
    ("7", "4 bis", "Boulevard Saint-Germain", "75005", "Paris", 48.8512, 2.3482),
    ("8", "4", "Boulevard Saint-Germain", "75005", "Paris", 48.8511, 2.3481),
    ("9", "1", "Place de l'Église", "71000", "Mâcon", 46.3060, 4.8320),
    ("10", "5", "Chemin des Écoliers", "69007", "Lyon", 45.7400, 4.8300),
    ("11", "8", "Rue du 8 Mai 1945", "69007", "Lyon", 45.7410, 4.8310),
    ("12", "20", "Route de Saint-Étienne", "42100", "Saint-Étienne", 45.4300, 4.3900),
]


@pytest.fixture(scope="module")
def french(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "ban.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,housenumber,street,postcode,city,lat,lon\n")
        f.writelines(",".join(f'"{x}"' if isinstance(x, str) else str(x) for x in r) + "\n" for r in ROWS)
        f.write("13,,,,,,\n")  # empty row: skipped
        f.write('14,5,"Rue Bidon",75000,Paris,not-a-number,2.3\n')  # bad coordinates
    return path


@pytest.fixture(scope="module")
def fr_index(french):
    return AddressIndex.build(import_csv(french))


def test_csv_streams_and_skips_bad_rows(french):
    it = import_csv(french)
    first = next(it)
    assert first.street == "Rue de la Gare" and first.housenumber == "12"
    rest = list(it)
    assert len(rest) == len(ROWS) - 1
    calls = []
    list(import_csv(french, progress=lambda d, t: calls.append((d, t))))
    assert calls[-1][0] == calls[-1][1] > 0


def test_ban_style_semicolon_gz(tmp_path):
    p = tmp_path / "ban.csv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("id;numero;rep;nom_voie;code_postal;nom_commune;lon;lat\n")
        f.write("x1;4;bis;Boulevard Saint-Germain;75005;Paris;2.3482;48.8512\n")
    (r,) = list(import_csv(p))
    assert (r.housenumber, r.street, r.city, r.lat, r.lon) == \
        ("4bis", "Boulevard Saint-Germain", "Paris", 48.8512, 2.3482)


def test_csv_missing_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CSVImportError):
        list(import_csv(p))


def test_labels_put_number_first_for_french(fr_index):
    c = fr_index.search("12 rue de la gare lyon")[0]
    assert c.label == "12 Rue de la Gare, 69007 Lyon"
    assert (c.city, c.postcode, c.kind, c.approximate) == ("Lyon", "69007", "address", False)


@pytest.mark.parametrize("typed,expect", [
    ("12 rue de la gare lyon", (45.7485, 4.8420)),
    ("12 r de la gare lyon", (45.7485, 4.8420)),
    ("rue de la gare 12 grenoble", (45.1900, 5.7150)),
    ("12 rue de la gare 38000", (45.1900, 5.7150)),
    ("7 av jean jaures lyon", (45.7458, 4.8404)),
    ("7 ave. Jean-Jaurès", (45.7458, 4.8404)),
    ("2 bd st germain paris", (48.8510, 2.3480)),
    ("4 bis boulevard saint germain", (48.8512, 2.3482)),
    ("4bis bd saint-germain", (48.8512, 2.3482)),
    ("4 boulevard saint germain", (48.8511, 2.3481)),
    ("1 pl de l eglise macon", (46.3060, 4.8320)),
    ("5 ch des ecoliers", (45.7400, 4.8300)),
    ("8 rue du 8 mai 1945", (45.7410, 4.8310)),
    ("20 rte de st etienne", (45.4300, 4.3900)),
    ("12 rue de la grae lyon", (45.7485, 4.8420)),  # typo
])
def test_french_queries(fr_index, typed, expect):
    c = fr_index.search(typed)[0]
    assert haversine_m(c.lat, c.lon, *expect) < 5, (typed, c.label)
    assert not c.approximate


def test_abbreviation_is_reported(fr_index):
    c = fr_index.search("7 av jean jaures lyon")[0]
    assert ("av", "avenue", "abbreviation") in [(m.query, m.token, m.how) for m in c.matched]


def test_interpolation_between_numbers(fr_index):
    c = fr_index.search("5 avenue jean jaures lyon")[0]
    assert c.approximate and c.housenumber == "5"
    # 3 and 7 exist: 5 lies between them
    assert abs(c.lat - (45.7450 + 45.7458) / 2) < 1e-6


def test_save_load(fr_index, tmp_path):
    fr_index.save(tmp_path / "fr")
    idx = AddressIndex.load(tmp_path / "fr", mmap=False)
    assert idx.search("12 rue de la gare lyon")[0].label == "12 Rue de la Gare, 69007 Lyon"
    assert idx.reverse(45.1900, 5.7150).address.city == "Grenoble"


def test_synthetic_generator_is_deterministic_and_french():
    a = list(islice(generate(5000, seed=3), 200))
    b = list(islice(generate(5000, seed=3), 200))
    assert a == b
    recs = list(generate(5000, seed=3))
    assert len(recs) == 5000
    assert all(43 <= r.lat <= 51 and -2 <= r.lon <= 8 for r in recs)
    types = {r.street.split()[0] for r in recs}
    assert {"Rue", "Chemin", "Impasse"} <= types
    assert all(len(r.postcode) == 5 and r.postcode.isdigit() for r in recs)
    idx = AddressIndex.build(recs)
    assert idx.meta["housenumber_first"] is True
    r = recs[1234]
    c = idx.search(f"{r.housenumber} {r.street} {r.city}")[0]
    assert haversine_m(c.lat, c.lon, r.lat, r.lon) < 1


def test_write_csv_round_trip(tmp_path):
    p = tmp_path / "syn.csv"
    assert write_csv(p, 300, seed=1) == 300
    assert [r.street for r in import_csv(p)] == [r.street for r in generate(300, seed=1)]
