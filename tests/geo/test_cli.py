"""`tocsin geo import | parse-location` and `tocsin geocode` (in-process, tmp data dir)."""

from __future__ import annotations

import io
import json

import pytest

from tests.geo.conftest import seed_geo_dir
from tocsin.cli import main

AML = ('A"ML=1;lt=+54.76397;lg=-0.18305;rd=50;top=20130717141935;lc=90;pm=W;'
       'si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=128')
CSV = ("id,housenumber,street,postcode,city,lat,lon\n"
       "a1,12,Rue de la Paix,75002,Paris,48.8690,2.3310\n"
       "a2,14,Rue de la Paix,75002,Paris,48.8692,2.3306\n"
       "a3,1,Avenue de l'Opéra,75001,Paris,48.8635,2.3350\n"
       "a4,3,Quai des Orfèvres,75001,Paris,48.8556,2.3446\n"
       "bad,7,Rue Sans Position,75001,Paris,,\n")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    for k in ("TOCSIN_CONFIG_FILE", "TOCSIN_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TOCSIN_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


@pytest.fixture
def paris(data_dir, tmp_path, capsys):
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV, encoding="utf-8")
    assert main(["geo", "import", str(csv)]) == 0
    return capsys.readouterr()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_import_csv_shows_progress_and_counts(paris, data_dir):
    assert "imported paris.csv (csv)" in paris.out
    assert "4 addresses, 3 streets, 0 places, 0 POIs" in paris.out
    assert "reading paris.csv" in paris.err and "saving the index" in paris.err
    assert (data_dir / "geo" / "addresses.json").is_file()


def test_import_osm_builds_addresses_roads_and_basemap(data_dir, tmp_path, capsys):
    from tests.geo.town import EDGES, NODES, write_town

    pbf = write_town(tmp_path / "town.osm.pbf")
    rc, out, err = run(capsys, "geo", "import", str(pbf))
    assert rc == 0, err
    assert "imported town.osm.pbf (osm)" in out and "9 addresses, 8 streets" in out
    assert f"road graph: {NODES} nodes, {EDGES} edges; map area lat 48.85400..48.85670, " \
           "lon 2.34900..2.35320" in out
    assert "basemap: 1 park, 1 building, 4 road, 4 major" in out
    assert "building the road graph" in err and "drawing the basemap" in err
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV, encoding="utf-8")
    rc, out, _ = run(capsys, "geo", "import", str(csv))
    assert rc == 0 and "roads and basemap unchanged (from town.osm.pbf)" in out
    info = json.loads((data_dir / "geo" / "addresses.json").read_text())
    assert info["format"] == "csv" and info["roads"]["nodes"] == NODES
    rc, _, err = run(capsys, "geo", "import", str(write_town(tmp_path / "bare.osm.pbf",
                                                               roads=False)))
    assert rc == 2 and "[geo.no_roads]" in err


def test_geocode_the_imported_addresses(paris, capsys):
    rc, out, _ = run(capsys, "geocode", "14 rue de la paix", "--json", "--limit", "2")
    assert rc == 0
    found = json.loads(out)
    assert found[0]["label"] == "14 Rue de la Paix, 75002 Paris"
    assert (found[0]["lat"], found[0]["lon"]) == (48.8692, 2.3306)
    assert found[0]["source_id"] == "a2"  # the CSV's id column
    assert found[0]["score"] == 1.0 and found[0]["kind"] == "address"
    rc, out, _ = run(capsys, "geocode", "quai des orfevres 3")
    assert rc == 0 and "3 Quai des Orfèvres, 75001 Paris" in out and "score" in out
    rc, out, _ = run(capsys, "geocode", "av de l opera 1", "--limit", "1")
    assert "matched:" in out and "abbreviation" in out


def test_geocode_batch_one_json_line_per_query_in_order(paris, tmp_path, capsys):
    queries = ["1 avenue de l'opera", "12 rue de la paix", "", "nowhere street 99",
               "quai\x00des orfevres", "3 quai des orfevres"]
    batch = tmp_path / "queries.txt"
    batch.write_text("\n".join(queries) + "\n", encoding="utf-8")
    rc, out, err = run(capsys, "geocode", "--batch", str(batch), "--json", "--limit", "3")
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == len(queries)
    rows = [json.loads(line) for line in lines]
    assert all(isinstance(r, list) for r in rows)
    assert rows[0][0]["label"] == "1 Avenue de l'Opéra, 75001 Paris"
    assert rows[1][0]["label"] == "12 Rue de la Paix, 75002 Paris"
    assert rows[2] == [] and rows[4] == []
    assert rows[5][0]["label"] == "3 Quai des Orfèvres, 75001 Paris"
    for row in rows:
        for c in row:
            assert {"lat", "lon", "label", "score"} <= c.keys()
    assert "line 3" in err and "geo.query_empty" in err
    assert "line 5" in err and "geo.query_control_character" in err
    # standard input, human output
    import sys

    stdin = io.StringIO("12 rue de la paix\n")
    old, sys.stdin = sys.stdin, stdin
    try:
        rc, out, _ = run(capsys, "geocode", "--batch", "-")
    finally:
        sys.stdin = old
    assert rc == 0 and out.startswith("12 rue de la paix:\n 1. 12 Rue de la Paix")


