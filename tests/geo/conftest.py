"""Geo fixtures: the bundled Helsinki index built once per session, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tocsin.geo.service import POINTER, GeoService, get_geo


@pytest.fixture(scope="session")
def helsinki_geo_dir(tmp_path_factory) -> Path:
    """A geo folder holding the saved bundled index (built once, a fraction of a second)."""
    d = tmp_path_factory.mktemp("geo-seed")
    GeoService(d).address_index()
    return d


def seed_geo_dir(src: Path, dst: Path) -> None:
    """Copy a saved index (its folder and the pointer naming it) into another geo folder."""
    dst.mkdir(parents=True, exist_ok=True)
    for folder in src.glob("addresses-*"):
        shutil.copytree(folder, dst / folder.name)
    shutil.copy(src / POINTER, dst / POINTER)


@pytest.fixture
def geo(runtime, helsinki_geo_dir) -> GeoService:
    """The runtime's geo service on the Helsinki index."""
    seed_geo_dir(helsinki_geo_dir, runtime.settings.geo_dir)
    return get_geo(runtime)
