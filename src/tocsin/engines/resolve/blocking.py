"""Blocking: which pairs of records are worth scoring.

Several passes, each a :class:`BlockingRule`, are run and their pairs
unioned. A rule computes one key per record (empty = no key, the record
sits this pass out), or several (a list of key arrays: every surname of a
married woman, every one-digit deletion of a phone number), and then pairs
two records when any key of one equals any key of the other. Two kinds:

* *exact* rules pair records whose keys are equal (phonetic surname + birth
  year, phonetic given name + date of birth, postcode + two letters of the
  surname, phone, identity number...). A block larger than ``max_block``
  would cost a quadratic number of pairs: inside it, records are sorted by
  name and each is paired with its ``max_block - 1`` next neighbours only.
* *sorted-neighbourhood* rules sort all records by the key and pair each with
  the next ``window`` records: they catch a typo in the middle or at the end
  of a key that exact rules cannot see, at the price of about ``window``
  pairs per record whatever the data.

Everything is vectorised: keys become integer codes, records are sorted by
code and the k-th neighbours compared with one numpy operation per k.

The default rules (:data:`DEFAULT_RULES`) are all exact. Typos in phone and
identity numbers are caught by *deletion keys* (the number with one digit
left out, every position: two numbers one substitution, insertion, deletion
or transposition apart share one), which pair only numbers that are one edit
apart instead of sorted neighbours; typos in names by phonetic keys and by
keys that leave the name out (given name or initial + birth date, with one of
its parts left out, or with day and month in either order); married and
maiden names by keys over every surname of a record (``Martin née Dupont``).
They keep 99.9+% of the true pairs of FEBRL3, FEBRL4 and the generated
French set (``tests/engines/resolve/test_blocking.py``) while proposing a few
pairs per record; :func:`candidate_pairs` reports, pass by pass, what each
rule proposed and what it added to the union. Which pairs are proposed does
not change a pair's score (the model's prior is the share of matches among
all pairs, see :mod:`.scoring`), only which pairs get one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tocsin.engines.resolve.normalise import _STREET_ABBREV
from tocsin.engines.resolve.phonetic import fonem, fonem_skeleton
from tocsin.engines.resolve.records import Table


@dataclass(frozen=True)
class BlockingRule:
    """One blocking pass: ``key(table) -> object array`` of string keys, or a
    list of such arrays when a record has several keys (all its surnames, say):
    two records are then paired when any key of one equals any key of the other."""

    name: str
    key: Callable[[Table], np.ndarray]
    fields: tuple[str, ...]
    sorted_neighbourhood: bool = False
    window: int = 0


def _join(*parts: np.ndarray) -> np.ndarray:
    """Row-wise ``a|b|...``; empty when any part is empty."""
    n = len(parts[0])
    out = np.empty(n, dtype=object)
    strs = [p.astype(str) if p.dtype != object else p for p in parts]
    ok = np.ones(n, dtype=bool)
    for orig in parts:
        ok &= (orig != "") if orig.dtype == object else (orig != 0)
    out[:] = ""
    if ok.any():
        idx = np.flatnonzero(ok)
        out[idx] = ["|".join(map(str, vals)) for vals in zip(*(s[idx] for s in strs))]
    return out


def _prefix(col: np.ndarray, k: int) -> np.ndarray:
    return np.array([v[:k] for v in col], dtype=object)


def _unordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=object)
    out[:] = ["|".join(sorted((x, y))) if x and y else "" for x, y in zip(a, b)]
    return out


def _street(t: Table) -> np.ndarray:
    """Address without its house number."""
    out = np.empty(len(t), dtype=object)
    out[:] = [a[len(n):].strip() if n and a.startswith(n) else a
              for a, n in zip(t["address"], t["address_number"])]
    return out


def _obj(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _initial(t: Table) -> np.ndarray:
    """First letter of the first given name (``J.-P.`` -> ``j``)."""
    return _prefix(t["given_first"], 1)


def _month_day(t: Table, *, unordered: bool = False) -> np.ndarray:
    """``MMDD`` of a full birth date (``unordered``: the smaller number first, so
    a day/month swap gives the same key); empty when the day is unknown."""
    m, d = t["dob_month"].tolist(), t["dob_day"].tolist()
    if unordered:
        m, d = [min(x, y) for x, y in zip(m, d)], [max(x, y) for x, y in zip(m, d)]
    return _obj([f"{x:02d}{y:02d}" if x and y else "" for x, y in zip(m, d)])


MAX_SURNAMES = 3  # main + birth/usage/alias surnames keyed per record
MAX_GIVEN = 2     # given names keyed per record


def _surname_list(t: Table, fn: Callable[[str], str]) -> list[np.ndarray]:
    """``fn`` of each of a record's surnames (main, birth, usage...), one array per rank."""
    alts = [a.split() if " " in a else (a,) if a else () for a in t["surname_alts"]]
    return [_obj([fn(a[k]) if len(a) > k else "" for a in alts]) for k in range(MAX_SURNAMES)
            if k == 0 or any(len(a) > k for a in alts)]


