"""Importers: an OpenStreetMap ``.osm.pbf`` extract (pyosmium) and a plain
address base in CSV (streamed, so a 26-million-row BAN file never sits in
memory as a table)."""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import osmium

from .normalize import fold
from .records import ADDRESS, PLACE, POI, STREET, Record

Progress = Callable[[int, "int | None"], None] | None

NAME_KEYS = ("name", "name:fi", "name:sv", "name:en", "name:fr", "alt_name", "official_name",
             "short_name", "loc_name", "old_name")
STREET_HIGHWAYS = {
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "living_street", "pedestrian", "service", "road", "track", "footway", "cycleway", "path",
    "steps", "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
    "bridleway", "busway",
}
PLACE_TYPES = {"city", "town", "village", "hamlet", "suburb", "quarter", "neighbourhood",
               "city_block", "borough", "district", "municipality", "locality", "island",
               "square", "isolated_dwelling"}
SETTLEMENTS = ("city", "town", "village")
POI_KEYS = ("amenity", "shop", "tourism", "historic", "leisure", "office", "healthcare",
            "aeroway", "emergency", "craft", "man_made")
POI_RAILWAY = {"station", "halt", "tram_stop", "subway_entrance"}
POI_PT = {"station"}
POI_BUILDINGS = {"train_station", "church", "cathedral", "hospital", "school", "university",
                 "stadium", "government", "civic", "public", "transportation"}


def _names(tags) -> tuple[str, tuple[str, ...]]:
    main = tags.get("name", "") or ""
    seen = {fold(main)} if main else set()
    alts: list[str] = []
    for k in NAME_KEYS[1:]:
        v = tags.get(k)
        if not v:
            continue
        for part in v.split(";"):
            part = part.strip()
            if part and fold(part) not in seen:
                seen.add(fold(part))
                alts.append(part)
    if not main and alts:
        main, alts = alts[0], alts[1:]
    return main, tuple(alts)


def _poi_category(tags) -> str:
    for k in POI_KEYS:
        v = tags.get(k)
        if v:
            return f"{k}={v}"
    v = tags.get("railway")
    if v in POI_RAILWAY:
        return f"railway={v}"
    v = tags.get("public_transport")
    if v in POI_PT:
        return f"public_transport={v}"
    v = tags.get("building")
    if v in POI_BUILDINGS:
        return f"building={v}"
    return ""


