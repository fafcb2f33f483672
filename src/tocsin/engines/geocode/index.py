"""The address index: forward search with autocomplete, reverse geocoding,
save/load.

Layout (all numpy arrays, persisted as ``.npy``; strings in JSON):

* **vocabulary**: the distinct normalised tokens of every searchable name,
  city and postcode, *sorted*, so that a prefix is a contiguous range of
  token ids (``bisect``) and the postings of a whole prefix are one slice.
* **documents**: one per searchable name variant: a street in a city (plus
  its other-language names), a place, a POI name.  ``doc_tok`` (CSR) lists a
  document's token ids with their field (name / city / postcode).
* **postings** (CSR): token id -> sorted document ids.
* **fuzzy**: SymSpell deletion hashes over the vocabulary (``fuzzy.py``).
* **streets**: name, city, main postcode, representative point and the
  range of their addresses; **addresses** sorted by (street, number,
  suffix) so a house number is a ``searchsorted`` in the street's slice.
  Each address keeps the identifier its source gave it (the CSV ``id``
  column, ``n123``/``w45`` for OSM) as UTF-8 bytes in ``ad_ref`` with the
  offsets ``ad_ref_off``: ``Candidate.source_id``.
* **segments**: street geometry cut into pieces of at most ~50 m for
  reverse geocoding; KD-trees (scipy ``cKDTree`` on 3-D unit-sphere
  coordinates) are built lazily on the first reverse query.

A query is parsed into house number, postcode and word tokens; each word
token gets its alternatives (exact, abbreviation, joined with its
neighbour, typo within 1-2 edits, prefix when autocompleting).  Candidate
documents come from intersecting the postings of the selective tokens
(very common words such as "rue" only score); candidates are scored with
vectorised numpy, the best few are re-scored exactly in Python and their
house number resolved (exact, or interpolated between the neighbouring
numbers of the same parity and flagged ``approximate``).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import fuzzy
from .normalize import (
    ABBREVIATIONS,
    HN_SUFFIXES,
    fold,
    is_number_token,
    parse_housenumber,
    split_query,
    tokens,
)
from .records import ADDRESS, PLACE, POI, STREET, Record

FORMAT_VERSION = 1
EARTH_R = 6_371_008.8
F_NAME, F_CITY, F_POSTCODE = 0, 1, 2
K_STREET, K_PLACE, K_POI = 0, 1, 2
_KIND_NAMES = {K_STREET: STREET, K_PLACE: PLACE, K_POI: POI}
MAX_QUERY_CHARS = 300
SEGMENT_PIECE_M = 50.0


class IndexFormatError(ValueError):
    """The directory does not hold a readable index of this version."""


@dataclass
class Match:
    """How one query token was matched."""

    query: str
    token: str
    field: str  # name | city | postcode | housenumber
    how: str  # exact | abbreviation | joined | fuzzy | prefix | interpolated | nearest
    distance: int = 0


@dataclass
class Candidate:
    score: float
    label: str
    lat: float
    lon: float
    kind: str  # address | street | place | poi
    housenumber: str | None = None
    street: str | None = None
    postcode: str | None = None
    city: str | None = None
    name: str | None = None
    category: str | None = None
    approximate: bool = False
    matched: list[Match] = field(default_factory=list)
    distance_m: float | None = None
    id: str = ""
    source_id: str | None = None  # the identifier in the imported data (CSV id, OSM n123)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReverseResult:
    address: Candidate | None
    street: Candidate | None

    def to_dict(self) -> dict:
        return {"address": self.address.to_dict() if self.address else None,
                "street": self.street.to_dict() if self.street else None}


@dataclass
class _QToken:
    text: str
    alts: dict[int, tuple[float, str, int]]  # token id -> (quality, how, distance)
    prange: tuple[int, int] | None = None  # prefix: token id range
    pquality: float = 0.0
    postcode: bool = False
    weight: float = 1.0
    size: int = 0

    def quality(self, tid: int) -> tuple[float, str, int]:
        a = self.alts.get(tid)
        if a is not None:
            return a
        if self.prange and self.prange[0] <= tid < self.prange[1]:
            return (self.pquality, "prefix", 0)
        return (0.0, "", 0)


@dataclass
class _Query:
    words: list[_QToken]
    hn: tuple[int, str] | None
    hn_text: str | None
    unknown_weight: float


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la = np.radians(lat)
    lo = np.radians(lon)
    c = np.cos(la)
    return np.column_stack((c * np.cos(lo), c * np.sin(lo), np.sin(la)))


def haversine_m(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_R * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def _hn_sort_key(hn: str) -> tuple[int, str]:
    p = parse_housenumber(hn)
    if p:
        return p
    # "12-14", "5 A 3", "pohjakerros/Floor-1": kept, but never used to
    # interpolate (number -1 sorts them first and matches nothing)
    m = re.match(r"\s*(\d{1,5})\s*[-/]\s*\d", hn)
    if m:
        return (int(m.group(1)), fold(hn))
    m = re.match(r"\s*(\d{1,5})\s+([a-zA-Z])\b", hn)
    if m:
        return (int(m.group(1)), m.group(2).lower())
    return (-1, fold(hn))


class _Strings:
    """Interned strings -> ids (build side)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {"": 0}
        self.list: list[str] = [""]

    def __call__(self, s: str) -> int:
        i = self.ids.get(s)
        if i is None:
            i = self.ids[s] = len(self.list)
            self.list.append(s)
        return i


