"""``tocsin resolve``: entity resolution on CSV files.

    tocsin resolve dedupe PERSONS.csv --out PAIRS.csv [--map nom=surname,...]
    tocsin resolve link A.csv B.csv --out PAIRS.csv [--map ...]

Input: a CSV (comma, semicolon or tab separated; UTF-8) with an ``id`` column
and any of the canonical fields ``given_name, surname, date_of_birth,
address, postcode, city, phone, id_number``; ``--map source=canonical,...``
renames headers first. Other columns are ignored. Output: ``id_a,id_b,score``
(match probability) for every pair judged to match, best first; a summary
goes to standard error. Bad input (missing file, no ``id`` column, unknown
canonical name in ``--map``, duplicate ids) exits with code 2 and a message.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from tocsin.engines.resolve import FIELDS, NormalisationError, Resolver, cluster

CANONICAL = ("id",) + FIELDS


class InputError(Exception):
    """Bad input: reported on stderr, exit code 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("resolve", help="entity resolution: find the same person "
                                              "in CSV files")
    sub = p.add_subparsers(dest="resolve_cmd", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True,
                        help="output CSV of matched pairs (id_a,id_b,score); '-' for stdout")
    common.add_argument("--map", default="", metavar="SRC=CANONICAL,...",
                        help="rename input headers to canonical field names")
    common.add_argument("--threshold", default="0.5",
                        help="match probability threshold, or 'auto' (default 0.5)")
    common.add_argument("--clusters", type=Path, default=None,
                        help="also write person clusters (cluster,id) to this CSV")
    common.add_argument("--country", default="FR", help="default country for phones")

    d = sub.add_parser("dedupe", parents=[common], help="find duplicates inside one file")
    d.add_argument("file", type=Path)
    d.set_defaults(func=cmd_dedupe)

    lk = sub.add_parser("link", parents=[common], help="find the same persons in two files")
    lk.add_argument("file_a", type=Path)
    lk.add_argument("file_b", type=Path)
    lk.set_defaults(func=cmd_link)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def parse_map(text: str) -> dict[str, str]:
    """``a=b,c=d`` -> {a: b, c: d}; every target must be a canonical name."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise InputError(f"--map: {item!r} is not SOURCE=CANONICAL")
        src, dst = (x.strip() for x in item.split("=", 1))
        if dst not in CANONICAL:
            raise InputError(f"--map: unknown canonical name {dst!r} "
                             f"(known: {', '.join(CANONICAL)})")
        if not src:
            raise InputError(f"--map: empty source column in {item!r}")
        out[src] = dst
    return out


def read_csv(path: Path, mapping: dict[str, str]) -> list[dict[str, str]]:
    """Rows of ``path`` with headers renamed; only canonical columns kept."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"{path}: empty file")
    first = text.splitlines()[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    raw_headers = [h.strip() for h in next(reader)]
    headers = [mapping.get(h, h) for h in raw_headers]
    missing_sources = set(mapping) - set(raw_headers)
    if missing_sources:
        raise InputError(f"{path}: --map names columns that are not in the file: "
                         f"{', '.join(sorted(missing_sources))}")
    if "id" not in headers:
        raise InputError(f"{path}: no 'id' column (headers: {', '.join(headers)}; "
                         f"use --map yourcolumn=id)")
    if len(set(headers)) != len(headers):
        raise InputError(f"{path}: two columns map to the same name")
    keep = [(k, h) for k, h in enumerate(headers) if h in CANONICAL]
    rows = []
    for line, raw in enumerate(reader, start=2):
        if not any(x.strip() for x in raw):
            continue
        if len(raw) > len(headers):
            raise InputError(f"{path}:{line}: {len(raw)} values for {len(headers)} columns")
        rows.append({h: (raw[k] if k < len(raw) else "") for k, h in keep})
    if not rows:
        raise InputError(f"{path}: no records")
    return rows


def _threshold(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--threshold: {text!r} is not a number or 'auto'") from None
    if not 0.0 <= value <= 1.0:
        raise InputError("--threshold: must be between 0 and 1")
    return value


def _write(args: argparse.Namespace, pairs) -> None:
    rows = [("id_a", "id_b", "score")] + [(p.id_a, p.id_b, f"{p.score:.6f}") for p in pairs]
    if str(args.out) == "-":
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
    if args.clusters is not None:
        groups = cluster(pairs)
        with open(args.clusters, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(("cluster", "id"))
            for k, c in enumerate(groups, start=1):
                w.writerows((k, x) for x in c.ids)


def _summary(pairs, args: argparse.Namespace) -> None:
    s = pairs.summary
    read = f"{s.records_a}" if s.records_b is None else f"{s.records_a} + {s.records_b}"
    print(f"resolve: read {read} records; compared {s.candidate_pairs} candidate pairs "
          f"(blocking skipped {s.blocking.reduction:.2%} of {s.blocking.max_pairs} possible); "
          f"{s.matches} matches at probability >= {s.threshold:.3f}; "
          f"wrote {args.out}", file=sys.stderr)
    if s.issues:
        counts: dict[str, int] = {}
        for issue in s.issues:
            counts[issue.field] = counts.get(issue.field, 0) + 1
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"resolve: {len(s.issues)} values could not be normalised and were ignored "
              f"({detail})", file=sys.stderr)


def _run(args: argparse.Namespace, files: list[Path]) -> int:
    try:
        mapping = parse_map(args.map)
        threshold = _threshold(args.threshold)
        tables = [read_csv(f, mapping) for f in files]
        resolver = Resolver(threshold=threshold, default_country=args.country)
        pairs = resolver.dedupe(tables[0]) if len(tables) == 1 else \
            resolver.link(tables[0], tables[1])
        _write(args, pairs)
    except (InputError, NormalisationError) as exc:
        print(f"tocsin resolve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tocsin resolve: error: {exc}", file=sys.stderr)
        return 2
    _summary(pairs, args)
    return 0


def cmd_dedupe(args: argparse.Namespace) -> int:
    return _run(args, [args.file])


def cmd_link(args: argparse.Namespace) -> int:
    return _run(args, [args.file_a, args.file_b])
