"""A small town near the Paris city hall, written as an .osm.pbf with pyosmium.

A 4 x 4 grid of two-way streets about 100 m apart (rows "Rue A".."Rue D",
residential; columns "Avenue 1".."Avenue 4", tertiary), two numbered
addresses on each row, a building with an address and a park.
"""

from __future__ import annotations

from pathlib import Path

LAT0, LON0 = 48.8540, 2.3490
STEP_LAT, STEP_LON = 0.0009, 0.0014  # about 100 m each way
N = 4
ROWS = ["Rue A", "Rue B", "Rue C", "Rue D"]
BOUNDS = [[LAT0, LON0], [LAT0 + (N - 1) * STEP_LAT, LON0 + (N - 1) * STEP_LON]]
NODES, EDGES = N * N, 2 * 2 * N * (N - 1)  # every street segment both ways
INSIDE = (48.8550, 2.3505)
CITY, POSTCODE = "Testville", "75004"


def node_id(row: int, col: int) -> int:
    return 1 + row * N + col


def write_town(path: Path, roads: bool = True) -> Path:
    """The town; without ``roads`` only its addresses (and nothing to drive on)."""
    import osmium
    from osmium.osm.mutable import Node, Way

    addr = {"addr:city": CITY, "addr:postcode": POSTCODE}
    w = osmium.SimpleWriter(str(path))
    try:
        for r in range(N):
            for c in range(N):
                w.add_node(Node(id=node_id(r, c), location=(LON0 + c * STEP_LON,
                                                            LAT0 + r * STEP_LAT)))
        for r, street in enumerate(ROWS):  # addresses: numbers 1 and 2, 10 m off the street
            for k in (1, 2):
                w.add_node(Node(id=100 + 10 * r + k,
                                location=(LON0 + (k - 0.5) * STEP_LON, LAT0 + r * STEP_LAT
                                          + 0.0001),
                                tags={"addr:housenumber": str(k), "addr:street": street,
                                      **addr}))
        square = [(0.2, 0.2), (0.2, 0.4), (0.4, 0.4), (0.4, 0.2)]  # cell offsets
        for base, (dr, dc) in ((200, (0, 0)), (300, (1, 1))):
            for i, (fr, fc) in enumerate(square):
                w.add_node(Node(id=base + i, location=(LON0 + (dc + fc) * STEP_LON,
                                                       LAT0 + (dr + fr) * STEP_LAT)))
        if roads:
            for r, street in enumerate(ROWS):
                w.add_way(Way(id=1000 + r, nodes=[node_id(r, c) for c in range(N)],
                              tags={"highway": "residential", "name": street}))
            for c in range(N):
                w.add_way(Way(id=1100 + c, nodes=[node_id(r, c) for r in range(N)],
                              tags={"highway": "tertiary", "name": f"Avenue {c + 1}"}))
        w.add_way(Way(id=2000, nodes=[200, 201, 202, 203, 200],
                      tags={"building": "yes", "addr:housenumber": "9",
                            "addr:street": "Rue A", **addr}))
        w.add_way(Way(id=2001, nodes=[300, 301, 302, 303, 300],
                      tags={"leisure": "park", "name": "Parc du Test"}))
    finally:
        w.close()
    return path