class _Handler(osmium.SimpleHandler):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.records: list[Record] = []
        self.progress = progress
        self.count = 0

    def _tick(self) -> None:
        self.count += 1
        if self.progress is not None and self.count % 100_000 == 0:
            self.progress(self.count, None)

    def _tagged(self, tags, lat: float, lon: float, ref: str) -> None:
        hn = tags.get("addr:housenumber")
        street = tags.get("addr:street") or tags.get("addr:place")
        name, alts = _names(tags)
        city = tags.get("addr:city", "")
        postcode = tags.get("addr:postcode", "")
        if hn and street:
            for one in hn.replace(",", ";").split(";"):
                one = one.strip()
                if one:
                    self.records.append(Record(ADDRESS, lat, lon, one, street, postcode, city,
                                               name, ref=ref))
        if not name:
            return
        place = tags.get("place")
        if place in PLACE_TYPES:
            self.records.append(Record(PLACE, lat, lon, city=city or "", name=name, names=alts,
                                       category=f"place={place}", ref=ref))
            return
        cat = _poi_category(tags)
        if cat:
            self.records.append(Record(POI, lat, lon, hn or "", street or "", postcode, city,
                                       name, alts, category=cat, ref=ref))

    def node(self, n) -> None:
        self._tick()
        if not n.tags or not n.location.valid():
            return
        self._tagged(n.tags, n.location.lat, n.location.lon, f"n{n.id}")

    def way(self, w) -> None:
        self._tick()
        tags = w.tags
        if not tags:
            return
        hw = tags.get("highway")
        interesting = ("addr:housenumber" in tags or "name" in tags or "place" in tags)
        if not interesting:
            return
        pts: list[tuple[float, float]] = []
        for nd in w.nodes:
            loc = nd.location
            if loc.valid():
                pts.append((loc.lat, loc.lon))
        if not pts:
            return
        if hw in STREET_HIGHWAYS and "name" in tags and tags.get("area") != "yes":
            name, alts = _names(tags)
            segs = tuple((a[0], a[1], b[0], b[1]) for a, b in pairwise(pts))
            mid = pts[len(pts) // 2]
            self.records.append(Record(STREET, mid[0], mid[1], name=name, names=alts,
                                       segments=segs, category=f"highway={hw}",
                                       ref=f"w{w.id}"))
            return
        lat, lon = _centroid(pts)
        self._tagged(tags, lat, lon, f"w{w.id}")

    def area(self, a) -> None:
        # closed ways are handled in way(); here only multipolygon relations
        if a.from_way() or not a.tags:
            return
        pts: list[tuple[float, float]] = []
        for ring in a.outer_rings():
            for nd in ring:
                if nd.location.valid():
                    pts.append((nd.location.lat, nd.location.lon))
            break
        if pts:
            lat, lon = _centroid(pts)
            self._tagged(a.tags, lat, lon, f"r{a.orig_id()}")


def _centroid(pts: list[tuple[float, float]]) -> tuple[float, float]:
    """Area centroid of a ring (shoelace), vertex mean when degenerate."""
    if len(pts) >= 4 and pts[0] == pts[-1]:
        a = cx = cy = 0.0
        y0, x0 = pts[0]
        for (y1, x1), (y2, x2) in pairwise(pts):
            y1 -= y0
            x1 -= x0
            y2 -= y0
            x2 -= x0
            cr = x1 * y2 - x2 * y1
            a += cr
            cx += (x1 + x2) * cr
            cy += (y1 + y2) * cr
        if abs(a) > 1e-18:
            return y0 + cy / (3 * a), x0 + cx / (3 * a)
        pts = pts[:-1]
    return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)


