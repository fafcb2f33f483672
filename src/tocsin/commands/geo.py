"""Geo commands: import map data, geocode, reverse geocode, read caller locations.

    tocsin geo import FILE.osm.pbf|FILE.csv [--format osm|csv]
    tocsin geo parse-location FILE_OR_TEXT [--json]
    tocsin geocode "TEXT" [--limit N] [--autocomplete] [--json]
    tocsin geocode --batch FILE [--limit N] [--json]
    tocsin geocode --reverse LAT LON [--json]

The map data lives under ``$TOCSIN_DATA_DIR/geo``; until something is imported
the bundled Helsinki extract is used (built and saved on first use). An
``.osm.pbf`` sets the whole area: address index, road graph (dispatch's
routing and its "outside the map" check) and basemap; a CSV address base
replaces the addresses only. A running server follows on its next use. With
``--batch`` every input line gives one output line, in order: with
``--json`` a JSON array of ranked candidates (``label``, ``score``, ``lat``,
``lon``...); a line that is not a usable query gives ``[]`` and a warning on
standard error. ``-`` reads standard input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tocsin.core.errors import BadInput

MAX_LOCATION_FILE = 64 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    geo = sub.add_parser("geo", help="map data: import addresses, read caller locations")
    actions = geo.add_subparsers(dest="geo_cmd", metavar="ACTION")
    geo.set_defaults(func=lambda _args: _usage(geo))

    p = actions.add_parser("import", help="import an OpenStreetMap extract (addresses, roads, "
                                          "basemap) or a CSV address base (addresses only)")
    p.add_argument("file", type=Path, help=".osm.pbf, or CSV with columns "
                                           "id,housenumber,street,postcode,city,lat,lon")
    p.add_argument("--format", choices=["osm", "csv"], help="default: from the file name")
    p.set_defaults(func=cmd_import)

    p = actions.add_parser("parse-location",
                           help="read a caller location (AML SMS, AML HTTPS, PIDF-LO)")
    p.add_argument("source", metavar="FILE_OR_TEXT", help="a file, the text itself, or - "
                                                         "for standard input")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parse_location)

    p = sub.add_parser("geocode", help="find addresses (forward, --batch, --reverse)")
    p.add_argument("text", nargs="?", help="the address, street, place or POI to find")
    p.add_argument("--batch", metavar="FILE", help="one query a line (- for standard input)")
    p.add_argument("--reverse", nargs=2, type=float, metavar=("LAT", "LON"),
                   help="the nearest address and street to a point")
    p.add_argument("--limit", type=int, default=5, help="candidates per query (default 5)")
    p.add_argument("--autocomplete", action="store_true", help="the last word is a prefix")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_geocode)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def geo_service():
    from tocsin.core.config import Settings
    from tocsin.geo.service import GeoService

    return GeoService(Settings().geo_dir)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- geo import
def cmd_import(args: argparse.Namespace) -> int:
    svc = geo_service()
    started = time.monotonic()
    last = [0.0]

    def progress(phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if total is None and phase in ("read", "records") and now - last[0] < 1.0:
            return  # counters: at most one line a second (steps always print)
        last[0] = now
        t = f"{now - started:6.1f}s"
        if phase == "read" and total:
            _say(f"{t}  reading {args.file.name}: {100 * done / total:5.1f}%")
        elif phase == "read":
            _say(f"{t}  reading {args.file.name}: {done:,} OSM objects")
        elif phase == "records":
            _say(f"{t}  indexing: {done:,} records")
        elif phase == "roads":
            _say(f"{t}  building the road graph")
        elif phase == "basemap":
            _say(f"{t}  drawing the basemap")
        else:
            _say(f"{t}  saving the index")

    _say(f"importing {args.file} into {svc.geo_dir}")
    info = svc.import_file(args.file, args.format, progress=progress)
    c = info["counts"]
    print(f"imported {args.file.name} ({info['format']}) in {info['seconds']:.1f} s: "
          f"{c.get('addresses', 0):,} addresses, {c.get('streets', 0):,} streets, "
          f"{c.get('places', 0):,} places, {c.get('pois', 0):,} POIs")
    roads, base = info.get("roads"), info.get("basemap")
    if info["format"] != "osm":
        kept = Path(roads["source"]).name if roads else "the bundled Helsinki extract"
        print(f"roads and basemap unchanged (from {kept})")
        return 0
    (south, west), (north, east) = roads["bounds"]
    print(f"road graph: {roads['nodes']:,} nodes, {roads['edges']:,} edges; map area "
          f"lat {south:.5f}..{north:.5f}, lon {west:.5f}..{east:.5f}")
    drawn = ", ".join(f"{n:,} {style}" for style, n in base["counts"].items() if n)
    print(f"basemap: {drawn or 'nothing to draw'}")
    return 0


# ------------------------------------------------------------ parse-location
def _read_location(source: str) -> str | bytes:
    if source == "-":
        return sys.stdin.buffer.read(MAX_LOCATION_FILE + 1)
    try:
        path = Path(source)
        is_file = path.is_file()
    except (OSError, ValueError):  # a long text, or one with a NUL, is no file name
        is_file = False
    if not is_file:
        return source
    try:
        with open(path, "rb") as f:
            return f.read(MAX_LOCATION_FILE + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror}", code="geo.bad_file") from None


def cmd_parse_location(args: argparse.Namespace) -> int:
    svc = geo_service()
    loc = svc.caller_location(_read_location(args.source))
    if args.json:
        print(json.dumps(loc.to_dict(), ensure_ascii=False))
        return 0
    kind = {"aml-sms": "AML SMS", "aml-https": "AML HTTPS", "pidf-lo": "PIDF-LO"}
    lines = [f"source:     {kind.get(loc.source, loc.source)}"]
    if loc.lat is not None and loc.lon is not None:
        lines.append(f"position:   {loc.lat:.6f}, {loc.lon:.6f}")
    if loc.radius_m is not None:
        conf = f" at {loc.confidence:g}% confidence" if loc.confidence is not None else ""
        lines.append(f"accuracy:   {loc.radius_m:g} m{conf}")
    for label, value in (("method", loc.method), ("shape", loc.shape),
                         ("time", loc.time.isoformat() if loc.time else None),
                         ("altitude", f"{loc.altitude_m:g} m" if loc.altitude_m is not None
                          else None),
                         ("address", loc.civic_text() or None),
                         ("flags", ", ".join(loc.flags) or None)):
        if value:
            lines.append(f"{label + ':':<11} {value}")
    print("\n".join(lines))
    return 0


# ------------------------------------------------------------------ geocode
def _candidate_line(rank: int, c: dict) -> str:
    how = ", ".join((m["query"] if m["query"] == m["token"] else f"{m['query']}->{m['token']}")
                    + f" ({m['field']}, {m['how']})" for m in c.get("matched") or [])
    extra = " approximate" if c.get("approximate") else ""
    dist = f"  {c['distance_m']:.0f} m away" if c.get("distance_m") is not None else ""
    return (f"{rank:>2}. {c['label']}\n    {c['lat']:.6f}, {c['lon']:.6f}  "
            f"score {c['score']:.3f}  {c['kind']}{extra}{dist}"
            + (f"\n    matched: {how}" if how else ""))


def _print_candidates(query: str, found: list[dict]) -> None:
    if not found:
        print(f"{query}: no match")
        return
    print(f"{query}:")
    for i, c in enumerate(found, 1):
        print(_candidate_line(i, c))


def cmd_geocode(args: argparse.Namespace) -> int:
    modes = sum(x is not None for x in (args.text, args.batch, args.reverse))
    if modes != 1:
        raise BadInput("give one of: TEXT, --batch FILE, --reverse LAT LON",
                       code="geo.usage")
    svc = geo_service()
    if args.reverse is not None:
        res = svc.reverse_json(*args.reverse)
        if args.json:
            print(json.dumps(res, ensure_ascii=False))
        elif not (res["address"] or res["street"]):
            print("nothing within 200 m")
        else:
            for what in ("address", "street"):
                if res[what]:
                    c = res[what]
                    print(f"{what + ':':<9}{c['label']}  ({c['lat']:.6f}, {c['lon']:.6f}), "
                          f"{c['distance_m']:.0f} m away")
        return 0
    if args.batch is not None:
        return _batch(svc, args)
    found = svc.search_json(args.text, limit=args.limit, autocomplete=args.autocomplete)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        _print_candidates(args.text, found)
    return 0


def _batch(svc, args: argparse.Namespace) -> int:
    from tocsin.geo.service import check_limit

    check_limit(args.limit)
    if args.batch == "-":
        lines = sys.stdin
    else:
        try:
            lines = open(args.batch, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise BadInput(f"cannot read {args.batch}: {exc.strerror}",
                           code="geo.no_such_file") from None
    refused = 0
    out = sys.stdout
    try:
        for n, line in enumerate(lines, 1):
            query = line.rstrip("\r\n")
            try:
                found = svc.search_json(query, limit=args.limit,
                                        autocomplete=args.autocomplete)
            except BadInput as exc:
                refused += 1
                _say(f"tocsin: warning: line {n}: {exc.message} [{exc.code}]")
                found = []
            if args.json:
                out.write(json.dumps(found, ensure_ascii=False) + "\n")
            else:
                _print_candidates(query, found)
    finally:
        if lines is not sys.stdin:
            lines.close()
    out.flush()
    if refused:
        _say(f"{refused} line(s) refused")
    return 0
