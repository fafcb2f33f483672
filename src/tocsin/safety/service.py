"""Field safety rules: persons and their merges, risk flags and their review,
field operations, and the briefing an officer gets before going out.

Every function takes the runtime and the principal; access is asked of
``core.access`` (kinds registered below), every change is a domain event stored
in the same transaction. A briefing, a person or an operation is read without
taking the write lock; its read event is then stored by the runtime's recorder
(``core.recorded_reads``, group commits) and nothing returns before. No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import BadInput, Conflict, Forbidden, NotFound
from tocsin.core.events import DomainEvent, emit
from tocsin.core.runtime import Runtime
from tocsin.safety import geo, matching
from tocsin.safety.models import (
    SafetyIdentityRecord,
    SafetyMerge,
    SafetyMergeSuggestion,
    SafetyOperation,
    SafetyOperationPerson,
    SafetyPerson,
    SafetyPlace,
    SafetyRiskFlag,
)
from tocsin.safety.schemas import (
    LABELS,
    MAX_FLAG_DAYS,
    SENSITIVE_CATEGORIES,
    SEVERITY,
    FlagIn,
    FlagReviewIn,
    IdentityRecordIn,
    MergeIn,
    OperationIn,
    PlaceIn,
)

OPERATIONAL = ["call_taker", "dispatcher", "patrol_officer", "commander", "investigator",
               "analyst"]
FIELD_WRITERS = ["call_taker", "dispatcher", "patrol_officer", "commander", "investigator"]
access.register_kind("person", read=OPERATIONAL, write=FIELD_WRITERS)
access.register_kind("field_operation", read=OPERATIONAL,
                     write=["dispatcher", "patrol_officer", "commander", "investigator"])
# Officer-safety warnings are force-wide: the officer who goes out must see them
# whichever unit wrote them. Health flags follow the unit tree (need to know).
access.register_kind("risk_flag", read=OPERATIONAL, write=FIELD_WRITERS, scope="force")
access.register_kind("risk_flag_sensitive", read=OPERATIONAL, write=FIELD_WRITERS)
# Who confirms, rejects, renews or withdraws flags: commanders, over their subtree.
access.register_kind("risk_flag_review", read=["commander"], write=["commander"])
access.register_kind("place", read=OPERATIONAL, write=FIELD_WRITERS, scope="force")

MAX_BRIEFING_PERSONS = 20
EXPECTED_MATCHES = 3  # persons shown per expected (name, birth date), most likely first
BRIEFING_OPERATIONS = 8
BRIEFING_FLAGS = 12
# The places a briefing counts operations and reads flags at, nearest first: every place
# within the radius up to this many (a dense city block has hundreds within 250 m); past it
# the briefing says its counts cover the nearest ones. It lists the nearest few.
BRIEFING_PLACES = 2000
BRIEFING_PLACES_LISTED = 10
BRIEFING_PERSONS_LISTED = 8  # plus every expected person: one screen
REVIEW_HORIZON = dt.timedelta(days=30)
POINT_PLACE_SNAP_M = 10.0


# ----------------------------------------------------------------------------- helpers

def _path(rt: Runtime, unit_id: int | None) -> str | None:
    return rt.units.path(unit_id)


def _flag_kind(category: str) -> str:
    return "risk_flag_sensitive" if category in SENSITIVE_CATEGORIES else "risk_flag"


def _domain_event(who: Principal | int | None, type_: str, kind: str | None, rid: Any,
                  unit_id: int | None, /, **payload: Any) -> DomainEvent:
    """A safety event; ``who`` is the principal acting, or a user id."""
    actor = who.user_id if isinstance(who, Principal) else who
    return DomainEvent(type=type_, actor_id=actor, unit_id=unit_id, record_kind=kind,
                       record_id=None if rid is None else str(rid), payload=payload)


def _event(s: Session, who: Principal | int | None, type_: str, kind: str | None,
           rid: Any, unit_id: int | None, /, **payload: Any) -> None:
    """Emit a safety event in the unit of work ``s``."""
    emit(s, _domain_event(who, type_, kind, rid, unit_id, **payload))


def _record_read(rt: Runtime, principal: Principal, type_: str, rid: Any,
                 unit_id: int | None, /, **payload: Any) -> None:
    """Record a read (after it was done without the write lock); nothing is shown
    until it is stored."""
    rt.reads.record(_domain_event(principal, type_, None, rid, unit_id, **payload))


def _person_resource(rt: Runtime, p: SafetyPerson) -> Resource:
    return Resource("person", _path(rt, p.unit_id), id=str(p.id))


def _flag_resource(rt: Runtime, f: SafetyRiskFlag) -> Resource:
    return Resource(_flag_kind(f.category), _path(rt, f.unit_id), id=str(f.id))


def _load_person(s: Session, person_id: int, *, lock: bool = False) -> SafetyPerson:
    q = select(SafetyPerson).where(SafetyPerson.id == person_id)
    if lock:
        q = q.with_for_update()
    p = s.scalar(q)
    if p is None:
        raise NotFound(f"no person {person_id}", code="safety.person.not_found")
    return p


def canonical_ids(s: Session, ids: list[int]) -> dict[int, int]:
    """Each id -> the active person that stands for it now (following merges)."""
    out: dict[int, int] = {}
    current = {i: i for i in ids}
    for _ in range(64):  # merge chains are short; bounded against a corrupted cycle
        if not current:
            break
        rows = dict(s.execute(select(SafetyPerson.id, SafetyPerson.merged_into_id)
                              .where(SafetyPerson.id.in_(set(current.values())))).all())
        nxt = {}
        for orig, now in current.items():
            if now not in rows:
                continue  # unknown id: dropped
            if rows[now] is None:
                out[orig] = now
            else:
                nxt[orig] = rows[now]
        current = nxt
    return out


def member_ids(s: Session, person_ids: set[int]) -> dict[int, int]:
    """Every person id merged (transitively) into one of ``person_ids`` -> that person."""
    owner = {i: i for i in person_ids}
    frontier = set(person_ids)
    for _ in range(64):
        if not frontier:
            break
        rows = s.execute(select(SafetyPerson.id, SafetyPerson.merged_into_id)
                         .where(SafetyPerson.merged_into_id.in_(frontier))).all()
        frontier = set()
        for pid, into in rows:
            if pid not in owner:
                owner[pid] = owner[into]
                frontier.add(pid)
    return owner


def _records_of(s: Session, person_ids: list[int]) -> dict[int, list[SafetyIdentityRecord]]:
    out: dict[int, list[SafetyIdentityRecord]] = {}
    if not person_ids:
        return out
    for r in s.scalars(select(SafetyIdentityRecord)
                       .where(SafetyIdentityRecord.person_id.in_(person_ids))
                       .order_by(SafetyIdentityRecord.created_at, SafetyIdentityRecord.id)):
        out.setdefault(r.person_id, []).append(r)
    return out


def _display(records: list[SafetyIdentityRecord]) -> dict[str, Any]:
    """The name shown for a person: the most recent record's; the birth date most sources give."""
    if not records:
        return {"name": None, "birth_date": None}
    last = records[-1]
    dates = Counter(r.birth_date for r in records if r.birth_date)
    return {"name": f"{last.given_names} {last.surname}",
            "birth_date": dates.most_common(1)[0][0] if dates else None}