class AddressIndex:
    """Forward/reverse geocoder over addresses, streets, places and POIs.

    Build with :meth:`build` (records from :func:`import_osm_pbf` or
    :func:`import_csv`), persist with :meth:`save`, reopen with :meth:`load`.
    Read-only once built: safe to share between threads.
    """

    ARRAYS = (
        "post_off", "post_doc", "tok_is_pc",
        "doc_kind", "doc_ent", "doc_name", "doc_nname", "doc_tok_off", "doc_tok", "doc_tok_field",
        "doc_lat", "doc_lon",
        "st_name", "st_city", "st_pc", "st_lat", "st_lon", "st_addr_off",
        "ad_street", "ad_num", "ad_hn", "ad_pc", "ad_name", "ad_lat", "ad_lon",
        "ad_ref", "ad_ref_off",
        "pl_name", "pl_city", "pl_cat", "pl_lat", "pl_lon",
        "poi_name", "poi_cat", "poi_hn", "poi_street", "poi_pc", "poi_city", "poi_lat", "poi_lon",
        "seg_street", "seg_lat1", "seg_lon1", "seg_lat2", "seg_lon2",
        "fz_hash", "fz_tok",
    )
    # Arrays an index saved before they existed lacks: filled in empty on load.
    OPTIONAL = ("ad_ref", "ad_ref_off")

    def __init__(self) -> None:
        self.meta: dict = {}
        self.strings: list[str] = [""]
        self.vocab: list[str] = []
        self._tok_id: dict[str, int] = {}
        self._addr_tree = None
        self._seg_tree = None

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, records: Iterable[Record], *, housenumber_first: bool | None = None,
              progress: Callable[[int, int | None], None] | None = None) -> AddressIndex:
        """Index records (any iterable; consumed once, streamed).

        ``housenumber_first`` chooses labels "12 Rue X" (True, France, UK,
        US...) or "Mannerheimintie 5" (False, Nordic/German); by default
        guessed from the street names (French street types -> first)."""
        S = _Strings()
        street_key: dict[tuple[str, str], int] = {}
        st_name: list[int] = []
        st_city: list[int] = []
        st_alt: list[set[str]] = []
        st_pc: list[Counter] = []
        st_pt: list[tuple[float, float] | None] = []
        st_sumlat: list[float] = []
        st_sumlon: list[float] = []
        st_n: list[int] = []
        import array
        a_street = array.array("i")
        a_hn = array.array("i")
        a_pc = array.array("i")
        a_name = array.array("i")
        a_lat = array.array("d")
        a_lon = array.array("d")
        a_ref = bytearray()
        a_ref_off = array.array("q", [0])
        seg_street = array.array("i")
        seg = array.array("d")
        places: list[Record] = []
        pois: list[Record] = []
        fr_types = {"rue", "avenue", "boulevard", "chemin", "impasse", "allee", "place", "route"}
        fr_votes = 0
        votes = 0

        def street_id(name: str, city: str) -> int:
            key = (" ".join(tokens(name)), " ".join(tokens(city)))
            sid = street_key.get(key)
            if sid is None:
                sid = street_key[key] = len(st_name)
                st_name.append(S(name))
                st_city.append(S(city))
                st_alt.append(set())
                st_pc.append(Counter())
                st_pt.append(None)
                st_sumlat.append(0.0)
                st_sumlon.append(0.0)
                st_n.append(0)
            return sid

        n = 0
        for r in records:
            n += 1
            if progress is not None and n % 200_000 == 0:
                progress(n, None)
            if not (math.isfinite(r.lat) and math.isfinite(r.lon)):
                continue
            if r.kind == ADDRESS:
                if not r.street or not r.housenumber:
                    continue
                sid = street_id(r.street, r.city)
                a_street.append(sid)
                a_hn.append(S(r.housenumber))
                a_pc.append(S(r.postcode))
                a_name.append(S(r.name) if r.name else 0)
                a_lat.append(r.lat)
                a_lon.append(r.lon)
                a_ref += r.ref.encode("utf-8")
                a_ref_off.append(len(a_ref))
                if r.postcode:
                    st_pc[sid][r.postcode] += 1
                st_sumlat[sid] += r.lat
                st_sumlon[sid] += r.lon
                st_n[sid] += 1
                if votes < 5000 and len(a_street) % 50 == 1:
                    votes += 1
                    first = tokens(r.street)[:1]
                    if first and first[0] in fr_types:
                        fr_votes += 1
            elif r.kind == STREET:
                if not r.name:
                    continue
                sid = street_id(r.name, r.city)
                for alt in r.names:
                    st_alt[sid].add(alt)
                if r.postcode:
                    st_pc[sid][r.postcode] += 1
                if st_pt[sid] is None:
                    st_pt[sid] = (r.lat, r.lon)
                for s in r.segments:
                    seg_street.append(sid)
                    seg.extend(s)
            elif r.kind == PLACE and r.name:
                places.append(r)
            elif r.kind == POI and r.name:
                pois.append(r)
        if housenumber_first is None:
            housenumber_first = votes > 0 and fr_votes / votes > 0.3

        self = cls()
        n_st = len(st_name)
        # ---- addresses sorted by (street, number, suffix)
        ad_street = np.frombuffer(a_street, dtype=np.int32).copy()
        ad_hn = np.frombuffer(a_hn, dtype=np.int32).copy()
        hn_keys = {}
        for hid in np.unique(ad_hn).tolist():
            hn_keys[hid] = _hn_sort_key(S.list[hid])
        uniq_hn = np.array(sorted(hn_keys, key=lambda h: hn_keys[h]), dtype=np.int64)
        hn_rank = np.zeros(len(S.list), dtype=np.int64)
        hn_rank[uniq_hn] = np.arange(len(uniq_hn))
        hn_num_of = np.zeros(len(S.list), dtype=np.int32)
        for hid, key in hn_keys.items():
            hn_num_of[hid] = min(key[0], 2**31 - 1)
        order = np.lexsort((hn_rank[ad_hn], ad_street))
        self.ad_street = ad_street[order]
        self.ad_hn = ad_hn[order]
        self.ad_num = hn_num_of[self.ad_hn]
        self.ad_pc = np.frombuffer(a_pc, dtype=np.int32)[order].copy()
        self.ad_name = np.frombuffer(a_name, dtype=np.int32)[order].copy()
        self.ad_lat = np.frombuffer(a_lat, dtype=np.float64)[order].copy()
        self.ad_lon = np.frombuffer(a_lon, dtype=np.float64)[order].copy()
        self.ad_ref, self.ad_ref_off = _permute_bytes(
            np.frombuffer(a_ref, dtype=np.uint8), np.frombuffer(a_ref_off, dtype=np.int64),
            order)
        self.st_addr_off = np.zeros(n_st + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.ad_street, minlength=n_st), out=self.st_addr_off[1:])

        # ---- streets
        self.st_name = np.array(st_name, dtype=np.int32)
        self.st_city = np.array(st_city, dtype=np.int32)
        self.st_pc = np.array([S(c.most_common(1)[0][0]) if c else 0 for c in st_pc],
                              dtype=np.int32)
        st_lat = np.zeros(n_st)
        st_lon = np.zeros(n_st)
        for sid in range(n_st):
            if st_pt[sid] is not None:
                st_lat[sid], st_lon[sid] = st_pt[sid]
            elif st_n[sid]:
                # the address closest to the mean of the street's addresses
                a, b = self.st_addr_off[sid], self.st_addr_off[sid + 1]
                mlat, mlon = st_sumlat[sid] / st_n[sid], st_sumlon[sid] / st_n[sid]
                if b - a > 2:
                    k = a + int(np.argmin((self.ad_lat[a:b] - mlat) ** 2
                                          + (self.ad_lon[a:b] - mlon) ** 2))
                else:
                    k = a
                st_lat[sid], st_lon[sid] = self.ad_lat[k], self.ad_lon[k]
        self.st_lat, self.st_lon = st_lat, st_lon

        # ---- places and POIs
        self.pl_name = np.array([S(p.name) for p in places], dtype=np.int32)
        self.pl_city = np.array([S(p.city) for p in places], dtype=np.int32)
        self.pl_cat = np.array([S(p.category) for p in places], dtype=np.int32)
        self.pl_lat = np.array([p.lat for p in places], dtype=np.float64)
        self.pl_lon = np.array([p.lon for p in places], dtype=np.float64)
        self.poi_name = np.array([S(p.name) for p in pois], dtype=np.int32)
        self.poi_cat = np.array([S(p.category) for p in pois], dtype=np.int32)
        self.poi_hn = np.array([S(p.housenumber) for p in pois], dtype=np.int32)
        self.poi_street = np.array([S(p.street) for p in pois], dtype=np.int32)
        self.poi_pc = np.array([S(p.postcode) for p in pois], dtype=np.int32)
        self.poi_city = np.array([S(p.city) for p in pois], dtype=np.int32)
        self.poi_lat = np.array([p.lat for p in pois], dtype=np.float64)
        self.poi_lon = np.array([p.lon for p in pois], dtype=np.float64)

        # ---- documents: (kind, entity, name string, name tokens, city, postcodes)
        docs: list[tuple[int, int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...],
                         float, float]] = []
        st_pcs: list[set[str]] = [set() for _ in range(n_st)]
        if len(self.ad_street):
            pairs = np.unique(np.column_stack((self.ad_street, self.ad_pc)), axis=0)
            for sid, pc in pairs.tolist():
                if pc:
                    st_pcs[sid].add(S.list[pc])
        for sid in range(n_st):
            pcs = tuple(sorted(st_pcs[sid] | ({S.list[self.st_pc[sid]]} - {""})))
            city = tokens(S.list[st_city[sid]])
            for nm in [S.list[st_name[sid]], *sorted(st_alt[sid])]:
                docs.append((K_STREET, sid, S(nm), tokens(nm), city, pcs,
                             st_lat[sid], st_lon[sid]))
        for i, p in enumerate(places):
            city = tokens(p.city) if fold(p.city) != fold(p.name) else ()
            for nm in (p.name, *p.names):
                docs.append((K_PLACE, i, S(nm), tokens(nm), city, (), p.lat, p.lon))
        for i, p in enumerate(pois):
            pcs = (p.postcode,) if p.postcode else ()
            for nm in (p.name, *p.names):
                docs.append((K_POI, i, S(nm), tokens(nm), tokens(p.city), pcs, p.lat, p.lon))
        docs = [d for d in docs if d[3]]

        vocab_set: set[str] = set()
        pc_set: set[str] = set()
        for d in docs:
            vocab_set.update(d[3])
            vocab_set.update(d[4])
            for pc in d[5]:
                t = fold(pc).replace(" ", "")
                vocab_set.add(t)
                pc_set.add(t)
        vocab = sorted(vocab_set)
        tok_id = {t: i for i, t in enumerate(vocab)}
        nd = len(docs)
        doc_tok: list[int] = []
        doc_fld: list[int] = []
        doc_off = np.zeros(nd + 1, dtype=np.int64)
        for j, d in enumerate(docs):
            seen: set[int] = set()
            for f, toks in ((F_NAME, d[3]), (F_CITY, d[4]),
                            (F_POSTCODE, [fold(pc).replace(" ", "") for pc in d[5]])):
                for t in toks:
                    tid = tok_id[t]
                    if tid in seen:
                        continue
                    seen.add(tid)
                    doc_tok.append(tid)
                    doc_fld.append(f)
            doc_off[j + 1] = len(doc_tok)
        self.doc_tok_off = doc_off
        self.doc_tok = np.array(doc_tok, dtype=np.int32)
        self.doc_tok_field = np.array(doc_fld, dtype=np.uint8)
        self.doc_kind = np.array([d[0] for d in docs], dtype=np.uint8)
        self.doc_ent = np.array([d[1] for d in docs], dtype=np.int32)
        self.doc_name = np.array([d[2] for d in docs], dtype=np.int32)
        self.doc_nname = np.array([len(set(d[3])) for d in docs], dtype=np.int16)
        self.doc_lat = np.array([d[6] for d in docs], dtype=np.float32)
        self.doc_lon = np.array([d[7] for d in docs], dtype=np.float32)
        # postings: token -> sorted docs
        doc_of = np.repeat(np.arange(nd, dtype=np.int32), np.diff(doc_off))
        order = np.lexsort((doc_of, self.doc_tok))
        self.post_doc = doc_of[order]
        self.post_off = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.doc_tok, minlength=len(vocab)), out=self.post_off[1:])
        self.tok_is_pc = np.array([t in pc_set for t in vocab], dtype=bool)
        self.fz_hash, self.fz_tok = fuzzy.build(vocab)

        # ---- street segments, cut into short pieces for the KD-tree
        self.seg_street, self.seg_lat1, self.seg_lon1, self.seg_lat2, self.seg_lon2 = \
            _densify(np.frombuffer(seg_street, dtype=np.int32),
                     np.frombuffer(seg, dtype=np.float64).reshape(-1, 4))

        self.strings = S.list
        self.vocab = vocab
        self.meta = {
            "format": FORMAT_VERSION,
            "housenumber_first": bool(housenumber_first),
            "counts": {"addresses": len(self.ad_street), "streets": n_st,
                       "places": len(places), "pois": len(pois), "documents": nd,
                       "tokens": len(vocab), "segments": len(self.seg_street)},
        }
        self._prepare()
        return self

    def _prepare(self) -> None:
        self._tok_id = {t: i for i, t in enumerate(self.vocab)}
        df = np.diff(self.post_off).astype(np.float64)
        nd = max(1, len(self.doc_kind))
        self._idf = np.log1p(nd / np.maximum(df, 1.0))
        self._df = np.diff(self.post_off)
        self._n_docs = nd
        self._common = max(2000, int(nd * 0.03))
        self._unknown_w = float(np.log1p(nd / 2.0))
        self._hn_first = bool(self.meta.get("housenumber_first", False))
        self._addr_tree = None
        self._seg_tree = None

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to ``directory`` (created): ``meta.json``,
        ``strings.json``, ``vocab.json`` and one ``.npy`` per array."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in self.ARRAYS:
            np.save(d / f"{name}.npy", np.ascontiguousarray(getattr(self, name)),
                    allow_pickle=False)
        (d / "strings.json").write_text(json.dumps(self.strings, ensure_ascii=False))
        (d / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False))
        # meta last: its presence marks a complete index
        (d / "meta.json").write_text(json.dumps(self.meta, indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike[str], mmap: bool = True) -> AddressIndex:
        """Open a saved index; arrays are memory-mapped by default."""
        d = Path(directory)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"no geocoding index in {d}: {e}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise IndexFormatError(f"index format {meta.get('format')!r}, "
                                   f"expected {FORMAT_VERSION}")
        self = cls()
        self.meta = meta
        try:
            for name in cls.ARRAYS:
                if name in cls.OPTIONAL and not (d / f"{name}.npy").exists():
                    continue
                setattr(self, name, np.load(d / f"{name}.npy", mmap_mode="r" if mmap else None,
                                            allow_pickle=False))
            if not hasattr(self, "ad_ref_off"):  # saved before source ids were kept
                self.ad_ref = np.zeros(0, dtype=np.uint8)
                self.ad_ref_off = np.zeros(len(self.ad_street) + 1, dtype=np.int64)
            self.strings = json.loads((d / "strings.json").read_text())
            self.vocab = json.loads((d / "vocab.json").read_text())
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"damaged geocoding index in {d}: {e}") from None
        self._prepare()
        return self

    def __len__(self) -> int:
        return len(self.ad_street)

    def source_id(self, k: int) -> str | None:
        """The identifier address ``k`` had in the imported data (None if it had none)."""
        a, b = int(self.ad_ref_off[k]), int(self.ad_ref_off[k + 1])
        return bytes(self.ad_ref[a:b]).decode("utf-8", "replace") if b > a else None

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.meta.get("counts", {}))

    # ------------------------------------------------------------------ query
    def _parse(self, text: str, autocomplete: bool) -> _Query:
        text = text[:MAX_QUERY_CHARS]
        raw = split_query(text)
        trailing_space = text[-1:].isspace()
        ac = autocomplete and not trailing_space
        # glue "12 bis" / "5 A" into one house number token
        toks: list[str] = []
        for t in raw:
            if toks and t in HN_SUFFIXES and toks[-1].isdigit() and len(toks[-1]) <= 5:
                toks[-1] = toks[-1] + t
            else:
                toks.append(t)
        toks = toks[:20]
        # postcodes and the house number
        pc_pos = {i for i, t in enumerate(toks)
                  if t.isdigit() and len(t) >= 4 and (tid := self._tok_id.get(t)) is not None
                  and self.tok_is_pc[tid]}
        num_pos = [i for i, t in enumerate(toks)
                   if i not in pc_pos and parse_housenumber(t) is not None]
        hn_i: int | None = None
        if num_pos:
            hn_i = num_pos[0] if num_pos[0] == 0 else num_pos[-1]
        hn = parse_housenumber(toks[hn_i]) if hn_i is not None else None
        hn_text = toks[hn_i] if hn_i is not None else None
        words_txt = [(i, t) for i, t in enumerate(toks) if i != hn_i]

        # join adjacent tokens typed apart ("hameen tie" -> "hameentie")
        merged: list[tuple[int, str, bool]] = []  # (pos, text, joined)
        k = 0
        while k < len(words_txt):
            i, t = words_txt[k]
            if k + 1 < len(words_txt) and not is_number_token(t):
                j, u = words_txt[k + 1]
                if j == i + 1 and not is_number_token(u):
                    both = t + u
                    known_t = t in self._tok_id
                    known_u = u in self._tok_id
                    if not (known_t and known_u) and (
                            both in self._tok_id
                            or (len(both) >= 8 and fuzzy.lookup(both, self.fz_hash, self.fz_tok,
                                                               self.vocab, 1))):
                        merged.append((i, both, True))
                        k += 2
                        continue
            merged.append((i, t, False))
            k += 1

        words: list[_QToken] = []
        last_pos = len(toks) - 1
        for i, t, joined in merged:
            prefix = ac and i == last_pos
            words.append(self._alternatives(t, prefix, joined, i in pc_pos))
        return _Query(words, hn, hn_text, self._unknown_w)

    def _alternatives(self, t: str, prefix: bool, joined: bool, postcode: bool) -> _QToken:
        alts: dict[int, tuple[float, str, int]] = {}
        tid = self._tok_id.get(t)
        if tid is not None:
            alts[tid] = (1.0, "joined" if joined else "exact", 0)
        if postcode:
            q = _QToken(t, alts, postcode=True)
            return self._sized(q)
        number = t[:1].isdigit()
        for exp in ABBREVIATIONS.get(t, ()):
            eid = self._tok_id.get(exp)
            if eid is not None and eid not in alts:
                alts[eid] = (0.97, "abbreviation", 0)
        if not number and not alts:
            for fid, dist in fuzzy.lookup(t, self.fz_hash, self.fz_tok, self.vocab).items():
                qual = max(0.6, 1.0 - 0.8 * dist / len(t))
                alts[fid] = (qual, "fuzzy", dist)
        q = _QToken(t, alts)
        if prefix:
            lo = bisect.bisect_left(self.vocab, t)
            hi = bisect.bisect_left(self.vocab, t + "\U0010ffff")
            if hi > lo:
                q.prange = (lo, hi)
                q.pquality = 0.8 + 0.15 * min(1.0, len(t) / 6)
            elif not alts and len(t) >= 4:
                # typo inside the word being typed: fuzzy on its beginning
                for fid, dist in fuzzy.lookup(t, self.fz_hash, self.fz_tok, self.vocab).items():
                    alts[fid] = (max(0.6, 1.0 - 0.8 * dist / len(t)), "fuzzy", dist)
        return self._sized(q)

    def _sized(self, q: _QToken) -> _QToken:
        size = sum(int(self._df[t]) for t in q.alts)
        if q.prange:
            size += int(self.post_off[q.prange[1]] - self.post_off[q.prange[0]])
        q.size = size
        if q.alts:
            best = max(q.alts, key=lambda t: q.alts[t][0])
            q.weight = float(self._idf[best])
        elif q.prange:
            lo, hi = q.prange
            q.weight = float(self._idf[lo:hi].min()) if hi - lo < 5000 else 0.5
        else:
            q.weight = self._unknown_w * 0.5
        return q

    def _postings(self, q: _QToken) -> np.ndarray:
        parts = [self.post_doc[self.post_off[t]:self.post_off[t + 1]] for t in q.alts]
        if q.prange:
            parts.append(self.post_doc[self.post_off[q.prange[0]]:self.post_off[q.prange[1]]])
        if len(parts) == 1 and not q.prange:
            return np.asarray(parts[0])
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int32)

    def _candidates(self, query: _Query) -> np.ndarray:
        usable = sorted((w for w in query.words if w.size > 0), key=lambda w: w.size)
        if not usable:
            return np.zeros(0, np.int32)
        selective = [w for w in usable if w.size <= self._common]
        if not selective:
            # all words very common ("rue de la"): the least common one, capped
            return self._postings(usable[0])[: self._common]
        cur = self._postings(selective[0])
        for w in selective[1:4]:
            nxt = np.intersect1d(cur, self._postings(w), assume_unique=True)
            if len(nxt):
                cur = nxt
        return cur

    def _coarse(self, query: _Query, cands: np.ndarray, keep: int,
                near: tuple[float, float] | None) -> np.ndarray:
        """Vectorised approximate score; returns the ``keep`` best docs."""
        if len(cands) <= keep:
            return cands
        if len(cands) > 50_000:
            cands = cands[:50_000]
        # map matching token ids -> weight*quality
        tw: dict[int, float] = {}
        ranges: list[tuple[int, int, float]] = []
        for w in query.words:
            for tid, (qual, _, _) in w.alts.items():
                v = w.weight * qual
                if v > tw.get(tid, 0.0):
                    tw[tid] = v
            if w.prange:
                ranges.append((w.prange[0], w.prange[1], w.weight * w.pquality))
        starts = self.doc_tok_off[cands]
        ends = self.doc_tok_off[cands + 1]
        lens = (ends - starts).astype(np.int64)
        total = int(lens.sum())
        idx = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        dt = self.doc_tok[idx]
        val = np.zeros(total, dtype=np.float64)
        if tw:
            keys = np.array(sorted(tw), dtype=np.int32)
            vals = np.array([tw[k] for k in keys.tolist()])
            pos = np.searchsorted(keys, dt)
            pos[pos >= len(keys)] = 0
            hit = keys[pos] == dt
            val[hit] = vals[pos[hit]]
        for lo, hi, v in ranges:
            inr = (dt >= lo) & (dt < hi)
            val[inr] = np.maximum(val[inr], v)
        seg_start = np.cumsum(lens) - lens
        nonempty = lens > 0
        score = np.zeros(len(cands))
        score[nonempty] = np.add.reduceat(val, seg_start[nonempty])
        is_name = self.doc_tok_field[idx] == F_NAME
        named_hit = np.zeros(len(cands))
        named_hit[nonempty] = np.add.reduceat(((val > 0) & is_name).astype(np.float64),
                                                 seg_start[nonempty])
        nname = np.maximum(self.doc_nname[cands].astype(np.float64), 1.0)
        score = score * (0.7 + 0.3 * np.minimum(1.0, named_hit / nname))
        score -= 0.001 * self.doc_kind[cands]  # streets first on ties
        if near is not None:
            d = haversine_m(near[0], near[1], self.doc_lat[cands], self.doc_lon[cands])
            score *= 0.85 + 0.15 * np.exp(-d / 10_000.0)
        top = np.argpartition(-score, keep)[:keep]
        return cands[top]

    def search(self, text: str, limit: int = 10, autocomplete: bool = False,
               near: tuple[float, float] | None = None) -> list[Candidate]:
        """Ranked candidates for a typed address, street, place or POI name.

        ``autocomplete``: the last token is a prefix being typed.  ``near``:
        (lat, lon) to favour results close to it (e.g. the caller's cell)."""
        if not isinstance(text, str):
            raise TypeError("search text must be a string")
        limit = max(1, min(int(limit), 100))
        if near is not None:
            near = (float(near[0]), float(near[1]))
            if not (math.isfinite(near[0]) and math.isfinite(near[1])
                    and -90 <= near[0] <= 90 and -180 <= near[1] <= 180):
                raise ValueError("near must be a (lat, lon) in range")
        if len(self.vocab) == 0:
            return []
        query = self._parse(text, autocomplete)
        if not query.words:
            return []
        cands = self._candidates(query)
        if len(cands) == 0:
            return []
        keep = max(30, 3 * limit)
        best = self._coarse(query, np.asarray(cands), keep, near)
        out: list[Candidate] = []
        seen: set = set()
        scored = [self._score_doc(query, int(d), near) for d in best.tolist()]
        scored = [s for s in scored if s is not None]
        scored.sort(key=lambda c: -c[0])
        for _, key, make in scored:
            if key in seen:
                continue
            seen.add(key)
            c = make()
            if c.label in seen:  # two tram-stop platforms of one name...
                continue
            seen.add(c.label)
            out.append(c)
            if len(out) >= limit:
                break
        return out

    def _score_doc(self, query: _Query, d: int, near):
        a, b = int(self.doc_tok_off[d]), int(self.doc_tok_off[d + 1])
        toks = self.doc_tok[a:b].tolist()
        flds = self.doc_tok_field[a:b].tolist()
        kind = int(self.doc_kind[d])
        ent = int(self.doc_ent[d])
        total_w = 0.0
        got_w = 0.0
        matched: list[Match] = []
        hit_pos: set[int] = set()
        hn = query.hn
        hn_text = query.hn_text
        # a number that is part of the street's name ("rue du 8 mai 1945")
        if hn_text is not None and hn_text in self._tok_id:
            htid = self._tok_id[hn_text]
            if htid in toks and flds[toks.index(htid)] == F_NAME:
                pos = toks.index(htid)
                hit_pos.add(pos)
                matched.append(Match(hn_text, hn_text, "name", "exact"))
                hn = None
        for w in query.words:
            total_w += w.weight
            best = (0.0, "", 0, -1)
            for j, tid in enumerate(toks):
                qual, how, dist = w.quality(tid)
                if qual > best[0]:
                    best = (qual, how, dist, j)
            if best[3] >= 0:
                got_w += w.weight * best[0]
                hit_pos.add(best[3])
                fname = ("name", "city", "postcode")[flds[best[3]]]
                matched.append(Match(w.text, self.vocab[toks[best[3]]], fname, best[1], best[2]))
        if got_w <= 0:
            return None
        name_w = 0.0
        name_hit = 0.0
        for j, tid in enumerate(toks):
            if flds[j] == F_NAME:
                iw = float(self._idf[tid])
                name_w += iw
                if j in hit_pos:
                    name_hit += iw
        qcov = got_w / total_w if total_w else 0.0
        dcov = name_hit / name_w if name_w else 0.0
        score = qcov * (0.7 + 0.3 * dcov)
        if score < 0.2:
            return None
        name = self.strings[int(self.doc_name[d])]
        if kind == K_STREET:
            return self._street_result(d, ent, name, score, hn, hn_text, matched, near)
        lat = float(self.doc_lat[d])
        lon = float(self.doc_lon[d])
        if hn is not None:
            score *= 0.85
        score *= 0.995  # same text: streets before POIs/places
        if near is not None:
            score *= 0.85 + 0.15 * math.exp(-float(haversine_m(near[0], near[1], lat, lon))
                                            / 10_000.0)
        key = (kind, ent, -1)
        if kind == K_PLACE:
            city = self.strings[int(self.pl_city[ent])] or None
            cat = self.strings[int(self.pl_cat[ent])]
            lat, lon = float(self.pl_lat[ent]), float(self.pl_lon[ent])
            label = name + (f", {city}" if city else "")

            def make(score=score, lat=lat, lon=lon, label=label, city=city, cat=cat):
                return Candidate(round(score, 4), label, lat, lon, PLACE, city=city, name=name,
                                 category=cat, matched=matched, id=f"place:{ent}")
            return score, key, make
        s = self.strings
        street = s[int(self.poi_street[ent])] or None
        phn = s[int(self.poi_hn[ent])] or None
        pc = s[int(self.poi_pc[ent])] or None
        city = s[int(self.poi_city[ent])] or None
        lat, lon = float(self.poi_lat[ent]), float(self.poi_lon[ent])
        primary = s[int(self.poi_name[ent])]
        label = primary if fold(name) in fold(primary) else f"{name} ({primary})"
        addr = self._format(phn, street, pc, city)
        if addr:
            label = f"{label}, {addr}"

        def make_poi():
            return Candidate(round(score, 4), label, lat, lon, POI, phn, street, pc, city,
                             name=primary, category=s[int(self.poi_cat[ent])], matched=matched,
                             id=f"poi:{ent}")
        return score, key, make_poi

    def _format(self, hn, street, pc, city) -> str:
        if street:
            first = (f"{hn} {street}" if self._hn_first else f"{street} {hn}") if hn else street
        else:
            first = ""
        tail = " ".join(x for x in (pc, city) if x)
        return ", ".join(x for x in (first, tail) if x)

    def _street_result(self, d, sid, name, score, hn, hn_text, matched, near):
        s = self.strings
        street = s[int(self.st_name[sid])]
        city = s[int(self.st_city[sid])] or None
        st_pc = s[int(self.st_pc[sid])] or None
        shown = street if fold(name) == fold(street) else f"{name} ({street})"
        lo, hi = int(self.st_addr_off[sid]), int(self.st_addr_off[sid + 1])
        if hn is not None and hi > lo:
            res = self._resolve_hn(sid, lo, hi, hn)
            idx, lat, lon, approx, how = res
            hn_str = s[int(self.ad_hn[idx])]
            pc = s[int(self.ad_pc[idx])] or st_pc
            shown_hn = hn_str if how in ("exact", "suffix") else hn_text
            matched = [*matched, Match(hn_text or "", hn_str, "housenumber", how)]
            score *= {"exact": 1.0, "suffix": 0.95, "interpolated": 0.9}.get(how, 0.85)
            if near is not None:
                score *= 0.85 + 0.15 * math.exp(
                    -float(haversine_m(near[0], near[1], lat, lon)) / 10_000.0)
            label = self._format(shown_hn, shown, pc, city)
            if approx:
                label += " (approx.)"
            key = (K_STREET, sid, idx if not approx else -2)

            def make_addr():
                return Candidate(round(score, 4), label, lat, lon, ADDRESS, shown_hn, street, pc,
                                 city, name=(s[int(self.ad_name[idx])] or None) if not approx
                                 else None, approximate=approx, matched=matched,
                                 id=f"address:{idx}" if not approx else f"street:{sid}",
                                 source_id=self.source_id(idx) if not approx else None)
            return score, key, make_addr
        lat, lon = float(self.st_lat[sid]), float(self.st_lon[sid])
        approx = hn is not None
        if approx:
            score *= 0.85
        if near is not None:
            score *= 0.85 + 0.15 * math.exp(
                -float(haversine_m(near[0], near[1], lat, lon)) / 10_000.0)
        label = self._format(None, shown, st_pc, city)
        key = (K_STREET, sid, -1)

        def make_street():
            return Candidate(round(score, 4), label, lat, lon, STREET, None, street, st_pc, city,
                             approximate=approx, matched=matched, id=f"street:{sid}")
        return score, key, make_street

    def _resolve_hn(self, sid, lo, hi, hn):
        """(address index, lat, lon, approximate, how)."""
        num, suffix = hn
        nums = self.ad_num[lo:hi]
        i = lo + int(np.searchsorted(nums, num, "left"))
        j = lo + int(np.searchsorted(nums, num, "right"))
        if i < j:
            want = f"{num}{suffix}"
            best = None
            for k in range(i, j):
                p = parse_housenumber(self.strings[int(self.ad_hn[k])])
                got = f"{p[0]}{p[1]}" if p else ""
                if got == want:
                    best = k
                    break
                if best is None and p is not None and p[1] == "":
                    best = k
            exact = best is not None
            k = best if best is not None else i
            how = "exact" if exact and (parse_housenumber(self.strings[int(self.ad_hn[k])])
                                        or (0, ""))[1] == suffix else "suffix"
            return k, float(self.ad_lat[k]), float(self.ad_lon[k]), how != "exact", how
        # interpolate between the neighbours of the same parity
        below = [k for k in range(i - 1, max(lo, i - 40) - 1, -1)
                 if self.ad_num[k] >= 0 and self.ad_num[k] % 2 == num % 2]
        above = [k for k in range(j, min(hi, j + 40)) if self.ad_num[k] % 2 == num % 2]
        if below and above:
            k1, k2 = below[0], above[0]
            n1, n2 = int(self.ad_num[k1]), int(self.ad_num[k2])
            f = (num - n1) / (n2 - n1) if n2 != n1 else 0.0
            lat = float(self.ad_lat[k1] + f * (self.ad_lat[k2] - self.ad_lat[k1]))
            lon = float(self.ad_lon[k1] + f * (self.ad_lon[k2] - self.ad_lon[k1]))
            k = k1 if f < 0.5 else k2
            return k, lat, lon, True, "interpolated"
        cands = below[:1] + above[:1]
        if not cands:
            cands = [k for k in (i - 1, j) if lo <= k < hi and self.ad_num[k] >= 0]
        if not cands:
            k = lo
            return k, float(self.st_lat[sid]), float(self.st_lon[sid]), True, "street"
        k = min(cands, key=lambda k: abs(int(self.ad_num[k]) - num))
        return k, float(self.ad_lat[k]), float(self.ad_lon[k]), True, "nearest"

    # ---------------------------------------------------------------- reverse
    def _trees(self):
        if self._addr_tree is None:
            from scipy.spatial import cKDTree
            self._addr_tree = cKDTree(_xyz(np.asarray(self.ad_lat), np.asarray(self.ad_lon))) \
                if len(self.ad_lat) else False
            if len(self.seg_lat1):
                mlat = (np.asarray(self.seg_lat1) + np.asarray(self.seg_lat2)) / 2
                mlon = (np.asarray(self.seg_lon1) + np.asarray(self.seg_lon2)) / 2
                self._seg_tree = cKDTree(_xyz(mlat, mlon))
            else:
                self._seg_tree = False
        return self._addr_tree, self._seg_tree

    def warm(self) -> None:
        """Build the reverse-geocoding trees now (else on first use)."""
        self._trees()

    def reverse(self, lat: float, lon: float, radius_m: float = 200.0) -> ReverseResult:
        """Nearest address and nearest street segment within ``radius_m``."""
        lat, lon, radius_m = float(lat), float(lon), float(radius_m)
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
                and -180 <= lon <= 180):
            raise ValueError("lat/lon out of range")
        if not (math.isfinite(radius_m) and radius_m > 0):
            raise ValueError("radius_m must be a positive number")
        radius_m = min(radius_m, 100_000.0)
        atree, stree = self._trees()
        p = _xyz(np.array([lat]), np.array([lon]))[0]
        chord = 2 * math.sin(min(radius_m / EARTH_R, math.pi) / 2)
        address = None
        if atree is not False:
            dist, k = atree.query(p, k=1, distance_upper_bound=chord * 1.0001)
            if math.isfinite(dist):
                k = int(k)
                sid = int(self.ad_street[k])
                s = self.strings
                hn = s[int(self.ad_hn[k])]
                street = s[int(self.st_name[sid])]
                pc = s[int(self.ad_pc[k])] or None
                city = s[int(self.st_city[sid])] or None
                alat, alon = float(self.ad_lat[k]), float(self.ad_lon[k])
                dm = float(haversine_m(lat, lon, alat, alon))
                address = Candidate(1.0, self._format(hn, street, pc, city), alat, alon, ADDRESS,
                                    hn, street, pc, city,
                                    name=s[int(self.ad_name[k])] or None,
                                    distance_m=round(dm, 2), id=f"address:{k}",
                                    source_id=self.source_id(k))
        street_c = None
        if stree is not False:
            reach = chord + 2 * (SEGMENT_PIECE_M / EARTH_R)
            idx = stree.query_ball_point(p, reach)
            if idx:
                idx = np.asarray(idx)
                dseg, t = _point_segment_m(lat, lon, self.seg_lat1[idx], self.seg_lon1[idx],
                                           self.seg_lat2[idx], self.seg_lon2[idx])
                m = int(np.argmin(dseg))
                if dseg[m] <= radius_m:
                    k = int(idx[m])
                    sid = int(self.seg_street[k])
                    s = self.strings
                    plat = float(self.seg_lat1[k] + t[m] * (self.seg_lat2[k] - self.seg_lat1[k]))
                    plon = float(self.seg_lon1[k] + t[m] * (self.seg_lon2[k] - self.seg_lon1[k]))
                    street = s[int(self.st_name[sid])]
                    pc = s[int(self.st_pc[sid])] or None
                    city = s[int(self.st_city[sid])] or None
                    street_c = Candidate(1.0, self._format(None, street, pc, city), plat, plon,
                                         STREET, None, street, pc, city,
                                         distance_m=round(float(dseg[m]), 2), id=f"street:{sid}")
        return ReverseResult(address, street_c)


