"""Cross-case hits and standing watches.

Whenever an entity is added or changed, each of its identifying keys is looked
up in the whole country's ``case_keys`` (no access filter: deconfliction must
see everything), and persons are resolved by the entity resolution engine
(``matching``: blocking key within a year, then the engine's score). A hit is
stored for both sides and each side's investigators are told at once, with the
strength and the *other* case's owning unit and contact, never its content.
Watches are matched on the same keys, persons with the same tolerance.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, or_, select, text
from sqlalchemy.orm import Session

from tocsin.cases import matching
from tocsin.cases.keys import HIT_KINDS, person_block
from tocsin.cases.models import Case, CaseInvestigator, CaseKey, Entity, Hit, Watch, WatchAlert
from tocsin.core.database import utcnow
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Unit, User

MAX_MATCHES_PER_KEY = 200
WATCH_KINDS = set(HIT_KINDS) | {"pblk"}


# Built once: an insert runs them on every key and for every hit.
_MATCHES = (select(CaseKey.case_id, CaseKey.doc_id)
            .where(CaseKey.kind == bindparam("kind"), CaseKey.key == bindparam("key"),
                   CaseKey.case_id != bindparam("case_id"))
            .limit(MAX_MATCHES_PER_KEY))
_CARDS = (select(Case.id, Unit.code, Unit.name, Unit.phone, User.display_name, User.username)
          .select_from(Case).join(Unit, Unit.id == Case.unit_id)
          .outerjoin(User, User.id == Case.contact_user_id)
          .where(Case.id.in_(bindparam("ids", expanding=True))))
_CASES = select(Case).where(Case.id.in_(bindparam("ids", expanding=True)))
_MEMBERS = (select(CaseInvestigator.case_id, CaseInvestigator.user_id)
            .where(CaseInvestigator.case_id.in_(bindparam("ids", expanding=True))))
# both sides of an entity's hits; uq_case_hits_pair leads with entity_id
_HIT_IDS = select(Hit.id, Hit.entity_id, Hit.other_entity_id).where(
    Hit.entity_id.in_(bindparam("ids", expanding=True)),
    or_(Hit.entity_id == bindparam("entity_id"), Hit.other_entity_id == bindparam("entity_id")))
_WATCHES = select(Watch).where(Watch.active.is_(True),
                               Watch.kind.in_(bindparam("kinds", expanding=True)),
                               Watch.key.in_(bindparam("keys", expanding=True)))


def _lock_key(s: Session, kind: str, key: str) -> None:
    """On PostgreSQL, serialise writers of one key so two concurrent inserts see each other
    (SQLite writers are serialised by BEGIN IMMEDIATE already)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{kind}:{key}"})


def case_card(s: Session, case_id: int) -> dict[str, Any]:
    """What anyone may learn of a case through a hit: its unit and whom to call."""
    row = s.execute(
        select(Unit.code, Unit.name, Unit.phone, User.display_name, User.username)
        .select_from(Case).join(Unit, Unit.id == Case.unit_id)
        .outerjoin(User, User.id == Case.contact_user_id).where(Case.id == case_id)
    ).one()
    return {"unit_code": row[0], "unit_name": row[1], "unit_phone": row[2],
            "contact_name": row[3], "contact_username": row[4]}


def audience(s: Session, case: Case) -> list[int]:
    ids = set(s.scalars(select(CaseInvestigator.user_id)
                        .where(CaseInvestigator.case_id == case.id)))
    if case.contact_user_id:
        ids.add(case.contact_user_id)
    return sorted(ids)


def person_blocks(props: dict[str, Any]) -> list[str]:
    """The blocking keys a person is looked for under (none without a birth date)."""
    if not props.get("birth_date"):
        return []
    return [person_block(props["family_name"], y)
            for y in matching.birth_years(props["birth_date"])]


def _person_candidates(s: Session, case_id: int, props: dict[str, Any]) -> list[tuple[int, int]]:
    blocks = person_blocks(props)
    if not blocks:
        return []
    rows = s.execute(
        select(CaseKey.case_id, CaseKey.doc_id)
        .where(CaseKey.kind == "pblk", CaseKey.key.in_(blocks), CaseKey.case_id != case_id)
        .limit(MAX_MATCHES_PER_KEY)
    ).all()
    return [(r[0], r[1]) for r in rows]


def find_matches(s: Session, case_id: int, entity_type: str, props: dict[str, Any],
                 keys: list[tuple[str, str]]) -> dict[tuple[int, int], tuple[str, float]]:
    """{(other case, other entity): (kind, strength)} across every case of the country."""
    found: dict[tuple[int, int], tuple[str, float]] = {}
    for kind, key in keys:
        if kind not in HIT_KINDS:
            continue
        _lock_key(s, kind, key)
        rows = s.execute(_MATCHES, {"kind": kind, "key": key, "case_id": case_id}).all()
        for other_case, other_entity in rows:
            prev = found.get((other_case, other_entity))
            if prev is None or prev[1] < HIT_KINDS[kind]:
                found[(other_case, other_entity)] = (kind, HIT_KINDS[kind])
    if entity_type == "person":
        candidates = _person_candidates(s, case_id, props)
        if candidates:
            others = dict(s.execute(select(Entity.id, Entity.properties).where(
                Entity.id.in_([c[1] for c in candidates]))).all())
            strengths = matching.person_strengths(
                props, [others.get(other_entity) or {} for _case, other_entity in candidates])
            for (other_case, other_entity), strength in zip(candidates, strengths):
                if strength >= matching.THRESHOLD:
                    prev = found.get((other_case, other_entity))
                    if prev is None or prev[1] < strength:
                        found[(other_case, other_entity)] = ("person", strength)
    return found