def _state_of(f: SafetyRiskFlag, now: dt.datetime) -> str:
    if f.status in ("rejected", "withdrawn"):
        return f.status
    if as_utc(f.expires_at) <= now:
        return "expired"
    return "active" if f.status == "active" else "unconfirmed"


def flag_out(f: SafetyRiskFlag, now: dt.datetime, *, author: str | None = None) -> dict[str, Any]:
    state = _state_of(f, now)
    expires = as_utc(f.expires_at)
    out = {
        "id": f.id, "category": f.category, "label": LABELS.get(f.category, f.category),
        "person_id": f.person_id, "place_id": f.place_id, "reason": f.reason, "source": f.source,
        "author_id": f.author_id, "author": author, "created_at": as_utc(f.created_at).isoformat(),
        "expires_at": expires.isoformat(), "status": f.status, "state": state,
        "reviewed_at": as_utc(f.reviewed_at).isoformat() if f.reviewed_at else None,
        "review_note": f.review_note, "version": f.version,
    }
    if state == "expired":
        out["state_text"] = f"expired on {expires.date().isoformat()}"
    return out


# ----------------------------------------------------------------------------- places

def _validate_point(lat: float, lon: float) -> None:
    for name, v, lim in (("lat", lat, 90), ("lon", lon, 180)):
        if not isinstance(v, (int, float)) or math.isnan(v) or abs(v) > lim:
            raise BadInput(f"{name} must be a number within ±{lim}", code="safety.bad_point")


def place_for(s: Session, unit_id: int, place: PlaceIn) -> SafetyPlace:
    """The place at this address (or this exact point), created if new (owned by
    ``unit_id``)."""
    _validate_point(place.lat, place.lon)
    key = matching.address_key(place.address) if place.address else None
    if key:
        found = s.scalar(select(SafetyPlace).where(SafetyPlace.address_key == key))
        if found is not None:
            return found
    else:
        near = [p.id for p, _d in _places_near(s, place.lat, place.lon, POINT_PLACE_SNAP_M,
                                               limit=5)]
        unnamed = {p.id: p for p in s.scalars(select(SafetyPlace).where(
            SafetyPlace.id.in_(near), SafetyPlace.address_key.is_(None)))} if near else {}
        for pid in near:  # nearest first
            if pid in unnamed:
                return unnamed[pid]
    p = SafetyPlace(address=place.address, address_key=key, lat=place.lat, lon=place.lon,
                    cell=geo.cell_of(place.lat, place.lon), unit_id=unit_id)
    try:
        with s.begin_nested():
            s.add(p)
            s.flush()
    except IntegrityError:  # created meanwhile by a concurrent request: use that one
        found = s.scalar(select(SafetyPlace).where(SafetyPlace.address_key == key))
        if found is None:
            raise
        return found
    return p


def _places_near(s: Session, lat: float, lon: float, radius_m: float, limit: int
                 ) -> list[tuple[Row[Any], float]]:
    """The places within ``radius_m`` of the point, nearest first, at most ``limit``:
    rows (``id, lat, lon``) with their distance in metres, read from the index on
    (cell, lat, lon) alone (``_place_rows`` reads the addresses of the few shown).

    The grid cells and the bounding box select candidates; the database orders them
    by a flat-earth distance and keeps a margin over ``limit``, which are measured
    exactly (haversine). Over at most 2 km the flat distance errs by under 0.03 % at
    60° (``tan(lat) * dlat / 2``): it can misorder only places a few centimetres
    apart, far fewer than the margin; places at one point keep their id order."""
    ranges = geo.cell_ranges(lat, lon, radius_m)
    cond = or_(*[SafetyPlace.cell.between(a, b) for a, b in ranges])
    south, north, west, east = geo.bbox(lat, lon, radius_m)
    ky = math.radians(geo.EARTH_M)  # metres per degree of latitude
    kx = ky * max(math.cos(math.radians(lat)), 1e-6)
    dy, dx = (SafetyPlace.lat - lat) * ky, (SafetyPlace.lon - lon) * kx
    out = []
    distance = geo.distance_m
    for p in s.execute(select(SafetyPlace.id, SafetyPlace.lat, SafetyPlace.lon)
                       .where(cond, SafetyPlace.lat.between(south, north),
                              SafetyPlace.lon.between(west, east))
                       .order_by(dx * dx + dy * dy, SafetyPlace.id).limit(2 * limit + 20)):
        d = distance(lat, lon, p.lat, p.lon)
        if d <= radius_m:
            out.append((p, d))
    out.sort(key=lambda x: (x[1], x[0].id))
    return out[:limit]


def _place_rows(s: Session, ids: set[int]) -> dict[int, Row[Any]]:
    """``id, address, lat, lon`` of the places ``ids``."""
    if not ids:
        return {}
    return {p.id: p for p in s.execute(
        select(SafetyPlace.id, SafetyPlace.address, SafetyPlace.lat, SafetyPlace.lon)
        .where(SafetyPlace.id.in_(list(ids))))}


# ----------------------------------------------------------------------------- persons

def directory(rt: Runtime) -> matching.PersonDirectory:
    return rt.service("safety.persons", lambda _rt: matching.PersonDirectory())


def add_record(rt: Runtime, principal: Principal, body: IdentityRecordIn,
               person_id: int | None = None) -> dict[str, Any]:
    """Store one source's identity record: on a new person, or on ``person_id``.

    Likely duplicates found by the resolve engine become merge suggestions for
    a human to review; nothing is merged automatically.
    """
    norm = matching.normalise(body.given_names, body.surname, body.birth_date, body.phone,
                              address=body.address, id_number=body.id_number,
                              birth_name=body.birth_name, usage_name=body.usage_name)
    fingerprint = matching.fingerprint(body.source, body.source_ref, norm)
    with rt.db.session() as s:
        dup = s.scalar(select(SafetyIdentityRecord).where(
            SafetyIdentityRecord.fingerprint == fingerprint))
        if dup is not None:
            raise Conflict("this identity record was already submitted",
                           code="safety.record.duplicate",
                           details={"record_id": dup.id, "person_id": dup.person_id})
        if person_id is None:
            access.require(principal, "write", Resource("person", _path(rt, principal.unit_id)))
            person = SafetyPerson(unit_id=principal.unit_id, created_by=principal.user_id)
            s.add(person)
            s.flush()
        else:
            person = _load_person(s, person_id, lock=True)
            access.require(principal, "write", _person_resource(rt, person))
            if person.status != "active":
                raise Conflict(f"person {person.id} was merged into {person.merged_into_id}",
                               code="safety.person.merged",
                               details={"person_id": person.id,
                                        "merged_into": person.merged_into_id})
            person.version += 1
        rec = SafetyIdentityRecord(
            person_id=person.id, source=body.source, source_ref=body.source_ref,
            given_names=body.given_names, surname=body.surname, birth_date=norm["birth_date"],
            phone=norm["phone"], address=norm["address"], id_number=norm["id_number"],
            birth_name=norm["birth_name"], usage_name=norm["usage_name"],
            fingerprint=fingerprint, created_by=principal.user_id)
        s.add(rec)
        try:
            with s.begin_nested():
                s.flush()
        except IntegrityError:
            raise Conflict("this identity record was already submitted",
                           code="safety.record.duplicate") from None
        _event(s, principal, "safety.person.record_added", "person", person.id, person.unit_id,
               record_id=rec.id, source=body.source, new_person=person_id is None)
        query = matching.engine_record(rec.id, *(getattr(rec, c)
                                                 for c in matching.RECORD_COLUMNS))
        suggestions = _suggest(rt, s, principal, person, query)
        matching.stamp_records(s, [rec])  # last: it holds the counter until commit
        return {"person_id": person.id, "record_id": rec.id, "version": person.version,
                "name_flags": norm["flags"], "suggestions": suggestions}


