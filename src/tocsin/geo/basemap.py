"""The basemap drawn from the imported OpenStreetMap data itself.

A closed police network has no tile server, so the map draws water, parks,
buildings, roads and railways from the same ``.osm.pbf`` the address index
and the road graph come from. ``extract`` reads them once with pyosmium into a
compact form under ``data_dir/geo/basemap`` (flat ``float32`` coordinate
arrays with ring and feature offsets, a bounding box per feature); ``query``
cuts a bbox out of it and simplifies the geometry to the zoom level
(Douglas-Peucker at about one screen pixel), as GeoJSON whose
``properties.style`` is one of water, park, building, road, major, rail, coast.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

STYLES = ["water", "park", "building", "road", "major", "rail", "coast"]
S = {name: i for i, name in enumerate(STYLES)}
POLYGON, LINE = 0, 1
FORMAT = {"format": "tocsin-basemap", "version": 1}
# The smallest zoom at which a style is drawn (below it, the layer is too dense to read).
MIN_ZOOM = {"water": 0, "coast": 0, "major": 9, "park": 11, "rail": 11, "road": 13,
            "building": 15}
MAX_FEATURES = 30_000

_WATER = {("natural", "water"), ("landuse", "reservoir"), ("landuse", "basin"),
          ("waterway", "riverbank"), ("natural", "bay")}
_PARK = {("leisure", "park"), ("leisure", "garden"), ("leisure", "pitch"),
         ("landuse", "grass"), ("landuse", "forest"), ("landuse", "meadow"),
         ("landuse", "recreation_ground"), ("landuse", "cemetery"), ("natural", "wood"),
         ("natural", "scrub"), ("natural", "grassland")}
_MAJOR = {"motorway", "trunk", "primary", "secondary", "tertiary", "motorway_link",
          "trunk_link", "primary_link", "secondary_link", "tertiary_link"}
_ROAD = {"residential", "unclassified", "living_street", "service", "pedestrian", "road"}
_RAIL = {"rail", "tram", "light_rail", "subway", "narrow_gauge"}


def _area_style(tags) -> str | None:
    if tags.get("building") and tags.get("building") != "no":
        return "building"
    for k, v in _WATER:
        if tags.get(k) == v:
            return "water"
    for k, v in _PARK:
        if tags.get(k) == v:
            return "park"
    return None


def _line_style(tags) -> str | None:
    hw = tags.get("highway")
    if hw in _MAJOR:
        return "major"
    if hw in _ROAD:
        return "road"
    rw = tags.get("railway")
    if rw in _RAIL and tags.get("tunnel") in (None, "no"):
        return "rail"
    if tags.get("natural") == "coastline":
        return "coast"
    return None


def extract(pbf: str | Path, out_dir: str | Path) -> dict:
    """Read the drawable features of an OSM file into ``out_dir``; returns counts."""
    import osmium

    features: list[tuple[int, int, list[np.ndarray]]] = []

    class Handler(osmium.SimpleHandler):
        def way(self, w) -> None:
            style = _line_style(w.tags)
            if style is None:
                return
            try:
                pts = np.array([(n.lon, n.lat) for n in w.nodes], dtype=np.float64)
            except osmium.InvalidLocationError:
                return
            if len(pts) >= 2:
                features.append((S[style], LINE, [pts]))

        def area(self, a) -> None:
            style = _area_style(a.tags)
            if style is None:
                return
            try:
                for outer in a.outer_rings():
                    rings = [np.array([(n.lon, n.lat) for n in outer], dtype=np.float64)]
                    for inner in a.inner_rings(outer):
                        rings.append(np.array([(n.lon, n.lat) for n in inner],
                                              dtype=np.float64))
                    if len(rings[0]) >= 4:
                        features.append((S[style], POLYGON, rings))
            except osmium.InvalidLocationError:
                return

    Handler().apply_file(str(pbf), locations=True, idx="flex_mem")
    # Draw order: big fills first, lines on top.
    order = {S["water"]: 0, S["park"]: 1, S["building"]: 2, S["coast"]: 3, S["rail"]: 4,
             S["road"]: 5, S["major"]: 6}
    features.sort(key=lambda f: order[f[0]])
    coords, ring_off, feat_ring_off, style, kind, bbox = [], [0], [0], [], [], []
    n = 0
    for st, kd, rings in features:
        for r in rings:
            coords.append(r)
            n += len(r)
            ring_off.append(n)
        feat_ring_off.append(len(ring_off) - 1)
        style.append(st)
        kind.append(kd)
        outer = rings[0]
        bbox.append((outer[:, 0].min(), outer[:, 1].min(), outer[:, 0].max(),
                     outer[:, 1].max()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "coords": (np.concatenate(coords) if coords else np.zeros((0, 2))).astype(np.float64),
        "ring_off": np.asarray(ring_off, dtype=np.int64),
        "feat_ring_off": np.asarray(feat_ring_off, dtype=np.int64),
        "style": np.asarray(style, dtype=np.int8),
        "kind": np.asarray(kind, dtype=np.int8),
        "bbox": np.asarray(bbox, dtype=np.float64).reshape(-1, 4),
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr, allow_pickle=False)
    counts = {name: int((arrays["style"] == i).sum()) for i, name in enumerate(STYLES)}
    src = Path(pbf).stat()
    meta = {**FORMAT, "source": str(pbf), "source_size": src.st_size,
            "source_mtime": int(src.st_mtime), "counts": counts}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return counts


def _simplify(pts: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker with an explicit stack (no recursion limit)."""
    n = len(pts)
    if n <= 2 or tol <= 0:
        return pts
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = pts[b] - pts[a]
        rel = pts[a + 1:b] - pts[a]
        norm = float(np.hypot(*seg))
        if norm == 0:
            d = np.hypot(rel[:, 0], rel[:, 1])
        else:
            d = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm
        i = int(np.argmax(d))
        if d[i] > tol:
            m = a + 1 + i
            keep[m] = True
            stack.append((a, m))
            stack.append((m, b))
    return pts[keep]


