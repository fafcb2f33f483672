"""Rank available units for an incident by road travel time and capability.

One Dijkstra on the reversed road graph from the incident gives every unit's
travel time at once (``RoadGraph.travel_times_array``); the response plan then
picks the fastest units that cover each capability it asks for. Every rank
comes with its reasons: time, distance, capabilities, what it fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tocsin.dispatch.catalogue import UNIT_KINDS


class UnitRow(NamedTuple):
    id: int
    call_sign: str
    kind: str
    capabilities: tuple[str, ...]
    lat: float | None
    lon: float | None


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
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _fmt_dist(m: float) -> str:
    return f"{m / 1000:.1f} km" if m >= 1000 else f"{int(round(m))} m"


def recommend(graph, lat: float, lon: float, units: list[UnitRow], plan: dict[str, int], *,
              limit: int = 10, with_routes: bool = True) -> Recommendation:
    """Rank ``units`` for an incident at (lat, lon); the incident off the road
    network raises the engine's ``OutsideNetworkError``."""
    graph.nearest_node(lat, lon)  # the incident itself must be on the map
    placed = [u for u in units if u.lat is not None and u.lon is not None]
    unreachable = [{"unit_id": u.id, "call_sign": u.call_sign, "reason": "no known position"}
                   for u in units if u.lat is None or u.lon is None]
    rec = Recommendation([], dict(plan), unreachable, considered=len(units))
    if not placed:
        return rec
    lats = np.fromiter((u.lat for u in placed), dtype=np.float64, count=len(placed))
    lons = np.fromiter((u.lon for u in placed), dtype=np.float64, count=len(placed))
    times, dists = graph.travel_times_array(lat, lon, lats, lons)
    factor = np.fromiter((UNIT_KINDS.get(u.kind, ([], 1.0))[1] for u in placed),
                         dtype=np.float64, count=len(placed))
    times = times * factor
    needed = set(plan)
    useful = np.fromiter((bool(needed.intersection(u.capabilities)) for u in placed),
                         dtype=bool, count=len(placed))
    finite = np.isfinite(times)
    for i in np.flatnonzero(~finite).tolist():
        rec.unreachable.append({"unit_id": placed[i].id, "call_sign": placed[i].call_sign,
                                "reason": "no road route (off the map or cut off)"})
    # Units that match the plan first, each group by travel time.
    idx = np.flatnonzero(finite)
    order = idx[np.lexsort((times[idx], ~useful[idx]))]
    # Rarest capability first, so a dog unit is kept for the dog slot.
    have = {c: sum(1 for i in idx.tolist() if c in placed[i].capabilities) for c in plan}
    remaining = dict(plan)
    ranked: list[Ranked] = []
    for i in order.tolist():
        u = placed[i]
        matches = [c for c in u.capabilities if c in needed]
        fills = None
        open_caps = sorted((c for c in matches if remaining.get(c, 0) > 0),
                           key=lambda c: (have[c], c))
        if open_caps:
            fills = open_caps[0]
            remaining[fills] -= 1
        if len(ranked) >= limit and fills is None:
            if not any(remaining.values()):
                break
            continue
        t, d = float(times[i]), float(dists[i])
        why = [f"{_fmt_time(t)} by road ({_fmt_dist(d)})"]
        if u.kind == "foot":
            why.append("on foot")
        why.append("has " + ", ".join(matches) if matches else "no capability the plan asks for")
        if fills:
            why.append(f"fills {fills} {plan[fills] - remaining[fills]}/{plan[fills]}")
        ranked.append(Ranked(len(ranked) + 1, u.id, u.call_sign, u.kind, list(u.capabilities),
                             round(t, 1), round(d, 1), matches, fills, fills is not None,
                             "; ".join(why)))
    rec.ranked = ranked
    rec.missing = {c: n for c, n in remaining.items() if n > 0}
    if with_routes:
        chosen = [r for r in ranked if r.suggested] or ranked[:1]
        by_id = {u.id: u for u in placed}
        routes = graph.travel_times_to(lat, lon, [(by_id[r.unit_id].lat, by_id[r.unit_id].lon)
                                                  for r in chosen], with_paths=True)
        for r, route in zip(chosen, routes):
            r.route = route.path if route is not None else None
    return rec
