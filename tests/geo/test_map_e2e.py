"""map.js follows /api/v1/geo/map-config: tiles when configured, else the OSM basemap
drawn around the imported area."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.geo import town
from tests.servers import Node
from tocsin.geo.service import GeoService

pytestmark = pytest.mark.e2e
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


def open_dispatch(browser, settings, database_url, env, wait_for: str) -> list[str]:
    """The URLs the dispatch page requested until its first request containing ``wait_for``."""
    node = Node(settings.data_dir, database_url, extra_env=env)
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = ctx.new_page()
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.route("**/tiles/**", lambda route: route.fulfill(status=200, body=PNG,
                                                              content_type="image/png"))
        log_in(page, node.url, "calltaker", PASSWORD)
        with page.expect_response(lambda r: wait_for in r.url):
            page.goto(node.url + "/dispatch")
        page.wait_for_selector("body[data-ready='1']")
        return urls
    finally:
        ctx.close()
        node.stop()


def test_map_draws_the_tiles_or_the_basemap_of_the_imported_area(browser, force, settings,
                                                                  database_url, tmp_path):
    urls = open_dispatch(browser, settings, database_url,
                         {"TOCSIN_TILE_URL": "/tiles/{z}/{x}/{y}.png"}, "/tiles/15/")
    assert not [u for u in urls if "/api/v1/geo/basemap" in u]

    GeoService(settings.geo_dir).import_file(town.write_town(tmp_path / "town.osm.pbf"))
    urls = open_dispatch(browser, settings, database_url, {}, "/api/v1/geo/basemap")
    assert not [u for u in urls if "/tiles/" in u]
    first = next(u for u in urls if "/api/v1/geo/basemap" in u)
    w, s, e, n = (float(v) for v in parse_qs(urlparse(first).query)["bbox"][0].split(","))
    lat, lon = town.INSIDE  # the page gives no centre: the map opens on the town
    assert w < lon < e and s < lat < n