def _point_segment_m(lat, lon, lat1, lon1, lat2, lon2):
    """Distance (m) from a point to segments in a local equirectangular
    projection (segments are short), and the projection parameter t."""
    kx = math.cos(math.radians(lat)) * EARTH_R * math.pi / 180
    ky = EARTH_R * math.pi / 180
    ax = (np.asarray(lon1) - lon) * kx
    ay = (np.asarray(lat1) - lat) * ky
    bx = (np.asarray(lon2) - lon) * kx
    by = (np.asarray(lat2) - lat) * ky
    dx, dy = bx - ax, by - ay
    ll = dx * dx + dy * dy
    t = np.where(ll > 0, -(ax * dx + ay * dy) / np.where(ll > 0, ll, 1), 0.0)
    t = np.clip(t, 0.0, 1.0)
    px, py = ax + t * dx, ay + t * dy
    return np.sqrt(px * px + py * py), t


def _permute_bytes(blob: np.ndarray, off: np.ndarray, order: np.ndarray,
                   chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length byte strings (``blob`` cut at ``off``) put in ``order``,
    a chunk of strings at a time (the gather index is as long as the bytes)."""
    lens = np.diff(off)[order]
    new_off = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lens, out=new_off[1:])
    starts = off[:-1][order]
    out = np.empty(int(new_off[-1]), dtype=np.uint8)
    for a in range(0, len(order), chunk):
        b = min(a + chunk, len(order))
        lo, hi = int(new_off[a]), int(new_off[b])
        ln = lens[a:b]
        out[lo:hi] = blob[np.repeat(starts[a:b] - new_off[a:b], ln) + np.arange(lo, hi)]
    return out, new_off


def _densify(street: np.ndarray, seg: np.ndarray):
    """Cut segments longer than SEGMENT_PIECE_M into equal pieces."""
    if len(seg) == 0:
        z = np.zeros(0)
        return np.zeros(0, np.int32), z, z.copy(), z.copy(), z.copy()
    length = haversine_m(seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3])
    pieces = np.maximum(1, np.ceil(length / SEGMENT_PIECE_M).astype(np.int64))
    rep = np.repeat(np.arange(len(seg)), pieces)
    first = np.cumsum(pieces) - pieces
    k = np.arange(len(rep)) - np.repeat(first, pieces)
    n = pieces[rep]
    t1 = k / n
    t2 = (k + 1) / n
    s = seg[rep]
    lat1 = s[:, 0] + t1 * (s[:, 2] - s[:, 0])
    lon1 = s[:, 1] + t1 * (s[:, 3] - s[:, 1])
    lat2 = s[:, 0] + t2 * (s[:, 2] - s[:, 0])
    lon2 = s[:, 1] + t2 * (s[:, 3] - s[:, 1])
    return street[rep].astype(np.int32), lat1, lon1, lat2, lon2