def matching_persons(rt: Runtime, s: Session, query: dict[str, Any], *, top_k: int = 20,
                     min_probability: float = matching.SEARCH_PROBABILITY
                     ) -> dict[int, tuple[float, list[Any]]]:
    """Active persons the engine finds for an identity query, best first: each person
    (merges followed) -> (probability, explanation) of its best matching record."""
    hits = directory(rt).lookup(s, query, top_k=top_k, min_probability=min_probability)
    owners = dict(s.execute(select(SafetyIdentityRecord.id, SafetyIdentityRecord.person_id)
                            .where(SafetyIdentityRecord.id.in_([h[0] for h in hits]))).all())
    canon = canonical_ids(s, list(set(owners.values())))
    best: dict[int, tuple[float, list[Any]]] = {}
    for rec_id, prob, why in hits:  # best first
        c = canon.get(owners.get(rec_id, -1))
        if c is not None and c not in best:
            best[c] = (prob, why)
    return best


def _suggest(rt: Runtime, s: Session, principal: Principal, person: SafetyPerson,
             query: dict[str, Any]) -> list[dict[str, Any]]:
    """Persons the engine finds likely to be this one become merge suggestions."""
    found = matching_persons(rt, s, query, min_probability=matching.SUGGEST_PROBABILITY)
    out = []
    for target, (prob, why) in found.items():
        if target == person.id:
            continue
        a, b = sorted((person.id, target))
        existing = s.scalar(select(SafetyMergeSuggestion).where(
            SafetyMergeSuggestion.person_a_id == a, SafetyMergeSuggestion.person_b_id == b))
        if existing is not None:
            continue
        sugg = SafetyMergeSuggestion(person_a_id=a, person_b_id=b, unit_id=person.unit_id,
                                     score=prob, explanation=why)
        s.add(sugg)
        s.flush()
        _event(s, principal, "safety.merge.suggested", "person", person.id, person.unit_id,
               suggestion_id=sugg.id, persons=[a, b], score=round(prob, 4))
        out.append({"id": sugg.id, "person_ids": [a, b], "score": prob, "explanation": why})
        if len(out) >= 5:
            break
    return out


def get_person(rt: Runtime, principal: Principal, person_id: int) -> dict[str, Any]:
    """A person with every record and, per attribute, which sources say what."""
    now = utcnow()
    with rt.db.read() as s:
        person = _load_person(s, person_id)
        access.require(principal, "read", _person_resource(rt, person))
        records = _records_of(s, [person.id]).get(person.id, [])
        attrs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for r in records:
            prov = {"record_id": r.id, "source": r.source, "source_ref": r.source_ref,
                    "recorded_at": as_utc(r.created_at).isoformat(), "recorded_by": r.created_by}
            for name in matching.RECORD_COLUMNS:
                value = getattr(r, name)
                if value:
                    attrs.setdefault(name, {}).setdefault(value, []).append(prov)
        members = member_ids(s, {person.id})
        flags = s.scalars(select(SafetyRiskFlag).where(
            SafetyRiskFlag.person_id.in_(list(members)))
            .order_by(SafetyRiskFlag.created_at.desc())).all()
        shown, withheld = [], 0
        for f in flags:
            if access.decide(principal, "read", _flag_resource(rt, f)):
                shown.append(flag_out(f, now))
            else:
                withheld += 1
        merges = s.scalars(select(SafetyMerge).where(or_(
            SafetyMerge.target_person_id == person.id, SafetyMerge.source_person_id == person.id))
            .order_by(SafetyMerge.id)).all()
        out = {
            "id": person.id, "status": person.status, "merged_into": person.merged_into_id,
            "version": person.version, "unit_id": person.unit_id, **_display(records),
            "attributes": {k: [{"value": v, "sources": p} for v, p in vals.items()]
                           for k, vals in attrs.items()},
            "records": [{"id": r.id, "source": r.source, "source_ref": r.source_ref,
                         **{c: getattr(r, c) for c in matching.RECORD_COLUMNS},
                         "recorded_at": as_utc(r.created_at).isoformat()} for r in records],
            "flags": shown, "flags_withheld": withheld,
            "merges": [_merge_out(m) for m in merges],
        }
    _record_read(rt, principal, "safety.person.read", person.id, person.unit_id)
    return out


def _merge_out(m: SafetyMerge) -> dict[str, Any]:
    return {"id": m.id, "target_id": m.target_person_id, "source_id": m.source_person_id,
            "record_ids": m.record_ids, "reason": m.reason, "actor_id": m.actor_id,
            "created_at": as_utc(m.created_at).isoformat(),
            "undone_at": as_utc(m.undone_at).isoformat() if m.undone_at else None}


def merge(rt: Runtime, principal: Principal, body: MergeIn) -> dict[str, Any]:
    """Move every record of ``source`` under ``target``; recorded, and undoable."""
    if body.source_id == body.target_id:
        raise BadInput("a person cannot be merged with itself", code="safety.merge.same_person")
    with rt.db.session() as s:
        # lock both rows in id order: two concurrent merges cannot deadlock or interleave
        locked = {p.id: p for p in (_load_person(s, i, lock=True)
                                    for i in sorted((body.source_id, body.target_id)))}
        target, source = locked[body.target_id], locked[body.source_id]
        for p in (target, source):
            access.require(principal, "write", _person_resource(rt, p))
        for p in (target, source):
            if p.status != "active":
                raise Conflict(
                    f"person {p.id} was already merged into person {p.merged_into_id}; "
                    f"merge with that person instead", code="safety.person.merged",
                    details={"person_id": p.id, "merged_into": p.merged_into_id})
        for p, expected in ((target, body.target_version), (source, body.source_version)):
            if expected is not None and expected != p.version:
                raise Conflict(f"person {p.id} changed since it was read (version {p.version})",
                               code="safety.person.stale",
                               details={"person_id": p.id, "version": p.version})
        record_ids = list(s.scalars(select(SafetyIdentityRecord.id).where(
            SafetyIdentityRecord.person_id == source.id).order_by(SafetyIdentityRecord.id)))
        s.execute(update(SafetyIdentityRecord).where(SafetyIdentityRecord.id.in_(record_ids))
                  .values(person_id=target.id))
        source.status, source.merged_into_id = "merged", target.id
        source.version += 1
        target.version += 1
        m = SafetyMerge(target_person_id=target.id, source_person_id=source.id,
                        record_ids=record_ids, reason=body.reason,
                        suggestion_id=body.suggestion_id, actor_id=principal.user_id)
        s.add(m)
        if body.suggestion_id is not None:
            sugg = s.get(SafetyMergeSuggestion, body.suggestion_id)
            if sugg is None or {sugg.person_a_id, sugg.person_b_id} != {target.id, source.id}:
                raise BadInput("the suggestion is not about these two persons",
                               code="safety.merge.wrong_suggestion")
            sugg.status, sugg.reviewed_by, sugg.reviewed_at = "accepted", principal.user_id, utcnow()
        s.flush()
        _event(s, principal, "safety.person.merged", "person", target.id, target.unit_id,
               merge_id=m.id, target_id=target.id, source_id=source.id, record_ids=record_ids)
        return {"merge": _merge_out(m), "target_version": target.version,
                "source_version": source.version}