def _names_any(t: Table) -> list[np.ndarray]:
    """Skeletons of (any given name, any surname), in either order: ``Sophie Martin
    née Dupont`` meets ``Dupont Sophie``; ``Lucas Philippe`` meets ``Philippe-Lucas``."""
    given = [g.split() for g in t["given"]]
    givens = [t["given_skel"]] + [
        _obj([fonem_skeleton(g[k]) if len(g) > k else "" for g in given])
        for k in range(1, MAX_GIVEN) if any(len(g) > k for g in given)]
    surnames = [t["surname_skel"], *_surname_list(t, fonem_skeleton)[1:]]
    return [_unordered(g, s) for g in givens for s in surnames]


def _any_surname_phonetic_initial(t: Table) -> list[np.ndarray]:
    init = _initial(t)
    phon = [t["surname_phon"], *_surname_list(t, fonem)[1:]]
    return [_join(p, init) for p in phon]


def _per_distinct(col: np.ndarray, fn: Callable[[str], list[str]]) -> list[np.ndarray]:
    """Several keys per row, ``fn(value)``, computed once per distinct value: one
    array per rank of key ("" where a value has fewer)."""
    values = col.tolist()
    number: dict[str, int] = dict.fromkeys(values)  # type: ignore[assignment]
    for k, v in enumerate(number):
        number[v] = k
    codes = np.fromiter(map(number.__getitem__, values), dtype=np.int64, count=len(values))
    keys = [fn(v) if v else [] for v in number]
    width = max((len(k) for k in keys), default=0)
    return [_obj([k[j] if len(k) > j else "" for k in keys])[codes] for j in range(width)]


def _one_edit(value: str, min_len: int, tag: str = "") -> list[str]:
    """``value`` and each of its one-character deletions (``value`` alone when
    shorter than ``min_len``), each followed by ``tag``: two values one
    substitution, insertion, deletion or transposition apart share a key."""
    if len(value) < min_len:
        return [value + tag]
    return [value + tag] + [value[:k] + value[k + 1:] + tag for k in range(len(value))]


def _any_surname_one_edit_initial(t: Table) -> list[np.ndarray]:
    """Each surname of a record and each of its one-letter deletions, with the
    initial: ``Ptit J.`` meets ``Petit Josiane``, ``Velluitni`` ``Vellutini``."""
    def keys(tagged: str) -> list[str]:  # "surname|initial"
        surname, initial = tagged.rsplit("|", 1)
        return _one_edit(surname, 4, "|" + initial)

    init = _initial(t)
    out = []
    for s in _surname_list(t, lambda x: x):
        out.extend(_per_distinct(_join(s, init), keys))
    return out


def _deletions(col: np.ndarray, min_len: int = 5) -> list[np.ndarray]:
    """The value and its one-character deletions (see :func:`_one_edit`)."""
    return _per_distinct(col, lambda v: _one_edit(v, min_len))


_STREET_WORDS = frozenset(" ".join(_STREET_ABBREV.values()).split()) | {
    "street", "lane", "drive", "court", "close", "terrace", "way", "bis", "ter", "quater",
    "avenue", "place", "rue", "allee", "chemin", "route"}


def _street_name(t: Table) -> np.ndarray:
    """The first naming word of the street (not a street type, number or
    particle, nor a title): ``12 bis rue du general de gaulle`` -> ``gaulle``."""
    out = []
    for street in _street(t).tolist():
        words = [w for w in street.split()
                 if len(w) >= 4 and w not in _STREET_WORDS and not w.isdigit()]
        out.append(words[0] if words else "")
    return _obj(out)


