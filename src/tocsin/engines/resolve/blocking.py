"""Blocking: which pairs of records are worth scoring.

Several passes, each a :class:`BlockingRule`, are run and their pairs
unioned. A rule computes one key per record (empty = no key, the record
sits this pass out). Two kinds:

* *exact* rules pair records whose keys are equal (phonetic surname + birth
  year, phonetic given name + date of birth, postcode + two letters of the
  surname, phone, identity number...). A block larger than ``max_block``
  would cost a quadratic number of pairs: inside it, records are sorted by
  name and each is paired with its ``max_block - 1`` next neighbours only.
* *sorted-neighbourhood* rules sort all records by the key and pair each with
  the next ``window`` records: they catch a typo in the middle or at the end
  of a key that exact rules cannot see.

Everything is vectorised: keys become integer codes, records are sorted by
code and the k-th neighbours compared with one numpy operation per k.

The default rules (:data:`DEFAULT_RULES`) keep 99.9+% of the true pairs of
FEBRL3 and FEBRL4 (``tests/engines/resolve/test_blocking.py``) while
proposing a few pairs per record; :func:`candidate_pairs` reports, pass by
pass, what each rule proposed and what it added to the union.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tocsin.engines.resolve.records import Table


@dataclass(frozen=True)
class BlockingRule:
    """One blocking pass: ``key(table) -> object array`` of string keys."""

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
    BlockingRule("names_skeleton_unordered",
                 lambda t: _unordered(t["given_skel"], t["surname_skel"]),
                 ("given_name", "surname")),
    BlockingRule("date_of_birth", lambda t: t["dob"], ("date_of_birth",)),
    BlockingRule("surname+city", lambda t: _join(t["surname"], t["city"]), ("surname", "city")),
    BlockingRule("given_phonetic+postcode", lambda t: _join(t["given_phon"], t["postcode"]),
                 ("given_name", "postcode")),
    BlockingRule("postcode+house_number",
                 lambda t: _join(t["postcode"], t["address_number"]), ("postcode", "address")),
    BlockingRule("sorted:id_number", lambda t: t["id_number"], ("id_number",),
                 sorted_neighbourhood=True, window=2),
    BlockingRule("sorted:phone", lambda t: t["phone"], ("phone",),
                 sorted_neighbourhood=True, window=2),
    BlockingRule("sorted:surname+given", lambda t: _join(t["surname"], t["given"]),
                 ("surname", "given_name"), sorted_neighbourhood=True, window=2),
    BlockingRule("sorted:street+city", lambda t: _join(_street(t), t["city"]),
                 ("address", "city"), sorted_neighbourhood=True, window=2),
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


def _codes(keys: np.ndarray) -> np.ndarray:
    """Integer code per key; -1 for the empty key."""
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    inv = inv.astype(np.int64)
    if len(uniq) and uniq[0] == "":
        inv -= 1
    return inv


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


def _rule_pairs(keys: np.ndarray, side: np.ndarray | None, tiebreak: np.ndarray,
                rule: BlockingRule, max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (p < q in combined numbering) proposed by one rule."""
    codes = _codes(keys)
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
    tiebreak = _codes(_join_names(table))
    merged = np.empty(0, np.int64)
    for rule in rules:
        if not all(f in table.present for f in rule.fields):
            continue
        p, q = _rule_pairs(rule.key(table), side, tiebreak, rule, max_block)
        if side is not None:
            code = p * nb + (q - na)
        else:
            code = p * n + q
        code = np.unique(code)
        before = len(merged)
        merged = np.union1d(merged, code)
        report.proposed[rule.name] = len(code)
        report.added[rule.name] = len(merged) - before
    report.total = len(merged)
    if side is not None:
        return merged // nb, merged % nb, report
    return merged // n, merged % n, report


def _join_names(t: Table) -> np.ndarray:
    out = np.empty(len(t), dtype=object)
    out[:] = [f"{s} {g}" for s, g in zip(t["surname"], t["given"])]
    return out