def unmerge(rt: Runtime, principal: Principal, merge_id: int) -> dict[str, Any]:
    """Undo a merge: the records it moved go back, the source person is active again."""
    with rt.db.session() as s:
        m = s.scalar(select(SafetyMerge).where(SafetyMerge.id == merge_id).with_for_update())
        if m is None:
            raise NotFound(f"no merge {merge_id}", code="safety.merge.not_found")
        locked = {p.id: p for p in (_load_person(s, i, lock=True)
                                    for i in sorted((m.source_person_id, m.target_person_id)))}
        target, source = locked[m.target_person_id], locked[m.source_person_id]
        for p in (target, source):
            access.require(principal, "write", _person_resource(rt, p))
        if m.undone_at is not None:
            raise Conflict(f"merge {m.id} was already undone", code="safety.merge.already_undone")
        if target.status != "active":
            later = s.scalar(select(SafetyMerge.id).where(
                SafetyMerge.source_person_id == target.id, SafetyMerge.undone_at.is_(None)))
            raise Conflict(f"person {target.id} was merged again since (merge {later}); "
                           f"undo that merge first", code="safety.merge.undo_blocked",
                           details={"undo_first": later})
        s.execute(update(SafetyIdentityRecord).where(
            SafetyIdentityRecord.id.in_(m.record_ids),
            SafetyIdentityRecord.person_id == target.id).values(person_id=source.id))
        source.status, source.merged_into_id = "active", None
        source.version += 1
        target.version += 1
        m.undone_at, m.undone_by = utcnow(), principal.user_id
        _event(s, principal, "safety.person.unmerged", "person", target.id, target.unit_id,
               merge_id=m.id, target_id=target.id, source_id=source.id,
               record_ids=m.record_ids)
        return {"merge": _merge_out(m), "target_version": target.version,
                "source_version": source.version}