def cards_of(s: Session, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``case_card`` of several cases in one query, with each case's unit, contact, need-to-know
    facts left out: {case id: card}."""
    rows = s.execute(_CARDS, {"ids": list(case_ids)}).all()
    return {r[0]: {"unit_code": r[1], "unit_name": r[2], "unit_phone": r[3],
                   "contact_name": r[4], "contact_username": r[5]} for r in rows}


def record_hits(s: Session, case: Case, entity_id: int, entity_type: str,
                props: dict[str, Any], keys: list[tuple[str, str]], actor_id: int | None, *,
                new: bool = False) -> tuple[list[Hit], dict[int, Case], dict[int, dict[str, Any]]]:
    """Find and store the hits of an entity; tell both sides. Returns this side's new hits,
    the other cases and their cards. ``new``: the entity was just inserted, so it has no hits
    yet. The events are emitted last, after every query of the unit of work, so that they are
    stored in one statement."""
    found = find_matches(s, case.id, entity_type, props, keys)
    if found and not new:
        existing = set(s.scalars(select(Hit.other_entity_id).where(Hit.entity_id == entity_id)))
        found = {k: v for k, v in found.items() if k[1] not in existing}
    if not found:
        return [], {}, {}
    other_ids = sorted({k[0] for k in found})
    cases = {c.id: c for c in s.scalars(_CASES, {"ids": other_ids})}
    cards = cards_of(s, [case.id, *other_ids])
    members: dict[int, set[int]] = {}
    for cid, uid in s.execute(_MEMBERS, {"ids": [case.id, *other_ids]}):
        members.setdefault(cid, set()).add(uid)

    def audience_of(c: Case) -> list[int]:
        ids = set(members.get(c.id, ()))
        if c.contact_user_id:
            ids.add(c.contact_user_id)
        return sorted(ids)

    now = utcnow()
    rows = []
    for (other_case_id, other_entity_id), (kind, strength) in found.items():
        rows.append({"case_id": case.id, "entity_id": entity_id, "other_case_id": other_case_id,
                     "other_entity_id": other_entity_id, "kind": kind, "strength": strength,
                     "created_at": now})
        rows.append({"case_id": other_case_id, "entity_id": other_entity_id,
                     "other_case_id": case.id, "other_entity_id": entity_id, "kind": kind,
                     "strength": strength, "created_at": now})
    # one executemany (RETURNING would go row by row: the table has no insert sentinel), then
    # the ids of both sides in one indexed read
    s.execute(insert(Hit), rows)
    ids = {(r[1], r[2]): r[0] for r in s.execute(_HIT_IDS, {
        "entity_id": entity_id, "ids": sorted({entity_id} | {k[1] for k in found})})}
    stored = [Hit(id=ids[(row["entity_id"], row["other_entity_id"])], **row) for row in rows]
    mine_audience = audience_of(case)
    events = []
    for mine, theirs in zip(stored[::2], stored[1::2]):
        other_case = cases[theirs.case_id]
        for hit, card, users, unit_id in (
                (mine, cards[other_case.id], mine_audience, case.unit_id),
                (theirs, cards[case.id], audience_of(other_case), other_case.unit_id)):
            events.append(DomainEvent(
                type="cases.hit.found", actor_id=actor_id, unit_id=unit_id, record_kind="case",
                record_id=str(hit.case_id), audience=users,
                payload={"hit_id": hit.id, "case_id": hit.case_id, "entity_id": hit.entity_id,
                         "kind": hit.kind, "strength": hit.strength, "other": card}))
    for event in events:
        emit(s, event)
    return stored[::2], cases, cards


def check_watches(s: Session, case: Case, entity_id: int, entity_type: str,
                  props: dict[str, Any], keys: list[tuple[str, str]], actor_id: int | None,
                  card: dict[str, Any] | None = None) -> list[WatchAlert]:
    alerts: list[WatchAlert] = []
    wanted = {(k, v) for k, v in keys if k in WATCH_KINDS and k != "pblk"}
    if entity_type == "person":  # a person watch looks as far as a hit: a year either way
        wanted |= {("pblk", b) for b in person_blocks(props)}
    if not wanted:
        return alerts
    watches = [w for w in s.scalars(_WATCHES, {
        "kinds": sorted({k for k, _ in wanted}), "keys": sorted({v for _, v in wanted})})
        if (w.kind, w.key) in wanted]
    if not watches:
        return alerts
    persons = [w for w in watches if w.kind == "pblk"]
    strengths = dict(zip((w.id for w in persons), matching.person_strengths(
        props, [w.criteria for w in persons])))
    for watch in watches:
        strength = strengths.get(watch.id, HIT_KINDS.get(watch.kind, 0.0))
        if watch.kind == "pblk" and strength < matching.THRESHOLD:
            continue
        if s.scalar(select(WatchAlert.id).where(WatchAlert.watch_id == watch.id,
                                                WatchAlert.entity_id == entity_id)):
            continue
        alert = WatchAlert(watch_id=watch.id, case_id=case.id, entity_id=entity_id,
                           strength=strength)
        s.add(alert)
        s.flush()
        alerts.append(alert)
        card = card or case_card(s, case.id)
        emit(s, DomainEvent(
            type="cases.watch.alert", actor_id=actor_id, unit_id=case.unit_id,
            record_kind="case_watch",
            record_id=str(watch.id), audience=[watch.owner_id],
            payload={"alert_id": alert.id, "watch_id": watch.id, "label": watch.label,
                     "strength": strength, "other": card}))
    return alerts
