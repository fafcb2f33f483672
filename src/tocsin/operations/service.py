"""Operations rules: no HTTP here (``api.py`` and the CoT listener call this).

Who may do what:
- *read* an operation: ``core.access`` on kind ``operation`` — its owning unit's
  subtree, plus every participating unit through a core ``Share``;
- *manage* it (sectors, units, orders, decisions, alerts): its commander, its
  staff, or a user whom ``core.access`` lets write operations of the owning unit
  (shares give read, never command);
- *contribute* (reports, acknowledging orders, positions): readers; positions
  and order acknowledgements for an operation unit only by its members or managers.
Every change emits a domain event in its transaction and adds a journal entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tocsin.core import access, secrets
from tocsin.core.access import Principal, Resource
from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import BadInput, Conflict, Forbidden, NotFound
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Unit, User
from tocsin.core.runtime import Runtime
from tocsin.operations import geo
from tocsin.operations.models import (
    Alert, JournalEntry, MapPoint, Operation, OpUnit, Order, Participant, Phase, Position,
    Sector, Staff,
)

log = logging.getLogger(__name__)

KIND = "operation"
access.register_kind(KIND, read=["commander", "dispatcher", "patrol_officer", "analyst",
                                 "administrator", "auditor"], write=["commander"])

PHOTO_TYPES = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"),
               "WEBP": ("image/webp", "webp")}
MAX_PHOTO_BYTES = 10 * 1024 * 1024


def _iso(value: dt.datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


class OperationsService:
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.db = runtime.db
        self.sign_key = secrets.load_or_create(runtime.settings.resolved_keys_dir,
                                               "operations-sign.key")

    # Access --------------------------------------------------------------
    def _resource(self, s: Session, op: Operation, with_shares: bool = True) -> Resource:
        users, paths = access.shares_of(s, KIND, str(op.id)) if with_shares else ((), ())
        return Resource(KIND, self.rt.units.path(op.unit_id), id=str(op.id),
                        shared_user_ids=frozenset(users), shared_unit_paths=tuple(paths))

    def may_read(self, s: Session, p: Principal, op: Operation) -> bool:
        return self.may_manage(s, p, op) or access.decide(p, "read",
                                                          self._resource(s, op)).allowed

    def may_manage(self, s: Session, p: Principal, op: Operation) -> bool:
        if p.user_id == op.commander_user_id:
            return True
        if s.scalar(select(Staff.id).where(Staff.operation_id == op.id,
                                           Staff.user_id == p.user_id)):
            return True
        return access.decide(p, "write", self._resource(s, op, with_shares=False)).allowed

    def _op(self, s: Session, p: Principal | None, op_id: int, action: str = "read"
            ) -> Operation:
        op = s.get(Operation, op_id)
        if op is None:
            raise NotFound("no such operation", code="operation.not_found")
        if p is None:
            return op
        if action == "manage":
            if not self.may_manage(s, p, op):
                raise Forbidden("only the operation's commander and staff may do this",
                                code="access_denied")
        elif not self.may_read(s, p, op):
            raise Forbidden("not allowed to read this operation", code="access_denied")
        return op

    def check(self, p: Principal, op_id: int) -> dict[str, bool]:
        """What ``p`` may do in an operation (raises if it may not even read it)."""
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            return {"read": True, "manage": self.may_manage(s, p, op)}

    # Events and journal ----------------------------------------------------
    def _event(self, s: Session, op: Operation, type_: str, actor: Principal | None,
               payload: dict[str, Any]) -> None:
        emit(s, DomainEvent(type=f"operations.{type_}", actor_id=actor and actor.user_id,
                            unit_id=op.unit_id, record_kind=KIND, record_id=str(op.id),
                            payload={"operation_id": op.id, **payload}))

    def _journal(self, s: Session, op: Operation, kind: str, text: str,
                 actor: Principal | None, **fields: Any) -> JournalEntry:
        entry = JournalEntry(operation_id=op.id, kind=kind, text=text,
                             author_user_id=actor and actor.user_id, at=utcnow(), **fields)
        s.add(entry)
        s.flush()
        self._event(s, op, "journal.added", actor, {"entry": self.entry_out(entry)})
        return entry

    # Operations ------------------------------------------------------------
    def create_operation(self, p: Principal, data) -> dict:
        with self.db.session() as s:
            unit_id = p.unit_id
            if data.unit_code:
                unit_id = self.rt.identity.unit_by_code(s, data.unit_code).id
            access.require(p, "write", Resource(KIND, self.rt.units.path(unit_id)))
            commander = data.commander_user_id or p.user_id
            if s.get(User, commander) is None:
                raise BadInput("no such commander", code="operation.commander_unknown")
            starts = as_utc(data.starts_at) if data.starts_at else utcnow()
            ends = as_utc(data.ends_at) if data.ends_at else None
            if ends and ends <= starts:
                raise BadInput("the operation must end after it starts",
                               code="operation.bad_period")
            op = Operation(name=data.name, description=data.description, unit_id=unit_id,
                           commander_user_id=commander, starts_at=starts, ends_at=ends,
                           status="active" if starts <= utcnow() else "planned",
                           created_by=p.user_id)
            if data.perimeter is not None:
                self._set_perimeter(op, data.perimeter)
            s.add(op)
            s.flush()
            self._event(s, op, "operation.created", p, {"name": op.name})
            self._journal(s, op, "status", f"Operation {op.name} created", p)
            return self.operation_out(s, op, p)

    def _set_perimeter(self, op: Operation, geometry: dict) -> None:
        poly = geo.polygon(geometry)
        op.perimeter = geo.normalised(poly)
        op.min_lon, op.min_lat, op.max_lon, op.max_lat = geo.bbox(poly)

    def update_operation(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            changes = data.model_dump(exclude_unset=True)
            if "perimeter" in changes and data.perimeter is not None:
                self._set_perimeter(op, data.perimeter)
            if data.ends_at is not None:
                if as_utc(data.ends_at) <= as_utc(op.starts_at):
                    raise BadInput("the operation must end after it starts",
                                   code="operation.bad_period")
                op.ends_at = as_utc(data.ends_at)
            if data.status and data.status != op.status:
                self._journal(s, op, "status", f"Operation {op.status} → {data.status}", p,
                              data={"from": op.status, "to": data.status})
                op.status = data.status
                if data.status == "closed" and op.ends_at is None:
                    op.ends_at = utcnow()
            self._event(s, op, "operation.updated", p, {"fields": sorted(changes)})
            return self.operation_out(s, op, p)

    def list_operations(self, p: Principal) -> list[dict]:
        with self.db.read() as s:
            ops = s.scalars(select(Operation).where(
                or_(access.readable_units_clause(p, KIND, Operation.unit_id, Operation.id),
                    Operation.commander_user_id == p.user_id,
                    Operation.id.in_(select(Staff.operation_id).where(
                        Staff.user_id == p.user_id))))
                .order_by(Operation.starts_at.desc())).all()
            return [{"id": o.id, "name": o.name, "status": o.status,
                     "starts_at": _iso(o.starts_at), "ends_at": _iso(o.ends_at),
                     "unit_id": o.unit_id} for o in ops]

    def get_operation(self, p: Principal, op_id: int) -> dict:
        with self.db.read() as s:
            return self.operation_out(s, self._op(s, p, op_id), p)

    def operation_out(self, s: Session, op: Operation, p: Principal | None = None,
                      at: dt.datetime | None = None) -> dict:
        staff = s.execute(select(Staff, User.display_name).join(User, User.id == Staff.user_id)
                          .where(Staff.operation_id == op.id)).all()
        parts = s.execute(select(Unit.id, Unit.code, Unit.name).join(
            Participant, Participant.unit_id == Unit.id).where(
            Participant.operation_id == op.id)).all()
        commander = s.get(User, op.commander_user_id)
        units = s.scalars(select(OpUnit).where(OpUnit.operation_id == op.id)
                          .order_by(OpUnit.callsign)).all()
        return {
            "id": op.id, "name": op.name, "description": op.description, "status": op.status,
            "unit_id": op.unit_id, "unit_code": s.scalar(select(Unit.code).where(
                Unit.id == op.unit_id)),
            "commander": {"id": op.commander_user_id,
                          "name": commander.display_name if commander else None},
            "starts_at": _iso(op.starts_at), "ends_at": _iso(op.ends_at),
            "perimeter": op.perimeter,
            "staff": [{"user_id": st.user_id, "name": name, "function": st.function}
                      for st, name in staff],
            "participants": [{"unit_id": i, "code": c, "name": n} for i, c, n in parts],
            "phases": [{"id": ph.id, "name": ph.name, "starts_at": _iso(ph.starts_at),
                        "ends_at": _iso(ph.ends_at)} for ph in s.scalars(
                select(Phase).where(Phase.operation_id == op.id).order_by(Phase.starts_at))],
            "sectors": [self.sector_out(x) for x in self._current(s, Sector, op.id, at)],
            "points": [self.point_out(x) for x in self._current(s, MapPoint, op.id, at)],
            "units": [self.unit_out(u) for u in units],
            "may_manage": self.may_manage(s, p, op) if p else False,
            "my_units": [u.id for u in units if p and p.user_id in (u.member_user_ids or [])],
        }

    @staticmethod
    def _current(s: Session, model, op_id: int, at: dt.datetime | None = None):
        q = select(model).where(model.operation_id == op_id)
        if at is None:
            q = q.where(model.valid_to.is_(None))
        else:
            q = q.where(model.valid_from <= at, or_(model.valid_to.is_(None),
                                                    model.valid_to > at))
        return s.scalars(q.order_by(model.id)).all()

    @staticmethod
    def sector_out(x: Sector) -> dict:
        return {"id": x.id, "name": x.name, "commander_user_id": x.commander_user_id,
                "geometry": x.geometry, "valid_from": _iso(x.valid_from),
                "valid_to": _iso(x.valid_to)}

    @staticmethod
    def point_out(x: MapPoint) -> dict:
        return {"id": x.id, "kind": x.kind, "name": x.name, "geometry": x.geometry,
                "valid_from": _iso(x.valid_from), "valid_to": _iso(x.valid_to)}

    @staticmethod
    def unit_out(u: OpUnit) -> dict:
        return {"id": u.id, "callsign": u.callsign, "kind": u.kind, "unit_id": u.unit_id,
                "member_user_ids": u.member_user_ids or [], "sector_id": u.sector_id,
                "status": u.status, "cot_uid": u.cot_uid}

    # Command structure ---------------------------------------------------------
    def add_participant(self, p: Principal, op_id: int, unit_code: str) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            unit = self.rt.identity.unit_by_code(s, unit_code)
            if s.scalar(select(Participant.id).where(Participant.operation_id == op.id,
                                                     Participant.unit_id == unit.id)):
                raise Conflict("this unit already takes part", code="operation.participant_exists")
            s.add(Participant(operation_id=op.id, unit_id=unit.id))
            # the explicit grant that lets a unit of another region see the operation
            access.grant(s, KIND, str(op.id), unit_id=unit.id, granted_by=p.user_id,
                         record_unit_id=op.unit_id)
            self._event(s, op, "participant.added", p, {"unit_id": unit.id})
            self._journal(s, op, "status", f"Unit {unit.code} joins the operation", p,
                          data={"unit_id": unit.id})
            return {"unit_id": unit.id, "code": unit.code, "name": unit.name}

    def add_staff(self, p: Principal, op_id: int, user_id: int, function: str) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            user = s.get(User, user_id)
            if user is None:
                raise BadInput("no such user", code="operation.user_unknown")
            if s.scalar(select(Staff.id).where(Staff.operation_id == op.id,
                                               Staff.user_id == user_id)):
                raise Conflict("already on the staff", code="operation.staff_exists")
            s.add(Staff(operation_id=op.id, user_id=user_id, function=function))
            access.grant(s, KIND, str(op.id), user_id=user_id, granted_by=p.user_id,
                         record_unit_id=op.unit_id)
            self._event(s, op, "staff.added", p, {"user_id": user_id})
            self._journal(s, op, "status", f"{user.display_name} joins the staff as {function}",
                          p)
            return {"user_id": user_id, "function": function}

    def add_phase(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            if data.ends_at and as_utc(data.ends_at) <= as_utc(data.starts_at):
                raise BadInput("a phase must end after it starts", code="operation.bad_period")
            ph = Phase(operation_id=op.id, name=data.name, starts_at=as_utc(data.starts_at),
                       ends_at=as_utc(data.ends_at) if data.ends_at else None)
            s.add(ph)
            s.flush()
            self._event(s, op, "phase.added", p, {"phase_id": ph.id})
            self._journal(s, op, "status", f"Phase planned: {ph.name}", p)
            return {"id": ph.id, "name": ph.name, "starts_at": _iso(ph.starts_at),
                    "ends_at": _iso(ph.ends_at)}

    def create_sector(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            poly = geo.polygon(data.geometry)
            for other in self._current(s, Sector, op.id):
                if geo.overlaps(poly, geo.to_shape(other.geometry)):
                    raise Conflict(f"the sector overlaps sector {other.name!r}",
                                   code="sector.overlap",
                                   details={"sector_id": other.id, "name": other.name})
            if data.commander_user_id is not None and s.get(User, data.commander_user_id) is None:
                raise BadInput("no such sector commander", code="sector.commander_unknown")
            sec = Sector(operation_id=op.id, name=data.name, geometry=geo.normalised(poly),
                         commander_user_id=data.commander_user_id, valid_from=utcnow())
            sec.min_lon, sec.min_lat, sec.max_lon, sec.max_lat = geo.bbox(poly)
            s.add(sec)
            s.flush()
            self._event(s, op, "sector.created", p, {"sector": self.sector_out(sec)})
            self._journal(s, op, "sector", f"Sector {sec.name} drawn", p, sector_id=sec.id)
            return self.sector_out(sec)

    def retire_sector(self, p: Principal, op_id: int, sector_id: int) -> None:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            sec = s.get(Sector, sector_id)
            if sec is None or sec.operation_id != op.id or sec.valid_to is not None:
                raise NotFound("no such current sector", code="sector.not_found")
            sec.valid_to = utcnow()
            for u in s.scalars(select(OpUnit).where(OpUnit.sector_id == sec.id)):
                u.sector_id = None
            self._event(s, op, "sector.retired", p, {"sector_id": sec.id})
            self._journal(s, op, "sector", f"Sector {sec.name} removed", p, sector_id=sec.id)

    def create_point(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            geom, norm = geo.point_or_polygon(data.geometry)
            if data.kind == "restricted_zone" and norm["type"] != "Polygon":
                raise BadInput("a restricted zone is an area (Polygon)",
                               code="point.zone_needs_polygon")
            pt = MapPoint(operation_id=op.id, kind=data.kind, name=data.name, geometry=norm,
                          valid_from=utcnow())
            pt.min_lon, pt.min_lat, pt.max_lon, pt.max_lat = geo.bbox(geom)
            s.add(pt)
            s.flush()
            self._event(s, op, "point.created", p, {"point": self.point_out(pt)})
            self._journal(s, op, "sector", f"{data.kind.replace('_', ' ').title()} "
                                           f"{pt.name} placed", p)
            return self.point_out(pt)

    def retire_point(self, p: Principal, op_id: int, point_id: int) -> None:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            pt = s.get(MapPoint, point_id)
            if pt is None or pt.operation_id != op.id or pt.valid_to is not None:
                raise NotFound("no such current point", code="point.not_found")
            pt.valid_to = utcnow()
            self._event(s, op, "point.retired", p, {"point_id": pt.id})
            self._journal(s, op, "sector", f"{pt.name} removed", p)

    # Operation units ------------------------------------------------------------
    def create_unit(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            unit = self.rt.identity.unit_by_code(s, data.unit_code)
            members = set(data.member_user_ids)
            if data.member_usernames:
                found_names = dict(s.execute(select(User.username, User.id).where(
                    User.username.in_(data.member_usernames))).all())
                unknown = sorted(set(data.member_usernames) - set(found_names))
                if unknown:
                    raise BadInput("unknown member usernames", code="unit.member_unknown",
                                   details={"unknown": unknown})
                members |= set(found_names.values())
            members = sorted(members)
            if members:
                found = set(s.scalars(select(User.id).where(User.id.in_(members))))
                if found != set(members):
                    raise BadInput("unknown member user ids",
                                   code="unit.member_unknown",
                                   details={"unknown": sorted(set(members) - found)})
            if s.scalar(select(OpUnit.id).where(OpUnit.operation_id == op.id,
                                                OpUnit.callsign == data.callsign)):
                raise Conflict("callsign already used in this operation",
                               code="unit.callsign_taken")
            if data.cot_uid and s.scalar(select(OpUnit.id).where(
                    OpUnit.operation_id == op.id, OpUnit.cot_uid == data.cot_uid)):
                raise Conflict("TAK uid already used in this operation",
                               code="unit.cot_uid_taken")
            # the unit takes part: its officers (of any region) must see the operation
            if not s.scalar(
                    select(Participant.id).where(Participant.operation_id == op.id,
                                                 Participant.unit_id == unit.id)):
                s.add(Participant(operation_id=op.id, unit_id=unit.id))
                access.grant(s, KIND, str(op.id), unit_id=unit.id, granted_by=p.user_id,
                             record_unit_id=op.unit_id)
            u = OpUnit(operation_id=op.id, callsign=data.callsign, kind=data.kind,
                       unit_id=unit.id, member_user_ids=members, cot_uid=data.cot_uid)
            s.add(u)
            s.flush()
            self._event(s, op, "unit.created", p, {"unit": self.unit_out(u)})
            self._journal(s, op, "status", f"{u.callsign} ({unit.code}) joins", p,
                          op_unit_id=u.id)
            return self.unit_out(u)

    def _unit(self, s: Session, op: Operation, op_unit_id: int) -> OpUnit:
        u = s.get(OpUnit, op_unit_id)
        if u is None or u.operation_id != op.id:
            raise NotFound("no such unit in this operation", code="unit.not_found")
        return u

    def _sector(self, s: Session, op: Operation, sector_id: int) -> Sector:
        sec = s.get(Sector, sector_id)
        if sec is None or sec.operation_id != op.id or sec.valid_to is not None:
            raise NotFound("no such current sector in this operation", code="sector.not_found")
        return sec

    def assign_unit(self, p: Principal, op_id: int, op_unit_id: int, sector_id: int | None,
                    reassign: bool = False) -> dict:
        """Put a unit in a sector. A unit is in one sector at most: assigning it to a
        second one is refused (409 ``unit.already_assigned``) unless ``reassign``."""
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            u = self._unit(s, op, op_unit_id)
            if sector_id is not None:
                sec = self._sector(s, op, sector_id)
                if u.sector_id not in (None, sec.id) and not reassign:
                    current = s.get(Sector, u.sector_id)
                    raise Conflict(f"{u.callsign} is already assigned to sector "
                                   f"{current.name if current else u.sector_id}; "
                                   "send reassign=true to move it",
                                   code="unit.already_assigned",
                                   details={"sector_id": u.sector_id})
                text = f"{u.callsign} assigned to sector {sec.name}"
            else:
                text = f"{u.callsign} released from its sector"
            previous = u.sector_id
            u.sector_id = sector_id
            self._event(s, op, "unit.assigned", p, {"op_unit_id": u.id, "sector_id": sector_id,
                                                     "previous_sector_id": previous})
            self._journal(s, op, "assignment", text, p, op_unit_id=u.id, sector_id=sector_id,
                          data={"previous_sector_id": previous})
            return self.unit_out(u)

    def set_unit_status(self, p: Principal, op_id: int, op_unit_id: int, status: str) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id)
            u = self._unit(s, op, op_unit_id)
            if p.user_id not in (u.member_user_ids or []) and not self.may_manage(s, p, op):
                raise Forbidden("only the unit's members or the staff may change its status",
                                code="access_denied")
            old, u.status = u.status, status
            self._event(s, op, "unit.status", p, {"op_unit_id": u.id, "status": status})
            self._journal(s, op, "status", f"{u.callsign}: {old} → {status}", p,
                          op_unit_id=u.id, sector_id=u.sector_id,
                          data={"from": old, "to": status})
            return self.unit_out(u)

    # Journal ---------------------------------------------------------------------
    @staticmethod
    def entry_out(e: JournalEntry) -> dict:
        return {"id": e.id, "at": _iso(e.at), "kind": e.kind, "author_user_id": e.author_user_id,
                "sector_id": e.sector_id, "op_unit_id": e.op_unit_id, "text": e.text,
                "rationale": e.rationale, "lat": e.lat, "lon": e.lon, "photo": e.photo_sha256,
                "data": e.data, "supersedes_id": e.supersedes_id, "signature": e.signature}

    def add_entry(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id)
            if (data.lat is None) != (data.lon is None):
                raise BadInput("give both lat and lon, or neither", code="entry.bad_location")
            if data.op_unit_id is not None:
                u = self._unit(s, op, data.op_unit_id)
                if p.user_id not in (u.member_user_ids or []) and not self.may_manage(s, p, op):
                    raise Forbidden("you report for your own unit only", code="access_denied")
            if data.sector_id is not None:
                self._sector(s, op, data.sector_id)
            photo_type = None
            if data.photo:
                photo_type = self._photo_type(op.id, data.photo)
            entry = self._journal(s, op, data.kind, data.text, p, sector_id=data.sector_id,
                                  op_unit_id=data.op_unit_id, lat=data.lat, lon=data.lon,
                                  photo_sha256=data.photo, photo_type=photo_type)
            return self.entry_out(entry)

    def _signature(self, payload: dict) -> str:
        canon = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return "hmac-sha256:" + hmac.new(self.sign_key, canon, hashlib.sha256).hexdigest()

    @staticmethod
    def _signed_payload(e: JournalEntry, session_id: str | None) -> dict:
        return {"operation_id": e.operation_id, "author_user_id": e.author_user_id,
                "session_id": session_id, "at": _iso(e.at), "text": e.text,
                "rationale": e.rationale, "sector_id": e.sector_id,
                "supersedes_id": e.supersedes_id}

    def decide(self, p: Principal, op_id: int, data) -> dict:
        """Record a decision, signed with its author's identity and session.

        Decisions are never edited: a new decision names the one it supersedes.
        """
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            if data.sector_id is not None:
                self._sector(s, op, data.sector_id)
            if data.supersedes_id is not None:
                old = s.get(JournalEntry, data.supersedes_id)
                if old is None or old.operation_id != op.id or old.kind != "decision":
                    raise BadInput("supersedes_id must name a decision of this operation",
                                   code="decision.supersedes_unknown")
                if s.scalar(select(JournalEntry.id).where(
                        JournalEntry.supersedes_id == old.id)):
                    raise Conflict("that decision is already superseded",
                                   code="decision.already_superseded")
            entry = JournalEntry(operation_id=op.id, kind="decision", text=data.text,
                                 rationale=data.rationale, author_user_id=p.user_id,
                                 at=utcnow().replace(microsecond=0), sector_id=data.sector_id,
                                 supersedes_id=data.supersedes_id,
                                 data={"session_id": p.session_id})
            entry.signature = self._signature(self._signed_payload(entry, p.session_id))
            s.add(entry)
            s.flush()
            self._event(s, op, "journal.added", p, {"entry": self.entry_out(entry)})
            return self.entry_out(entry)

    def verify_decision(self, p: Principal, op_id: int, entry_id: int) -> dict:
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            e = s.get(JournalEntry, entry_id)
            if e is None or e.operation_id != op.id or e.kind != "decision":
                raise NotFound("no such decision", code="decision.not_found")
            expected = self._signature(self._signed_payload(e, (e.data or {}).get("session_id")))
            superseded_by = s.scalar(select(JournalEntry.id).where(
                JournalEntry.supersedes_id == e.id))
            return {"id": e.id, "valid": hmac.compare_digest(expected, e.signature or ""),
                    "author_user_id": e.author_user_id, "superseded_by": superseded_by}

    def journal(self, p: Principal, op_id: int, *, kinds: Iterable[str] | None = None,
                sector_id: int | None = None, op_unit_id: int | None = None,
                since: dt.datetime | None = None, until: dt.datetime | None = None,
                limit: int = 500) -> list[dict]:
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            return [self.entry_out(e) for e in self._entries(s, op.id, kinds, sector_id,
                                                             op_unit_id, since, until, limit)]

    @staticmethod
    def _entries(s: Session, op_id: int, kinds=None, sector_id=None, op_unit_id=None,
                 since=None, until=None, limit=500) -> list[JournalEntry]:
        q = select(JournalEntry).where(JournalEntry.operation_id == op_id)
        if kinds:
            q = q.where(JournalEntry.kind.in_(list(kinds)))
        if sector_id is not None:
            q = q.where(JournalEntry.sector_id == sector_id)
        if op_unit_id is not None:
            q = q.where(JournalEntry.op_unit_id == op_unit_id)
        if since is not None:
            q = q.where(JournalEntry.at >= since)
        if until is not None:
            q = q.where(JournalEntry.at <= until)
        rows = s.scalars(q.order_by(JournalEntry.at.desc(), JournalEntry.id.desc())
                         .limit(limit)).all()
        return list(reversed(rows))

    # Orders ----------------------------------------------------------------------
    @staticmethod
    def order_out(o: Order, now: dt.datetime | None = None) -> dict:
        now = now or utcnow()
        overdue = bool(o.due_at and o.status not in ("completed", "cancelled")
                       and as_utc(o.due_at) < now)
        return {"id": o.id, "text": o.text, "op_unit_id": o.op_unit_id, "sector_id": o.sector_id,
                "due_at": _iso(o.due_at), "status": o.status, "overdue": overdue,
                "issued_by": o.issued_by, "issued_at": _iso(o.issued_at),
                "acknowledged_by": o.acknowledged_by, "acknowledged_at": _iso(o.acknowledged_at),
                "completed_by": o.completed_by, "completed_at": _iso(o.completed_at)}

    def create_order(self, p: Principal, op_id: int, data) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            if (data.op_unit_id is None) == (data.sector_id is None):
                raise BadInput("an order goes to one unit or one sector",
                               code="order.bad_target")
            target = (self._unit(s, op, data.op_unit_id).callsign if data.op_unit_id
                      else "sector " + self._sector(s, op, data.sector_id).name)
            o = Order(operation_id=op.id, op_unit_id=data.op_unit_id, sector_id=data.sector_id,
                      text=data.text, due_at=as_utc(data.due_at) if data.due_at else None,
                      issued_by=p.user_id, issued_at=utcnow())
            s.add(o)
            s.flush()
            self._event(s, op, "order.issued", p, {"order": self.order_out(o)})
            self._journal(s, op, "order", f"Order to {target}: {o.text}", p,
                          op_unit_id=o.op_unit_id, sector_id=o.sector_id,
                          data={"order_id": o.id, "due_at": _iso(o.due_at)})
            return self.order_out(o)

    def _may_answer(self, s: Session, p: Principal, op: Operation, o: Order) -> bool:
        if self.may_manage(s, p, op):
            return True
        if o.op_unit_id is not None:
            u = s.get(OpUnit, o.op_unit_id)
            return p.user_id in (u.member_user_ids or [])
        sec = s.get(Sector, o.sector_id)
        if sec and sec.commander_user_id == p.user_id:
            return True
        return bool(s.scalar(select(func.count()).select_from(OpUnit).where(
            OpUnit.sector_id == o.sector_id)) and any(
            p.user_id in (u.member_user_ids or []) for u in s.scalars(
                select(OpUnit).where(OpUnit.sector_id == o.sector_id))))

    def advance_order(self, p: Principal, op_id: int, order_id: int, to: str) -> dict:
        with self.db.session() as s:
            op = self._op(s, p, op_id)
            o = s.get(Order, order_id)
            if o is None or o.operation_id != op.id:
                raise NotFound("no such order", code="order.not_found")
            if not self._may_answer(s, p, op, o):
                raise Forbidden("this order is not addressed to you", code="access_denied")
            allowed = {"acknowledged": ("issued",), "completed": ("issued", "acknowledged"),
                       "cancelled": ("issued", "acknowledged")}
            if to == "cancelled" and not self.may_manage(s, p, op):
                raise Forbidden("only the staff may cancel an order", code="access_denied")
            if o.status not in allowed[to]:
                raise Conflict(f"the order is {o.status}; it cannot become {to}",
                               code="order.bad_transition")
            now = utcnow()
            o.status = to
            if to == "acknowledged":
                o.acknowledged_by, o.acknowledged_at = p.user_id, now
            elif to == "completed":
                o.completed_by, o.completed_at = p.user_id, now
                if o.acknowledged_at is None:
                    o.acknowledged_by, o.acknowledged_at = p.user_id, now
            self._event(s, op, f"order.{to}", p, {"order": self.order_out(o)})
            self._journal(s, op, "order", f"Order #{o.id} {to}", p, op_unit_id=o.op_unit_id,
                          sector_id=o.sector_id, data={"order_id": o.id, "status": to})
            return self.order_out(o)

    def orders(self, p: Principal, op_id: int, overdue_only: bool = False) -> list[dict]:
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            now = utcnow()
            out = [self.order_out(o, now) for o in s.scalars(
                select(Order).where(Order.operation_id == op.id).order_by(Order.id))]
            return [o for o in out if o["overdue"]] if overdue_only else out

    # Photos --------------------------------------------------------------------------
    def photo_dir(self, op_id: int) -> Path:
        return self.rt.settings.resolved_media_dir / "operations" / str(op_id)

    def store_photo(self, p: Principal, op_id: int, body: bytes) -> dict:
        from PIL import Image, UnidentifiedImageError

        with self.db.read() as s:
            self._op(s, p, op_id)
        if not body:
            raise BadInput("empty upload", code="photo.empty")
        if len(body) > MAX_PHOTO_BYTES:
            raise BadInput("photo over 10 MB", code="photo.too_large")
        try:
            with Image.open(io.BytesIO(body)) as img:
                fmt = img.format
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise BadInput("not a JPEG, PNG or WebP image", code="photo.not_an_image") from None
        if fmt not in PHOTO_TYPES:
            raise BadInput(f"{fmt} images are not accepted; send JPEG, PNG or WebP",
                           code="photo.not_an_image")
        sha = hashlib.sha256(body).hexdigest()
        d = self.photo_dir(op_id)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{sha}.{PHOTO_TYPES[fmt][1]}"
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(body)
            tmp.replace(path)
        return {"photo": sha, "content_type": PHOTO_TYPES[fmt][0], "size": len(body)}

    def _photo_path(self, op_id: int, sha: str) -> Path | None:
        for _fmt, (_mime, ext) in PHOTO_TYPES.items():
            path = self.photo_dir(op_id) / f"{sha}.{ext}"
            if path.is_file():
                return path
        return None

    def _photo_type(self, op_id: int, sha: str) -> str:
        path = self._photo_path(op_id, sha)
        if path is None:
            raise BadInput("upload the photo to this operation first", code="photo.unknown")
        return path.suffix[1:]

    def photo(self, p: Principal, op_id: int, sha: str) -> tuple[Path, str]:
        with self.db.read() as s:
            self._op(s, p, op_id)
        path = self._photo_path(op_id, sha)
        if path is None:
            raise NotFound("no such photo", code="photo.not_found")
        mime = {ext: m for m, ext in PHOTO_TYPES.values()}[path.suffix[1:]]
        return path, mime

    # Alerts ---------------------------------------------------------------------------
    def publish_alert(self, p: Principal, op_id: int, data) -> dict:
        from tocsin.operations import cap

        with self.db.session() as s:
            op = self._op(s, p, op_id, "manage")
            area_shape = geo.polygon(data.area) if data.area is not None else None
            for uid in data.op_unit_ids:
                self._unit(s, op, uid)
            if area_shape is None and not data.op_unit_ids:
                raise BadInput("an alert goes to an area, to units, or both",
                               code="alert.no_audience")
            photo = photo_path = None
            if data.photo:
                photo_path = self._photo_path(op.id, data.photo)
                if photo_path is None:
                    raise BadInput("upload the photo to this operation first",
                                   code="photo.unknown")
                photo = (photo_path.read_bytes(), {e: m for m, e in PHOTO_TYPES.values()}[
                    photo_path.suffix[1:]])
            targets = self.alert_targets(s, op, data.op_unit_ids, area=area_shape is not None)
            author = s.get(User, p.user_id)
            callsigns = [s.get(OpUnit, u).callsign for u in data.op_unit_ids]
            sent = utcnow().replace(microsecond=0)
            alert = Alert(identifier="", operation_id=op.id, kind=data.kind,
                          headline=data.headline, description=data.description,
                          area=geo.normalised(area_shape) if area_shape else None,
                          op_unit_ids=list(data.op_unit_ids), photo_sha256=data.photo,
                          photo_type=photo[1] if photo else None, cap_xml="",
                          sent_by=p.user_id, sent_at=sent)
            s.add(alert)
            s.flush()
            alert.identifier = f"tocsin-op{op.id}-alert{alert.id}"
            alert.cap_xml = cap.build(
                identifier=alert.identifier, sender="tocsin@police.invalid", sent=sent,
                kind=data.kind, headline=data.headline, description=data.description,
                instruction=data.instruction, sender_name=author.display_name,
                area=alert.area, area_desc=op.name, addresses=callsigns,
                expires=sent + dt.timedelta(minutes=data.expires_minutes), photo=photo,
                operation_name=op.name)
            cap.validate(alert.cap_xml)
            out = self.alert_out(alert)
            self._event(s, op, "alert.published", p, {"alert": out})
            self._journal(s, op, "alert", f"Alert ({data.kind.replace('_', ' ')}): "
                                          f"{data.headline}", p, photo_sha256=data.photo,
                          photo_type=alert.photo_type,
                          data={"alert_id": alert.id, "identifier": alert.identifier})
        from tocsin.operations import integrations

        out["messenger"] = integrations.alert_to_messenger(
            self.rt, p, {**out, "operation_id": op_id}, unit_codes=targets,
            photo=photo_path)
        return out

    def alert_targets(self, s: Session, op: Operation, op_unit_ids: Iterable[int], *,
                      area: bool) -> list[str]:
        """Core unit codes an alert reaches in the messenger, which addresses units, not
        places: the units of the addressed operation units, and for an area alert
        every unit taking part in the operation (the ones that may be in the area;
        the area itself travels with the alert)."""
        ids = [self._unit(s, op, u).unit_id for u in op_unit_ids]
        if area:
            ids += list(s.scalars(select(Participant.unit_id)
                                  .where(Participant.operation_id == op.id))) or [op.unit_id]
        codes = dict(s.execute(select(Unit.id, Unit.code).where(Unit.id.in_(ids))).all())
        return list(dict.fromkeys(codes[i] for i in ids if i in codes))

    @staticmethod
    def alert_out(a: Alert) -> dict:
        return {"id": a.id, "identifier": a.identifier, "kind": a.kind, "headline": a.headline,
                "description": a.description, "area": a.area, "op_unit_ids": a.op_unit_ids,
                "photo": a.photo_sha256, "sent_at": _iso(a.sent_at), "sent_by": a.sent_by}

    def alerts(self, p: Principal, op_id: int) -> list[dict]:
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            return [self.alert_out(a) for a in s.scalars(
                select(Alert).where(Alert.operation_id == op.id).order_by(Alert.id))]

    def alert_cap(self, p: Principal, op_id: int, alert_id: int) -> str:
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            a = s.get(Alert, alert_id)
            if a is None or a.operation_id != op.id:
                raise NotFound("no such alert", code="alert.not_found")
            return a.cap_xml

    # Incidents from dispatch -------------------------------------------------------------
    def record_incident(self, event: DomainEvent) -> list[int]:
        """A dispatch incident event inside an active operation's area becomes a journal
        entry (once, whichever node hears it first). Returns the operations touched."""
        from tocsin.operations.integrations import incident_location

        loc = incident_location(event)
        if loc is None:
            return []
        lat, lon = loc
        touched = []
        with self.db.read() as s:
            candidates = s.scalars(select(Operation).where(Operation.status == "active")).all()
            areas = {op.id: self._area(s, op) for op in candidates}
        for op in candidates:
            area = areas[op.id]
            if area is None or not area.covers(geo.Point(lon, lat)):
                continue
            verb = event.type.rsplit(".", 1)[-1]
            summary = event.payload.get("summary") or event.payload.get("title") or \
                event.payload.get("nature") or ""
            try:
                with self.db.session() as s:
                    op2 = s.get(Operation, op.id)
                    self._journal(s, op2, "incident",
                                  f"Dispatch incident {event.record_id} {verb}"
                                  + (f": {summary}" if summary else ""), None, lat=lat, lon=lon,
                                  source_ref=f"bus:{event.id}",
                                  data={"incident_id": event.record_id, "event": event.type,
                                        "priority": event.payload.get("priority"),
                                        "status": event.payload.get("status", verb)})
                touched.append(op.id)
            except IntegrityError:  # another node recorded this event already
                continue
        return touched

    def _area(self, s: Session, op: Operation):
        """The operation's area: its perimeter, else the union of its current sectors."""
        from shapely.ops import unary_union

        if op.perimeter:
            return geo.to_shape(op.perimeter)
        shapes = [geo.to_shape(x.geometry) for x in self._current(s, Sector, op.id)]
        return unary_union(shapes) if shapes else None

    def bounds(self, s: Session, op: Operation) -> tuple[float, float, float, float] | None:
        if op.perimeter:
            return (op.min_lon, op.min_lat, op.max_lon, op.max_lat)
        boxes = [(x.min_lon, x.min_lat, x.max_lon, x.max_lat)
                 for model in (Sector, MapPoint) for x in self._current(s, model, op.id)]
        if not boxes:
            return None
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    # Replay --------------------------------------------------------------------------------
    def replay(self, p: Principal, op_id: int, at: dt.datetime, pending: list | None = None
               ) -> dict:
        """The situation as it was at ``at``: structure, last known positions (within
        the hour before), journal, orders and incidents up to then."""
        at = as_utc(at)
        with self.db.read() as s:
            op = self._op(s, p, op_id)
            out = self.operation_out(s, op, p, at=at)
            window = at - dt.timedelta(hours=1)
            last = (select(Position.op_unit_id, func.max(Position.at).label("at"))
                    .where(Position.operation_id == op.id, Position.at <= at,
                           Position.at >= window).group_by(Position.op_unit_id).subquery())
            rows = s.execute(select(Position).join(last, and_(
                Position.op_unit_id == last.c.op_unit_id, Position.at == last.c.at))).scalars()
            positions: dict[int, dict] = {}
            for r in rows:
                positions[r.op_unit_id] = {"op_unit_id": r.op_unit_id, "lat": r.lat,
                                           "lon": r.lon, "at": _iso(r.at), "heading": r.heading,
                                           "speed": r.speed}
            for item in pending or []:  # accepted but not yet flushed to the table
                if item["operation_id"] != op.id or item["at"] > at or item["at"] < window:
                    continue
                cur = positions.get(item["op_unit_id"])
                if cur is None or cur["at"] < _iso(item["at"]):
                    positions[item["op_unit_id"]] = {
                        "op_unit_id": item["op_unit_id"], "lat": item["lat"],
                        "lon": item["lon"], "at": _iso(item["at"]), "heading": item["heading"],
                        "speed": item["speed"]}
            out["positions"] = list(positions.values())
            entries = self._entries(s, op.id, until=at, limit=2000)
            out["journal"] = [self.entry_out(e) for e in entries]
            out["orders"] = [self.order_out(o, at) for o in s.scalars(
                select(Order).where(Order.operation_id == op.id, Order.issued_at <= at))]
            for o in out["orders"]:  # the order's state as it was then
                if o["completed_at"] and o["completed_at"] > at.isoformat():
                    o["status"], o["completed_at"] = "acknowledged", None
                if o["acknowledged_at"] and o["acknowledged_at"] > at.isoformat():
                    o["status"], o["acknowledged_at"] = "issued", None
            # units' sector and status as they were: replay the journal backwards
            units = {u["id"]: u for u in out["units"]}
            later = s.scalars(select(JournalEntry).where(
                JournalEntry.operation_id == op.id, JournalEntry.at > at,
                JournalEntry.kind.in_(["assignment", "status"]),
                JournalEntry.op_unit_id.is_not(None)).order_by(JournalEntry.at.desc(),
                                                               JournalEntry.id.desc()))
            created_after = set()
            for e in later:
                u = units.get(e.op_unit_id)
                if u is None:
                    continue
                d = e.data or {}
                if e.kind == "assignment":
                    u["sector_id"] = d.get("previous_sector_id")
                elif "from" in d:
                    u["status"] = d["from"]
                elif e.text.endswith(" joins"):
                    created_after.add(u["id"])
            out["units"] = [u for u in out["units"] if u["id"] not in created_after]
            out["at"] = at.isoformat()
            return out


def get_service(runtime: Runtime) -> OperationsService:
    return runtime.service("operations", OperationsService)