def list_suggestions(rt: Runtime, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """Pending merge suggestions on persons the reader may change, strongest first."""
    with rt.db.read() as s:
        rows = s.scalars(select(SafetyMergeSuggestion).where(
            SafetyMergeSuggestion.status == "pending",
            access.readable_units_clause(principal, "person", SafetyMergeSuggestion.unit_id))
            .order_by(SafetyMergeSuggestion.score.desc()).limit(limit * 2)).all()
        ids = {i for r in rows for i in (r.person_a_id, r.person_b_id)}
        persons = {p.id: p for p in s.scalars(select(SafetyPerson).where(SafetyPerson.id.in_(ids)))}
        recs = _records_of(s, list(ids))
        out = []
        for r in rows:
            a, b = persons[r.person_a_id], persons[r.person_b_id]
            if a.status != "active" or b.status != "active":
                continue  # overtaken by another merge
            if not all(access.decide(principal, "write", _person_resource(rt, p)) for p in (a, b)):
                continue
            out.append({"id": r.id, "score": r.score, "explanation": r.explanation,
                        "persons": [{"id": p.id, "version": p.version,
                                     **_display(recs.get(p.id, []))} for p in (a, b)]})
            if len(out) >= limit:
                break
        return out


def reject_suggestion(rt: Runtime, principal: Principal, suggestion_id: int) -> dict[str, Any]:
    with rt.db.session() as s:
        sugg = s.get(SafetyMergeSuggestion, suggestion_id)
        if sugg is None:
            raise NotFound(f"no suggestion {suggestion_id}", code="safety.suggestion.not_found")
        for pid in (sugg.person_a_id, sugg.person_b_id):
            access.require(principal, "write", _person_resource(rt, _load_person(s, pid)))
        if sugg.status != "pending":
            raise Conflict(f"suggestion already {sugg.status}",
                           code="safety.suggestion.decided")
        sugg.status, sugg.reviewed_by, sugg.reviewed_at = "rejected", principal.user_id, utcnow()
        _event(s, principal, "safety.merge.suggestion_rejected", "person", sugg.person_a_id,
               sugg.unit_id, suggestion_id=sugg.id)
        return {"id": sugg.id, "status": sugg.status}


def search_persons(rt: Runtime, principal: Principal, given_names: str, surname: str,
                   birth_date: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Persons the reader may see that the engine finds for this identity, best first."""
    norm = matching.normalise(given_names, surname, birth_date, None)
    query = matching.engine_record("?", given_names, surname, norm["birth_date"], None)
    with rt.db.session() as s:
        best = matching_persons(rt, s, query, top_k=50)
        persons = {p.id: p for p in s.scalars(select(SafetyPerson).where(
            SafetyPerson.id.in_(list(best)),
            access.readable_units_clause(principal, "person", SafetyPerson.unit_id,
                                         SafetyPerson.id)))}
        withheld = len(set(best) - set(persons))
        ranked = [i for i in best if i in persons][:limit]
        recs = _records_of(s, ranked)
        _event(s, principal, "safety.person.searched", None, None, principal.unit_id,
               results=len(ranked), withheld=withheld)
        return {"results": [{"id": i, "score": best[i][0], "explanation": best[i][1],
                             "version": persons[i].version, **_display(recs.get(i, []))}
                            for i in ranked],
                "withheld": withheld,
                "withheld_message": f"{withheld} item{'s' if withheld != 1 else ''} withheld"
                if withheld else None}


# ----------------------------------------------------------------------------- flags

def create_flag(rt: Runtime, principal: Principal, body: FlagIn) -> dict[str, Any]:
    now = utcnow()
    if body.expires_at <= now:
        raise BadInput("expires_at is in the past", code="safety.flag.expiry_past")
    if body.expires_at > now + dt.timedelta(days=MAX_FLAG_DAYS):
        raise BadInput("a flag lives at most five years; renew it on review",
                       code="safety.flag.expiry_too_far")
    kind = _flag_kind(body.category)
    access.require(principal, "write", Resource(kind, _path(rt, principal.unit_id)))
    with rt.db.session() as s:
        person_id = place_id = None
        if body.person_id is not None:
            person = _load_person(s, body.person_id)
            access.require(principal, "read", _person_resource(rt, person))
            if person.status != "active":
                raise Conflict(f"person {person.id} was merged into {person.merged_into_id}",
                               code="safety.person.merged",
                               details={"person_id": person.id,
                                        "merged_into": person.merged_into_id})
            person_id = person.id
        else:
            place_id = place_for(s, principal.unit_id, body.place).id
        f = SafetyRiskFlag(person_id=person_id, place_id=place_id, category=body.category,
                           reason=body.reason, source=body.source, author_id=principal.user_id,
                           unit_id=principal.unit_id, expires_at=body.expires_at,
                           status="pending")
        s.add(f)
        s.flush()
        _event(s, principal, "safety.flag.created", kind, f.id, f.unit_id,
               category=f.category, person_id=person_id, place_id=place_id,
               expires_at=body.expires_at.isoformat())
        return flag_out(f, now)


def review_flag(rt: Runtime, principal: Principal, flag_id: int, body: FlagReviewIn
                ) -> dict[str, Any]:
    now = utcnow()
    with rt.db.session() as s:
        f = s.scalar(select(SafetyRiskFlag).where(SafetyRiskFlag.id == flag_id).with_for_update())
        if f is None or not access.decide(principal, "read", _flag_resource(rt, f)):
            raise NotFound(f"no flag {flag_id}", code="safety.flag.not_found")
        access.require(principal, "write", Resource("risk_flag_review", _path(rt, f.unit_id),
                                                    id=str(f.id)))
        if body.version != f.version:
            raise Conflict(f"flag {f.id} changed since it was read (version {f.version})",
                           code="safety.flag.stale", details={"version": f.version})
        state = _state_of(f, now)
        if state in ("rejected", "withdrawn"):
            raise Conflict(f"flag {f.id} is {state}", code="safety.flag.closed")
        if body.decision == "approve":
            if state == "expired":
                raise Conflict("flag has expired: renew it with a new expiry",
                               code="safety.flag.expired")
            f.status = "active"
        elif body.decision == "reject":
            f.status = "rejected"
        elif body.decision == "withdraw":
            f.status = "withdrawn"
        else:
            new = body.expires_at
            if new <= now or new > now + dt.timedelta(days=MAX_FLAG_DAYS):
                raise BadInput("the new expiry must be in the future and within five years",
                               code="safety.flag.bad_expiry")
            f.expires_at = new
            f.status = "active"
        f.reviewed_by, f.reviewed_at, f.review_note = principal.user_id, now, body.note
        f.version += 1
        _event(s, principal, _review_event(body.decision), _flag_kind(f.category), f.id,
               f.unit_id, category=f.category, status=f.status,
               expires_at=as_utc(f.expires_at).isoformat())
        return flag_out(f, now)


def _review_event(decision: str) -> str:
    return {"approve": "safety.flag.approved", "reject": "safety.flag.rejected",
            "withdraw": "safety.flag.withdrawn", "renew": "safety.flag.renewed"}[decision]


def review_queue(rt: Runtime, principal: Principal, limit: int = 100) -> dict[str, Any]:
    """Flags for the reviewer: awaiting review, expiring within 30 days, or expired."""
    if not principal.has_role("commander"):
        raise Forbidden("only commanders review flags", code="access_denied")
    now = utcnow()
    with rt.db.read() as s:
        rows = s.scalars(select(SafetyRiskFlag).where(
            or_(SafetyRiskFlag.status == "pending",
                and_(SafetyRiskFlag.status == "active",
                     SafetyRiskFlag.expires_at <= now + REVIEW_HORIZON)),
            access.readable_units_clause(principal, "risk_flag_review", SafetyRiskFlag.unit_id))
            .order_by(SafetyRiskFlag.expires_at).limit(limit)).all()
        places = {p.id: p for p in s.scalars(select(SafetyPlace).where(
            SafetyPlace.id.in_({r.place_id for r in rows if r.place_id})))}
        recs = _records_of(s, list({r.person_id for r in rows if r.person_id}))
        items = []
        for f in rows:
            if not access.decide(principal, "read", _flag_resource(rt, f)):
                continue
            item = flag_out(f, now)
            state = item["state"]
            item["queue_reason"] = ("awaiting review" if f.status == "pending" and
                                    state != "expired" else
                                    item.get("state_text") or
                                    f"expires on {as_utc(f.expires_at).date().isoformat()}")
            if f.place_id:
                item["subject"] = {"kind": "place", "id": f.place_id,
                                   "address": places[f.place_id].address}
            else:
                item["subject"] = {"kind": "person", "id": f.person_id,
                                   "name": _display(recs.get(f.person_id, []))["name"]}
            items.append(item)
        return {"items": items, "generated_at": now.isoformat()}


# ----------------------------------------------------------------------------- operations

def record_operation(rt: Runtime, principal: Principal, body: OperationIn) -> dict[str, Any]:
    access.require(principal, "write", Resource("field_operation", _path(rt, principal.unit_id)))
    return _store_operation(rt, principal, body, principal.unit_id, principal.user_id)


def record_intervention(rt: Runtime, body: OperationIn, *, unit_id: int,
                        actor_id: int | None, **origin: Any) -> dict[str, Any] | None:
    """Store an intervention another module reports (a closed dispatch incident):
    the platform's own write, owned by ``unit_id`` (the incident's unit), naming no
    person. ``body.client_ref`` is its natural key: delivered twice (two nodes, a
    replayed event), it is stored once; the second delivery returns ``None``."""
    if not body.client_ref:
        raise BadInput("an intervention needs its natural key (client_ref)",
                       code="safety.operation.no_ref")
    if body.persons:
        raise BadInput("an intervention from another module names no person",
                       code="safety.operation.persons")
    try:
        return _store_operation(rt, None, body, unit_id, actor_id, **origin)
    except Conflict as exc:
        if exc.code == "safety.operation.duplicate":
            return None
        raise


def operation_by_ref(rt: Runtime, client_ref: str) -> int | None:
    """The id of the operation recorded under this natural key, if any."""
    with rt.db.read() as s:
        return s.scalar(select(SafetyOperation.id).where(SafetyOperation.client_ref == client_ref))


def _store_operation(rt: Runtime, principal: Principal | None, body: OperationIn, unit_id: int,
                     actor_id: int | None, **origin: Any) -> dict[str, Any]:
    if as_utc(body.started_at) > utcnow() + dt.timedelta(minutes=5):
        raise BadInput("started_at is in the future", code="safety.operation.future")
    if body.started_at.year < 1900:
        raise BadInput("started_at is before 1900", code="safety.operation.too_old")
    with rt.db.session() as s:
        if body.client_ref:
            dup = s.scalar(select(SafetyOperation.id).where(
                SafetyOperation.client_ref == body.client_ref))
            if dup is not None:
                raise Conflict("this operation was already recorded",
                               code="safety.operation.duplicate", details={"operation_id": dup})
        place = place_for(s, unit_id, PlaceIn(lat=body.lat, lon=body.lon, address=body.address))
        ids = [p.person_id for p in body.persons]
        canon = canonical_ids(s, ids)
        missing = [i for i in ids if i not in canon]
        if missing:
            raise NotFound(f"no person {missing[0]}", code="safety.person.not_found",
                           details={"missing": missing})
        roles: dict[int, str] = {}
        for p in body.persons:
            c = canon[p.person_id]
            if c in roles:
                raise BadInput(f"persons {p.person_id} and another listed are the same person "
                               f"({c}) after merges", code="safety.operation.same_person")
            roles[c] = p.role
        if roles and principal is not None:
            persons = s.scalars(select(SafetyPerson).where(SafetyPerson.id.in_(list(roles))))
            for person in persons:
                access.require(principal, "read", _person_resource(rt, person))
        op = SafetyOperation(
            unit_id=unit_id, place_id=place.id, started_at=body.started_at,
            ended_at=body.ended_at, nature=body.nature, outcome=body.outcome,
            summary=body.summary, force_used=body.force_used, injury=body.injury,
            units=body.units, client_ref=body.client_ref, created_by=actor_id)
        s.add(op)
        try:
            with s.begin_nested():
                s.flush()
        except IntegrityError:  # the same natural key, committed meanwhile elsewhere
            raise Conflict("this operation was already recorded",
                           code="safety.operation.duplicate") from None
        for pid, role in roles.items():
            s.add(SafetyOperationPerson(operation_id=op.id, person_id=pid, role=role))
        _event(s, actor_id, "safety.operation.recorded", "field_operation", op.id, op.unit_id,
               place_id=place.id, force_used=op.force_used, injury=op.injury,
               persons=len(roles), **origin)
        return {"id": op.id, "place_id": place.id, "persons": roles and
                [{"person_id": k, "role": v} for k, v in roles.items()] or []}


def get_operation(rt: Runtime, principal: Principal, op_id: int) -> dict[str, Any]:
    with rt.db.read() as s:
        op = s.get(SafetyOperation, op_id)
        if op is None:
            raise NotFound(f"no operation {op_id}", code="safety.operation.not_found")
        access.require(principal, "read", Resource("field_operation", _path(rt, op.unit_id),
                                                   id=str(op.id)))
        place = s.get(SafetyPlace, op.place_id)
        links = s.execute(select(SafetyOperationPerson.person_id, SafetyOperationPerson.role)
                          .where(SafetyOperationPerson.operation_id == op.id)).all()
    _record_read(rt, principal, "safety.operation.read", op.id, op.unit_id)
    return {**_op_out(op, place), "persons": [{"person_id": p, "role": r} for p, r in links]}


def _op_out(op: Any, place: Any) -> dict[str, Any]:
    """An operation (a model or a row of its columns) at its place, as JSON."""
    return {"id": op.id, "started_at": as_utc(op.started_at).isoformat(),
            "ended_at": as_utc(op.ended_at).isoformat() if op.ended_at else None,
            "nature": op.nature, "outcome": op.outcome, "summary": op.summary,
            "force_used": op.force_used, "injury": op.injury, "units": op.units,
            "place_id": op.place_id, "address": place.address if place else None,
            "lat": place.lat if place else None, "lon": place.lon if place else None}


# ----------------------------------------------------------------------------- briefing

def _geocode(rt: Runtime, address: str) -> Any:
    """The platform geocoder's best candidate for ``address`` (``None``: no match)."""
    from tocsin.geo.service import get_geo

    found = get_geo(rt).search(address, limit=1)
    return found[0] if found else None


def _briefing_location(rt: Runtime, lat: float | None, lon: float | None,
                       address: str | None) -> tuple[float, float, dict[str, Any] | None]:
    """(lat, lon, how the address was located) for a briefing.

    A point is used as given. An address is first looked up among the places
    field safety already knows (the same normalised address: where the operations
    and flags asked about were recorded), then in the platform's geocoder."""
    if lat is not None and lon is not None:
        _validate_point(lat, lon)
        return lat, lon, None
    if not address or not address.strip():
        raise BadInput("give a point (lat, lon) or an address",
                       code="safety.briefing.location_required")
    key = matching.address_key(address)
    with rt.db.read() as s:
        known = s.scalar(select(SafetyPlace).where(SafetyPlace.address_key == key))
    if known is not None:
        return known.lat, known.lon, {"by": "known_place", "label": known.address,
                                      "place_id": known.id, "approximate": False}
    c = _geocode(rt, address)
    if c is None:
        raise BadInput(f"no address matches {address!r}",
                       code="safety.briefing.address_not_found", details={"address": address})
    return c.lat, c.lon, {"by": "geocoder", "label": c.label, "kind": c.kind,
                          "score": round(float(c.score), 3),
                          "approximate": bool(c.approximate or c.kind != "address")}


def _expected_queries(expected: list[Any]) -> list[dict[str, Any]]:
    """Identity queries for the engine from (name, birth date) of the expected persons."""
    out = []
    for e in expected:
        norm = matching.normalise(e.given_names, e.surname, e.birth_date, None)
        out.append({"given_names": e.given_names, "surname": e.surname,
                    "birth_date": norm["birth_date"],
                    "query": matching.engine_record("?", e.given_names, e.surname,
                                                    norm["birth_date"], None)})
    return out


def briefing_for(runtime: Runtime, principal: Principal, lat: float | None = None,
                 lon: float | None = None, radius_m: float = 50,
                 person_ids: list[int] | None = None, *, address: str | None = None,
                 expected: list[Any] | None = None) -> dict[str, Any]:
    """What an officer must know before going to (lat, lon), or to ``address``
    (geocoded): prior operations there (recent first), risk flags on the places and
    on the persons linked to them or expected there, with reasons and sources; only
    what ``principal`` may see, and how many items were withheld. Expected persons
    are given by id (``person_ids``) or by name and birth date (``expected``, items
    with ``given_names``, ``surname``, ``birth_date``), found by the resolve engine;
    each match says how likely it is. The read is recorded as an event."""
    lat, lon, located = _briefing_location(runtime, lat, lon, address)
    if not (1 <= radius_m <= geo.MAX_RADIUS_M):
        raise BadInput(f"radius must be between 1 and {geo.MAX_RADIUS_M:.0f} m",
                       code="safety.briefing.bad_radius")
    person_ids = list(dict.fromkeys(person_ids or []))
    expected = list(expected or [])
    if len(person_ids) + len(expected) > MAX_BRIEFING_PERSONS:
        raise BadInput(f"at most {MAX_BRIEFING_PERSONS} expected persons",
                       code="safety.briefing.too_many_persons")
    queries = _expected_queries(expected)
    rt, now = runtime, utcnow()
    with rt.db.read() as s:  # no write lock while reading; the read is recorded below
        near = _places_near(s, lat, lon, radius_m, BRIEFING_PLACES + 1)
        places_truncated = len(near) > BRIEFING_PLACES
        near = near[:BRIEFING_PLACES]
        distance_of = {p.id: d for p, d in near}
        place_ids = list(distance_of)
        withheld: Counter[str] = Counter()
        ops, stats, roles_by_op, linked = _briefing_operations(s, principal, place_ids, withheld,
                                                               now)

        # --- persons: expected ones, and those linked to operations here
        matched: dict[int, dict[str, Any]] = {}  # person -> its best match among the queries
        for i, q in enumerate(queries):
            q["found"] = matching_persons(rt, s, q["query"], top_k=EXPECTED_MATCHES)
            for pid, (prob, why) in q["found"].items():
                if pid not in matched or matched[pid]["probability"] < prob:
                    matched[pid] = {"query": i, "probability": prob, "explanation": why}
        canon = canonical_ids(s, list(set(person_ids) | set(linked) | set(matched)))
        unknown = [i for i in person_ids if i not in canon]
        if unknown:
            raise NotFound(f"no person {unknown[0]}", code="safety.person.not_found",
                           details={"missing": unknown})
        subjects: dict[int, dict[str, Any]] = {}
        for pid in person_ids:
            subjects.setdefault(canon[pid], {"expected": True, "roles": set()})
        for pid, match in matched.items():
            subjects.setdefault(pid, {"expected": True, "roles": set()})["match"] = match
        for pid, roles in linked.items():
            if pid in canon:
                subj = subjects.setdefault(canon[pid], {"expected": False, "roles": set()})
                subj["roles"] |= roles
        person_units = dict(s.execute(select(SafetyPerson.id, SafetyPerson.unit_id).where(
            SafetyPerson.id.in_(list(subjects)))).all()) if subjects else {}
        readable = {pid for pid, unit in person_units.items()
                    if access.decide(principal, "read",
                                     Resource("person", _path(rt, unit), id=str(pid)))}
        withheld["persons"] = len(person_units) - len(readable)

        # --- flags on places and persons, never past their expiry
        members = member_ids(s, set(person_units)) if person_units else {}
        shown_flags = _briefing_flags(rt, s, principal, now, distance_of, members, readable,
                                      withheld)
        order = {c: i for i, c in enumerate(SEVERITY)}
        shown_flags.sort(key=lambda x: (order.get(x["category"], 99), x["state"] != "active",
                                        x["created_at"]))
        flags_truncated = len(shown_flags) > BRIEFING_FLAGS
        shown_flags = shown_flags[:BRIEFING_FLAGS]
        # --- persons listed: every expected one, then those flagged, then those of the
        # operations listed; the others (whose flags were searched all the same) counted
        flagged = {f["subject"]["id"] for f in shown_flags if f["subject"]["kind"] == "person"}
        in_listed_ops = {canon.get(pid) for o in ops for pid, _ in roles_by_op.get(o.id, [])}
        ranked = sorted(readable, key=lambda i: (not subjects[i]["expected"], i not in flagged,
                                                 i not in in_listed_ops, i))
        listed_persons = [i for i in ranked if subjects[i]["expected"]]
        listed_persons += [i for i in ranked if not subjects[i]["expected"]][
            :max(0, BRIEFING_PERSONS_LISTED - len(listed_persons))]
        names = _display_names(s, list({*listed_persons, *flagged,
                                        *(in_listed_ops & readable)} - {None}))
        for f in shown_flags:
            if f["subject"]["kind"] == "person" and f["subject"]["id"] is not None:
                f["subject"]["name"] = names.get(f["subject"]["id"], _NO_NAME)["name"]
        listed_places = [p.id for p, _d in near[:BRIEFING_PLACES_LISTED]]
        place_rows = _place_rows(s, {*listed_places, *(o.place_id for o in ops),
                                     *(f["place_id"] for f in shown_flags if f["place_id"])})
        for f in shown_flags:
            if f["subject"]["kind"] == "place":
                f["subject"]["address"] = place_rows[f["place_id"]].address

    person_out = []
    for pid in listed_persons:
        item = {"id": pid, **names.get(pid, _NO_NAME),
                "expected": subjects[pid]["expected"],
                "roles_here": sorted(subjects[pid]["roles"]),
                "flags": [f["id"] for f in shown_flags
                          if f["subject"].get("id") == pid
                          and f["subject"]["kind"] == "person"]}
        if "match" in subjects[pid]:
            item["match"] = subjects[pid]["match"]
        person_out.append(item)
    expected_out = [{"given_names": q["given_names"], "surname": q["surname"],
                     "birth_date": q["birth_date"],
                     "person_ids": [i for i in q["found"] if i in readable],
                     "withheld": sum(i not in readable for i in q["found"])}
                    for q in queries]
    op_out = []
    for op in ops:
        item = _op_out(op, place_rows[op.place_id])
        item["distance_m"] = round(distance_of[op.place_id], 1)
        item["persons"] = [
            {"id": canon.get(pid), "role": role,
             "name": names.get(canon.get(pid), _NO_NAME)["name"]
             if canon.get(pid) in readable else None}
            for pid, role in roles_by_op.get(op.id, [])]
        op_out.append(item)

    n_withheld = sum(withheld.values())
    not_shown = stats["total"] - len(op_out)  # visible, left out by the cap on the list
    summary = []
    if shown_flags:
        summary.append(", ".join(dict.fromkeys(f["label"] for f in shown_flags)))
    where = f"within {radius_m:.0f} m" + (
        f" (at the {BRIEFING_PLACES} nearest places)" if places_truncated else "")
    if stats["total"]:
        summary.append(f"{stats['total']} prior operation(s) {where}; "
                       f"force used in {stats['force_used']}, injury in {stats['injury']}")
    else:
        summary.append(f"no prior operation you may see {where}")
    result = {
        "query": {"lat": lat, "lon": lon, "radius_m": radius_m, "person_ids": person_ids,
                  "address": address, "located": located},
        "expected": expected_out,
        "generated_at": now.isoformat(),
        "summary": summary,
        "flags": shown_flags, "flags_truncated": flags_truncated,
        "operations": op_out, "operations_stats": stats,
        "operations_not_shown": {
            "count": not_shown,
            "message": (f"{not_shown} more operation{'s' if not_shown != 1 else ''} "
                        f"not shown (the {len(op_out)} most recent are listed)"
                        if not_shown else None)},
        "persons": person_out,
        "persons_not_shown": {
            "count": len(readable) - len(person_out),
            "message": (f"{len(readable) - len(person_out)} more person"
                        f"{'s' if len(readable) - len(person_out) != 1 else ''} linked to "
                        "operations here not shown (their flags are listed)"
                        if len(readable) > len(person_out) else None)},
        "places": [{"id": pid, "address": place_rows[pid].address, "lat": place_rows[pid].lat,
                    "lon": place_rows[pid].lon, "distance_m": round(distance_of[pid], 1)}
                   for pid in listed_places],
        "places_count": len(near),  # the places counted and searched for flags (the nearest
        # ``BRIEFING_PLACES`` when ``places_truncated``); ``places`` lists the nearest of them
        "places_truncated": places_truncated,
        "withheld": {"operations": withheld["operations"], "flags": withheld["flags"],
                     "persons": withheld["persons"], "total": n_withheld,
                     "message": (f"{n_withheld} item{'s' if n_withheld != 1 else ''} withheld"
                                 if n_withheld else None)},
    }
    # the read, with what was shown; nothing returns without it
    _record_read(rt, principal, "safety.briefing.read", None, principal.unit_id,
                 lat=lat, lon=lon, radius_m=radius_m, person_ids=person_ids, address=address,
                 expected=len(queries), expected_matched=sorted(matched),
                 flag_ids=[f["id"] for f in shown_flags], operation_ids=[o["id"] for o in op_out],
                 person_ids_shown=[p["id"] for p in person_out], withheld=n_withheld)
    return result


_NO_NAME: dict[str, Any] = {"name": None, "birth_date": None}
# Columns of an operation a briefing lists (``_op_out``).
_OP_COLUMNS = (SafetyOperation.id, SafetyOperation.place_id, SafetyOperation.started_at,
               SafetyOperation.ended_at, SafetyOperation.nature, SafetyOperation.outcome,
               SafetyOperation.summary, SafetyOperation.force_used, SafetyOperation.injury,
               SafetyOperation.units)
BRIEFING_LINKED_OPERATIONS = 200  # the most recent operations whose persons a briefing names


def _briefing_operations(s: Session, principal: Principal, place_ids: list[int],
                         withheld: Counter[str], now: dt.datetime
                         ) -> tuple[list[Row[Any]], dict[str, int], dict[int, list[Any]],
                                    dict[int, set[str]]]:
    """The operations at ``place_ids`` for a briefing: the most recent the reader may
    see (at most ``BRIEFING_OPERATIONS``, recent first), counts of those it may see,
    and the persons linked (``roles_by_op``, ``linked`` person -> roles) to the shown
    operations and to the most recent ones. Links of operations the reader may not see
    still carry their force-wide warnings (a dangerous dog), never the person's
    identity unless it is readable.

    Everything is read from the index on (place_id, started_at, id, unit_id, force_used,
    injury): the counts in one pass over the entries at these places (all, visible, with
    force, with injury), the most recent in ``_most_recent``, which reads only the
    entries of a recent span at each place; no operation row is read but those shown."""
    stats = {"total": 0, "force_used": 0, "injury": 0}
    if not place_ids:
        return [], stats, {}, {}
    op = SafetyOperation
    visible = access.readable_units_clause(principal, "field_operation", op.unit_id, op.id)
    at = _in_ids(s, op.place_id, place_ids)
    seen = case((visible, 1), else_=0)
    counts = (select(seen.label("seen"), op.force_used, op.injury, op.started_at).where(at)
              .subquery())
    row = s.execute(select(func.count(), func.coalesce(func.sum(counts.c.seen), 0),
                           func.coalesce(func.sum(case((counts.c.force_used, counts.c.seen),
                                                       else_=0)), 0),
                           func.coalesce(func.sum(case((counts.c.injury, counts.c.seen),
                                                       else_=0)), 0),
                           func.min(counts.c.started_at))).one()
    total_all = int(row[0])
    stats["total"], stats["force_used"], stats["injury"] = map(int, row[1:4])
    withheld["operations"] = total_all - stats["total"]
    if not total_all:
        return [], stats, {}, {}
    history = max(now - as_utc(row[4]), dt.timedelta(days=1))  # back to the oldest here
    ops: list[Row[Any]] = []
    if stats["total"]:
        shown = [i for i, in _most_recent(s, (at, visible), BRIEFING_OPERATIONS,
                                          stats["total"], now, history)]
        ops = sorted(s.execute(select(*_OP_COLUMNS).where(op.id.in_(shown))).all(),
                     key=lambda o: (o.started_at, o.id), reverse=True)
    recent = [i for i, in _most_recent(s, (at,), BRIEFING_LINKED_OPERATIONS, total_all, now,
                                       history)]
    link = SafetyOperationPerson
    roles_by_op: dict[int, list[Any]] = {}
    linked: dict[int, set[str]] = {}
    for op_id, pid, role in s.execute(
            select(link.operation_id, link.person_id, link.role)
            .where(link.operation_id.in_(list({*recent, *(o.id for o in ops)})))):
        roles_by_op.setdefault(op_id, []).append((pid, role))
        linked.setdefault(pid, set()).add(role)
    return ops, stats, roles_by_op, linked


def _most_recent(s: Session, where: tuple[Any, ...], limit: int, matching: int,
                 now: dt.datetime, history: dt.timedelta) -> list[Row[Any]]:
    """Ids of the ``limit`` most recent operations meeting ``where`` (``matching`` of
    them, over ``history`` back from now), recent first.

    Sorting every operation at hundreds of places to keep eight costs a pass over all
    of them. The most recent are looked for in a recent span instead, at each place
    only the index entries of the span: twice the span that would hold ``limit`` of
    them if they were spread evenly over the history, widened four times while it
    holds fewer (those found are then the most recent of all, everything outside the
    span being older), and the whole history last."""
    op = SafetyOperation
    q = select(op.id).where(*where).order_by(op.started_at.desc(), op.id.desc()).limit(limit)
    if matching > 4 * limit:  # few: one read of them all costs less than a miss
        span = max(history * (2 * limit / matching), RECENT_SPAN_MIN)
        while span < history:
            rows = s.execute(q.where(op.started_at >= now - span)).all()
            if len(rows) >= limit:
                return rows
            span *= 4
    return s.execute(q).all()


RECENT_SPAN_MIN = dt.timedelta(hours=1)


def _in_ids(s: Session, col: Any, ids: list[int]) -> ColumnElement[bool]:
    """``col IN ids``. On SQLite the ids go as one JSON array (``json_each``), not one
    parameter each: a briefing at 250 m asks about a thousand places in several
    statements, each of which would otherwise be rendered and bound id by id."""
    if s.get_bind().dialect.name != "sqlite":
        return col.in_(ids)
    return col.in_(select(func.json_each(json.dumps(ids)).table_valued("value").c.value))


def _display_names(s: Session, person_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``_display`` of each person, from the few columns it needs."""
    if not person_ids:
        return {}
    rec = SafetyIdentityRecord
    records: dict[int, list[Any]] = {}
    for r in s.execute(select(rec.person_id, rec.given_names, rec.surname, rec.birth_date)
                       .where(rec.person_id.in_(person_ids))
                       .order_by(rec.created_at, rec.id)):
        records.setdefault(r.person_id, []).append(r)
    return {pid: _display(rs) for pid, rs in records.items()}


def _briefing_flags(rt: Runtime, s: Session, principal: Principal, now: dt.datetime,
                    distance_of: dict[int, float], members: dict[int, int],
                    readable: set[int], withheld: Counter[str]) -> list[dict[str, Any]]:
    """Live flags on the briefing's places and persons the reader may see (the others
    counted in ``withheld``), each with its subject (a person's name is added once the
    flags shown are chosen)."""
    if not distance_of and not members:
        return []
    flag = SafetyRiskFlag
    # Found by their subject's index alone (a place or a person has few flags), and only
    # then kept if live: a filter on status or expiry in SQL could lead the planner to
    # their far less selective indexes.
    flags = [f for f in s.execute(select(flag.__table__).where(
        or_(_in_ids(s, flag.place_id, list(distance_of)) if distance_of else false(),
            flag.person_id.in_(list(members)) if members else false())))
        if f.status in ("pending", "active") and as_utc(f.expires_at) > now]
    authors = _author_names(s, {f.author_id for f in flags})
    shown: list[dict[str, Any]] = []
    for f in flags:
        if not access.decide(principal, "read", _flag_resource(rt, f)):
            withheld["flags"] += 1
            continue
        item = flag_out(f, now, author=authors.get(f.author_id))
        if f.place_id:  # its address is added once the flags shown are chosen
            item["subject"] = {"kind": "place", "id": f.place_id, "address": None,
                               "distance_m": round(distance_of[f.place_id], 1)}
        else:
            owner = members[f.person_id]
            item["subject"] = {"kind": "person", "id": owner if owner in readable else None,
                               "name": None, "withheld": owner not in readable}
        shown.append(item)
    return shown


def _author_names(s: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    from tocsin.core.identity.models import User

    return dict(s.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())
