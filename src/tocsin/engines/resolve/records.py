"""Records in, a columnar table of normalised fields out.

A record is a mapping with an ``id`` and any of the canonical fields
:data:`FIELDS`. :func:`prepare` normalises every field (each distinct raw
value once), derives the keys used by blocking and scoring (phonetic keys,
birth year, day/month-swapped date...) and keeps them as numpy arrays, one
row per record. Missing values are empty strings (or 0 for numbers).

A value that cannot be normalised is, by default, kept out of matching (as
if missing) and reported in :attr:`Table.issues`; with ``strict=True`` the
first one raises :class:`~tocsin.engines.resolve.normalise.NormalisationError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tocsin.engines.resolve import normalise as nz
from tocsin.engines.resolve.phonetic import fonem, fonem_skeleton

FIELDS = ("given_name", "surname", "date_of_birth", "address", "postcode", "city", "phone",
          "id_number")

MISSING_TOKENS = frozenset({"", "nan", "none", "null", "na", "n/a", "-", "?", "inconnu",
                            "unknown", "x", "xx", "xxx"})


@dataclass(frozen=True)
class Issue:
    """A value kept out of matching because it could not be normalised."""

    record_id: str
    field: str
    reason: str


def _obj(values: list) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


@dataclass
class Table:
    """Normalised records, column by column (see the module docstring)."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    present: frozenset[str]
    issues: list[Issue] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def row(self, i: int) -> dict[str, object]:
        """One record's normalised values (for explanations)."""
        return {k: v[i] for k, v in self.columns.items()}

    def subset(self, rows: np.ndarray) -> Table:
        return Table(self.ids[rows], {k: v[rows] for k, v in self.columns.items()},
                     self.present, [])


