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

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tocsin.cases import matching
from tocsin.cases.keys import HIT_KINDS, person_block
from tocsin.cases.models import Case, CaseInvestigator, CaseKey, Entity, Hit, Watch, WatchAlert
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Unit, User

MAX_MATCHES_PER_KEY = 200
WATCH_KINDS = set(HIT_KINDS) | {"pblk"}


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
        rows = s.execute(
            select(CaseKey.case_id, CaseKey.doc_id)
            .where(CaseKey.kind == kind, CaseKey.key == key, CaseKey.case_id != case_id)
            .limit(MAX_MATCHES_PER_KEY)
        ).all()
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


def record_hits(s: Session, case: Case, entity: Entity, keys: list[tuple[str, str]],
                actor_id: int | None) -> list[Hit]:
    """Find and store the hits of ``entity``; tell both sides. Returns this side's new hits."""
    found = find_matches(s, case.id, entity.type, entity.properties, keys)
    if not found:
        return []
    existing = set(s.scalars(select(Hit.other_entity_id).where(Hit.entity_id == entity.id)))
    new: list[Hit] = []
    cases = {c.id: c for c in s.scalars(select(Case).where(
        Case.id.in_({k[0] for k in found})))}
    my_card = case_card(s, case.id)
    my_audience = audience(s, case)
    for (other_case_id, other_entity_id), (kind, strength) in found.items():
        if other_entity_id in existing:
            continue
        other_case = cases[other_case_id]
        mine = Hit(case_id=case.id, entity_id=entity.id, other_case_id=other_case_id,
                   other_entity_id=other_entity_id, kind=kind, strength=strength)
        theirs = Hit(case_id=other_case_id, entity_id=other_entity_id, other_case_id=case.id,
                     other_entity_id=entity.id, kind=kind, strength=strength)
        s.add_all([mine, theirs])
        s.flush()
        new.append(mine)
        their_card = case_card(s, other_case_id)
        for hit, card, users, unit_id in ((mine, their_card, my_audience, case.unit_id),
                                          (theirs, my_card, audience(s, other_case),
                                           other_case.unit_id)):
            emit(s, DomainEvent(
                type="cases.hit.found", actor_id=actor_id, unit_id=unit_id, record_kind="case",
                record_id=str(hit.case_id), audience=users,
                payload={"hit_id": hit.id, "case_id": hit.case_id, "entity_id": hit.entity_id,
                         "kind": kind, "strength": strength, "other": card}))
    return new


def check_watches(s: Session, case: Case, entity: Entity, keys: list[tuple[str, str]],
                  actor_id: int | None) -> list[WatchAlert]:
    alerts: list[WatchAlert] = []
    wanted = {(k, v) for k, v in keys if k in WATCH_KINDS and k != "pblk"}
    if entity.type == "person":  # a person watch looks as far as a hit: a year either way
        wanted |= {("pblk", b) for b in person_blocks(entity.properties)}
    if not wanted:
        return alerts
    watches = [w for w in s.scalars(select(Watch).where(
        Watch.active.is_(True), Watch.kind.in_({k for k, _ in wanted}),
        Watch.key.in_({v for _, v in wanted}))) if (w.kind, w.key) in wanted]
    persons = [w for w in watches if w.kind == "pblk"]
    strengths = dict(zip((w.id for w in persons), matching.person_strengths(
        entity.properties, [w.criteria for w in persons])))
    card = None
    for watch in watches:
        strength = strengths.get(watch.id, HIT_KINDS.get(watch.kind, 0.0))
        if watch.kind == "pblk" and strength < matching.THRESHOLD:
            continue
        if s.scalar(select(WatchAlert.id).where(WatchAlert.watch_id == watch.id,
                                                WatchAlert.entity_id == entity.id)):
            continue
        alert = WatchAlert(watch_id=watch.id, case_id=case.id, entity_id=entity.id,
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
