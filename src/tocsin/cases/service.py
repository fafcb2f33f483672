"""Investigation rules: case files, entities, links, attachments, search, hits,
watches, access requests and the audit trail. No HTTP here.

Access is decided by ``core.access`` on the record kind ``case`` as declared in
``cases.policy`` (investigators and analysts of the owning unit's subtree, the
case's named investigators, explicit grants in core's ``shares``; need-to-know
for confidential and secret cases). A case the caller may not read is reported
exactly like a case that does not exist (same error, same queries), so nothing
leaks through error messages. Every search and every opened record is an event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, desc, func, insert, or_, select, update
from sqlalchemy.orm import Session

from tocsin.cases import files, graph, hits
from tocsin.cases import search as search_mod
from tocsin.cases.keys import LINK_TYPES, clean_properties, entity_keys, label_of, text_keys
from tocsin.cases.models import (
    AccessRequest,
    Attachment,
    Case,
    CaseInvestigator,
    CaseKey,
    Entity,
    Hit,
    Link,
    Watch,
    WatchAlert,
)
from tocsin.cases.policy import CLASSIFICATIONS, NEED_TO_KNOW, READ_ROLES
from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.database import utcnow
from tocsin.core.errors import BadInput, Conflict, Forbidden, NotFound
from tocsin.core.events import DomainEvent, EventRecord, emit
from tocsin.core.identity.models import Share, Unit, User
from tocsin.core.runtime import Runtime

STATUSES = ("open", "suspended", "closed")
MAX_ENTITIES_PER_CASE = 100_000
AUDIT_KINDS = ("case", "case_audit", "case_watch")


# built once: every insert runs them
_ENTITY_COUNT = (select(func.count()).select_from(Entity)
                 .where(Entity.case_id == bindparam("case_id")))
_INSERT_ENTITY = insert(Entity).returning(Entity.id)


def _not_found() -> NotFound:
    # One message for "no such case" and "not yours": no existence oracle.
    return NotFound("case not found", code="case.not_found")


class CaseService:
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.db = runtime.db

    @property
    def media_dir(self) -> Path:
        d = self.rt.settings.resolved_media_dir / "cases"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # Access ------------------------------------------------------------
    def _resource(self, s: Session, case_id: int, unit_id: int | None) -> Resource:
        return access.resource_of(s, "case", str(case_id), self.rt.units.path(unit_id))

    def _case(self, s: Session, p: Principal, case_id: int, action: str = "read") -> Case:
        """The case if ``p`` may read it (and write it when asked), else not found.
        A case one may read but not change answers 403 to a change."""
        case = s.get(Case, case_id)
        # always looked up, case or no case: the same work either way
        resource = self._resource(s, case_id, case.unit_id if case else None)
        if case is None or not access.decide(p, "read", resource):
            raise _not_found()
        if action == "write":
            access.require(p, "write", resource)
        return case

    def can_read(self, s: Session, p: Principal, case_id: int, unit_id: int) -> bool:
        return access.decide(p, "read", self._resource(s, case_id, unit_id)).allowed

    def can_write(self, s: Session, p: Principal, case_id: int, unit_id: int) -> bool:
        return access.decide(p, "write", self._resource(s, case_id, unit_id)).allowed

    def readable_cases(self, s: Session, p: Principal, unit_of: dict[int, int]) -> set[int]:
        """Which of the cases ``unit_of`` ({case id: owning unit}) ``p`` may read, decided
        together (a fixed number of queries for a list of hits or alerts)."""
        resources = access.resources_of(s, "case", {str(cid): self.rt.units.path(unit)
                                                    for cid, unit in unit_of.items()})
        return {int(rid) for rid, res in resources.items() if access.decide(p, "read", res)}

    def _audit(self, p: Principal, verb: str, case_id: int | None, **payload: Any) -> None:
        """Record a search or an opened record, once read (without the write lock): the
        caller returns what it read only after this is stored."""
        self.rt.reads.record(DomainEvent(
            type=f"cases.audit.{verb}", actor_id=p.user_id, unit_id=p.unit_id,
            record_kind="case_audit", record_id=str(case_id) if case_id is not None else None,
            audience=[], payload=payload))

    def _changed(self, s: Session, p: Principal | None, case: Case, type_: str,
                 **payload: Any) -> None:
        case.updated_at = utcnow()
        emit(s, DomainEvent(type=f"cases.{type_}", actor_id=p.user_id if p else None,
                            unit_id=case.unit_id, record_kind="case", record_id=str(case.id),
                            payload={"case_id": case.id, **payload}))

    # Cases -------------------------------------------------------------
    def create_case(self, p: Principal, *, title: str, summary: str = "",
                    unit_code: str | None = None, classification: str = "restricted",
                    reference: str | None = None) -> Case:
        if classification not in CLASSIFICATIONS:
            raise BadInput(f"classification must be one of {CLASSIFICATIONS}",
                           code="case.classification_invalid")
        with self.db.session() as s:
            unit = (s.scalar(select(Unit).where(Unit.code == unit_code)) if unit_code
                    else s.get(Unit, p.unit_id))
            if unit is None:
                raise BadInput(f"unit {unit_code!r} does not exist", code="case.unit_unknown")
            access.require(p, "write", Resource("case", unit.path))
            case = Case(reference=reference or "", title=title, summary=summary,
                        unit_id=unit.id, classification=classification,
                        contact_user_id=p.user_id, created_by=p.user_id)
            s.add(case)
            s.flush()
            if not reference:
                case.reference = f"{unit.code}-{utcnow().year}-{case.id:06d}"
            elif s.scalar(select(func.count()).select_from(Case)
                          .where(Case.reference == reference)) > 1:
                raise Conflict("a case has this reference", code="case.duplicate_reference")
            s.add(CaseInvestigator(case_id=case.id, user_id=p.user_id, role="lead"))
            self._index(s, case, "case", case.id, text_keys([title, summary]))
            self._changed(s, p, case, "case.created")
            return case

    def update_case(self, p: Principal, case_id: int, changes: dict[str, Any]) -> Case:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            if "status" in changes and changes["status"] not in STATUSES:
                raise BadInput(f"status must be one of {STATUSES}", code="case.status_invalid")
            if ("classification" in changes
                    and changes["classification"] not in CLASSIFICATIONS):
                raise BadInput(f"classification must be one of {CLASSIFICATIONS}",
                               code="case.classification_invalid")
            if changes.get("contact_username"):
                user = s.scalar(select(User).where(User.username == changes["contact_username"]))
                if user is None:
                    raise BadInput("no such user", code="case.contact_unknown")
                case.contact_user_id = user.id
            was_restricted = case.classification in NEED_TO_KNOW
            for name in ("title", "summary", "status", "classification"):
                if changes.get(name) is not None:
                    setattr(case, name, changes[name])
            if (case.classification in NEED_TO_KNOW) != was_restricted:
                access.changed(s, "case", str(case.id), actor_id=p.user_id,
                               record_unit_id=case.unit_id, what="classification")
            if "title" in changes or "summary" in changes:
                s.execute(delete(CaseKey).where(CaseKey.case_id == case.id,
                                                CaseKey.dtype == "case"))
                self._index(s, case, "case", case.id, text_keys([case.title, case.summary]))
            self._changed(s, p, case, "case.updated", fields=sorted(changes))
            return case

    def add_investigator(self, p: Principal, case_id: int, username: str,
                         role: str = "member") -> None:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise BadInput("no such user", code="case.investigator_unknown")
            if not set(user.roles or ()) & set(READ_ROLES):
                raise BadInput("a case's investigators are investigators or analysts",
                               code="case.investigator_role")
            if s.get(CaseInvestigator, (case.id, user.id)):
                raise Conflict("already an investigator of this case",
                               code="case.investigator_duplicate")
            s.add(CaseInvestigator(case_id=case.id, user_id=user.id, role=role))
            self._changed(s, p, case, "investigator.added", user_id=user.id)
            access.changed(s, "case", str(case.id), actor_id=p.user_id,
                           record_unit_id=case.unit_id, what="investigators")

    # Grants -----------------------------------------------------------
    def grant(self, p: Principal, case_id: int, *, username: str | None = None,
              unit_code: str | None = None, action: str = "read", days: int = 90
              ) -> dict[str, Any]:
        """An explicit grant by someone who may change the case: to a user, or to a unit
        and its subtree. A need-to-know case is granted to persons, or to its owning
        unit's chain of command (the owning unit or a unit above it), never wider."""
        if (username is None) == (unit_code is None):
            raise BadInput("grant to one user or one unit", code="case.grant_target")
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            user_id = unit_id = None
            if username is not None:
                user_id = s.scalar(select(User.id).where(User.username == username))
                if user_id is None:
                    raise BadInput("no such user", code="case.grant_user_unknown")
            else:
                unit = s.scalar(select(Unit).where(Unit.code == unit_code))
                if unit is None:
                    raise BadInput("no such unit", code="case.unit_unknown")
                if case.classification in NEED_TO_KNOW and not access.in_subtree(
                        self.rt.units.path(case.unit_id) or "", unit.path):
                    raise BadInput(f"a {case.classification} case is granted to persons or to "
                                   "its unit's chain of command only",
                                   code="case.grant_outside_chain")
                unit_id = unit.id
            share = access.grant(s, "case", str(case.id), user_id=user_id, unit_id=unit_id,
                                 action=action, granted_by=p.user_id,
                                 expires_at=utcnow() + dt.timedelta(days=days),
                                 record_unit_id=case.unit_id)
            return next(g for g in self._grants_of(s, case) if g["id"] == share.id)

    def revoke_grant(self, p: Principal, case_id: int, share_id: int) -> None:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            access.revoke(s, "case", str(case.id), share_id, revoked_by=p.user_id,
                          record_unit_id=case.unit_id)

    @staticmethod
    def _grants_of(s: Session, case: Case) -> list[dict[str, Any]]:
        rows = s.execute(
            select(Share, User.username, Unit.code)
            .outerjoin(User, User.id == Share.grantee_user_id)
            .outerjoin(Unit, Unit.id == Share.grantee_unit_id)
            .where(Share.record_kind == "case", Share.record_id == str(case.id))
            .order_by(Share.id)).all()
        return [{"id": sh.id, "action": sh.action, "username": un, "unit_code": uc,
                 "expires_at": sh.expires_at} for sh, un, uc in rows]

    def list_cases(self, p: Principal, *, status: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[dict[str, Any]]:
        with self.db.read() as s:
            q = (select(Case, Unit.code).join(Unit, Unit.id == Case.unit_id)
                 .where(access.readable_units_clause(p, "case", Case.unit_id, Case.id))
                 .order_by(desc(Case.updated_at)).limit(limit).offset(offset))
            if status:
                q = q.where(Case.status == status)
            out = [self._case_summary(c, code) for c, code in s.execute(q)]
        self._audit(p, "listed", None, what="cases", case_ids=[c["id"] for c in out])
        return out

    @staticmethod
    def _case_summary(c: Case, unit_code: str) -> dict[str, Any]:
        return {"id": c.id, "reference": c.reference, "title": c.title, "status": c.status,
                "classification": c.classification, "unit_id": c.unit_id,
                "unit_code": unit_code, "updated_at": c.updated_at}

    def open_case(self, p: Principal, case_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            case = self._case(s, p, case_id)
            out = self._case_file(s, p, case)
        self._audit(p, "opened", case.id, what="case")
        return out

    def _case_file(self, s: Session, p: Principal, case: Case) -> dict[str, Any]:
        unit = s.get(Unit, case.unit_id)
        investigators = s.execute(
            select(User.id, User.username, User.display_name, CaseInvestigator.role)
            .join(CaseInvestigator, CaseInvestigator.user_id == User.id)
            .where(CaseInvestigator.case_id == case.id).order_by(User.id)).all()
        entities = list(s.scalars(select(Entity).where(Entity.case_id == case.id)
                                  .order_by(Entity.id)))
        links = list(s.scalars(select(Link).where(Link.case_id == case.id).order_by(Link.id)))
        attachments = list(s.scalars(select(Attachment).where(Attachment.case_id == case.id)
                                     .order_by(Attachment.id)))
        can_write = self.can_write(s, p, case.id, case.unit_id)
        return {
            **self._case_summary(case, unit.code if unit else ""),
            "summary": case.summary, "unit_name": unit.name if unit else "",
            "contact_user_id": case.contact_user_id, "created_at": case.created_at,
            "can_write": can_write,
            "grants": self._grants_of(s, case) if can_write else [],
            "investigators": [{"user_id": i, "username": u, "display_name": d, "role": r}
                              for i, u, d, r in investigators],
            "entities": [self._entity_out(e) for e in entities],
            "links": [self._link_out(ln) for ln in links],
            "attachments": [self._attachment_out(a) for a in attachments],
            "hits": self._hits_of(s, p, [case.id]),
        }

    @staticmethod
    def _entity_out(e: Entity) -> dict[str, Any]:
        return {"id": e.id, "case_id": e.case_id, "type": e.type, "label": e.label,
                "properties": e.properties, "created_at": e.created_at,
                "updated_at": e.updated_at}

    @staticmethod
    def _link_out(ln: Link) -> dict[str, Any]:
        return {"id": ln.id, "source_id": ln.source_id, "target_id": ln.target_id,
                "type": ln.type, "start_date": ln.start_date, "end_date": ln.end_date,
                "source": ln.source, "confidence": ln.confidence}

    @staticmethod
    def _attachment_out(a: Attachment) -> dict[str, Any]:
        return {"id": a.id, "filename": a.filename, "media_type": a.media_type, "size": a.size,
                "sha256": a.sha256, "text_excerpt": a.text[:500], "created_at": a.created_at}

    def export_case(self, p: Principal, case_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            case = self._case(s, p, case_id)
            out = self._case_file(s, p, case)
            for a, full in zip(out["attachments"], s.scalars(
                    select(Attachment.text).where(Attachment.case_id == case.id)
                    .order_by(Attachment.id))):
                a["text"] = full
            out["exported_at"] = utcnow()
        self._audit(p, "exported", case.id, what="export")
        return out

    # Index -------------------------------------------------------------
    @staticmethod
    def _index(s: Session, case: Case, dtype: str, doc_id: int,
               keys: list[tuple[str, str]]) -> None:
        if keys:
            s.execute(CaseKey.__table__.insert(), [
                {"kind": k, "key": v, "unit_id": case.unit_id, "case_id": case.id,
                 "dtype": dtype, "doc_id": doc_id} for k, v in keys])

    # Entities ----------------------------------------------------------
    def add_entity(self, p: Principal, case_id: int, etype: str,
                   properties: dict[str, Any]) -> dict[str, Any]:
        props = clean_properties(etype, properties)
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            count = s.scalar(_ENTITY_COUNT, {"case_id": case.id})
            if count >= MAX_ENTITIES_PER_CASE:
                raise BadInput("this case holds too many entities", code="case.too_many")
            return self._insert_entity(s, p, case, etype, props)

    def _insert_entity(self, s: Session, p: Principal | None, case: Case, etype: str,
                       props: dict[str, Any]) -> dict[str, Any]:
        """Insert, index, find hits and watches, in as few statements as the rules allow:
        the entity and its keys in one statement each, the hits of every other case in one,
        and the events (the entity's, the hits', the alerts') emitted without a flush in
        between, so that the commit stores them in one statement with the case's change."""
        actor_id = p.user_id if p else None
        now = utcnow()
        label = label_of(etype, props)[:300]
        with s.no_autoflush:
            entity_id = s.scalar(_INSERT_ENTITY, {
                "case_id": case.id, "type": etype, "label": label, "properties": props,
                "created_by": actor_id, "created_at": now, "updated_at": now})
            keys = entity_keys(etype, props)
            self._index(s, case, etype, entity_id, keys)
            self._changed(s, p, case, "entity.added", entity_id=entity_id, entity_type=etype)
            new_hits, others, cards = hits.record_hits(s, case, entity_id, etype, props, keys,
                                                       actor_id, new=True)
            hits.check_watches(s, case, entity_id, etype, props, keys, actor_id,
                               card=cards.get(case.id))
            out = {"id": entity_id, "case_id": case.id, "type": etype, "label": label,
                   "properties": props, "created_at": now, "updated_at": now}
            out["hits"] = self._hits_out(s, p, new_hits, cases=others, cards=cards) if p else []
            _store_events(s)
        return out

    def update_entity(self, p: Principal, case_id: int, entity_id: int,
                      properties: dict[str, Any]) -> dict[str, Any]:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            entity = s.get(Entity, entity_id)
            if entity is None or entity.case_id != case.id:
                raise NotFound("entity not found", code="entity.not_found")
            props = clean_properties(entity.type, properties)
            entity.properties, entity.label = props, label_of(entity.type, props)[:300]
            entity.updated_at = utcnow()
            s.execute(delete(CaseKey).where(CaseKey.case_id == case.id,
                                            CaseKey.dtype == entity.type,
                                            CaseKey.doc_id == entity.id))
            keys = entity_keys(entity.type, props)
            self._index(s, case, entity.type, entity.id, keys)
            self._changed(s, p, case, "entity.updated", entity_id=entity.id)
            new_hits, others, cards = hits.record_hits(s, case, entity.id, entity.type, props,
                                                       keys, p.user_id)
            hits.check_watches(s, case, entity.id, entity.type, props, keys, p.user_id,
                               card=cards.get(case.id))
            out = self._entity_out(entity)
            out["hits"] = self._hits_out(s, p, new_hits, cases=others, cards=cards)
            return out

    def delete_entity(self, p: Principal, case_id: int, entity_id: int) -> None:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            entity = s.get(Entity, entity_id)
            if entity is None or entity.case_id != case.id:
                raise NotFound("entity not found", code="entity.not_found")
            s.execute(delete(CaseKey).where(CaseKey.case_id == case.id,
                                            CaseKey.dtype == entity.type,
                                            CaseKey.doc_id == entity.id))
            s.execute(delete(Hit).where(or_(Hit.entity_id == entity.id,
                                            Hit.other_entity_id == entity.id)))
            s.execute(delete(Link).where(or_(Link.source_id == entity.id,
                                             Link.target_id == entity.id)))
            s.delete(entity)
            self._changed(s, p, case, "entity.removed", entity_id=entity_id)

    # Links -------------------------------------------------------------
    def add_link(self, p: Principal, case_id: int, *, source_id: int, target_id: int,
                 type: str, start_date: str | None = None, end_date: str | None = None,
                 source: str | None = None, confidence: float = 1.0) -> dict[str, Any]:
        if type not in LINK_TYPES:
            raise BadInput(f"link type must be one of {LINK_TYPES}", code="link.type_unknown")
        if source_id == target_id:
            raise BadInput("an entity cannot be linked to itself", code="link.circular")
        if not 0.0 <= confidence <= 1.0:
            raise BadInput("confidence is between 0 and 1", code="link.confidence_invalid")
        for d in (start_date, end_date):
            if d is not None:
                try:
                    dt.date.fromisoformat(d)
                except ValueError:
                    raise BadInput("dates are YYYY-MM-DD", code="link.date_invalid") from None
        if start_date and end_date and end_date < start_date:
            raise BadInput("the link ends before it starts", code="link.date_invalid")
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            ends = {e.id: e for e in s.scalars(select(Entity).where(
                Entity.id.in_([source_id, target_id])))}
            if len(ends) != 2 or any(e.case_id != case.id for e in ends.values()):
                raise BadInput("both ends must be entities of this case", code="link.bad_end")
            dup = s.scalar(select(Link.id).where(
                or_((Link.source_id == source_id) & (Link.target_id == target_id),
                    (Link.source_id == target_id) & (Link.target_id == source_id)),
                Link.type == type))
            if dup:
                raise Conflict("these entities already have this link", code="link.duplicate")
            link = Link(case_id=case.id, source_id=source_id, target_id=target_id, type=type,
                        start_date=start_date, end_date=end_date, source=source,
                        confidence=confidence, created_by=p.user_id)
            s.add(link)
            s.flush()
            self._changed(s, p, case, "link.added", link_id=link.id)
            return self._link_out(link)

    def delete_link(self, p: Principal, case_id: int, link_id: int) -> None:
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            link = s.get(Link, link_id)
            if link is None or link.case_id != case.id:
                raise NotFound("link not found", code="link.not_found")
            s.delete(link)
            self._changed(s, p, case, "link.removed", link_id=link_id)

    # Attachments -------------------------------------------------------
    def require_write(self, p: Principal, case_id: int) -> None:
        with self.db.read() as s:
            self._case(s, p, case_id, "write")

    def add_attachment(self, p: Principal, case_id: int, filename: str,
                       upload: Path) -> dict[str, Any]:
        filename = files.check_filename(filename)
        with self.db.read() as s:  # refuse early, before reading the file
            self._case(s, p, case_id, "write")
        checked = files.check_file(upload, filename)
        target = self.media_dir / checked.sha256[:2] / checked.sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            tmp = target.with_suffix(".part")
            shutil.copyfile(upload, tmp)
            os.replace(tmp, target)
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            att = Attachment(case_id=case.id, filename=filename, media_type=checked.media_type,
                             size=checked.size, sha256=checked.sha256, text=checked.text,
                             created_by=p.user_id)
            s.add(att)
            s.flush()
            self._index(s, case, "attachment", att.id, text_keys([filename, checked.text]))
            self._changed(s, p, case, "attachment.added", attachment_id=att.id)
            return self._attachment_out(att)

    def open_attachment(self, p: Principal, case_id: int, attachment_id: int
                        ) -> tuple[Path, str, str]:
        with self.db.read() as s:
            case = self._case(s, p, case_id)
            att = s.get(Attachment, attachment_id)
            if att is None or att.case_id != case.id:
                raise NotFound("attachment not found", code="attachment.not_found")
            path = self.media_dir / att.sha256[:2] / att.sha256
            if not path.is_file():
                raise NotFound("attachment file missing", code="attachment.missing")
        self._audit(p, "opened", case.id, what="attachment", attachment_id=att.id)
        return path, att.media_type, att.filename

    @staticmethod
    def spool_upload() -> tuple[int, str]:
        return tempfile.mkstemp(prefix="tocsin-upload-")

    # Link chart --------------------------------------------------------
    def chart(self, p: Principal, case_id: int, *, entity_id: int | None = None,
              depth: int = 1, path_to: int | None = None) -> dict[str, Any]:
        with self.db.read() as s:
            case = self._case(s, p, case_id)
            entities = {e.id: e for e in s.scalars(select(Entity)
                                                   .where(Entity.case_id == case.id))}
            links = {ln.id: ln for ln in s.scalars(select(Link).where(Link.case_id == case.id))}
            adj = graph.adjacency((ln.id, ln.source_id, ln.target_id) for ln in links.values())
            node_ids, link_ids = set(entities), set(links)
            path_nodes: list[int] = []
            path_links: list[int] = []
            for eid in (entity_id, path_to):
                if eid is not None and eid not in entities:
                    raise NotFound("entity not found in this case", code="entity.not_found")
            if entity_id is not None and path_to is not None:
                found = graph.shortest_path(adj, entity_id, path_to)
                if found is None:
                    raise NotFound("no path links these two entities", code="chart.no_path")
                path_nodes, path_links = found
                node_ids, link_ids = set(path_nodes), set(path_links)
            elif entity_id is not None:
                node_ids, link_ids = graph.neighbours(adj, entity_id, depth)
            case_hits = [h for h in self._hits_of(s, p, [case.id]) if h["entity_id"] in node_ids]
            timeline = sorted(
                [{"date": ln.start_date, "end": ln.end_date, "what": "link", "id": ln.id,
                  "label": f"{entities[ln.source_id].label} {ln.type} "
                           f"{entities[ln.target_id].label}"}
                 for ln in links.values() if ln.id in link_ids and ln.start_date]
                + [{"date": e.properties.get("date"), "end": None, "what": "event", "id": e.id,
                    "label": e.label} for e in entities.values()
                   if e.id in node_ids and e.type == "event" and e.properties.get("date")],
                key=lambda x: x["date"])
            out = {
                "case_id": case.id,
                "nodes": [{"id": e.id, "type": e.type, "label": e.label,
                           "degree": len(adj.get(e.id, ()))}
                          for e in entities.values() if e.id in node_ids],
                "links": [self._link_out(ln) for ln in links.values() if ln.id in link_ids],
                "hits": case_hits, "path": {"nodes": path_nodes, "links": path_links},
                "timeline": timeline,
            }
        self._audit(p, "opened", case.id, what="chart")
        return out

    # Search ------------------------------------------------------------
    def search(self, p: Principal, criteria: search_mod.Criteria) -> dict[str, Any]:
        audited = {k: v for k, v in vars(criteria).items() if v not in (None, [], 0)}
        with self.db.read() as s:
            try:
                found = search_mod.run(s, p, criteria)
            except BadInput as exc:
                refused = exc
            else:
                refused = None
                out = self._search_results(s, found)
        if refused is not None:  # a refused search is recorded too, with why
            self._audit(p, "searched", None, criteria=audited, refused=refused.code)
            raise refused
        self._audit(p, "searched", None, criteria=audited, total=found["total"])
        return out

    def _search_results(self, s: Session, found: dict[str, Any]) -> dict[str, Any]:
        """The rows ``search.run`` found, as cards of their cases, with facets named."""
        rows = found["rows"]
        by_type: dict[str, list[int]] = {}
        for dtype, doc_id, _case_id in rows:
            by_type.setdefault(dtype, []).append(doc_id)
        cases = {c.id: (c, code) for c, code in s.execute(
            select(Case, Unit.code).join(Unit, Unit.id == Case.unit_id)
            .where(Case.id.in_({r[2] for r in rows})))}
        ents = {e.id: e for e in s.scalars(select(Entity).where(Entity.id.in_(
            [d for t, ids in by_type.items() if t not in ("attachment", "case")
             for d in ids])))}
        atts = {a.id: a for a in s.scalars(select(Attachment).where(
            Attachment.id.in_(by_type.get("attachment", []))))}
        results = []
        for dtype, doc_id, case_id in rows:
            case, code = cases[case_id]
            item = {"type": dtype, "id": doc_id, "case": self._case_summary(case, code)}
            if dtype == "attachment":
                item["label"] = atts[doc_id].filename
            elif dtype == "case":
                item["label"] = case.title
            else:
                item["label"] = ents[doc_id].label
                item["properties"] = ents[doc_id].properties
            results.append(item)
        facets = found["facets"]
        if facets.get("unit"):
            codes = dict(s.execute(select(Unit.id, Unit.code).where(
                Unit.id.in_([int(k) for k in facets["unit"]]))).all())
            facets["unit"] = {codes.get(int(k), k): v for k, v in facets["unit"].items()}
        return {"total": found["total"], "total_capped": found["total_capped"],
                "facets": facets, "results": results}

    # Hits --------------------------------------------------------------
    def _hits_out(self, s: Session, p: Principal, rows: list[Hit], *,
                  cases: dict[int, Case] | None = None,
                  cards: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Hits as their reader may see them; ``cases`` and ``cards`` of the other cases when
        the caller has them already. Access to each other case is decided once."""
        out = []
        cards = dict(cards or {})
        cases = dict(cases or {})
        other_ids = {h.other_case_id for h in rows}
        if other_ids - set(cards):
            cards.update(hits.cards_of(s, sorted(other_ids - set(cards))))
        if other_ids - set(cases):
            cases.update({c.id: c for c in s.scalars(select(Case).where(
                Case.id.in_(other_ids - set(cases))))})
        readable = self.readable_cases(s, p, {c: cases[c].unit_id for c in other_ids
                                              if c in cases})
        for h in rows:
            other = cases.get(h.other_case_id)
            item = {"id": h.id, "case_id": h.case_id, "entity_id": h.entity_id, "kind": h.kind,
                    "strength": h.strength, "created_at": h.created_at,
                    "other": dict(cards[h.other_case_id]), "other_access": False}
            if other is not None and other.id in readable:
                item["other_access"] = True
                item["other"].update(case_id=other.id, reference=other.reference,
                                     title=other.title, entity_id=h.other_entity_id)
            out.append(item)
        return out

    def _hits_of(self, s: Session, p: Principal, case_ids: list[int]) -> list[dict[str, Any]]:
        rows = list(s.scalars(select(Hit).where(Hit.case_id.in_(case_ids))
                              .order_by(desc(Hit.strength), Hit.id)))
        return self._hits_out(s, p, rows)

    def case_hits(self, p: Principal, case_id: int) -> list[dict[str, Any]]:
        with self.db.read() as s:
            case = self._case(s, p, case_id)
            out = self._hits_of(s, p, [case.id])
        self._audit(p, "opened", case.id, what="hits")
        return out

    def my_hits(self, p: Principal, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.read() as s:
            mine = select(CaseInvestigator.case_id).where(CaseInvestigator.user_id == p.user_id)
            rows = list(s.scalars(select(Hit).join(Case, Case.id == Hit.case_id).where(
                Hit.case_id.in_(mine),
                access.readable_units_clause(p, "case", Case.unit_id, Case.id))
                .order_by(desc(Hit.created_at)).limit(limit)))
            out = self._hits_out(s, p, rows)
        self._audit(p, "listed", None, what="hits", hit_ids=[h["id"] for h in out])
        return out

    # Watches -----------------------------------------------------------
    def create_watch(self, p: Principal, kind: str, value: dict[str, Any]) -> dict[str, Any]:
        from tocsin.cases import normalize as N
        from tocsin.cases.keys import person_block

        if not p.has_role("investigator", "analyst"):
            raise Forbidden("only investigators and analysts keep watches", code="access_denied")
        criteria: dict[str, Any] = {}
        raw = str(value.get("value") or "")
        if kind == "phone":
            key, label = N.phone(raw), f"phone {raw}"
        elif kind == "plate":
            key, label = N.plate(raw), f"plate {raw}"
            key = key if len(key) >= 3 else None
        elif kind == "email":
            key, label = N.email(raw), f"e-mail {raw}"
        elif kind in ("vin", "iban", "doc", "serial"):
            key, label = N.ident(raw), f"{kind} {raw}"
            key = key if len(key) >= 3 else None
        elif kind == "person":
            criteria = clean_properties("person", {
                k: value.get(k) for k in ("given_name", "family_name", "birth_date")
                if value.get(k)})
            if not criteria.get("birth_date"):
                raise BadInput("a person watch needs a family name and a birth date",
                               code="watch.invalid")
            key = person_block(criteria["family_name"], criteria["birth_date"][:4])
            kind = "pblk"
            label = f"person {criteria.get('given_name', '')} {criteria['family_name']} " \
                    f"{criteria['birth_date']}".replace("  ", " ")
        else:
            raise BadInput("watch kind must be phone, plate, email, vin, iban, doc, serial "
                           "or person", code="watch.kind_unknown")
        if not key:
            raise BadInput(f"not a valid {kind}", code="watch.invalid")
        with self.db.session() as s:
            watch = Watch(owner_id=p.user_id, kind=kind, key=key, label=label[:200],
                          criteria=criteria)
            s.add(watch)
            s.flush()
            emit(s, DomainEvent(type="cases.watch.created", actor_id=p.user_id, unit_id=p.unit_id,
                                record_kind="case_watch", record_id=str(watch.id),
                                audience=[p.user_id], payload={"watch_id": watch.id}))
            return self._watch_out(watch)

    @staticmethod
    def _watch_out(w: Watch) -> dict[str, Any]:
        return {"id": w.id, "kind": "person" if w.kind == "pblk" else w.kind, "label": w.label,
                "active": w.active, "created_at": w.created_at}

    def list_watches(self, p: Principal) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [self._watch_out(w) for w in s.scalars(
                select(Watch).where(Watch.owner_id == p.user_id, Watch.active.is_(True))
                .order_by(Watch.id))]

    def delete_watch(self, p: Principal, watch_id: int) -> None:
        with self.db.session() as s:
            watch = s.get(Watch, watch_id)
            if watch is None or watch.owner_id != p.user_id:
                raise NotFound("watch not found", code="watch.not_found")
            watch.active = False
            emit(s, DomainEvent(type="cases.watch.removed", actor_id=p.user_id, unit_id=p.unit_id,
                                record_kind="case_watch", record_id=str(watch.id),
                                audience=[p.user_id], payload={"watch_id": watch.id}))

    def watch_alerts(self, p: Principal, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.execute(select(WatchAlert, Watch.label, Case.unit_id)
                             .join(Watch, Watch.id == WatchAlert.watch_id)
                             .join(Case, Case.id == WatchAlert.case_id)
                             .where(Watch.owner_id == p.user_id)
                             .order_by(desc(WatchAlert.id)).limit(limit)).all()
            out = []
            unit_of = {alert.case_id: unit_id for alert, _label, unit_id in rows}
            cards = hits.cards_of(s, sorted(unit_of))
            readable = self.readable_cases(s, p, unit_of)
            for alert, label, _unit_id in rows:
                item = {"id": alert.id, "watch_id": alert.watch_id, "label": label,
                        "strength": alert.strength, "created_at": alert.created_at,
                        "other": dict(cards[alert.case_id]), "other_access": False}
                if alert.case_id in readable:
                    case = s.get(Case, alert.case_id)
                    item["other_access"] = True
                    item["other"].update(case_id=case.id, reference=case.reference,
                                         title=case.title, entity_id=alert.entity_id)
                out.append(item)
        self._audit(p, "listed", None, what="watch_alerts", alert_ids=[a["id"] for a in out])
        return out

    # Access requests ---------------------------------------------------
    def request_access(self, p: Principal, *, reason: str, hit_id: int | None = None,
                       alert_id: int | None = None) -> dict[str, Any]:
        if (hit_id is None) == (alert_id is None):
            raise BadInput("name one hit or one watch alert", code="access_request.target")
        with self.db.session() as s:
            if hit_id is not None:
                hit = s.get(Hit, hit_id)
                # the hit must belong to a case the requester reads: a stranger's hit id is
                # reported as missing, like any record one may not see
                if hit is None or not self.can_read(s, p, hit.case_id,
                                                    s.get(Case, hit.case_id).unit_id):
                    raise NotFound("hit not found", code="hit.not_found")
                target_id = hit.other_case_id
            else:
                row = s.execute(select(WatchAlert, Watch.owner_id)
                                .join(Watch, Watch.id == WatchAlert.watch_id)
                                .where(WatchAlert.id == alert_id)).first()
                if row is None or row[1] != p.user_id:
                    raise NotFound("alert not found", code="alert.not_found")
                target_id = row[0].case_id
            target = s.get(Case, target_id)
            if self.can_read(s, p, target.id, target.unit_id):
                raise Conflict("you can already read that case", code="access_request.has_access")
            if s.scalar(select(AccessRequest.id).where(
                    AccessRequest.case_id == target.id, AccessRequest.requester_id == p.user_id,
                    AccessRequest.status == "pending")):
                raise Conflict("a request is already pending", code="access_request.duplicate")
            req = AccessRequest(case_id=target.id, requester_id=p.user_id, reason=reason)
            s.add(req)
            s.flush()
            emit(s, DomainEvent(type="cases.access.requested", actor_id=p.user_id,
                                unit_id=target.unit_id, record_kind="case",
                                record_id=str(target.id),
                                audience=sorted(set(hits.audience(s, target)) | {p.user_id}),
                                payload={"request_id": req.id, "case_id": target.id}))
            return self._request_out(s, p, req)

    def _request_out(self, s: Session, p: Principal, req: AccessRequest) -> dict[str, Any]:
        case = s.get(Case, req.case_id)
        requester = s.get(User, req.requester_id)
        out = {"id": req.id, "status": req.status, "reason": req.reason, "note": req.note,
               "created_at": req.created_at, "decided_at": req.decided_at,
               "requester": {"user_id": requester.id, "username": requester.username,
                             "display_name": requester.display_name,
                             "unit_code": requester.unit.code},
               "case": hits.case_card(s, case.id)}
        if self.can_read(s, p, case.id, case.unit_id):
            out["case"].update(case_id=case.id, reference=case.reference, title=case.title)
        return out

    def list_requests(self, p: Principal) -> dict[str, list[dict[str, Any]]]:
        with self.db.read() as s:
            mine = list(s.scalars(select(AccessRequest).where(
                AccessRequest.requester_id == p.user_id).order_by(desc(AccessRequest.id))))
            candidates = s.execute(
                select(AccessRequest, Case.unit_id).join(Case, Case.id == AccessRequest.case_id)
                .where(access.writable_units_clause(p, "case", Case.unit_id, Case.id),
                       AccessRequest.requester_id != p.user_id)
                .order_by(desc(AccessRequest.id)).limit(500)).all()
            to_decide = [r for r, unit_id in candidates
                         if self.can_write(s, p, r.case_id, unit_id)]
            out = {"mine": [self._request_out(s, p, r) for r in mine],
                   "to_decide": [self._request_out(s, p, r) for r in to_decide]}
        self._audit(p, "listed", None, what="access_requests",
                    request_ids=[r.id for r in mine + to_decide])
        return out

    def decide_request(self, p: Principal, request_id: int, *, grant: bool,
                       note: str | None = None, days: int = 90) -> dict[str, Any]:
        with self.db.session() as s:
            req = s.get(AccessRequest, request_id)
            if req is None:
                raise NotFound("request not found", code="access_request.not_found")
            case = s.get(Case, req.case_id)
            if not self.can_write(s, p, case.id, case.unit_id):
                raise NotFound("request not found", code="access_request.not_found")
            if req.status != "pending":
                raise Conflict(f"the request is already {req.status}",
                               code="access_request.decided")
            req.status = "granted" if grant else "refused"
            req.decided_by, req.decided_at, req.note = p.user_id, utcnow(), note
            if grant:
                share = access.grant(s, "case", str(case.id), user_id=req.requester_id,
                                     action="read", granted_by=p.user_id,
                                     expires_at=utcnow() + dt.timedelta(days=days),
                                     record_unit_id=case.unit_id)
                req.share_id = share.id
            emit(s, DomainEvent(type=f"cases.access.{req.status}", actor_id=p.user_id,
                                unit_id=case.unit_id, record_kind="case", record_id=str(case.id),
                                audience=sorted({req.requester_id, p.user_id,
                                                 *hits.audience(s, case)}),
                                payload={"request_id": req.id, "case_id": case.id,
                                         "requester_id": req.requester_id}))
            return self._request_out(s, p, req)

    # Audit -------------------------------------------------------------
    def audit(self, p: Principal, *, username: str | None = None, case_id: int | None = None,
              limit: int = 200, before: int | None = None) -> list[dict[str, Any]]:
        """Who looked at what: every search, opened record and access decision of the module."""
        if not p.has_role("auditor"):
            raise Forbidden("only auditors read the audit trail", code="access_denied")
        with self.db.read() as s:
            q = (select(EventRecord, User.username, User.display_name)
                 .outerjoin(User, User.id == EventRecord.actor_id)
                 .where(EventRecord.record_kind.in_(AUDIT_KINDS),
                        access.readable_units_clause(p, "case_audit", EventRecord.unit_id))
                 .order_by(desc(EventRecord.seq)).limit(limit))
            if username:
                q = q.where(User.username == username)
            if case_id is not None:
                q = q.where(EventRecord.record_kind.in_(("case", "case_audit")),
                            EventRecord.record_id == str(case_id))
            if before is not None:
                q = q.where(EventRecord.seq < before)
            rows = s.execute(q).all()
        self._audit(p, "audit_read", case_id, username=username)
        return [{"seq": e.seq, "type": e.type, "at": e.occurred_at, "actor_id": e.actor_id,
                     "actor": un, "actor_name": dn, "record_kind": e.record_kind,
                     "record_id": e.record_id, "details": e.payload if not e.erased_at else None}
                    for e, un, dn in rows]

    # Maintenance -------------------------------------------------------
    def move_case(self, p: Principal, case_id: int, unit_code: str) -> None:
        """Hand a case to another unit (both must be in the caller's subtree)."""
        with self.db.session() as s:
            case = self._case(s, p, case_id, "write")
            unit = s.scalar(select(Unit).where(Unit.code == unit_code))
            if unit is None:
                raise BadInput("no such unit", code="case.unit_unknown")
            access.require(p, "write", Resource("case", unit.path))
            case.unit_id = unit.id
            s.execute(update(CaseKey).where(CaseKey.case_id == case.id).values(unit_id=unit.id))
            self._changed(s, p, case, "case.moved", unit_id=unit.id)


def _store_events(s: Session) -> None:
    """Write the events emitted so far in this unit of work as one executemany. The ORM would
    insert them one statement each (it wants each row's ``seq`` back, and the table has no
    insert sentinel); nothing reads their ``seq`` before the commit. Publication after the
    commit is unchanged (``emit`` queued them in the session)."""
    records = [o for o in s.new if isinstance(o, EventRecord)]
    if len(records) < 2:
        return
    order = {e.id: i for i, e in enumerate(s.info.get("pending_events", ()))}
    records.sort(key=lambda r: order.get(r.id, -1))  # in the order emitted
    cols = [c.key for c in EventRecord.__table__.columns if c.key != "seq"]
    rows = [{c: getattr(r, c) for c in cols} for r in records]
    for r in records:
        s.expunge(r)
    s.execute(insert(EventRecord), rows)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_service(runtime: Runtime) -> CaseService:
    return runtime.service("cases", CaseService)
