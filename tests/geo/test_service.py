"""The geo wiring: saved index reused on the next start, imports swapped in atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.geo.conftest import seed_geo_dir
from tocsin.core.errors import BadInput
from tocsin.geo import service as geo_service
from tocsin.geo.service import POINTER, GeoService, GeoUnavailable, get_geo

CSV = ("id,housenumber,street,postcode,city,lat,lon\n"
       "a1,12,Rue de la Paix,75002,Paris,48.8690,2.3310\n"
       "a2,14,Rue de la Paix,75002,Paris,48.8692,2.3306\n"
       "a3,1,Avenue de l'Opéra,75001,Paris,48.8635,2.3350\n")


def no_build(*_a, **_k):
    raise AssertionError("the saved index should have been used")


def test_first_start_builds_and_saves_next_start_maps_it(tmp_path, monkeypatch):
    first = GeoService(tmp_path / "geo")
    assert first.search("Mannerheimintie 5")[0].label == "Mannerheimintie 5, 00100 Helsinki"
    info = json.loads((tmp_path / "geo" / POINTER).read_text())
    assert info["format"] == "bundled" and info["counts"]["addresses"] > 1000
    assert (tmp_path / "geo" / info["dir"] / "meta.json").is_file()
    monkeypatch.setattr(geo_service, "import_osm_pbf", no_build)
    again = GeoService(tmp_path / "geo")
    index = again.address_index()
    assert isinstance(index.ad_lat, np.memmap)
    assert again.search("Mannerheimintie 5")[0].label == "Mannerheimintie 5, 00100 Helsinki"
    assert again.address_index() is index  # one load, then cached


def test_import_swaps_the_index_under_a_running_service(tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    server = GeoService(d)
    assert server.search("Mannerheimintie 5")
    old = server.address_index()
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV)
    info = GeoService(d).import_file(csv)  # another process: `tocsin geo import`
    assert info["format"] == "csv" and info["counts"]["addresses"] == 3
    assert [p.name for p in d.glob("addresses-*")] == [info["dir"]]
    # the server switches on its next query; the old mapping still reads
    assert server.search("14 rue de la paix")[0].label == "14 Rue de la Paix, 75002 Paris"
    assert server.address_index() is not old and len(old.ad_lat) > 1000
    assert float(np.asarray(old.ad_lat).sum()) > 0


def test_failed_import_keeps_the_current_index(tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    svc = GeoService(d)
    before = svc.info()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("id,housenumber,street,postcode,city,lat,lon\n1,2,X,,,nan,nan\n")
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"\x00\x01 not a pbf")
    for path, code in ((bad, "geo.bad_file"), (empty, "geo.empty_file"),
                       (junk, "geo.bad_file"), (tmp_path / "none.csv", "geo.no_such_file"),
                       (tmp_path / "x.dat", "geo.bad_format")):
        with pytest.raises(BadInput) as e:
            svc.import_file(path)
        assert e.value.code == code, path
    assert svc.info() == before
    assert svc.search("Mannerheimintie 5")


def test_damaged_index(tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    info = GeoService(d).info()
    (d / info["dir"] / "vocab.json").write_text("{broken")
    # the bundled index is simply built again
    assert GeoService(d).search("Mannerheimintie 5")
    # an imported one is not silently replaced by Helsinki
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV)
    info = GeoService(d).import_file(csv)
    (d / info["dir"] / "vocab.json").write_text("{broken")
    with pytest.raises(GeoUnavailable) as e:
        GeoService(d).search("rue de la paix")
    assert e.value.status == 503 and e.value.code == "geo.index_unavailable"


def test_checks():
    svc = GeoService("/nonexistent")  # nothing is loaded before the input is checked
    for text, code in (("", "geo.query_empty"), (" \n", "geo.query_empty"),
                       (None, "geo.query_empty"), ("x" * 1001, "geo.query_too_long"),
                       ("a\x00b", "geo.query_control_character"),
                       ("a\u009bb", "geo.query_control_character")):
        with pytest.raises(BadInput) as e:
            svc.search(text)
        assert e.value.code == code, text
    for point in ((float("nan"), 0), (0, float("inf")), (90.5, 0), (0, -180.5), ("x", 1),
                  (None, 1)):
        with pytest.raises(BadInput) as e:
            svc.reverse(*point)
        assert e.value.code == "geo.bad_coordinates", point
    with pytest.raises(BadInput) as e:
        svc.search("x", near=(float("nan"), 24.9))
    assert e.value.code == "geo.bad_coordinates"
    for limit in (0, 101, True, 2.5):
        with pytest.raises(BadInput):
            svc.search("x", limit=limit)


def test_dispatch_uses_the_platform_geo_service(runtime, geo):
    from tocsin.dispatch.service import get_service

    assert get_service(runtime).geo is get_geo(runtime) is geo
    graph = geo.road_graph()
    assert geo.road_graph() is graph and (runtime.settings.geo_dir / "roads").is_dir()


def test_addresses_keep_the_id_of_their_source(tmp_path):
    from tests.geo.town import write_town

    csv = tmp_path / "paris.csv"
    csv.write_text(CSV.replace("a2,", " bâtiment-2 ,"))
    d = tmp_path / "geo"
    svc = GeoService(d)
    svc.import_file(csv)
    found = svc.search_json("14 rue de la paix", limit=1)[0]
    assert found["source_id"] == "bâtiment-2" and found["id"].startswith("address:")
    assert [c.source_id for c in svc.search("rue de la paix 12", limit=1)] == ["a1"]
    assert svc.reverse(48.8635, 2.3350).address.source_id == "a3"
    assert svc.search("rue de la paix 13", limit=1)[0].source_id is None  # interpolated
    # an OSM address is its node or way
    svc.import_file(write_town(tmp_path / "town.osm.pbf"))
    assert svc.search("Rue B 2", limit=1)[0].source_id == "n112"
    assert svc.search("Rue A 9", limit=1)[0].source_id == "w2000"
    # an index saved before ids were kept still loads, without them
    info = svc.info()
    for name in ("ad_ref", "ad_ref_off"):
        (d / info["dir"] / f"{name}.npy").unlink()
    assert GeoService(d).search("Rue B 2", limit=1)[0].source_id is None
