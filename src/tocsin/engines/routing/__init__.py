"""Road routing engine: OSM road graph, snapping, many-to-one travel times.

Pure library (data in, data out): imports nothing from ``tocsin.core`` or a
domain module.

    graph = RoadGraph.from_osm_pbf("helsinki.osm.pbf")
    routes = graph.travel_times_to(60.17, 24.94, [(60.16, 24.93), (60.18, 24.95)])
    best = graph.rank(60.17, 24.94, unit_positions, k=5)
    drawn = graph.route((60.16, 24.93), (60.17, 24.94)).path
    tree = graph.tree_to(60.17, 24.94)  # one search: times of pre-snapped units, few paths
"""

from .graph import (
    NoRouteError,
    OutsideNetworkError,
    ReverseTree,
    RoadGraph,
    Route,
    RoutingError,
)
from .osm import is_drivable, oneway_direction, parse_maxspeed, way_speed_kmh

__all__ = [
    "NoRouteError",
    "OutsideNetworkError",
    "ReverseTree",
    "RoadGraph",
    "Route",
    "RoutingError",
    "is_drivable",
    "oneway_direction",
    "parse_maxspeed",
    "way_speed_kmh",
]