class Basemap:
    def __init__(self, directory: str | Path):
        d = Path(directory)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except FileNotFoundError:
            raise ValueError(f"{d} holds no basemap (no meta.json)") from None
        if {k: meta.get(k) for k in FORMAT} != FORMAT:
            raise ValueError(f"{d}: unsupported basemap format")
        self.meta = meta
        load = lambda name: np.load(d / f"{name}.npy", allow_pickle=False)
        self.coords, self.ring_off = load("coords"), load("ring_off")
        self.feat_ring_off, self.style = load("feat_ring_off"), load("style")
        self.kind, self.bbox = load("kind"), load("bbox")
        self._min_zoom = np.array([MIN_ZOOM[STYLES[s]] for s in range(len(STYLES))])

    @property
    def extent(self) -> tuple[float, float, float, float] | None:
        if not len(self.bbox):
            return None
        return (float(self.bbox[:, 0].min()), float(self.bbox[:, 1].min()),
                float(self.bbox[:, 2].max()), float(self.bbox[:, 3].max()))

    def query(self, west: float, south: float, east: float, north: float, zoom: int) -> dict:
        """GeoJSON FeatureCollection of what is drawn in the bbox at that zoom."""
        zoom = int(max(0, min(zoom, 22)))
        pixel = 360.0 / (256 * 2 ** zoom)  # degrees of longitude per screen pixel
        b = self.bbox
        sel = ((b[:, 2] >= west) & (b[:, 0] <= east) & (b[:, 3] >= south) & (b[:, 1] <= north)
               & (self._min_zoom[self.style] <= zoom)
               # a polygon smaller than two pixels is not drawn
               & ((self.kind == LINE) | (np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
                                         >= 2 * pixel)))
        idx = np.flatnonzero(sel)
        truncated = len(idx) > MAX_FEATURES
        idx = idx[:MAX_FEATURES]
        feats = []
        for f in idx.tolist():
            r0, r1 = int(self.feat_ring_off[f]), int(self.feat_ring_off[f + 1])
            rings = []
            for r in range(r0, r1):
                pts = _simplify(self.coords[self.ring_off[r]:self.ring_off[r + 1]], pixel)
                rings.append(np.round(pts, 6).tolist())
            if self.kind[f] == POLYGON:
                rings = [r for r in rings if len(r) >= 4] or None
                if rings is None:
                    continue
                geom = {"type": "Polygon", "coordinates": rings}
            else:
                geom = {"type": "LineString", "coordinates": rings[0]}
            feats.append({"type": "Feature", "geometry": geom,
                          "properties": {"style": STYLES[int(self.style[f])]}})
        return {"type": "FeatureCollection", "features": feats, "truncated": truncated}


_cache: dict[str, Basemap] = {}
_lock = threading.Lock()


def load_or_extract(pbf: str | Path, directory: str | Path) -> Basemap:
    """The basemap of ``pbf`` under ``directory``, extracted again if the file changed."""
    d = Path(directory)
    with _lock:
        key = str(d.resolve())
        bm = _cache.get(key)
        st = Path(pbf).stat()
        fresh = lambda m: (m.get("source_size") == st.st_size
                           and m.get("source_mtime") == int(st.st_mtime))
        if bm is not None and fresh(bm.meta):
            return bm
        try:
            bm = Basemap(d)
            if not fresh(bm.meta):
                raise ValueError("stale")
        except ValueError:
            extract(pbf, d)
            bm = Basemap(d)
        _cache[key] = bm
        return bm
