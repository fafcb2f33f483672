"""The basemap drawn from the bundled OSM extract, cut to a bbox and simplified by zoom."""

from __future__ import annotations

from tocsin.geo.basemap import _simplify


def test_basemap_features_in_bbox_by_style_and_zoom(client, force):
    h = force.headers(client, "calltaker")
    url = "/api/v1/geo/basemap?bbox=24.935,60.164,24.954,60.180&zoom={}"
    near = client.get(url.format(16), headers=h)
    assert near.status_code == 200, near.text
    fc = near.json()
    styles = {f["properties"]["style"] for f in fc["features"]}
    assert {"building", "road", "major", "water", "park", "rail"} <= styles
    for f in fc["features"]:
        for ring in ([f["geometry"]["coordinates"]] if f["geometry"]["type"] == "LineString"
                     else f["geometry"]["coordinates"]):
            assert all(24.9 < x < 25.0 and 60.15 < y < 60.19 for x, y in ring)
    far = client.get(url.format(12), headers=h).json()
    far_styles = {f["properties"]["style"] for f in far["features"]}
    assert "building" not in far_styles and "road" not in far_styles
    points = lambda c: sum(len(f["geometry"]["coordinates"]) for f in c["features"]
                           if f["geometry"]["type"] == "LineString")
    majors = lambda c: [f for f in c["features"] if f["properties"]["style"] == "major"]
    assert points({"features": majors(far)}) < points({"features": majors(fc)})
    # nothing outside the extract
    empty = client.get("/api/v1/geo/basemap?bbox=2.3,48.8,2.4,48.9&zoom=16", headers=h)
    assert empty.json()["features"] == []
    for bad in ("1,2,3", "24.96,60.16,24.93,60.18", "a,b,c,d", "0,0,10,10"):
        r = client.get(f"/api/v1/geo/basemap?bbox={bad}&zoom=14", headers=h)
        assert r.status_code == 422, bad
    assert client.get(url.format(14)).status_code == 401


def test_simplify_keeps_ends_and_shape():
    import numpy as np

    line = np.array([(0, 0), (1, 0.01), (2, 0), (3, 5), (4, 0)], dtype=float)
    out = _simplify(line, 0.1)
    assert out[0].tolist() == [0, 0] and out[-1].tolist() == [4, 0]
    assert [3, 5] in out.tolist() and [1, 0.01] not in out.tolist()


def test_map_config_gives_the_bundled_area_or_the_tile_url(client, force, runtime):
    h = force.headers(client, "calltaker")
    r = client.get("/api/v1/geo/map-config", headers=h)
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert cfg["tile_url"] is None and cfg["basemap"] == "osm"
    (south, west), (north, east) = cfg["bounds"]
    assert 60.16 < south < 60.165 and 60.178 < north < 60.18
    assert 24.93 < west < 24.94 and 24.95 < east < 24.96
    lat, lon = cfg["center"]
    assert south < lat < north and west < lon < east
    # the drawn basemap covers that area
    bm = client.get(f"/api/v1/geo/basemap?bbox={west},{south},{east},{north}&zoom=13",
                    headers=h).json()
    assert bm["features"]
    runtime.settings.tile_url = "https://tiles.example/{z}/{x}/{y}.png?key=k"
    cfg = client.get("/api/v1/geo/map-config", headers=h).json()
    assert cfg["tile_url"] == "https://tiles.example/{z}/{x}/{y}.png?key=k"
    assert cfg["basemap"] == "tiles" and cfg["bounds"] == [[south, west], [north, east]]
    runtime.settings.tile_url = "https://tiles.example/tile.png"  # not a template
    assert client.get("/api/v1/geo/map-config", headers=h).json()["basemap"] == "osm"
    assert client.get("/api/v1/geo/map-config").status_code == 401