DEFAULT_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("surname_phonetic+birth_year",
                 lambda t: _join(t["surname_phon"], t["dob_year"]), ("surname", "date_of_birth")),
    BlockingRule("given_phonetic+date_of_birth",
                 lambda t: _join(t["given_phon"], t["dob"]), ("given_name", "date_of_birth")),
    BlockingRule("postcode+surname_prefix",
                 lambda t: _join(t["postcode"], _prefix(t["surname"], 2)),
                 ("postcode", "surname")),
    BlockingRule("phone", lambda t: t["phone"], ("phone",)),
    BlockingRule("id_number", lambda t: t["id_number"], ("id_number",)),
    BlockingRule("names_skeleton_any_order", _names_any, ("given_name", "surname")),
    BlockingRule("date_of_birth", lambda t: t["dob"], ("date_of_birth",)),
    BlockingRule("surname+city", lambda t: _join(t["surname"], t["city"]), ("surname", "city")),
    BlockingRule("given_phonetic+postcode", lambda t: _join(t["given_phon"], t["postcode"]),
                 ("given_name", "postcode")),
    BlockingRule("postcode+house_number",
                 lambda t: _join(t["postcode"], t["address_number"]), ("postcode", "address")),
    BlockingRule("any_surname_phonetic+given_initial", _any_surname_phonetic_initial,
                 ("given_name", "surname")),
    BlockingRule("given_initial+birth_year_month",
                 lambda t: _join(_initial(t), t["dob_year"], t["dob_month"]),
                 ("given_name", "date_of_birth")),
    BlockingRule("given_initial+birth_year+day_month_any_order",
                 lambda t: _join(_initial(t), t["dob_year"], _month_day(t, unordered=True)),
                 ("given_name", "date_of_birth")),
    BlockingRule("given_initial+birth_day_month",
                 lambda t: _join(_initial(t), _month_day(t)), ("given_name", "date_of_birth")),
    BlockingRule("any_surname_one_edit+given_initial", _any_surname_one_edit_initial,
                 ("given_name", "surname")),
    BlockingRule("given_phonetic+birth_year", lambda t: _join(t["given_phon"], t["dob_year"]),
                 ("given_name", "date_of_birth")),
    BlockingRule("given_phonetic+city", lambda t: _join(t["given_phon"], t["city"]),
                 ("given_name", "city")),
    BlockingRule("given_phonetic+surname_prefix",
                 lambda t: _join(t["given_phon"], _prefix(t["surname"], 3)),
                 ("given_name", "surname")),
    BlockingRule("house_number+street_name",
                 lambda t: _join(t["address_number"], _street_name(t)), ("address",)),
    BlockingRule("id_number_one_edit", lambda t: _deletions(t["id_number"]), ("id_number",)),
    BlockingRule("phone_one_edit", lambda t: _deletions(t["phone"]), ("phone",)),
)


@dataclass
class BlockingReport:
    """Pairs proposed by each rule and pairs it added to the union."""

    proposed: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    total: int = 0
    max_pairs: int = 0

    @property
    def reduction(self) -> float:
        """Share of all possible pairs that blocking skipped."""
        return 1.0 - self.total / self.max_pairs if self.max_pairs else 0.0


def _codes(keys: np.ndarray, *, ranks: bool = False) -> np.ndarray:
    """Integer code per key; -1 for the empty key. ``ranks``: codes in sorted key
    order (sorted neighbourhoods need it); else numbered as first seen, faster."""
    if ranks:
        uniq, inv = np.unique(keys.astype(str), return_inverse=True)
        inv = inv.astype(np.int64)
        if len(uniq) and uniq[0] == "":
            inv -= 1
        return inv
    values = keys.tolist()
    number: dict[object, int] = dict.fromkeys(values)  # type: ignore[assignment]
    for k, v in enumerate(number):
        number[v] = k
    number[""] = -1
    return np.fromiter(map(number.__getitem__, values), dtype=np.int64, count=len(values))


