"""The engine on the real Helsinki extract, checked against networkx."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.engines.routing import OutsideNetworkError, RoadGraph
from tocsin.engines.routing.osm import haversine_m


def textbook_dijkstra(adj: dict[int, list[tuple[int, float]]], source: int) -> dict[int, float]:
    """A plain reference Dijkstra, independent of the engine's code."""
    dist = {source: 0.0}
    done: set[int] = set()
    heap = [(0.0, source)]
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v, w in adj.get(u, ()):
            if d + w < dist.get(v, float("inf")):
                dist[v] = d + w
                heapq.heappush(heap, (d + w, v))
    return dist


@pytest.fixture(scope="module")
def forward_adj(helsinki: RoadGraph) -> dict[int, list[tuple[int, float]]]:
    adj: dict[int, list[tuple[int, float]]] = {}
    src, dst, time, _ = helsinki.edges()
    for a, b, t in zip(src.tolist(), dst.tolist(), time.tolist()):
        adj.setdefault(a, []).append((b, t))
    return adj


def test_graph_shape(helsinki: RoadGraph):
    g = helsinki
    assert g.num_nodes > 1500 and g.num_edges > 2500
    assert len(g.snappable) > 0.8 * g.num_nodes
    # Central Helsinki.
    assert 60.1 < g.lat.min() and g.lat.max() < 60.25
    assert 24.85 < g.lon.min() and g.lon.max() < 25.05
    assert np.all(g.time_s > 0) and np.all(g.length_m >= 0)
    assert np.all(np.diff(g.indptr) >= 0)
    # Every edge's length is the great-circle distance between its ends.
    src, dst, _, length = g.edges()
    np.testing.assert_allclose(length, haversine_m(g.lat[src], g.lon[src], g.lat[dst],
                                                   g.lon[dst]), rtol=1e-5, atol=1e-3)
    # Some streets are one-way: fewer edges than twice the undirected pairs.
    pairs = {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist())}
    assert len(pairs) < g.num_edges < 2 * len(pairs)


node_picks = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target_pick=st.integers(min_value=0, max_value=10**9), picks=node_picks,
       method=st.sampled_from(["scipy", "heap"]))
def test_travel_times_agree_with_reference_dijkstra(helsinki, forward_adj, target_pick, picks,
                                                    method):
    g = helsinki
    target = int(g.snappable[target_pick % len(g.snappable)])
    sources = [int(g.snappable[p % len(g.snappable)]) for p in picks]
    routes = g.travel_times_to(*g.node_latlon(target), [g.node_latlon(s) for s in sources],
                               with_paths=True, method=method)
    for s, r in zip(sources, routes):
        assert r is not None
        expected = textbook_dijkstra(forward_adj, s)[target]
        assert r.time_s == pytest.approx(expected, rel=1e-6, abs=1e-6)
        pts = np.array(r.path)
        drawn = haversine_m(pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1]).sum()
        assert r.distance_m == pytest.approx(drawn, rel=1e-4, abs=1e-2)


def test_scipy_and_heap_agree_on_many_units(helsinki):
    g = helsinki
    rng = np.random.default_rng(3)
    nodes = rng.choice(g.snappable, 2000)
    units = list(zip(g.lat[nodes] + rng.normal(0, 2e-4, len(nodes)),
                     g.lon[nodes] + rng.normal(0, 4e-4, len(nodes))))
    units.append((61.5, 23.8))  # Tampere: off this network
    target = g.node_latlon(int(g.snappable[123]))
    a = g.travel_times_to(*target, units, method="scipy")
    b = g.travel_times_to(*target, units, method="heap")
    assert a[-1] is None and b[-1] is None
    ta = np.array([r.time_s for r in a[:-1]])
    tb = np.array([r.time_s for r in b[:-1]])
    np.testing.assert_allclose(ta, tb, rtol=1e-9)
    da = np.array([r.distance_m for r in a[:-1]])
    db = np.array([r.distance_m for r in b[:-1]])
    np.testing.assert_allclose(da, db, rtol=1e-6)
    # Snapping legs: never negative, and the time includes them.
    assert all(r.source_snap_m >= 0 for r in a[:-1])
    assert np.all(ta > 0)


