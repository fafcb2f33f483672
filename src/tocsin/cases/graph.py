"""Link chart algorithms on one case's graph: neighbours, shortest path, timeline.

Links are walked both ways and every walk keeps a visited set, so cycles
(A knows B knows C knows A) end; nothing here touches the database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def adjacency(links: Iterable[tuple[int, int, int]]) -> dict[int, list[tuple[int, int]]]:
    """{entity: [(neighbour, link id)]} from (link id, source, target) triples."""
    adj: dict[int, list[tuple[int, int]]] = {}
    for lid, a, b in links:
        adj.setdefault(a, []).append((b, lid))
        adj.setdefault(b, []).append((a, lid))
    return adj


def neighbours(adj: dict[int, list[tuple[int, int]]], start: int, depth: int
               ) -> tuple[set[int], set[int]]:
    """Entities and links within ``depth`` hops of ``start`` (breadth first)."""
    seen, links = {start}, set()
    frontier = [start]
    for _ in range(depth):
        nxt = []
        for node in frontier:
            for other, lid in adj.get(node, ()):
                links.add(lid)
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
    return seen, links


def shortest_path(adj: dict[int, list[tuple[int, int]]], a: int, b: int
                  ) -> tuple[list[int], list[int]] | None:
    """(entities, links) of one shortest path from ``a`` to ``b``, or None."""
    if a == b:
        return [a], []
    prev: dict[int, tuple[int, int]] = {}
    queue = deque([a])
    seen = {a}
    while queue:
        node = queue.popleft()
        for other, lid in adj.get(node, ()):
            if other in seen:
                continue
            seen.add(other)
            prev[other] = (node, lid)
            if other == b:
                nodes, edges = [b], []
                while nodes[-1] != a:
                    p, l = prev[nodes[-1]]
                    nodes.append(p)
                    edges.append(l)
                return nodes[::-1], edges[::-1]
            queue.append(other)
    return None