def _cross(order: np.ndarray, starts: np.ndarray, lens: np.ndarray, ga: np.ndarray,
           gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (member of group ga[k], member of group gb[k]) pair, for all k."""
    la, lb = lens[ga], lens[gb]
    cnt = la * lb
    total = int(cnt.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rep = np.repeat(np.arange(len(ga)), cnt)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    lbr = lb[rep]
    return order[starts[ga][rep] + offs // lbr], order[starts[gb][rep] + offs % lbr]


def _rule_pairs(codes: np.ndarray, side: np.ndarray | None, tiebreak: np.ndarray,
                rule: BlockingRule, max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (p < q in combined numbering) proposed by one rule, from the
    rows' key codes (:func:`_codes`)."""
    valid = np.flatnonzero(codes >= 0)
    empty = np.empty(0, np.int64), np.empty(0, np.int64)
    if len(valid) < 2:
        return empty
    order = valid[np.lexsort((tiebreak[valid], codes[valid]))]
    c = codes[order]
    ps, qs = [], []
    # equal keys: neighbours up to max_block - 1 apart in (key, name) order
    for k in range(1, min(max_block - 1, len(order) - 1) + 1):
        same = c[:-k] == c[k:]
        if not same.any():
            break  # no block has more than k members
        p, q = order[:-k][same], order[k:][same]
        if side is not None:
            cross = side[p] != side[q]
            p, q = p[cross], q[cross]
        ps.append(p)
        qs.append(q)
    if rule.sorted_neighbourhood:
        # distinct keys up to `window` apart in sorted key order (codes are ranks)
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        lens = np.minimum(np.diff(np.r_[starts, len(c)]), max_block)
        groups = len(starts)
        for k in range(1, min(rule.window, groups - 1) + 1):
            ga = np.arange(groups - k)
            p, q = _cross(order, starts, lens, ga, ga + k)
            if side is not None:
                cross = side[p] != side[q]
                p, q = p[cross], q[cross]
            ps.append(p)
            qs.append(q)
    if not ps:
        return empty
    p, q = np.concatenate(ps), np.concatenate(qs)
    return np.minimum(p, q), np.maximum(p, q)


def candidate_pairs(a: Table, b: Table | None = None, *,
                    rules: tuple[BlockingRule, ...] | None = None, max_block: int = 60,
                    ) -> tuple[np.ndarray, np.ndarray, BlockingReport]:
    """Candidate pairs ``(ia, ib)`` of row numbers.

    Dedupe (``b`` None): pairs of rows of ``a`` with ``ia < ib``. Link: ``ia``
    rows of ``a``, ``ib`` rows of ``b``. Rules whose fields are absent from
    the data are skipped.
    """
    from tocsin.engines.resolve.records import concat

    rules = DEFAULT_RULES if rules is None else rules
    na = len(a)
    if b is None:
        table, side, nb = a, None, na
        max_pairs = na * (na - 1) // 2
    else:
        table = concat(a, b)
        side = np.r_[np.zeros(na, dtype=np.int8), np.ones(len(b), dtype=np.int8)]
        nb = len(b)
        max_pairs = na * nb
    n = len(table)
    report = BlockingReport(max_pairs=max_pairs)
    tiebreak = _codes(_join_names(table), ranks=True)
    found, owner = [], []
    for rule in rules:
        if not all(f in table.present for f in rule.fields):
            continue
        keys = rule.key(table)
        ranks = rule.sorted_neighbourhood
        if isinstance(keys, list | tuple):
            codes, rows = _explode(keys, ranks)
            p, q = _rule_pairs(codes, None if side is None else side[rows], tiebreak[rows],
                               rule, max_block)
            p, q = rows[p], rows[q]
            keep = p != q
            p, q = np.minimum(p[keep], q[keep]), np.maximum(p[keep], q[keep])
        else:
            p, q = _rule_pairs(_codes(keys, ranks=ranks), side, tiebreak, rule, max_block)
        if side is not None:
            code = p * nb + (q - na)
        else:
            code = p * n + q
        code = np.unique(code)
        report.proposed[rule.name] = len(code)
        found.append(code)
        owner.append(rule.name)
    # the union, each pair credited to the first rule that proposed it
    merged, first = np.unique(np.concatenate(found) if found else np.empty(0, np.int64),
                              return_index=True)
    ends = np.cumsum([len(c) for c in found])
    credited = np.bincount(np.searchsorted(ends, first, side="right"), minlength=len(found))
    report.added = {name: int(k) for name, k in zip(owner, credited)}
    report.total = len(merged)
    if side is not None:
        return merged // nb, merged % nb, report
    return merged // n, merged % n, report


def _explode(key_arrays: list[np.ndarray] | tuple[np.ndarray, ...], ranks: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """(key codes, row of each key) of several key arrays over the same rows,
    without empty keys nor a row's repeated key."""
    codes = _codes(np.concatenate([np.asarray(k, dtype=object) for k in key_arrays]),
                   ranks=ranks)
    rows = np.tile(np.arange(len(key_arrays[0]), dtype=np.int64), len(key_arrays))
    ok = np.flatnonzero(codes >= 0)
    _, first = np.unique(rows[ok] * (int(codes.max()) + 1) + codes[ok], return_index=True)
    keep = np.sort(ok[first])
    return codes[keep], rows[keep]


def _join_names(t: Table) -> np.ndarray:
    out = np.empty(len(t), dtype=object)
    out[:] = [f"{s} {g}" for s, g in zip(t["surname"], t["given"])]
    return out