def test_rank_orders_units(helsinki):
    g = helsinki
    target = g.node_latlon(int(g.snappable[42]))
    units = [g.node_latlon(int(v)) for v in g.snappable[::50]] + [(61.5, 23.8)]
    ranked = g.rank(*target, units)
    assert len(ranked) == len(units) - 1  # the off-network unit is left out
    times = [r.time_s for _, r in ranked]
    assert times == sorted(times)
    assert ranked[0][1].time_s == 0.0 or ranked[0][1].time_s < times[-1]
    top = g.rank(*target, units, k=3, with_paths=True)
    assert [i for i, _ in top] == [i for i, _ in ranked[:3]]
    full = g.travel_times_to(*target, units, with_paths=True)
    for i, r in top:
        assert r == full[i]
    assert g.rank(*target, units, k=0) == []


def test_travel_times_array_matches_routes(helsinki):
    g = helsinki
    rng = np.random.default_rng(11)
    nodes = rng.choice(g.snappable, 300)
    lats = g.lat[nodes] + rng.normal(0, 3e-4, 300)
    lons = g.lon[nodes] + rng.normal(0, 6e-4, 300)
    lats[0] = 10.0  # off the network
    target = g.node_latlon(int(g.snappable[77]))
    times, dists = g.travel_times_array(*target, lats, lons)
    routes = g.travel_times_to(*target, list(zip(lats, lons)))
    assert routes[0] is None and np.isinf(times[0]) and np.isinf(dists[0])
    np.testing.assert_array_equal(times[1:], [r.time_s for r in routes[1:]])
    np.testing.assert_array_equal(dists[1:], [r.distance_m for r in routes[1:]])
    assert g.travel_times_to(*target, []) == []
    with pytest.raises(ValueError):
        g.travel_times_array(*target, lats, lons[:-1])


def test_one_tree_gives_the_times_and_paths_of_presnapped_sources(helsinki):
    """``tree_to``: sources snapped once, timed and drawn from one search, with the
    very numbers and paths of ``travel_times_array`` and ``travel_times_to``."""
    g = helsinki
    rng = np.random.default_rng(12)
    nodes = rng.choice(g.snappable, 200)
    lats = g.lat[nodes] + rng.normal(0, 3e-4, 200)
    lons = g.lon[nodes] + rng.normal(0, 6e-4, 200)
    lats[0] = 10.0  # off the network
    target = g.node_latlon(int(g.snappable[5]))
    snapped, snaps = g.snap_many(lats, lons)
    tree = g.tree_to(*target)
    times, dists = tree.to_target(snapped, snaps)
    expected = g.travel_times_array(*target, lats, lons)
    np.testing.assert_array_equal(times, expected[0])
    np.testing.assert_array_equal(dists, expected[1])
    routes = g.travel_times_to(*target, list(zip(lats[:20], lons[:20])), with_paths=True)
    assert routes[0] is None
    for i in range(1, 20):
        assert tree.path((float(lats[i]), float(lons[i])), snapped[i]) == routes[i].path
    limited = g.tree_to(*target, max_time_s=60.0).to_target(snapped, snaps)[0]
    np.testing.assert_array_equal(
        limited, g.travel_times_array(*target, lats, lons, max_time_s=60.0)[0])
    with pytest.raises(OutsideNetworkError):
        g.tree_to(60.0, 25.5)


def test_incident_off_network(helsinki):
    with pytest.raises(OutsideNetworkError):
        helsinki.travel_times_to(60.0, 25.5, [(60.17, 24.94)])


def test_save_load_round_trip(helsinki, tmp_path):
    d = helsinki.save(tmp_path / "helsinki")
    assert (d / "meta.json").is_file() and (d / "indptr.npy").is_file()
    loaded = RoadGraph.load(d)
    for name in RoadGraph._ARRAYS:
        a, b = getattr(helsinki, name), getattr(loaded, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.max_snap_m == helsinki.max_snap_m
    np.testing.assert_array_equal(loaded.snappable, helsinki.snappable)
    target = helsinki.node_latlon(int(helsinki.snappable[5]))
    units = [helsinki.node_latlon(int(v)) for v in helsinki.snappable[::97]]
    assert loaded.travel_times_to(*target, units) == helsinki.travel_times_to(*target, units)


def test_load_rejects_other_directories(tmp_path):
    with pytest.raises(ValueError, match="not a saved road graph"):
        RoadGraph.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ValueError, match="unsupported"):
        RoadGraph.load(tmp_path)