def test_geocode_reverse(paris, capsys):
    rc, out, _ = run(capsys, "geocode", "--reverse", "48.86905", "2.3310", "--json")
    assert rc == 0
    res = json.loads(out)
    assert res["address"]["label"] == "12 Rue de la Paix, 75002 Paris"
    assert 0 < res["address"]["distance_m"] < 10 and res["address"]["source_id"] == "a1"
    rc, out, _ = run(capsys, "geocode", "--reverse", "48.86905", "2.3310")
    assert rc == 0 and out.startswith("address: 12 Rue de la Paix") and "m away" in out
    rc, out, _ = run(capsys, "geocode", "--reverse", "0", "0")
    assert rc == 0 and "nothing within" in out


def test_geocode_uses_bundled_helsinki_until_something_is_imported(data_dir, capsys,
                                                                   helsinki_geo_dir):
    seed_geo_dir(helsinki_geo_dir, data_dir / "geo")
    rc, out, _ = run(capsys, "geocode", "Mannerheimintie 5", "--json", "--limit", "1")
    assert rc == 0 and json.loads(out)[0]["label"] == "Mannerheimintie 5, 00100 Helsinki"
    rc, out, _ = run(capsys, "geocode", "--reverse", "60.1699", "24.9384", "--json")
    assert json.loads(out)["street"]["street"] == "Kaivokatu"


def test_geocode_bad_input_exits_2(data_dir, capsys, helsinki_geo_dir):
    seed_geo_dir(helsinki_geo_dir, data_dir / "geo")
    for argv, code in ((["geocode", ""], "geo.query_empty"),
                       (["geocode", "x" * 10_000], "geo.query_too_long"),
                       (["geocode", "a\x1bb"], "geo.query_control_character"),
                       (["geocode", "--reverse", "nan", "24.9"], "geo.bad_coordinates"),
                       (["geocode", "--reverse", "91", "24.9"], "geo.bad_coordinates"),
                       (["geocode", "x", "--limit", "0"], "geo.bad_limit"),
                       (["geocode"], "geo.usage"),
                       (["geocode", "x", "--reverse", "1", "2"], "geo.usage"),
                       (["geocode", "--batch", "/no/such/file"], "geo.no_such_file")):
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and err.startswith("tocsin: error: ") and f"[{code}]" in err, argv
        assert out == ""


def test_import_bad_files_exit_2_and_keep_the_index(paris, tmp_path, capsys, data_dir):
    before = (data_dir / "geo" / "addresses.json").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\nfoo,1\n")
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"PK\x03\x04 certainly not a pbf")
    for argv, code in (([str(bad)], "geo.bad_file"), ([str(junk)], "geo.bad_file"),
                       ([str(bad), "--format", "osm"], "geo.bad_file"),
                       ([str(tmp_path / "missing.csv")], "geo.no_such_file"),
                       ([str(tmp_path / "file.xyz")], "geo.bad_format")):
        rc, _out, err = run(capsys, "geo", "import", *argv)
        assert rc == 2 and f"[{code}]" in err and "tocsin: error:" in err, argv
    assert (data_dir / "geo" / "addresses.json").read_text() == before


def test_parse_location_aml(data_dir, tmp_path, capsys):
    rc, out, _ = run(capsys, "geo", "parse-location", AML, "--json")
    assert rc == 0
    loc = json.loads(out)
    assert (loc["lat"], loc["lon"], loc["radius_m"], loc["source"], loc["method"]) == \
        (54.76397, -0.18305, 50.0, "aml-sms", "WiFi")
    assert loc["time"] == "2013-07-17T14:19:35+00:00" and "stale" in loc["flags"]
    assert "1234567890123456" not in out  # the IMEI stays out
    rc, out, _ = run(capsys, "geo", "parse-location", AML)
    assert rc == 0 and "AML SMS" in out and "54.763970, -0.183050" in out and "50 m" in out
    f = tmp_path / "sms.txt"
    f.write_text(AML + "\n")
    rc, out, _ = run(capsys, "geo", "parse-location", str(f), "--json")
    assert rc == 0 and json.loads(out)["lat"] == 54.76397


def test_parse_location_pidf_file(data_dir, tmp_path, capsys):
    from tests.geo.test_api import CIRCLE, PIDF_HEAD, PIDF_TAIL

    f = tmp_path / "loc.xml"
    f.write_text(PIDF_HEAD + CIRCLE + PIDF_TAIL)
    rc, out, _ = run(capsys, "geo", "parse-location", str(f))
    assert rc == 0 and "PIDF-LO" in out and "35.5 m" in out and "GNSS" in out


def test_parse_location_broken_exits_2(data_dir, tmp_path, capsys):
    broken = tmp_path / "broken.xml"
    broken.write_text("<presence><unclosed></presence>")
    for arg, reason in ((AML.replace("ml=128", "ml=12"), "aml.length_mismatch"),
                        (AML.replace("lt=+54.76397;", ""), "aml."),
                        ("A\"ML=1;lt=+54.7x397;lg=-0.18305;ml=34", "aml."),
                        (str(broken), "pidf.xml_malformed"),
                        ("hello world", "input.unknown_format"),
                        ("", "input.empty")):
        rc, out, err = run(capsys, "geo", "parse-location", arg)
        assert rc == 2 and "[geo.location_unreadable]" in err and f"({reason}" in err, arg
        assert out == ""
