"""Agreement with networkx's Dijkstra on the same Helsinki graph.

networkx is a benchmark peer (the ``bench`` extra); without it these tests skip.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.engines.routing import RoadGraph
from tocsin.engines.routing.osm import haversine_m

nx = pytest.importorskip("networkx")


@pytest.fixture(scope="module")
def nxgraph(helsinki: RoadGraph) -> nx.DiGraph:
    g = nx.DiGraph()
    src, dst, time, length = helsinki.edges()
    for a, b, t, ln in zip(src.tolist(), dst.tolist(), time.tolist(), length.tolist()):
        g.add_edge(a, b, weight=t, length=ln)
    return g


node_picks = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target_pick=st.integers(min_value=0, max_value=10**9), picks=node_picks,
       method=st.sampled_from(["scipy", "heap"]))
def test_travel_times_agree_with_networkx(helsinki, nxgraph, target_pick, picks, method):
    g = helsinki
    target = int(g.snappable[target_pick % len(g.snappable)])
    sources = [int(g.snappable[p % len(g.snappable)]) for p in picks]
    routes = g.travel_times_to(*g.node_latlon(target), [g.node_latlon(s) for s in sources],
                               with_paths=True, method=method)
    for s, r in zip(sources, routes):
        assert r is not None
        expected = nx.dijkstra_path_length(nxgraph, s, target)
        assert r.time_s == pytest.approx(expected, rel=1e-6, abs=1e-6)
        assert r.source_node == s and r.target_node == target
        # The reported distance is the length of the drawn path.
        pts = np.array(r.path)
        drawn = haversine_m(pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1]).sum()
        assert r.distance_m == pytest.approx(drawn, rel=1e-4, abs=1e-2)
    # Ranking order agrees too: our order is non-decreasing in networkx's times.
    theirs = np.array([nx.dijkstra_path_length(nxgraph, s, target) for s in sources])
    ours_order = np.argsort([r.time_s for r in routes], kind="stable")
    assert np.all(np.diff(theirs[ours_order]) >= -1e-6)


def test_path_follows_edges_and_matches_networkx(helsinki, nxgraph):
    g = helsinki
    rng = np.random.default_rng(7)
    for _ in range(20):
        a, b = (int(x) for x in rng.choice(g.snappable, 2, replace=False))
        r = g.route(g.node_latlon(a), g.node_latlon(b))
        expected_nodes = nx.dijkstra_path(nxgraph, a, b)
        expected = nx.path_weight(nxgraph, expected_nodes, "weight")
        assert r.time_s == pytest.approx(expected, rel=1e-6)
        # Every step of the drawn path is an edge of the graph.
        coords = {g.node_latlon(v): v for v in range(g.num_nodes)}
        walked = [coords[p] for p in r.path]
        assert walked[0] == a and walked[-1] == b
        assert all(nxgraph.has_edge(u, v) for u, v in itertools.pairwise(walked))
        assert nx.path_weight(nxgraph, walked, "weight") == pytest.approx(expected, rel=1e-6)


