"""Graph building on tiny synthetic OSM XML maps read through pyosmium."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.engines.routing import NoRouteError, OutsideNetworkError, RoadGraph, RoutingError
from tocsin.engines.routing.osm import haversine_m

from .osmxml import grid_pos, write_osm

# A square ring of 4 nodes, ~100 m sides:   4 --- 3
#                                           |     |
#                                           1 --- 2
RING = {1: grid_pos(0, 0), 2: grid_pos(0, 1), 3: grid_pos(1, 1), 4: grid_pos(1, 0)}


def build(tmp_path, nodes, ways, **opts) -> RoadGraph:
    return RoadGraph.from_osm_pbf(write_osm(tmp_path / "map.osm", nodes, ways), **opts)


def node_of(graph: RoadGraph, osm_id: int) -> int:
    return int(np.flatnonzero(graph.osm_ids == osm_id)[0])


def test_oneway_ring_is_driven_one_way_round(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential",
                                                      "oneway": "yes"})])
    assert g.num_nodes == 4 and g.num_edges == 4
    forward = g.route(RING[1], RING[2])
    backward = g.route(RING[2], RING[1])
    side = haversine_m(*RING[1], *RING[2])
    assert forward.distance_m == pytest.approx(side, rel=1e-4)
    assert backward.distance_m > 2.5 * side  # 2 -> 3 -> 4 -> 1
    assert backward.time_s > 2.5 * forward.time_s
    assert backward.path == [RING[2], RING[3], RING[4], RING[1]]
    assert forward.path == [RING[1], RING[2]]
    # 30 km/h on a residential street.
    assert forward.time_s == pytest.approx(side / (30 / 3.6), rel=1e-4)


def test_reverse_oneway(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential",
                                                      "oneway": "-1"})])
    assert g.route(RING[2], RING[1]).path == [RING[2], RING[1]]
    assert g.route(RING[1], RING[2]).path == [RING[1], RING[4], RING[3], RING[2]]


def test_two_way_ring_is_symmetric(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential"})])
    assert g.num_edges == 8
    assert g.route(RING[1], RING[2]).time_s == pytest.approx(g.route(RING[2], RING[1]).time_s)


@pytest.mark.parametrize(("extra", "one_way"), [({}, True), ({"oneway": "no"}, False)])
def test_roundabout_implies_oneway(tmp_path, extra, one_way):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "primary",
                                                      "junction": "roundabout", **extra})])
    back = g.route(RING[2], RING[1])
    assert (len(back.path) == 4) is one_way
    assert g.num_edges == (4 if one_way else 8)


def test_motorway_implies_oneway(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2], {"highway": "motorway"}),
                               (11, [2, 3, 4, 1], {"highway": "residential"})])
    assert g.route(RING[1], RING[2]).path == [RING[1], RING[2]]
    assert g.route(RING[2], RING[1]).path == [RING[2], RING[3], RING[4], RING[1]]


def test_maxspeed_sets_edge_times(tmp_path):
    nodes = {1: grid_pos(0, 0), 2: grid_pos(0, 1), 3: grid_pos(0, 2), 4: grid_pos(0, 3)}
    g = build(tmp_path, nodes, [
        (10, [1, 2], {"highway": "residential", "maxspeed": "30 mph"}),
        (11, [2, 3], {"highway": "residential", "maxspeed": "FI:urban"}),
        (12, [3, 4], {"highway": "residential", "maxspeed": "none"}),  # class default: 30
    ])
    for (a, b), kmh in [((1, 2), 30 * 1.609344), ((2, 3), 50.0), ((3, 4), 30.0)]:
        r = g.route(nodes[a], nodes[b])
        assert r.time_s == pytest.approx(haversine_m(*nodes[a], *nodes[b]) / (kmh / 3.6),
                                         rel=1e-4)


def shortcut_map(shortcut_tags):
    # 1 - 2 - 3 along the bottom, a detour 1 - 4 - 5 - 3 over the top,
    # and a shortcut 1 - 3 whose tags vary.
    nodes = {1: grid_pos(0, 0), 2: grid_pos(-1, 1), 3: grid_pos(0, 2),
             4: grid_pos(3, 0), 5: grid_pos(3, 2)}
    ways = [
        (10, [1, 2, 3], {"highway": "residential", "maxspeed": "10"}),
        (11, [1, 4, 5, 3], {"highway": "residential"}),
        (12, [1, 3], shortcut_tags),
    ]
    return nodes, ways


@pytest.mark.parametrize(
    ("tags", "uses_shortcut"),
    [
        ({"highway": "service"}, True),
        ({"highway": "service", "access": "private"}, False),
        ({"highway": "service", "access": "no"}, False),
        ({"highway": "service", "access": "private", "emergency": "yes"}, True),
        ({"highway": "footway"}, False),
        ({"highway": "cycleway"}, False),
        ({"highway": "steps"}, False),
        ({"highway": "path"}, False),
    ],
)
def test_excluded_ways_are_not_driven(tmp_path, tags, uses_shortcut):
    nodes, ways = shortcut_map(tags)
    g = build(tmp_path, nodes, ways)
    r = g.route(nodes[1], nodes[3])
    assert (r.path == [nodes[1], nodes[3]]) is uses_shortcut
    if not uses_shortcut:
        # Slow 10 km/h bottom road vs the 30 km/h top detour: the detour wins.
        assert r.path == [nodes[1], nodes[4], nodes[5], nodes[3]]


def test_nodes_are_compacted_to_those_used_by_roads(tmp_path):
    nodes = {**RING, 7: grid_pos(5, 5), 8: grid_pos(6, 6), 9: grid_pos(7, 7)}
    g = build(tmp_path, nodes, [
        (10, [1, 2, 3, 4, 1], {"highway": "residential"}),
        (11, [7, 8], {"highway": "footway"}),
        (12, [8, 9], {"building": "yes"}),
    ])
    assert sorted(g.osm_ids.tolist()) == [1, 2, 3, 4]
    assert g.indptr.dtype == np.int32 and g.indices.dtype == np.int32
    assert g.time_s.dtype == np.float32 and g.length_m.dtype == np.float32
    assert len(g.indptr) == g.num_nodes + 1


def test_no_drivable_roads_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no drivable roads"):
        build(tmp_path, RING, [(10, [1, 2, 3], {"highway": "footway"})])


def test_missing_nodes_break_the_way(tmp_path):
    # Node 99 is referenced but absent from the file (cut by the extract).
    g = build(tmp_path, RING, [(10, [1, 2, 99, 3, 4, 1], {"highway": "residential"})])
    src, dst, _, _ = g.edges()
    pairs = {(int(g.osm_ids[a]), int(g.osm_ids[b])) for a, b in zip(src, dst)}
    assert (2, 3) not in pairs and (3, 2) not in pairs
    assert {(1, 2), (3, 4), (4, 1)} <= pairs


def test_snapping_and_outside_network(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential"})],
              max_snap_m=500)
    lat, lon = RING[3]
    node, dist = g.nearest_node(lat + 0.0001, lon)  # ~11 m north of node 3
    assert g.osm_ids[node] == 3
    assert dist == pytest.approx(haversine_m(lat + 0.0001, lon, lat, lon), rel=1e-3)
    far = (lat + 0.01, lon)  # ~1.1 km away
    with pytest.raises(OutsideNetworkError) as err:
        g.nearest_node(*far)
    assert err.value.distance_m == pytest.approx(haversine_m(*far, lat, lon), rel=1e-3)
    assert err.value.max_m == 500
    assert "more than the 500 m allowed" in str(err.value)
    assert isinstance(err.value, RoutingError) and isinstance(err.value, ValueError)
    with pytest.raises(OutsideNetworkError):
        g.travel_times_to(*far, [RING[1]])
    with pytest.raises(OutsideNetworkError):
        g.route(far, RING[1])
    with pytest.raises(RoutingError):
        g.nearest_node(91.0, 0.0)
    # An off-network unit gets None; the others are still answered.
    out = g.travel_times_to(*RING[1], [RING[2], far, (float("nan"), 0.0), RING[3]])
    assert out[1] is None and out[2] is None
    assert out[0] is not None and out[3] is not None
    # A wider limit accepts the same point.
    wide = RoadGraph.load(g.save(tmp_path / "saved"), max_snap_m=2000)
    assert wide.nearest_node(*far)[1] == pytest.approx(haversine_m(*far, lat, lon), rel=1e-3)


def test_snap_legs_are_counted(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential"})],
              snap_speed_kmh=10)
    exact = g.route(RING[1], RING[2])
    off = (RING[1][0] - 0.0002, RING[1][1])  # ~22 m south of node 1
    r = g.route(off, RING[2])
    leg = haversine_m(*off, *RING[1])
    assert r.source_snap_m == pytest.approx(leg, rel=1e-3)
    assert r.distance_m == pytest.approx(exact.distance_m + leg, rel=1e-3)
    assert r.time_s == pytest.approx(exact.time_s + leg / (10 / 3.6), rel=1e-3)
    assert r.path[0] == off and r.path[1:] == exact.path


def test_unreachable_within_max_time(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential",
                                                      "oneway": "yes"})])
    one_side = g.route(RING[1], RING[2]).time_s
    for method in ("scipy", "heap"):
        out = g.travel_times_to(*RING[1], [RING[4], RING[2]], max_time_s=1.5 * one_side,
                                method=method)
        assert out[0] is not None and out[1] is None  # 4 -> 1 one side; 2 -> 1 three sides


def test_snapping_keeps_to_the_main_component(tmp_path):
    # A second, smaller ring far away: points there snap to the main ring
    # (within the limit) rather than onto an island no unit could leave.
    nodes = {**RING, 5: grid_pos(10, 10), 6: grid_pos(10, 11), 7: grid_pos(11, 11)}
    g = build(tmp_path, nodes, [(10, [1, 2, 3, 4, 1], {"highway": "residential"}),
                                (11, [5, 6, 7, 5], {"highway": "residential"})])
    assert g.num_nodes == 7
    assert sorted(g.osm_ids[g.snappable].tolist()) == [1, 2, 3, 4]
    r = g.route(nodes[6], RING[1])
    assert g.osm_ids[r.source_node] == 3 and r.source_snap_m > 1000
    # A dead-end one-way spur is not strongly connected either.
    nodes = {**RING, 5: grid_pos(0, 3)}
    g = build(tmp_path, nodes, [(10, [1, 2, 3, 4, 1], {"highway": "residential"}),
                                (11, [2, 5], {"highway": "residential", "oneway": "yes"})])
    assert 5 not in g.osm_ids[g.snappable].tolist()


def test_route_beyond_max_time_raises_no_route(tmp_path):
    g = build(tmp_path, RING, [(10, [1, 2, 3, 4, 1], {"highway": "residential",
                                                      "oneway": "yes"})])
    side = g.route(RING[1], RING[2]).time_s
    assert g.route(RING[1], RING[2], max_time_s=1.5 * side).path == [RING[1], RING[2]]
    for method in ("scipy", "heap"):
        with pytest.raises(NoRouteError):
            g.route(RING[2], RING[1], max_time_s=1.5 * side, method=method)


def test_parallel_edges_keep_the_fastest():
    g = RoadGraph.from_edges([60.0, 60.001], [25.0, 25.0], [0, 0, 1], [1, 1, 0],
                             [10.0, 4.0, 7.0])
    assert g.num_edges == 2
    assert g.route((60.0, 25.0), (60.001, 25.0)).time_s == pytest.approx(4.0, rel=1e-6)
    assert g.route((60.001, 25.0), (60.0, 25.0)).time_s == pytest.approx(7.0, rel=1e-6)
