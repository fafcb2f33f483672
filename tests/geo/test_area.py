"""One .osm.pbf import sets the whole area: addresses, road graph and basemap."""

from __future__ import annotations

import json

import pytest

from tests.geo import town
from tests.geo.conftest import seed_geo_dir
from tests.geo.test_service import CSV
from tocsin.core.errors import BadInput
from tocsin.geo.service import POINTER, GeoService

STATION = (60.1699, 24.9384)  # Kaivokatu, in the bundled Helsinki extract


def folders(d, kind):
    return sorted(p.name for p in d.glob(f"{kind}-*"))


def test_osm_import_sets_addresses_roads_and_basemap_for_a_running_server(
        tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    server = GeoService(d)
    helsinki_graph = server.road_graph()
    assert server.road_graph().nearest_node(*STATION)
    assert server.area()["bounds"][0][0] > 60 and server.basemap().extent[1] > 60

    info = GeoService(d).import_file(town.write_town(tmp_path / "town.osm.pbf"))
    assert info["format"] == "osm" and info["counts"]["addresses"] == 9
    roads, base = info["roads"], info["basemap"]
    assert (roads["nodes"], roads["edges"]) == (town.NODES, town.EDGES)
    assert roads["bounds"] == town.BOUNDS
    assert base["counts"]["building"] == 1 and base["counts"]["park"] == 1
    assert base["counts"]["road"] == 4 and base["counts"]["major"] == 4
    for kind, entry in (("addresses", info), ("roads", roads), ("basemap", base)):
        assert folders(d, kind) == [entry["dir"]], kind
    assert not list(d.glob(".tmp-*"))
    assert json.loads((d / POINTER).read_text())["roads"] == roads

    # the running server follows on its next use, for all three
    assert server.search("Rue B 2")[0].label == "2 Rue B, 75004 Testville"
    graph = server.road_graph()
    assert graph is not helsinki_graph and graph.num_nodes == town.NODES
    assert graph.nearest_node(*town.INSIDE)[1] < 20
    w, s, e, n = server.basemap().extent
    (south, west), (north, east) = town.BOUNDS
    assert west <= w and e <= east and south <= s and n <= north
    assert server.area()["bounds"] == town.BOUNDS
    lat, lon = server.area()["center"]
    assert south < lat < north and west < lon < east
    assert server.basemap().query(24.93, 60.16, 24.96, 60.18, 16)["features"] == []

    # a CSV address base replaces the addresses only
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV)
    again = GeoService(d).import_file(csv)
    assert again["roads"] == roads and again["basemap"] == base
    assert folders(d, "roads") == [roads["dir"]] and folders(d, "basemap") == [base["dir"]]
    assert server.search("14 rue de la paix")[0].label == "14 Rue de la Paix, 75002 Paris"
    assert server.road_graph() is graph  # not even read again


def test_csv_import_before_any_osm_keeps_the_bundled_roads(tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    csv = tmp_path / "paris.csv"
    csv.write_text(CSV)
    info = GeoService(d).import_file(csv)
    assert "roads" not in info and "basemap" not in info
    svc = GeoService(d)
    assert svc.road_graph().nearest_node(*STATION)[1] < 100
    assert (d / "roads").is_dir() and svc.area()["bounds"][0][0] > 60


def test_osm_import_without_roads_is_refused_and_changes_nothing(tmp_path, helsinki_geo_dir):
    d = tmp_path / "geo"
    seed_geo_dir(helsinki_geo_dir, d)
    svc = GeoService(d)
    before = svc.info()
    with pytest.raises(BadInput) as e:
        svc.import_file(town.write_town(tmp_path / "no-roads.osm.pbf", roads=False))
    assert e.value.code == "geo.no_roads"
    assert svc.info() == before and folders(d, "addresses") == [before["dir"]]
    assert not folders(d, "roads") and not list(d.glob(".tmp-*"))
    assert svc.search("Mannerheimintie 5")


def test_dispatch_places_calls_in_the_imported_area(client, force, geo, tmp_path):
    h = force.headers(client, "calltaker")

    def call_at(lat, lon):
        return client.post("/api/v1/dispatch/calls", headers=h,
                           json={"caller_location": {"lat": lat, "lon": lon}})

    assert call_at(*STATION).status_code == 201
    assert call_at(*town.INSIDE).json()["error"]["code"] == "dispatch.outside_map"
    cfg = client.get("/api/v1/geo/map-config", headers=h).json()
    assert cfg["bounds"][0][0] > 60

    GeoService(geo.geo_dir).import_file(town.write_town(tmp_path / "town.osm.pbf"))
    r = call_at(*town.INSIDE)
    assert r.status_code == 201, r.text
    assert "Testville" in r.json()["address"]
    r = call_at(*STATION)
    assert r.status_code == 422 and r.json()["error"]["code"] == "dispatch.outside_map"
    cfg = client.get("/api/v1/geo/map-config", headers=h).json()
    assert cfg["bounds"] == town.BOUNDS and cfg["basemap"] == "osm"
    (south, west), (north, east) = town.BOUNDS
    fc = client.get(f"/api/v1/geo/basemap?bbox={west},{south},{east},{north}&zoom=17",
                    headers=h).json()
    assert {f["properties"]["style"] for f in fc["features"]} == {
        "building", "park", "road", "major"}
    assert client.get("/api/v1/geo/basemap?bbox=24.935,60.164,24.954,60.180&zoom=16",
                      headers=h).json()["features"] == []
