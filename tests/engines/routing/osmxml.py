"""Write tiny synthetic OSM XML files that pyosmium reads like any extract."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

LAT0, LON0 = 60.0, 25.0
STEP_LAT = 0.0009  # ~100 m
STEP_LON = 0.0018  # ~100 m at 60 degrees north


def grid_pos(row: int, col: int) -> tuple[float, float]:
    return LAT0 + row * STEP_LAT, LON0 + col * STEP_LON


def write_osm(path: Path, nodes: dict[int, tuple[float, float]],
              ways: list[tuple[int, list[int], dict[str, str]]]) -> Path:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for nid, (lat, lon) in nodes.items():
        lines.append(f'  <node id="{nid}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
    for wid, refs, tags in ways:
        lines.append(f'  <way id="{wid}" version="1">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n")
    return path
