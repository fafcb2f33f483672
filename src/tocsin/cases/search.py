"""Nationwide search over ``case_keys``: full text and fielded, filtered in SQL.

The query language is words and the wildcards ``*`` and ``?``, nothing else:
quotes, operators, parentheses, column filters and the like of FTS syntax are
plain characters that split words, so a query can never change the shape of the
SQL. Every criterion becomes one index lookup carrying the access filter of
``core.access.readable_units_clause``; the criteria are intersected in SQL and
the total and the facets are counted on that filtered set only: what a user may
not read is never counted, never returned and never hinted at.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, cast, intersect, literal, or_, select, union
from sqlalchemy.orm import Session

from tocsin.cases import normalize as N
from tocsin.cases import policy  # noqa: F401  (declares the "case" kind to core.access)
from tocsin.cases.keys import ENTITY_TYPES
from tocsin.cases.models import Case, CaseInvestigator, CaseKey
from tocsin.core import access
from tocsin.core.access import Principal
from tocsin.core.errors import BadInput
from tocsin.core.identity.models import Share, Unit

MAX_TERMS = 8
FACET_CAP = 10_000
DTYPES = set(ENTITY_TYPES) | {"attachment", "case"}
_TOKEN = re.compile(r"[0-9a-z*?]+")


@dataclasses.dataclass
class Criteria:
    q: str | None = None
    name: str | None = None
    birth_date: str | None = None
    dob_tolerance_days: int = 0
    plate: str | None = None
    phone: str | None = None
    email: str | None = None
    vin: str | None = None
    iban: str | None = None
    document: str | None = None
    serial: str | None = None
    types: list[str] | None = None
    status: list[str] | None = None
    limit: int = 50
    offset: int = 0


def _wildcard(kind: str, pattern: str, min_literal: int) -> ColumnElement[bool]:
    """``*``/``?`` pattern on an index kind: a range seek on the literal prefix + LIKE."""
    literal_chars = sum(1 for c in pattern if c not in "*?")
    if literal_chars < min_literal:
        raise BadInput(f"a wildcard search needs at least {min_literal} letters or digits",
                       code="search.wildcard_too_broad")
    if "*" not in pattern and "?" not in pattern:
        return and_(CaseKey.kind == kind, CaseKey.key == pattern)
    prefix = re.split(r"[*?]", pattern, maxsplit=1)[0]
    like = pattern.replace("*", "%").replace("?", "_")  # keys hold only [0-9a-zA-Z|+-]
    cond = and_(CaseKey.kind == kind, CaseKey.key.like(like))
    if prefix:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        cond = and_(cond, CaseKey.key >= prefix, CaseKey.key < upper)
    return cond


def _word_conditions(q: str) -> list[ColumnElement[bool]]:
    tokens = _TOKEN.findall(N.fold(q))
    conds = []
    for tok in tokens:
        if "*" in tok or "?" in tok:
            head = re.split(r"[*?]", tok, maxsplit=1)[0]
            if len(head) < 2:
                raise BadInput("a word with a wildcard needs at least two letters before it",
                               code="search.wildcard_too_broad")
            conds.append(_wildcard("w", tok, 2))
        elif len(tok) >= 2:
            conds.append(and_(CaseKey.kind == "w", CaseKey.key == tok[:64]))
    return conds


def conditions(c: Criteria) -> list[ColumnElement[bool]]:
    """One index condition per criterion; raises BadInput on unusable input."""
    conds: list[ColumnElement[bool]] = []
    if c.q:
        conds += _word_conditions(c.q)
    if c.name:
        words = N.name_words(c.name)
        if not words:
            raise BadInput("the name has no letters", code="search.name_invalid")
        for w in words:
            conds.append(and_(CaseKey.kind == "phon", CaseKey.key == N.phonetic(w)))
    if c.birth_date:
        d = N.birth_date(c.birth_date)
        if d is None:
            raise BadInput("birth_date is not a date (YYYY-MM-DD)", code="search.date_invalid")
        tol = dt.timedelta(days=c.dob_tolerance_days)
        rng = and_(CaseKey.key >= (d - tol).isoformat(), CaseKey.key <= (d + tol).isoformat())
        alts = [rng]
        if d.day <= 12 and d.day != d.month:  # day and month swapped on a form
            alts.append(CaseKey.key == dt.date(d.year, d.day, d.month).isoformat())
        conds.append(and_(CaseKey.kind == "dob", or_(*alts)))
    if c.plate:
        pattern = N.plate_pattern(c.plate)
        conds.append(_wildcard("plate", pattern, 3))
    if c.phone:
        e164 = N.phone(c.phone)
        if e164 is None:
            raise BadInput("not a phone number", code="search.phone_invalid")
        conds.append(and_(CaseKey.kind == "phone", CaseKey.key == e164))
    if c.email:
        e = N.email(c.email)
        if e is None:
            raise BadInput("not an e-mail address", code="search.email_invalid")
        conds.append(and_(CaseKey.kind == "email", CaseKey.key == e))
    for field, kind in (("vin", "vin"), ("iban", "iban"), ("document", "doc"),
                        ("serial", "serial")):
        value = getattr(c, field)
        if value:
            key = N.ident(value)
            if len(key) < 3:
                raise BadInput(f"{field} is too short", code="search.value_invalid")
            conds.append(and_(CaseKey.kind == kind, CaseKey.key == key))
    if not conds:
        raise BadInput("give words or at least one field to search for", code="search.empty")
    if len(conds) > MAX_TERMS:
        raise BadInput(f"at most {MAX_TERMS} words and fields", code="search.too_many_terms")
    if c.types:
        unknown = set(c.types) - DTYPES
        if unknown:
            raise BadInput(f"unknown types {sorted(unknown)}", code="search.type_unknown")
    return conds


def readable(principal: Principal) -> ColumnElement[bool]:
    """The access filter of the index, from core.access: unit subtree (not for a
    need-to-know case), named investigator, or explicit share (``cases.policy``)."""
    return access.readable_units_clause(principal, "case", CaseKey.unit_id, CaseKey.case_id)


def _outside_subtree(s: Session, principal: Principal) -> list[int] | None:
    """The cases ``principal`` may reach other than by her unit's subtree: a superset of
    the grants term of the access filter (shares to her or to a unit above her, expired or
    not; cases naming her). None when the filter is not of the subtree form."""
    if access.rule_for("case").scope != "subtree":
        return None
    as_int = cast(Share.record_id, Integer)
    return sorted(set(s.scalars(union(
        select(as_int).where(Share.record_kind == "case",
                             Share.grantee_user_id == principal.user_id),
        select(as_int).join(Unit, Unit.id == Share.grantee_unit_id).where(
            Share.record_kind == "case", literal(principal.unit_path).like(Unit.path + "%")),
        select(CaseInvestigator.case_id).where(CaseInvestigator.user_id == principal.user_id),
    ))))


def run(s: Session, principal: Principal, c: Criteria) -> dict[str, Any]:
    """Matches readable by ``principal`` (at most FACET_CAP + 1 of them, fetched once),
    their total, facets and one page. Every row comes out of the access-filtered SQL.

    Each criterion is read in the index as two seeks, both under the whole access filter:
    the keys of units of the caller's subtree (``kind, key, unit_id IN ...``), and the keys
    of the few cases she reaches otherwise (grants, named investigator). A row the filter
    admits is in one of the two, so their union is the filtered set; without the split the
    filter would be evaluated on every key of a word in the country."""
    conds = conditions(c)
    scope = readable(principal)
    outside = _outside_subtree(s, principal)
    subtree = select(Unit.id).where(Unit.path.like(principal.unit_path + "%"))
    cols = (CaseKey.dtype, CaseKey.doc_id, CaseKey.case_id)
    branches = []
    for cond in conds:
        q = select(*cols).where(cond, scope)
        if c.types:
            q = q.where(CaseKey.dtype.in_(c.types))
        if outside is None:
            branches.append(q)
            continue
        mine = q.where(CaseKey.unit_id.in_(subtree))
        if outside:
            both = union(mine, q.where(CaseKey.case_id.in_(outside))).subquery()
            mine = select(both.c.dtype, both.c.doc_id, both.c.case_id)
        branches.append(mine)
    matched = intersect(*branches) if len(branches) > 1 else branches[0].distinct()
    rows = s.execute(matched.limit(FACET_CAP + 1)).all()
    info: dict[int, tuple[str, int, str]] = {}
    case_ids = sorted({r[2] for r in rows})
    for i in range(0, len(case_ids), 5000):
        for cid, status, unit_id, classification in s.execute(
                select(Case.id, Case.status, Case.unit_id, Case.classification)
                .where(Case.id.in_(case_ids[i:i + 5000]))):
            info[cid] = (status, unit_id, classification)
    if c.status:
        rows = [r for r in rows if info[r[2]][0] in c.status]
    total = len(rows)
    counters: dict[str, Counter] = {n: Counter() for n in ("type", "status", "classification",
                                                           "unit")}
    for dtype, _doc, cid in rows:
        status, unit_id, classification = info[cid]
        counters["type"][dtype] += 1
        counters["status"][status] += 1
        counters["classification"][classification] += 1
        counters["unit"][str(unit_id)] += 1
    facets = {n: dict(cnt.most_common(50)) for n, cnt in counters.items()}
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    page = rows[c.offset:c.offset + c.limit]
    return {"total": min(total, FACET_CAP), "total_capped": total > FACET_CAP,
            "facets": facets, "rows": [(r[0], r[1], r[2]) for r in page]}
