"""Rank available units for an incident by road travel time and capability.

One Dijkstra on the reversed road graph from the incident gives every unit's
travel time at once (``RoadGraph.tree_to``); the response plan then picks the
fastest units that cover each capability it asks for, and the same search draws
the routes of the units suggested. Every rank comes with its reasons: time,
distance, capabilities, what it fills.

The units come as ``Candidates``: parallel arrays with positions already snapped
to the road graph, so that ranking thousands of units builds no object per unit
(the service keeps them in an event-maintained index, ``dispatch.index``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tocsin.dispatch.catalogue import UNIT_KINDS

NO_POSITION = "no known position"
NO_ROUTE = "no road route (off the map or cut off)"


class UnitRow(NamedTuple):
    id: int
    call_sign: str
    kind: str
    capabilities: tuple[str, ...]
    lat: float | None
    lon: float | None


class Candidates(NamedTuple):
    """Units to rank as parallel arrays, one entry per unit in a fixed order (ties in
    travel time keep it). ``lat``/``lon`` are NaN for a unit with no known position;
    ``node`` is its snapped road node (``-1`` off the network or no position) at
    ``snap_m`` metres; ``capset`` indexes ``capsets``, the distinct capability tuples."""

    ids: np.ndarray        # int64
    lat: np.ndarray        # float64
    lon: np.ndarray        # float64
    node: np.ndarray       # int64
    snap_m: np.ndarray     # float64
    factor: np.ndarray     # float64: travel-time factor of the unit's kind
    capset: np.ndarray     # intp
    capsets: tuple[tuple[str, ...], ...]
    call_sign: np.ndarray  # object (str)
    kind: np.ndarray       # object (str)

    def take(self, idx: np.ndarray) -> Candidates:
        """The units at positions ``idx`` (same order)."""
        return Candidates(self.ids[idx], self.lat[idx], self.lon[idx], self.node[idx],
                          self.snap_m[idx], self.factor[idx], self.capset[idx], self.capsets,
                          self.call_sign[idx], self.kind[idx])


def kind_factor(kind: str) -> float:
    return UNIT_KINDS.get(kind, ([], 1.0))[1]


def object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def candidates_of(graph, units: list[UnitRow]) -> Candidates:
    """``Candidates`` from rows, in their order, snapped to ``graph``."""
    n = len(units)
    lat = np.fromiter((np.nan if u.lat is None or u.lon is None else u.lat for u in units),
                      dtype=np.float64, count=n)
    lon = np.fromiter((np.nan if u.lat is None or u.lon is None else u.lon for u in units),
                      dtype=np.float64, count=n)
    node, snap = snap_positions(graph, lat, lon)
    capsets: dict[tuple[str, ...], int] = {}
    capset = np.fromiter((capsets.setdefault(tuple(u.capabilities), len(capsets))
                          for u in units), dtype=np.intp, count=n)
    return Candidates(np.fromiter((u.id for u in units), dtype=np.int64, count=n), lat, lon,
                      node, snap, np.fromiter((kind_factor(u.kind) for u in units),
                                              dtype=np.float64, count=n),
                      capset, tuple(capsets), object_array([u.call_sign for u in units]),
                      object_array([u.kind for u in units]))


def snap_positions(graph, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Snapped nodes and distances; node -1 (and distance inf) where no position."""
    node = np.full(len(lat), -1, dtype=np.int64)
    snap = np.full(len(lat), np.inf)
    placed = np.flatnonzero(~(np.isnan(lat) | np.isnan(lon)))
    if len(placed):
        node[placed], snap[placed] = graph.snap_many(lat[placed], lon[placed])
    return node, snap


@dataclass
class Ranked:
    rank: int
    unit_id: int
    call_sign: str
    kind: str
    capabilities: list[str]
    travel_time_s: float
    distance_m: float
    matches: list[str]
    fills: str | None
    suggested: bool
    explanation: str
    route: list[tuple[float, float]] | None = None


@dataclass
class Recommendation:
    ranked: list[Ranked]
    missing: dict[str, int]
    unreachable: list[dict] = field(default_factory=list)
    considered: int = 0


def _fmt_time(s: float) -> str:
    s = round(s)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _fmt_dist(m: float) -> str:
    return f"{m / 1000:.1f} km" if m >= 1000 else f"{round(m)} m"


def recommend(graph, lat: float, lon: float, units: list[UnitRow], plan: dict[str, int], *,
              limit: int = 10, with_routes: bool = True) -> Recommendation:
    """Rank ``units`` for an incident at (lat, lon); the incident off the road
    network raises the engine's ``OutsideNetworkError``."""
    return rank(graph, lat, lon, candidates_of(graph, units), plan, limit=limit,
                with_routes=with_routes)


