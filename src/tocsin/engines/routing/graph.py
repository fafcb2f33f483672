"""A compact road graph with snapping and many-to-one travel times.

The graph is stored as CSR adjacency (numpy ``int32`` offsets and targets,
``float32`` travel time and length per directed edge). Units are ranked for an
incident with a single Dijkstra on the *reversed* graph from the incident's
node: every unit's travel time to the incident falls out of one search, so
5,000 units cost one search, not 5,000.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from .osm import EARTH_RADIUS_M, haversine_m, read_osm_roads

FORMAT_NAME = "tocsin-roadgraph"
FORMAT_VERSION = 1
#: Travel times are clamped to this many seconds so that no edge weighs zero
#: (two OSM nodes at the same position), which sparse graph code would drop.
MIN_EDGE_TIME_S = 1e-3
_NO_PRED = -9999  # scipy's marker for "no predecessor"

LatLon = tuple[float, float]


class RoutingError(ValueError):
    """Base class of routing errors; a ``ValueError`` so callers map it to 4xx."""

    reason = "routing_error"


class OutsideNetworkError(RoutingError):
    """A point is farther from the road network than the snapping limit."""

    reason = "outside_network"

    def __init__(self, lat: float, lon: float, distance_m: float, max_m: float):
        self.lat, self.lon = lat, lon
        self.distance_m, self.max_m = distance_m, max_m
        super().__init__(
            f"point ({lat:.6f}, {lon:.6f}) is {distance_m:.0f} m from the nearest road, "
            f"more than the {max_m:.0f} m allowed"
        )


class NoRouteError(RoutingError):
    """No drivable path joins two points (one-way trap, limit exceeded)."""

    reason = "no_route"


@dataclass(slots=True)
class Route:
    """Travel from a source point to a target point.

    ``time_s`` and ``distance_m`` include the legs from each point to its
    snapped road node (driven at the graph's slow ``snap_speed_kmh``).
    ``path`` is ``[(lat, lon), ...]`` from the source point to the target point
    when asked for, else ``None``.
    """

    time_s: float
    distance_m: float
    source_node: int
    target_node: int
    source_snap_m: float
    target_snap_m: float
    path: list[LatLon] | None = None


@dataclass(slots=True, eq=False)
class ReverseTree:
    """One search on the reversed graph from a target point (an incident): every
    node's fastest time and road length to it, and the next node on the way.

    Made by :meth:`RoadGraph.tree_to`. Sources snapped once (``snap_many``) are
    timed with :meth:`to_target` and a few of them get their drawn path with
    :meth:`path`, all from this one search: the same numbers as
    :meth:`RoadGraph.travel_times_array` and :meth:`RoadGraph.travel_times_to`.
    """

    graph: RoadGraph
    target_point: LatLon
    target: int
    target_snap_m: float
    max_time_s: float
    node_time_s: np.ndarray  # per graph node, inf where unreached
    node_length_m: np.ndarray
    pred: np.ndarray  # next node towards the target, _NO_PRED where none

    def to_target(self, nodes: np.ndarray, snaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(time_s, distance_m)`` from sources snapped to ``nodes`` (``-1``: off the
        network) at ``snaps`` metres, snap legs included; ``inf`` where unreachable."""
        nodes = np.asarray(nodes, dtype=np.int64)
        times, lengths = _gather(self.node_time_s, self.node_length_m, nodes)
        return self.graph._totals(times, lengths, nodes, np.asarray(snaps, dtype=np.float64),
                                  self.target_snap_m, self.max_time_s)

    def path(self, start: LatLon, node: int) -> list[LatLon]:
        """Drawn path from the point ``start`` (snapped to ``node``) to the target point."""
        return self.graph._path(start, int(node), self.target, self.target_point, self.pred)


def _gather(dist: np.ndarray, lengths_all: np.ndarray, nodes: np.ndarray):
    safe = np.where(nodes >= 0, nodes, 0)
    times = np.where(nodes >= 0, dist[safe], np.inf)
    lengths = np.where(nodes >= 0, lengths_all[safe], np.inf)
    return times, lengths


def _to_xyz(lat, lon) -> np.ndarray:
    """Earth-centred cartesian metres (sphere): chord length ~ ground distance."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    c = np.cos(phi)
    return np.stack([c * np.cos(lam), c * np.sin(lam), np.sin(phi)], axis=-1) * EARTH_RADIUS_M


def _chord_to_arc(chord_m):
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(chord_m / (2 * EARTH_RADIUS_M), 1.0))


class RoadGraph:
    """Directed road graph in CSR form plus a snapping index.

    Build one with :meth:`from_osm_pbf` (any file pyosmium reads, ``.osm.pbf``
    or ``.osm`` XML), :meth:`from_edges`, or :meth:`load`.
    """

    def __init__(
        self,
        lat: np.ndarray,
        lon: np.ndarray,
        indptr: np.ndarray,
        indices: np.ndarray,
        time_s: np.ndarray,
        length_m: np.ndarray,
        osm_ids: np.ndarray | None = None,
        *,
        max_snap_m: float = 2000.0,
        snap_speed_kmh: float = 15.0,
    ) -> None:
        self.lat = np.ascontiguousarray(lat, dtype=np.float64)
        self.lon = np.ascontiguousarray(lon, dtype=np.float64)
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int32)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.time_s = np.ascontiguousarray(time_s, dtype=np.float32)
        self.length_m = np.ascontiguousarray(length_m, dtype=np.float32)
        n = len(self.lat)
        self.osm_ids = (
            np.arange(n, dtype=np.int64)
            if osm_ids is None
            else np.ascontiguousarray(osm_ids, dtype=np.int64)
        )
        m = len(self.indices)
        if not (len(self.lon) == len(self.osm_ids) == n and len(self.indptr) == n + 1):
            raise ValueError("node arrays and indptr disagree on the number of nodes")
        if not (len(self.time_s) == len(self.length_m) == m and self.indptr[-1] == m):
            raise ValueError("edge arrays disagree on the number of edges")
        if m and (self.indices.min() < 0 or self.indices.max() >= n):
            raise ValueError("edge target out of range")
        if n == 0:
            raise ValueError("empty road graph")
        if max_snap_m <= 0 or snap_speed_kmh <= 0:
            raise ValueError("max_snap_m and snap_speed_kmh must be positive")
        self.max_snap_m = float(max_snap_m)
        self.snap_speed_kmh = float(snap_speed_kmh)
        self._prepare()

    # ------------------------------------------------------------------ build

    @classmethod
    def from_edges(
        cls,
        lat: Sequence[float] | np.ndarray,
        lon: Sequence[float] | np.ndarray,
        src: Sequence[int] | np.ndarray,
        dst: Sequence[int] | np.ndarray,
        time_s: Sequence[float] | np.ndarray,
        length_m: Sequence[float] | np.ndarray | None = None,
        osm_ids: Sequence[int] | np.ndarray | None = None,
        *,
        drop_unused_nodes: bool = True,
        **options,
    ) -> RoadGraph:
        """Build from directed edge lists. Parallel edges keep the fastest one.

        ``length_m`` defaults to the great-circle distance between the ends.
        Nodes that no edge touches are dropped unless ``drop_unused_nodes`` is
        false.
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        time = np.asarray(time_s, dtype=np.float64)
        if length_m is None:
            length = haversine_m(lat[src], lon[src], lat[dst], lon[dst])
        else:
            length = np.asarray(length_m, dtype=np.float64)
        ids = (
            np.arange(len(lat), dtype=np.int64)
            if osm_ids is None
            else np.asarray(osm_ids, dtype=np.int64)
        )
        if not (len(src) == len(dst) == len(time) == len(length)):
            raise ValueError("edge lists differ in length")
        if not (len(lat) == len(lon) == len(ids)):
            raise ValueError("node lists differ in length")
        if np.any(~np.isfinite(time)) or np.any(time < 0):
            raise ValueError("travel times must be finite and non-negative")
        keep = src != dst
        src, dst, time, length = src[keep], dst[keep], time[keep], length[keep]
        time = np.maximum(time, MIN_EDGE_TIME_S)

        if drop_unused_nodes:
            used = np.zeros(len(lat), dtype=bool)
            used[src] = True
            used[dst] = True
            remap = np.cumsum(used) - 1
            lat, lon, ids = lat[used], lon[used], ids[used]
            src, dst = remap[src], remap[dst]
        n = len(lat)

        # Sort by (src, dst, time) and keep the fastest of parallel edges.
        order = np.lexsort((time, dst, src))
        src, dst, time, length = src[order], dst[order], time[order], length[order]
        if len(src):
            first = np.ones(len(src), dtype=bool)
            first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
            src, dst, time, length = src[first], dst[first], time[first], length[first]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        return cls(lat, lon, indptr, dst, time, length, ids, **options)

    @classmethod
    def from_osm_pbf(cls, path: str | PathLike[str], **options) -> RoadGraph:
        """Read drivable roads from an OSM file (``.osm.pbf`` or ``.osm`` XML).

        See :mod:`tocsin.engines.routing.osm` for the tag rules. ``options``
        go to the constructor (``max_snap_m``, ``snap_speed_kmh``).
        """
        roads = read_osm_roads(path)
        if not roads.src:
            raise ValueError(f"no drivable roads in {path}")
        lat = np.asarray(roads.lats)
        lon = np.asarray(roads.lons)
        src = np.asarray(roads.src, dtype=np.int64)
        dst = np.asarray(roads.dst, dtype=np.int64)
        length = haversine_m(lat[src], lon[src], lat[dst], lon[dst])
        speed_ms = np.asarray(roads.speed_kmh) / 3.6
        return cls.from_edges(lat, lon, src, dst, length / speed_ms, length, roads.osm_ids,
                              **options)

    # ------------------------------------------------------------ persistence

    _ARRAYS = ("lat", "lon", "osm_ids", "indptr", "indices", "time_s", "length_m")

    def save(self, directory: str | PathLike[str]) -> Path:
        """Write the graph as ``.npy`` files plus ``meta.json`` into a directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in self._ARRAYS:
            np.save(d / f"{name}.npy", getattr(self, name), allow_pickle=False)
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "max_snap_m": self.max_snap_m,
            "snap_speed_kmh": self.snap_speed_kmh,
        }
        (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | PathLike[str], **options) -> RoadGraph:
        """Read a graph written by :meth:`save`. ``options`` override saved ones."""
        d = Path(directory)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except FileNotFoundError:
            raise ValueError(f"{d} is not a saved road graph (no meta.json)") from None
        if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{d}: unsupported road graph format {meta.get('format')!r} "
                             f"version {meta.get('version')!r}")
        arrays = {name: np.load(d / f"{name}.npy", allow_pickle=False) for name in cls._ARRAYS}
        opts = {"max_snap_m": meta["max_snap_m"], "snap_speed_kmh": meta["snap_speed_kmh"]}
        opts.update(options)
        graph = cls(**arrays, **opts)
        if graph.num_nodes != meta["nodes"] or graph.num_edges != meta["edges"]:
            raise ValueError(f"{d}: arrays do not match meta.json")
        return graph

    # ------------------------------------------------------------ derived data

    def _prepare(self) -> None:
        n = self.num_nodes
        m = self.num_edges
        fwd = csr_matrix((self.time_s.astype(np.float64), self.indices, self.indptr),
                         shape=(n, n))
        # Reverse graph, with a permutation to carry edge lengths along.
        perm = csr_matrix((np.arange(1, m + 1, dtype=np.float64), self.indices, self.indptr),
                          shape=(n, n)).T.tocsr()
        perm.sort_indices()
        rev_order = perm.data.astype(np.int64) - 1
        self._fwd = fwd
        self._rev = csr_matrix((self.time_s.astype(np.float64)[rev_order],
                                perm.indices.astype(np.int32), perm.indptr.astype(np.int32)),
                               shape=(n, n))
        self._rev_length = self.length_m.astype(np.float64)[rev_order]
        rev_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self._rev.indptr))
        self._rev_keys = rev_rows * n + self._rev.indices  # sorted: rows, then columns
        self._rev_lists = None  # python lists for the heap search, built lazily
        self._coord_list: list[LatLon] | None = None  # for path drawing, built lazily

        # Snap only to the largest strongly connected component, so that every
        # snapped source can reach every snapped target.
        _, labels = connected_components(fwd, directed=True, connection="strong")
        main = np.bincount(labels).argmax()
        self.snappable = np.flatnonzero(labels == main).astype(np.int32)
        self._tree = cKDTree(_to_xyz(self.lat[self.snappable], self.lon[self.snappable]))
        self._snap_speed_ms = self.snap_speed_kmh / 3.6

    @property
    def num_nodes(self) -> int:
        return len(self.lat)

    @property
    def num_edges(self) -> int:
        return len(self.indices)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, time_s, length_m)`` arrays of every directed edge."""
        src = np.repeat(np.arange(self.num_nodes, dtype=np.int32), np.diff(self.indptr))
        return src, self.indices.copy(), self.time_s.copy(), self.length_m.copy()

    def node_latlon(self, node: int) -> LatLon:
        return float(self.lat[node]), float(self.lon[node])

    def __repr__(self) -> str:
        return (f"RoadGraph(nodes={self.num_nodes}, edges={self.num_edges}, "
                f"snappable={len(self.snappable)})")

    # --------------------------------------------------------------- snapping

    def nearest_node(self, lat: float, lon: float) -> tuple[int, float]:
        """The closest snappable road node and the distance to it in metres.

        Raises :class:`OutsideNetworkError` beyond ``max_snap_m``.
        """
        _check_latlon(lat, lon)
        chord, i = self._tree.query(_to_xyz(lat, lon))
        dist = float(_chord_to_arc(chord))
        if not dist <= self.max_snap_m:
            raise OutsideNetworkError(lat, lon, dist, self.max_snap_m)
        return int(self.snappable[i]), dist

    def snap_many(self, lats, lons) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised snapping: ``(nodes, distances_m)``; node ``-1`` if too far."""
        lats = np.asarray(lats, dtype=np.float64)
        lons = np.asarray(lons, dtype=np.float64)
        if len(lats) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        ok = (np.abs(lats) <= 90) & (np.abs(lons) <= 180)
        chord, i = self._tree.query(_to_xyz(np.where(ok, lats, 0.0), np.where(ok, lons, 0.0)))
        dist = _chord_to_arc(chord)
        nodes = self.snappable[i].astype(np.int64)
        bad = ~ok | ~(dist <= self.max_snap_m)
        nodes[bad] = -1
        dist[~ok] = np.inf
        return nodes, dist

    # ---------------------------------------------------------------- queries

    def travel_times_to(
        self,
        target_lat: float,
        target_lon: float,
        sources: Iterable[LatLon],
        *,
        with_paths: bool = False,
        max_time_s: float | None = None,
        method: str = "scipy",
    ) -> list[Route | None]:
        """Travel from each source point to one target point (an incident).

        One Dijkstra on the reversed graph from the target's node. The result
        is aligned with ``sources``; an entry is ``None`` when that source is
        off the network (farther than ``max_snap_m``) or cannot reach the
        target within ``max_time_s``. The target itself off the network raises
        :class:`OutsideNetworkError`.

        ``method`` is ``"scipy"`` (compiled full search, bounded by
        ``max_time_s``) or ``"heap"`` (pure-Python search that stops as soon as
        every source's node is settled).
        """
        pts = np.asarray(sources if isinstance(sources, (list, tuple, np.ndarray))
                         else list(sources), dtype=np.float64).reshape(-1, 2)
        q = self._query(target_lat, target_lon, pts[:, 0], pts[:, 1], with_paths, max_time_s,
                        method)
        total_t, total_d, nodes, snaps, target, target_snap, pred = q
        good = np.isfinite(total_t)
        out: list[Route | None] = [None] * len(pts)
        tt, td, nn, ss = total_t.tolist(), total_d.tolist(), nodes.tolist(), snaps.tolist()
        for k in np.flatnonzero(good).tolist():
            path = (self._path(pts[k], nn[k], target, (target_lat, target_lon), pred)
                    if with_paths else None)
            out[k] = Route(tt[k], td[k], nn[k], target, ss[k], target_snap, path)
        return out

    def travel_times_array(
        self,
        target_lat: float,
        target_lon: float,
        lats: Sequence[float] | np.ndarray,
        lons: Sequence[float] | np.ndarray,
        *,
        max_time_s: float | None = None,
        method: str = "scipy",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`travel_times_to`: ``(time_s, distance_m)`` arrays.

        No per-source objects are built; unreachable or off-network sources
        get ``inf`` in both arrays.
        """
        q = self._query(target_lat, target_lon, np.asarray(lats, dtype=np.float64),
                        np.asarray(lons, dtype=np.float64), False, max_time_s, method)
        return q[0], q[1]

    def tree_to(self, target_lat: float, target_lon: float, *,
                max_time_s: float | None = None) -> ReverseTree:
        """One compiled search towards a target point, kept for many questions: the
        travel times of sources snapped beforehand and the paths of a few of them
        (see :class:`ReverseTree`). The target off the network raises
        :class:`OutsideNetworkError`."""
        target, target_snap = self.nearest_node(target_lat, target_lon)
        limit = np.inf if max_time_s is None else float(max_time_s)
        dist, pred = dijkstra(self._rev, directed=True, indices=target,
                              return_predecessors=True, limit=limit)
        return ReverseTree(self, (float(target_lat), float(target_lon)), target, target_snap,
                           limit, dist, self._path_lengths(pred, target), pred)

    def _query(self, target_lat, target_lon, lats, lons, with_paths, max_time_s, method):
        if len(lats) != len(lons):
            raise ValueError("lats and lons differ in length")
        target, target_snap = self.nearest_node(target_lat, target_lon)
        nodes, snaps = self.snap_many(lats, lons)
        limit = np.inf if max_time_s is None else float(max_time_s)
        times, lengths, pred = self._search(target, nodes, with_paths, limit, method)
        total_t, total_d = self._totals(times, lengths, nodes, snaps, target_snap, limit)
        if with_paths and isinstance(pred, np.ndarray):
            pred = pred.tolist()
        return total_t, total_d, nodes, snaps, target, target_snap, pred

    def _totals(self, times, lengths, nodes, snaps, target_snap, limit):
        """Search times and lengths plus the snap legs; inf where unreachable."""
        total_t = times + (snaps + target_snap) / self._snap_speed_ms
        total_d = lengths + snaps + target_snap
        bad = (nodes < 0) | ~np.isfinite(times) | (total_t > limit)
        total_t[bad] = np.inf
        total_d[bad] = np.inf
        return total_t, total_d

    def rank(
        self,
        target_lat: float,
        target_lon: float,
        sources: Iterable[LatLon],
        *,
        k: int | None = None,
        with_paths: bool = False,
        max_time_s: float | None = None,
        method: str = "scipy",
    ) -> list[tuple[int, Route]]:
        """``(source index, route)`` pairs sorted by travel time, best first.

        Unreachable or off-network sources are left out; ``k`` keeps the best
        k, and only those get a :class:`Route` (and a path, if asked for).
        """
        pts = np.asarray(sources if isinstance(sources, (list, tuple, np.ndarray))
                         else list(sources), dtype=np.float64).reshape(-1, 2)
        q = self._query(target_lat, target_lon, pts[:, 0], pts[:, 1], with_paths, max_time_s,
                        method)
        total_t, total_d, nodes, snaps, target, target_snap, pred = q
        reachable = np.flatnonzero(np.isfinite(total_t))
        order = reachable[np.argsort(total_t[reachable], kind="stable")]
        if k is not None:
            order = order[: max(k, 0)]
        out = []
        for i in order.tolist():
            path = (self._path(pts[i], nodes[i], target, (target_lat, target_lon), pred)
                    if with_paths else None)
            out.append((i, Route(float(total_t[i]), float(total_d[i]), int(nodes[i]), target,
                                 float(snaps[i]), target_snap, path)))
        return out

    def route(self, origin: LatLon, destination: LatLon, *, max_time_s: float | None = None,
              method: str = "scipy") -> Route:
        """The fastest route from ``origin`` to ``destination``, with geometry.

        Raises :class:`OutsideNetworkError` if either point is off the network
        and :class:`NoRouteError` if no path joins them within ``max_time_s``.
        """
        self.nearest_node(*origin)  # raise for an off-network origin
        (result,) = self.travel_times_to(destination[0], destination[1], [origin],
                                         with_paths=True, max_time_s=max_time_s,
                                         method=method)
        if result is None:
            raise NoRouteError(f"no drivable route from {origin} to {destination}")
        return result

    # -------------------------------------------------------------- internals

    def _search(self, target: int, nodes: np.ndarray, need_pred: bool, limit: float,
                method: str):
        """Times and lengths from ``nodes`` to ``target``; inf where unreached.

        Returns ``(times, lengths, pred)`` where ``pred`` maps a node to the
        next node towards the target (array or dict, depending on method).
        """
        if method == "scipy":
            dist, pred = dijkstra(self._rev, directed=True, indices=target,
                                  return_predecessors=True, limit=limit)
            times, lengths = _gather(dist, self._path_lengths(pred, target), nodes)
            return times, lengths, pred
        if method == "heap":
            wanted = set(nodes[nodes >= 0].tolist())
            dist, length, pred = self._heap_search(target, wanted, limit)
            inf = math.inf
            times = np.array([dist.get(v, inf) for v in nodes.tolist()], dtype=np.float64)
            lengths = np.array([length.get(v, inf) for v in nodes.tolist()], dtype=np.float64)
            return times, lengths, pred
        raise ValueError(f"unknown method {method!r}; use 'scipy' or 'heap'")

    def _path_lengths(self, pred: np.ndarray, root: int) -> np.ndarray:
        """Metres along each node's shortest-time path to ``root`` (pointer jumping)."""
        n = self.num_nodes
        reached = pred != _NO_PRED
        lengths = np.full(n, np.inf)
        lengths[root] = 0.0
        idx = np.flatnonzero(reached)
        if len(idx) == 0:
            return lengths
        # Edge used: reversed edge pred[v] -> v, i.e. forward edge v -> pred[v].
        pos = np.searchsorted(self._rev_keys, pred[idx].astype(np.int64) * n + idx)
        acc = np.zeros(n)
        acc[idx] = self._rev_length[pos]
        jump = np.full(n, root, dtype=np.int64)
        jump[idx] = pred[idx]
        active = idx
        while len(active):
            acc[active] += acc[jump[active]]
            jump[active] = jump[jump[active]]
            active = active[jump[active] != root]
        lengths[idx] = acc[idx]
        return lengths

    def _heap_search(self, target: int, wanted: set[int], limit: float):
        if self._rev_lists is None:
            self._rev_lists = (self._rev.indptr.tolist(), self._rev.indices.tolist(),
                               self._rev.data.tolist(), self._rev_length.tolist())
        indptr, indices, weights, lengths = self._rev_lists
        dist = {target: 0.0}
        length = {target: 0.0}
        pred: dict[int, int] = {}
        settled: set[int] = set()
        remaining = set(wanted)
        heap = [(0.0, target)]
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            d, u = pop(heap)
            if u in settled:
                continue
            if d > limit:
                break
            settled.add(u)
            remaining.discard(u)
            if not remaining:
                break
            lu = length[u]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                nd = d + weights[e]
                if nd < dist.get(v, math.inf):
                    dist[v] = nd
                    length[v] = lu + lengths[e]
                    pred[v] = u
                    push(heap, (nd, v))
        # Only settled distances are final.
        dist = {v: dist[v] for v in settled}
        return dist, length, pred

    def _path(self, start: np.ndarray | LatLon, node: int, target: int, end: LatLon,
              pred) -> list[LatLon]:
        """Drawn path: the source point, its road nodes, the target point."""
        path = [(float(start[0]), float(start[1]))]
        for p in self._walk(node, target, pred):
            if p != path[-1]:
                path.append(p)
        end = (float(end[0]), float(end[1]))
        if end != path[-1]:
            path.append(end)
        return path

    def _walk(self, node: int, target: int, pred) -> list[LatLon]:
        """Node coordinates from ``node`` along ``pred`` to ``target``."""
        if self._coord_list is None:
            self._coord_list = list(zip(self.lat.tolist(), self.lon.tolist()))
        coords = self._coord_list
        out = [coords[node]]
        v = node
        limit = self.num_nodes
        while v != target:
            v = pred[v]
            if v < 0 or len(out) > limit:  # defensive: broken predecessor chain
                raise RuntimeError("broken predecessor chain")
            out.append(coords[v])
        return out


def _check_latlon(lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise RoutingError(f"invalid coordinates ({lat}, {lon})")
