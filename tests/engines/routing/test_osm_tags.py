"""Tag rules: which ways are drivable, which way round, how fast."""

from __future__ import annotations

import pytest

from tocsin.engines.routing import is_drivable, oneway_direction, parse_maxspeed, way_speed_kmh


@pytest.mark.parametrize(
    ("value", "kmh"),
    [
        ("50", 50.0),
        (" 80 ", 80.0),
        ("50 km/h", 50.0),
        ("50km/h", 50.0),
        ("30 mph", 30 * 1.609344),
        ("20mph", 20 * 1.609344),
        ("FI:urban", 50.0),
        ("FI:rural", 80.0),
        ("fi:motorway", 120.0),
        ("DE:zone30", 30.0),
        ("DE:zone:20", 20.0),
        ("walk", 7.0),
        ("60;40", 40.0),
        ("signals;50", 50.0),
        ("7.5", 7.5),
    ],
)
def test_parse_maxspeed(value, kmh):
    assert parse_maxspeed(value) == pytest.approx(kmh)


@pytest.mark.parametrize("value", [None, "", "none", "signals", "variable", "fast", "0",
                                   "XX:nowhere", "-30"])
def test_parse_maxspeed_unusable(value):
    assert parse_maxspeed(value) is None


def test_way_speed_falls_back_to_class_default():
    assert way_speed_kmh({"highway": "residential"}) == 30.0
    assert way_speed_kmh({"highway": "motorway"}) == 100.0
    assert way_speed_kmh({"highway": "residential", "maxspeed": "40"}) == 40.0
    assert way_speed_kmh({"highway": "primary", "maxspeed": "signals"}) == 60.0


@pytest.mark.parametrize(
    ("tags", "ok"),
    [
        ({"highway": "residential"}, True),
        ({"highway": "primary_link"}, True),
        ({"highway": "living_street"}, True),
        ({"highway": "service"}, True),
        ({"highway": "footway"}, False),
        ({"highway": "cycleway"}, False),
        ({"highway": "path"}, False),
        ({"highway": "steps"}, False),
        ({"highway": "pedestrian"}, False),
        ({"highway": "construction"}, False),
        ({"building": "yes"}, False),
        ({"highway": "service", "access": "private"}, False),
        ({"highway": "residential", "access": "no"}, False),
        ({"highway": "service", "access": "private", "emergency": "yes"}, True),
        ({"highway": "service", "access": "destination"}, True),
        ({"highway": "service", "area": "yes"}, False),
    ],
)
def test_is_drivable(tags, ok):
    assert is_drivable(tags) is ok


@pytest.mark.parametrize(
    ("tags", "direction"),
    [
        ({"highway": "residential"}, 0),
        ({"highway": "residential", "oneway": "yes"}, 1),
        ({"highway": "residential", "oneway": "1"}, 1),
        ({"highway": "residential", "oneway": "true"}, 1),
        ({"highway": "residential", "oneway": "-1"}, -1),
        ({"highway": "residential", "oneway": "reverse"}, -1),
        ({"highway": "residential", "oneway": "no"}, 0),
        ({"highway": "motorway"}, 1),
        ({"highway": "motorway", "oneway": "no"}, 0),
        ({"highway": "primary", "junction": "roundabout"}, 1),
        ({"highway": "primary", "junction": "roundabout", "oneway": "no"}, 0),
    ],
)
def test_oneway_direction(tags, direction):
    assert oneway_direction(tags) == direction