def rank(graph, lat: float, lon: float, units: Candidates, plan: dict[str, int], *,
         limit: int = 10, with_routes: bool = True) -> Recommendation:
    """Rank ``units`` (snapped to ``graph``) for an incident at (lat, lon): one search,
    work per unit only in numpy, Python objects only for the ranks returned. The
    incident off the road network raises the engine's ``OutsideNetworkError``."""
    rec = Recommendation([], dict(plan), [], considered=len(units.ids))
    placed_mask = ~(np.isnan(units.lat) | np.isnan(units.lon))
    ids, call_signs = units.ids, units.call_sign
    rec.unreachable = [{"unit_id": int(ids[i]), "call_sign": call_signs[i],
                        "reason": NO_POSITION} for i in np.flatnonzero(~placed_mask).tolist()]
    placed = np.flatnonzero(placed_mask)
    if not len(placed):
        graph.nearest_node(lat, lon)  # the incident itself must be on the map
        return rec
    tree = graph.tree_to(lat, lon)  # raises for an incident off the map
    times, dists = tree.to_target(units.node[placed], units.snap_m[placed])
    times = times * units.factor[placed]
    capsets = units.capsets
    cs = units.capset[placed]
    needed = set(plan)
    # which capability tuples hold each capability the plan asks for
    holds = {c: np.fromiter((c in caps for caps in capsets), dtype=bool, count=len(capsets))
             for c in plan}
    useful_set = np.zeros(len(capsets), dtype=bool)
    for h in holds.values():
        useful_set |= h
    useful = useful_set[cs]
    finite = np.isfinite(times)
    for k in np.flatnonzero(~finite).tolist():
        i = placed[k]
        rec.unreachable.append({"unit_id": int(ids[i]), "call_sign": call_signs[i],
                                "reason": NO_ROUTE})
    # Units that match the plan first, each group by travel time.
    idx = np.flatnonzero(finite)
    order = idx[np.lexsort((times[idx], ~useful[idx]))]
    # Rarest capability first, so a dog unit is kept for the dog slot.
    have = {c: int(np.count_nonzero(holds[c][cs[idx]])) for c in plan}
    remaining = dict(plan)
    ranked: list[Ranked] = []
    at: list[int] = []  # each rank's position in ``units``

    def consider(k: int, beyond_limit: bool) -> bool:
        """Rank the unit at placed position ``k`` if it is among the first ``limit``
        or fills an open slot of the plan; False when it does neither."""
        caps = capsets[cs[k]]
        matches = [c for c in caps if c in needed]
        fills = None
        open_caps = sorted((c for c in matches if remaining.get(c, 0) > 0),
                           key=lambda c: (have[c], c))
        if open_caps:
            fills = open_caps[0]
            remaining[fills] -= 1
        if beyond_limit and fills is None:
            return False
        i = placed[k]
        kind = units.kind[i]
        t, d = float(times[k]), float(dists[k])
        why = [f"{_fmt_time(t)} by road ({_fmt_dist(d)})"]
        if kind == "foot":
            why.append("on foot")
        why.append("has " + ", ".join(matches) if matches else "no capability the plan asks for")
        if fills:
            why.append(f"fills {fills} {plan[fills] - remaining[fills]}/{plan[fills]}")
        ranked.append(Ranked(len(ranked) + 1, int(ids[i]), call_signs[i], kind, list(caps),
                             round(t, 1), round(d, 1), matches, fills, fills is not None,
                             "; ".join(why)))
        at.append(i)
        return True

    head = order[:max(limit, 0)]
    for k in head.tolist():
        consider(k, False)
    if any(remaining.values()):
        # Beyond the limit only a unit that fills an open slot is ranked: look at the
        # units holding a capability still wanted (the slots only ever close).
        wanted = np.zeros(len(capsets), dtype=bool)
        for c, n in remaining.items():
            if n > 0:
                wanted |= holds[c]
        rest = order[len(head):]
        for k in rest[wanted[cs[rest]]].tolist():
            consider(k, True)
            if not any(remaining.values()):
                break
    rec.ranked = ranked
    rec.missing = {c: n for c, n in remaining.items() if n > 0}
    if with_routes:
        for r in [r for r in ranked if r.suggested] or ranked[:1]:
            i = at[r.rank - 1]
            r.route = tree.path((float(units.lat[i]), float(units.lon[i])), units.node[i])
    return rec