def _is_missing(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return str(v).strip().lower() in MISSING_TOKENS


def _given(raw: str) -> tuple:
    g = nz.parse_given_names(raw)
    first = g.first
    return (g.text, first, g.sorted_key, fonem(first), fonem_skeleton(first),
            1 if g.initials else 0, fonem(g.text.replace(" ", "")))


def _surname(raw: str) -> tuple:
    s = nz.parse_surname(raw)
    return (s.core, s.text, " ".join(s.alternatives), fonem(s.core), fonem_skeleton(s.core))


def _dob(raw: str) -> tuple:
    try:
        d = nz.parse_date(raw)
    except nz.NormalisationError:
        digits = re.sub(r"\D", "", raw)
        if len(digits) == 8:  # unreadable but typed: keep for string similarity
            y = int(digits[:4])
            y = y if nz.MIN_BIRTH_YEAR <= y <= 2100 else 0
            return (digits, y, int(digits[4:6]), int(digits[6:]), "", True)
        raise
    alt = ""
    if d.alternatives:
        ay, am, ad = d.alternatives[0]
        alt = f"{ay:04d}{am:02d}{ad:02d}"
    return (d.compact(), d.year, d.month or 0, d.day or 0, alt, False)


def _address(raw: str) -> tuple:
    a = nz.normalise_address(raw)
    return (a.text, a.number)


_PARSERS = {
    "given_name": (_given, ("given", "given_first", "given_sorted", "given_phon",
                            "given_skel", "given_initials", "given_phon_full"),
                   ("", "", "", "", "", 0, "")),
    "surname": (_surname, ("surname", "surname_text", "surname_alts", "surname_phon",
                           "surname_skel"), ("", "", "", "", "")),
    "date_of_birth": (_dob, ("dob", "dob_year", "dob_month", "dob_day", "dob_alt",
                             "dob_raw"), ("", 0, 0, 0, "", False)),
    "address": (_address, ("address", "address_number"), ("", "")),
    "postcode": (lambda r: (nz.normalise_postcode(r),), ("postcode",), ("",)),
    "city": (lambda r: (nz.normalise_city(r),), ("city",), ("",)),
    "phone": (None, ("phone",), ("",)),
    "id_number": (lambda r: (nz.normalise_id_number(r),), ("id_number",), ("",)),
}
_INT_COLUMNS = {"given_initials", "dob_year", "dob_month", "dob_day"}
_BOOL_COLUMNS = {"dob_raw"}

COLUMNS = tuple(c for _, cols, _ in _PARSERS.values() for c in cols)


def prepare(records: Iterable[Mapping[str, object]], *, strict: bool = False,
            default_country: str = "FR", id_field: str = "id") -> Table:
    """Normalise ``records`` into a :class:`Table` (see the module docstring)."""
    rows = list(records)
    ids: list[str] = []
    for k, r in enumerate(rows):
        rid = r.get(id_field)
        if rid is None or (isinstance(rid, float) and math.isnan(rid)) or not str(rid).strip():
            raise nz.NormalisationError(id_field, rid, f"record {k + 1} has no id")
        ids.append(str(rid).strip())
    raw_columns = {f: [r.get(f) for r in rows] for f in FIELDS}
    return prepare_columns(ids, raw_columns, strict=strict, default_country=default_country)


def prepare_columns(ids: list[str] | np.ndarray, raw_columns: Mapping[str, Iterable[object]],
                    *, strict: bool = False, default_country: str = "FR") -> Table:
    """Like :func:`prepare`, from one sequence per field (absent fields allowed)."""
    ids_arr = _obj([str(i) for i in ids])
    n = len(ids_arr)
    if len(set(ids_arr.tolist())) != n:
        seen: set[str] = set()
        dup = next(i for i in ids_arr if i in seen or seen.add(i))
        raise nz.NormalisationError("id", dup, "duplicate record id")
    unknown = set(raw_columns) - set(FIELDS)
    if unknown:
        raise nz.NormalisationError("fields", sorted(unknown), "unknown field names")
    arrays: dict[str, np.ndarray] = {}
    issues: list[Issue] = []
    present = set()
    for fname, (parser, names, empty) in _PARSERS.items():
        values = raw_columns.get(fname)
        if values is None:
            for name, e in zip(names, empty):
                arrays[name] = _column(name, [e])[np.zeros(n, dtype=np.int64)]
            continue
        if fname == "phone":
            def parser(r: str) -> tuple:
                return (nz.normalise_phone(r, default_country),)
        # each distinct value is normalised once; rows then take their value's result
        distinct, codes = _codes(values)
        if len(codes) != n:
            raise nz.NormalisationError(fname, len(codes), f"{len(codes)} values for {n} ids")
        first_row = np.unique(codes, return_index=True)[1]
        cache: dict[str, tuple | None] = {}
        results: list[tuple | None] = []
        for k, v in enumerate(distinct):
            if _is_missing(v):
                results.append(None)
                continue
            raw = str(v).strip()
            res = cache.get(raw, ...)
            if res is ...:
                try:
                    res = parser(raw)
                except nz.NormalisationError as exc:
                    if strict:
                        raise
                    # distinct values come in order of first row: so do the issues
                    issues.append(Issue(ids_arr[first_row[k]], fname, exc.reason))
                    res = None
                cache[raw] = res
            if res is not None:
                present.add(fname)
            results.append(res)
        for j, (name, e) in enumerate(zip(names, empty)):
            arrays[name] = _column(name, [e if r is None else r[j] for r in results])[codes]
    return Table(ids_arr, arrays, frozenset(present), issues)


def _codes(values: Iterable[object]) -> tuple[dict[object, int], np.ndarray]:
    """(distinct values numbered as first seen, each row's number)."""
    values = values if isinstance(values, list | tuple) else list(values)
    try:
        distinct: dict[object, int] = dict.fromkeys(values)  # type: ignore[arg-type]
    except TypeError:  # an unhashable value: numbered by its text, which gets normalised
        distinct = {}
        codes = [distinct.setdefault(v if _hashable(v) else str(v), len(distinct))
                 for v in values]
        return distinct, np.asarray(codes, dtype=np.int64)
    for k, v in enumerate(distinct):
        distinct[v] = k
    return distinct, np.fromiter(map(distinct.__getitem__, values), dtype=np.int64,
                                 count=len(values))


def _hashable(v: object) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _column(name: str, values: list) -> np.ndarray:
    if name in _INT_COLUMNS:
        return np.asarray(values, dtype=np.int32)
    if name in _BOOL_COLUMNS:
        return np.asarray(values, dtype=bool)
    return _obj(values)


def concat(a: Table, b: Table) -> Table:
    """Rows of ``a`` then rows of ``b`` (for linking two sources)."""
    cols = {k: np.concatenate([a.columns[k], b.columns[k]]) for k in a.columns}
    return Table(np.concatenate([a.ids, b.ids]), cols, a.present | b.present,
                 a.issues + b.issues)