def _dist2(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = a[0] - b[0]
    dx = (a[1] - b[1]) * math.cos(math.radians(a[0]))
    return dx * dx + dy * dy


def import_osm_pbf(path: str | os.PathLike[str], progress: Progress = None) -> list[Record]:
    """Addresses, named streets (with geometry), places and POIs of an OSM
    extract.  Way geometry comes from osmium's node-location cache
    (NodeLocationsForWays over an in-memory ``flex_mem`` index); multipolygon
    relations are assembled by osmium's area manager.

    Streets and addresses without ``addr:city`` get the city of the
    nearest same-name address street, else of the nearest settlement node.
    ``progress(objects_done, None)`` is called every 100,000 OSM objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    h = _Handler(progress)
    h.apply_file(str(path), locations=True, idx="flex_mem")
    if progress is not None:
        progress(h.count, h.count)
    return _fill_cities(h.records)


def _fill_cities(records: list[Record]) -> list[Record]:
    settlements = [(r.lat, r.lon, r.name) for r in records
                   if r.kind == PLACE and r.category.split("=")[-1] in SETTLEMENTS]
    by_street: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    cities = Counter()
    for r in records:
        if r.kind == ADDRESS and r.city:
            by_street[fold(r.street)].append((r.lat, r.lon, r.city))
            cities[r.city] += 1
    default = cities.most_common(1)[0][0] if cities else ""

    def nearest_settlement(lat: float, lon: float) -> str:
        if not settlements:
            return default
        return min(settlements, key=lambda s: _dist2((lat, lon), (s[0], s[1])))[2]

    out: list[Record] = []
    for r in records:
        if r.city or r.kind == PLACE and r.category.split("=")[-1] in SETTLEMENTS:
            out.append(r)
            continue
        key = fold(r.name if r.kind == STREET else r.street)
        same = by_street.get(key) if key else None
        if same:
            city = min(same, key=lambda s: _dist2((r.lat, r.lon), (s[0], s[1])))[2]
        else:
            city = nearest_settlement(r.lat, r.lon)
        out.append(r._replace(city=city))
    return out


# --- CSV -------------------------------------------------------------------

_ALIASES = {
    "id": ("id", "cle_interop", "uid"),
    "housenumber": ("housenumber", "numero", "number", "hn"),
    "suffix": ("rep", "suffixe", "suffix"),
    "street": ("street", "nom_voie", "voie", "road"),
    "postcode": ("postcode", "code_postal", "zip", "postal_code"),
    "city": ("city", "nom_commune", "commune", "municipality", "town"),
    "lat": ("lat", "latitude", "y"),
    "lon": ("lon", "lng", "longitude", "x", "long"),
}


class CSVImportError(ValueError):
    pass


def _open_text(path: Path) -> tuple[io.BufferedReader, Iterator[bytes], Callable[[], int]]:
    raw = open(path, "rb")  # noqa: SIM115 - closed by import_csv
    if path.suffix == ".gz":
        gz = gzip.GzipFile(fileobj=raw)
        return raw, iter(gz), raw.tell
    return raw, iter(raw), raw.tell


def import_csv(path: str | os.PathLike[str], progress: Progress = None,
               delimiter: str | None = None) -> Iterator[Record]:
    """Stream address records from a CSV with columns
    ``id,housenumber,street,postcode,city,lat,lon`` (BAN column names
    ``numero, rep, nom_voie, code_postal, nom_commune, lat, lon`` and a ``;``
    separator are recognised too; ``.csv.gz`` is read directly).

    A generator: rows are parsed as they are consumed.  Rows with a missing
    street or bad coordinates are skipped.  ``progress(bytes_read,
    file_size)`` is called every 100,000 rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    total = path.stat().st_size
    raw, lines, tell = _open_text(path)
    try:
        text = (b.decode("utf-8-sig", errors="replace") for b in lines)
        first = next(text, "")
        if not first.strip():
            return
        if delimiter is None:
            delimiter = max((",", ";", "\t", "|"), key=first.count)
        header = [h.strip().lower() for h in next(csv.reader([first], delimiter=delimiter))]
        col: dict[str, int] = {}
        for field, names in _ALIASES.items():
            for n in names:
                if n in header:
                    col[field] = header.index(n)
                    break
        missing = [f for f in ("housenumber", "street", "lat", "lon") if f not in col]
        if missing:
            raise CSVImportError(f"CSV {path.name}: missing column(s) {', '.join(missing)}")
        i_hn, i_st, i_la, i_lo = col["housenumber"], col["street"], col["lat"], col["lon"]
        i_sx, i_pc, i_ci, i_id = (col.get("suffix"), col.get("postcode"), col.get("city"),
                                  col.get("id"))
        width = max(col.values()) + 1
        n = 0
        for row in csv.reader(text, delimiter=delimiter):
            n += 1
            if progress is not None and n % 100_000 == 0:
                progress(tell(), total)
            if len(row) < width:
                continue
            street = row[i_st].strip()
            if not street:
                continue
            try:
                lat = float(row[i_la])
                lon = float(row[i_lo])
            except ValueError:
                continue
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                continue
            hn = row[i_hn].strip()
            if i_sx is not None and row[i_sx].strip():
                hn = f"{hn}{' ' if len(row[i_sx].strip()) == 1 else ''}{row[i_sx].strip()}"
            yield Record(ADDRESS, lat, lon, hn, street,
                         row[i_pc].strip() if i_pc is not None else "",
                         row[i_ci].strip() if i_ci is not None else "",
                         ref=row[i_id].strip() if i_id is not None else "")
        if progress is not None:
            progress(total, total)
    finally:
        raw.close()
