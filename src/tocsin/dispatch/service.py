"""Dispatch rules: calls, incidents, units, recommendation, assignment. No HTTP here.

Every change runs in one unit of work and emits its domain events there, so the
live map, the crews' phones and the ledger see exactly what was committed.
Two dispatchers sending the same unit at once: the unit row is claimed with a
conditional ``UPDATE ... WHERE status = 'available'``; one wins, the other gets
``409 dispatch.unit_unavailable`` and nothing of its request is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import logging
import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import BadInput, Conflict, Forbidden, NotFound, TocsinError
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Share, User
from tocsin.core.runtime import Runtime
from tocsin.dispatch import catalogue as catalogue_mod
from tocsin.dispatch.catalogue import UNIT_KINDS
from tocsin.dispatch.index import AvailableUnits, capabilities
from tocsin.dispatch.models import (
    Assignment,
    Attachment,
    Call,
    CrewMember,
    DispatchUnit,
    Incident,
    TimelineEntry,
)
from tocsin.dispatch.recommend import Candidates, Recommendation, UnitRow, candidates_of, rank
from tocsin.geo.service import get_geo

log = logging.getLogger(__name__)

access.register_kind("call", read=["call_taker", "dispatcher", "commander"],
                     write=["call_taker", "dispatcher"])
access.register_kind("incident", read=["call_taker", "dispatcher", "commander", "patrol_officer"],
                     write=["call_taker", "dispatcher"])
access.register_kind("dispatch_unit",
                     read=["call_taker", "dispatcher", "commander", "patrol_officer"],
                     write=["dispatcher", "commander", "administrator"])

# Incident status lifecycle. "dispatched" is reached by assigning a unit.
TRANSITIONS: dict[str, set[str]] = {
    "new": {"closed"},
    "dispatched": {"en_route", "on_scene", "closed"},
    "en_route": {"on_scene", "closed"},
    "on_scene": {"closed"},
    "closed": set(),
}
# Unit status changes a crew (or a dispatcher) may make, from -> to.
UNIT_TRANSITIONS: dict[str, set[str]] = {
    "available": {"unavailable"},
    "unavailable": {"available"},
    "dispatched": {"en_route", "on_scene", "available", "unavailable"},
    "en_route": {"on_scene", "available", "unavailable"},
    "on_scene": {"available", "unavailable"},
}
ACTIVE = ("dispatched", "en_route", "on_scene")
DUPLICATE_RADIUS_M = 200.0
DUPLICATE_WINDOW = dt.timedelta(minutes=30)
SURROUNDINGS_RADIUS_M = 100.0
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _box(lat: float, lon: float, radius_m: float):
    dlat = radius_m / 111_195.0
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def incident_brief(inc: Incident) -> dict[str, Any]:
    return {"id": inc.id, "type_code": inc.type_code, "priority": inc.priority,
            "status": inc.status, "address": inc.address, "lat": inc.lat, "lon": inc.lon,
            "version": inc.version}


def unit_brief(u: DispatchUnit) -> dict[str, Any]:
    return {"id": u.id, "call_sign": u.call_sign, "kind": u.kind, "status": u.status,
            "lat": u.lat, "lon": u.lon, "incident_id": u.incident_id, "version": u.version}


UNIT_EVENTS = "dispatch.unit."  # type prefix of the events that change a dispatch unit


class DispatchService:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.db = runtime.db
        self.catalogue = catalogue_mod.load(runtime.settings.data_dir)
        self._lock = threading.Lock()
        # The available units for the recommendation, kept by the unit events: from
        # every node over the bus, and from this node's commits at once.
        self.available = AvailableUnits(self.db)
        runtime.bus.subscribe(self._on_event)
        self.db.after_commit_hooks.append(self._after_commit)

    def close(self) -> None:
        self.runtime.bus.unsubscribe(self._on_event)
        if self._after_commit in self.db.after_commit_hooks:
            self.db.after_commit_hooks.remove(self._after_commit)

    def _on_event(self, event: DomainEvent) -> None:
        if not event.type.startswith(UNIT_EVENTS):
            return
        try:
            self.available.mark((int(event.record_id or ""),))
        except ValueError:  # not a unit id: trust nothing
            self.available.invalidate()

    def _after_commit(self, _s: Session, events: list[DomainEvent]) -> None:
        for event in events:
            self._on_event(event)

    # ------------------------------------------------------------ plumbing
    @property
    def geo(self):
        return get_geo(self.runtime)

    def graph(self):
        return self.geo.road_graph()

    def _path(self, unit_id: int) -> str | None:
        return self.runtime.units.path(unit_id)

    def _require(self, principal: Principal, action: str, kind: str, unit_id: int,
                 record_id: str | None = None, s: Session | None = None) -> None:
        users, paths = (access.shares_of(s, kind, record_id) if s is not None and record_id
                        else (frozenset(), ()))
        access.require(principal, action, Resource(kind, self._path(unit_id), record_id,
                                                   shared_user_ids=users,
                                                   shared_unit_paths=paths))

    def _owner_unit(self, s: Session, principal: Principal, unit_code: str | None,
                    kind: str) -> int:
        if unit_code:
            unit = self.runtime.identity.unit_by_code(s, unit_code)
            self._require(principal, "write", kind, unit.id)
            return unit.id
        self._require(principal, "write", kind, principal.unit_id)
        return principal.unit_id

    def check_on_map(self, lat: float, lon: float, what: str = "location") -> None:
        from tocsin.engines.routing import OutsideNetworkError, RoutingError

        try:
            self.graph().nearest_node(lat, lon)
        except OutsideNetworkError as exc:
            raise BadInput(f"the {what} ({lat:.5f}, {lon:.5f}) is outside the map: "
                           f"{exc.distance_m / 1000:.1f} km from the nearest road",
                           code="dispatch.outside_map",
                           details={"lat": lat, "lon": lon,
                                    "distance_m": round(exc.distance_m)}) from None
        except RoutingError as exc:
            raise BadInput(str(exc), code="dispatch.outside_map") from None

    def _timeline(self, s: Session, incident_id: int, actor: Principal | None, kind: str,
                  text: str, data: dict | None = None) -> None:
        s.add(TimelineEntry(incident_id=incident_id, actor_id=actor and actor.user_id,
                            kind=kind, text=text, data=data, at=utcnow()))

    def _emit_incident(self, s: Session, type_: str, actor: Principal | None, inc: Incident,
                       **extra: Any) -> None:
        emit(s, DomainEvent(type=type_, actor_id=actor and actor.user_id, unit_id=inc.unit_id,
                            record_kind="incident", record_id=str(inc.id),
                            payload={"incident": incident_brief(inc), **extra}))

    def _emit_unit(self, s: Session, type_: str, actor: Principal | None, u: DispatchUnit,
                   **extra: Any) -> None:
        emit(s, DomainEvent(type=type_, actor_id=actor and actor.user_id, unit_id=u.unit_id,
                            record_kind="dispatch_unit", record_id=str(u.id),
                            payload={"unit": unit_brief(u), **extra}))

    def _locate(self, address: str | None, point) -> tuple[str, float, float]:
        """(address label, lat, lon) from a picked point and/or a typed address."""
        if point is not None:
            lat, lon = point.lat, point.lon
            self.check_on_map(lat, lon)
            if address:
                return address, lat, lon
            rev = self.geo.reverse(lat, lon)
            best = rev.address or rev.street
            return (best.label if best else f"{lat:.5f}, {lon:.5f}"), lat, lon
        if address:
            found = self.geo.search(address, limit=1)
            if not found:
                raise BadInput(f"no address matches {address!r}",
                               code="dispatch.address_not_found")
            c = found[0]
            self.check_on_map(c.lat, c.lon)
            return c.label, c.lat, c.lon
        raise BadInput("give an address or a location", code="dispatch.location_required")

    def parse_caller_location(self, text: str) -> dict[str, Any]:
        try:
            loc = self.geo.parse_location(text)
        except ValueError as exc:  # LocationError is a ValueError
            raise BadInput(f"caller location not readable: {exc}",
                           code="dispatch.location_unreadable") from None
        lat = getattr(loc, "lat", None)
        lon = getattr(loc, "lon", None)
        civic = loc.civic_text() if hasattr(loc, "civic_text") else ""
        if (lat is None or lon is None) and civic:
            found = self.geo.search(civic, limit=1)
            if found:
                lat, lon = found[0].lat, found[0].lon
        if lat is None or lon is None:
            raise BadInput("caller location not readable: no position in it",
                           code="dispatch.location_unreadable")
        acc = next((getattr(loc, a) for a in ("accuracy_m", "radius_m", "uncertainty_m")
                    if getattr(loc, a, None) is not None), None)
        source = getattr(loc, "source", None) or getattr(loc, "format", None) or "parsed"
        return {"lat": float(lat), "lon": float(lon),
                "accuracy_m": float(acc) if acc is not None else None, "source": str(source),
                "flags": list(getattr(loc, "flags", []) or []), "civic": civic or None}

    # ---------------------------------------------------------------- calls
    def create_call(self, principal: Principal, body) -> tuple[Call, list[dict]]:
        caller = None
        source = None
        if body.location_text:
            caller = self.parse_caller_location(body.location_text)
            source = caller["source"]
        elif body.caller_location is not None:
            caller = body.caller_location.model_dump()
            source = "manual"
        address, lat, lon = None, None, None
        if body.address or body.location:
            address, lat, lon = self._locate(body.address, body.location)
        elif caller is not None:
            from types import SimpleNamespace

            address, lat, lon = self._locate(None, SimpleNamespace(lat=caller["lat"],
                                                                   lon=caller["lon"]))
        now = utcnow()
        with self.db.session() as s:
            owner = self._owner_unit(s, principal, body.unit_code, "call")
            call = Call(unit_id=owner, caller_number=body.caller_number,
                        caller_lat=caller and caller["lat"], caller_lon=caller and caller["lon"],
                        caller_accuracy_m=caller and caller.get("accuracy_m"),
                        location_source=source, location_raw=body.location_text,
                        address=address, lat=lat, lon=lon, narrative=body.narrative,
                        call_taker_id=principal.user_id, status="open",
                        received_at=body.received_at or now, created_at=now, updated_at=now)
            s.add(call)
            s.flush()
            emit(s, DomainEvent(type="dispatch.call.received", actor_id=principal.user_id,
                                unit_id=owner, record_kind="call", record_id=str(call.id),
                                payload={"call": {"id": call.id, "address": address, "lat": lat,
                                                  "lon": lon, "status": "open"}}))
        # Suggested duplicates are a read: after the commit, not under the write lock
        # (a call is no incident, so the answer is the same).
        if lat is None:
            return call, []
        with self.db.read() as s:
            return call, self._duplicates(s, principal, lat, lon, now)

    def _duplicates(self, s: Session, principal: Principal, lat: float, lon: float,
                    now: dt.datetime) -> list[dict]:
        la0, la1, lo0, lo1 = _box(lat, lon, DUPLICATE_RADIUS_M)
        rows = s.execute(select(
            Incident.id, Incident.type_code, Incident.priority, Incident.status,
            Incident.address, Incident.lat, Incident.lon, Incident.created_at,
        ).where(
            Incident.lat.between(la0, la1), Incident.lon.between(lo0, lo1),
            or_(Incident.status != "closed", Incident.closed_at >= now - DUPLICATE_WINDOW),
            Incident.created_at >= now - DUPLICATE_WINDOW,
            access.readable_units_clause(principal, "incident", Incident.unit_id, Incident.id),
        )).all()
        out = []
        for inc in rows:
            d = haversine_m(lat, lon, inc.lat, inc.lon)
            if d <= DUPLICATE_RADIUS_M:
                out.append({"incident_id": inc.id, "type_code": inc.type_code,
                            "priority": inc.priority, "status": inc.status,
                            "address": inc.address, "distance_m": round(d, 1),
                            "minutes_ago": round((now - as_utc(inc.created_at))
                                                 .total_seconds() / 60, 1)})
        out.sort(key=lambda x: (x["distance_m"] / DUPLICATE_RADIUS_M
                                + x["minutes_ago"] / 30))
        return out

    def get_call(self, principal: Principal, call_id: int, s: Session | None = None) -> Call:
        def load(sess: Session) -> Call:
            call = sess.get(Call, call_id)
            if call is None:
                raise NotFound(f"call {call_id} not found", code="dispatch.call_not_found")
            self._require(principal, "read", "call", call.unit_id)
            return call

        if s is not None:
            return load(s)
        with self.db.read() as sess:
            return load(sess)

    def duplicates_for_call(self, principal: Principal, call_id: int) -> list[dict]:
        with self.db.read() as s:
            call = self.get_call(principal, call_id, s)
            if call.lat is None:
                return []
            return self._duplicates(s, principal, call.lat, call.lon, as_utc(call.received_at))

    def list_calls(self, principal: Principal, status: str | None = "open",
                   limit: int = 200) -> list[Call]:
        with self.db.read() as s:
            q = select(Call).where(access.readable_units_clause(principal, "call", Call.unit_id))
            if status:
                q = q.where(Call.status == status)
            return list(s.scalars(q.order_by(Call.received_at.desc()).limit(limit)))

    def update_call(self, principal: Principal, call_id: int, body) -> Call:
        located = None
        if body.address or body.location:
            located = self._locate(body.address, body.location)
        with self.db.session() as s:
            call = self.get_call(principal, call_id, s)
            self._require(principal, "write", "call", call.unit_id)
            if call.status == "closed":
                raise self._call_taken(call)
            if located:
                call.address, call.lat, call.lon = located
            if body.narrative is not None:
                call.narrative = body.narrative
            call.updated_at = utcnow()
            emit(s, DomainEvent(type="dispatch.call.updated", actor_id=principal.user_id,
                                unit_id=call.unit_id, record_kind="call", record_id=str(call.id),
                                payload={"call": {"id": call.id, "address": call.address,
                                                  "lat": call.lat, "lon": call.lon,
                                                  "status": call.status}}))
            return call

    def link_call(self, principal: Principal, call_id: int, incident_id: int) -> Call:
        with self.db.session() as s:
            call = self.get_call(principal, call_id, s)
            self._require(principal, "write", "call", call.unit_id)
            inc = self._incident(s, principal, incident_id, "write")
            if inc.status == "closed":
                raise Conflict(f"incident {incident_id} is closed",
                               code="dispatch.incident_closed")
            self._claim_call(s, call, status="linked", incident_id=inc.id)
            self._timeline(s, inc.id, principal, "call_linked",
                           f"call {call.id} from {call.caller_number or 'unknown number'} linked",
                           {"call_id": call.id})
            inc.updated_at = utcnow()
            emit(s, DomainEvent(type="dispatch.call.linked", actor_id=principal.user_id,
                                unit_id=call.unit_id, record_kind="call", record_id=str(call.id),
                                payload={"call": {"id": call.id, "status": "linked",
                                                  "incident_id": inc.id}}))
            self._emit_incident(s, "dispatch.incident.updated", principal, inc)
            return call

    def close_call(self, principal: Principal, call_id: int, reason: str | None) -> Call:
        """Close a call that needs no incident (a hoax, advice given on the phone), with
        the reason. Only an open call closes: a call linked to an incident ends with
        the incident; a closed call stays closed. The reason is stored on the call
        (``close_reason``) and carried by the ``dispatch.call.closed`` event."""
        reason = (reason or "").strip()
        if not reason:
            raise BadInput("closing a call needs a reason", code="dispatch.reason_required")
        with self.db.session() as s:
            call = self.get_call(principal, call_id, s)
            self._require(principal, "write", "call", call.unit_id)
            self._claim_call(s, call, status="closed", close_reason=reason)
            emit(s, DomainEvent(type="dispatch.call.closed", actor_id=principal.user_id,
                                unit_id=call.unit_id, record_kind="call", record_id=str(call.id),
                                payload={"call": {"id": call.id, "status": "closed"},
                                         "reason": reason}))
            return call

    def _claim_call(self, s: Session, call: Call, **values: Any) -> None:
        """Move an open call on (linked or closed) with a conditional UPDATE, so two
        people linking or closing the same call at once cannot both win."""
        done = s.execute(update(Call).where(Call.id == call.id, Call.status == "open",
                                            Call.incident_id.is_(None))
                         .values(updated_at=utcnow(), **values)
                         .execution_options(synchronize_session=False)).rowcount
        s.refresh(call)
        if done != 1:
            raise self._call_taken(call)

    @staticmethod
    def _call_taken(call: Call) -> Conflict:
        if call.incident_id is not None:
            return Conflict(f"call {call.id} is already linked to incident {call.incident_id}; "
                            "it ends with that incident", code="dispatch.call_already_linked",
                            details={"status": call.status, "incident_id": call.incident_id})
        return Conflict(f"call {call.id} is closed", code="dispatch.call_closed",
                        details={"status": call.status})

    # ------------------------------------------------------------ incidents
    def _incident(self, s: Session, principal: Principal, incident_id: int,
                  action: str = "read") -> Incident:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} not found", code="dispatch.incident_not_found")
        try:
            self._require(principal, action, "incident", inc.unit_id, str(inc.id), s)
        except Forbidden:
            if not self._is_crew_on(s, principal, inc.id):
                raise
        return inc

    def _is_crew_on(self, s: Session, principal: Principal, incident_id: int) -> bool:
        return s.scalar(
            select(func.count()).select_from(Assignment)
            .join(CrewMember, CrewMember.dispatch_unit_id == Assignment.dispatch_unit_id)
            .where(Assignment.incident_id == incident_id, Assignment.status.in_(ACTIVE),
                   CrewMember.user_id == principal.user_id)) > 0

    def create_incident(self, principal: Principal, body) -> Incident:
        itype = self.catalogue.get(body.type_code)
        located = None
        if body.address or body.location:
            located = self._locate(body.address, body.location)
        now = utcnow()
        with self.db.session() as s:
            call = None
            if body.call_id is not None:
                call = self.get_call(principal, body.call_id, s)
                self._require(principal, "write", "call", call.unit_id)
                if call.status != "open":
                    raise self._call_taken(call)
                if located is None and call.lat is not None:
                    located = (call.address or f"{call.lat:.5f}, {call.lon:.5f}", call.lat,
                               call.lon)
            if located is None:
                raise BadInput("give an address or a location", code="dispatch.location_required")
            owner = self._owner_unit(s, principal, body.unit_code or None, "incident") \
                if body.unit_code or call is None else call.unit_id
            if call is not None:
                self._require(principal, "write", "incident", owner)
            address, lat, lon = located
            inc = Incident(unit_id=owner, type_code=itype.code,
                           priority=body.priority or itype.priority, status="new",
                           address=address, lat=lat, lon=lon,
                           summary=body.summary or (call.narrative if call else ""),
                           created_by=principal.user_id, created_at=now, updated_at=now,
                           version=1)
            s.add(inc)
            s.flush()
            self._timeline(s, inc.id, principal, "created",
                           f"{itype.title}, priority {inc.priority}, at {address}",
                           {"type_code": itype.code, "priority": inc.priority})
            if call is not None:
                self._claim_call(s, call, status="linked", incident_id=inc.id)
                self._timeline(s, inc.id, principal, "call_linked",
                               f"call {call.id} from {call.caller_number or 'unknown number'}",
                               {"call_id": call.id})
                emit(s, DomainEvent(type="dispatch.call.linked", actor_id=principal.user_id,
                                    unit_id=call.unit_id, record_kind="call",
                                    record_id=str(call.id),
                                    payload={"call": {"id": call.id, "status": "linked",
                                                      "incident_id": inc.id}}))
            self._emit_incident(s, "dispatch.incident.created", principal, inc)
            return inc

    def list_incidents(self, principal: Principal, *, open_only: bool = True,
                       limit: int = 500) -> list[Incident]:
        with self.db.read() as s:
            q = select(Incident).where(access.readable_units_clause(
                principal, "incident", Incident.unit_id, Incident.id))
            if open_only:
                q = q.where(Incident.status != "closed")
            return list(s.scalars(q.order_by(Incident.priority, Incident.created_at.desc())
                                  .limit(limit)))

    def get_incident(self, principal: Principal, incident_id: int) -> dict[str, Any]:
        """The incident with its calls, assignments, timeline and attachments.

        A read by someone outside the owning unit is itself recorded as an event."""
        with self.db.read() as s:
            inc = self._incident(s, principal, incident_id)
            detail = {
                "incident": inc,
                "calls": list(s.scalars(select(Call).where(Call.incident_id == inc.id)
                                        .order_by(Call.received_at))),
                "assignments": list(s.scalars(select(Assignment)
                                              .where(Assignment.incident_id == inc.id)
                                              .order_by(Assignment.assigned_at))),
                "timeline": list(s.scalars(select(TimelineEntry)
                                           .where(TimelineEntry.incident_id == inc.id)
                                           .order_by(TimelineEntry.at, TimelineEntry.id))),
                "attachments": list(s.scalars(select(Attachment)
                                              .where(Attachment.incident_id == inc.id))),
            }
        if principal.unit_id != inc.unit_id:  # another unit's incident: a recorded read
            self.runtime.reads.record(DomainEvent(
                type="dispatch.incident.read", actor_id=principal.user_id, unit_id=inc.unit_id,
                record_kind="incident", record_id=str(inc.id),
                payload={"reader_unit_id": principal.unit_id}))
        return detail

    def overdue(self, inc: Incident, now: dt.datetime | None = None) -> list[str]:
        now = now or utcnow()
        limits = self.catalogue.deadlines.get(inc.priority) or {}
        age = (now - as_utc(inc.created_at)).total_seconds()
        late = []
        if inc.status == "new" and age > limits.get("dispatch", math.inf):
            late.append("dispatch")
        if inc.status in ("new", "dispatched", "en_route") and age > limits.get("on_scene",
                                                                                   math.inf):
            late.append("on_scene")
        return late

    def patch_incident(self, principal: Principal, incident_id: int, body) -> Incident:
        if body.type_code is not None:
            self.catalogue.get(body.type_code)
        with self.db.session() as s:
            inc = self._incident(s, principal, incident_id, "write")
            self._require(principal, "write", "incident", inc.unit_id)
            if body.version is not None and body.version != inc.version:
                raise Conflict("the incident changed since you loaded it; reload",
                               code="dispatch.stale", details={"version": inc.version})
            if inc.status == "closed":
                raise Conflict(f"incident {inc.id} is closed", code="dispatch.incident_closed")
            changes = {}
            for name in ("priority", "type_code", "summary"):
                value = getattr(body, name)
                if value is not None and value != getattr(inc, name):
                    changes[name] = {"from": getattr(inc, name), "to": value}
                    setattr(inc, name, value)
            if changes:
                self._bump(inc)
                self._timeline(s, inc.id, principal, "updated",
                               ", ".join(f"{k}: {v['from']} → {v['to']}" for k, v in changes.items()
                                         if k != "summary") or "summary edited", changes)
                self._emit_incident(s, "dispatch.incident.updated", principal, inc,
                                    changes=list(changes))
            return inc

    def _bump(self, inc: Incident) -> None:
        inc.version += 1
        inc.updated_at = utcnow()

    def set_status(self, principal: Principal, incident_id: int, status: str,
                   reason: str | None) -> Incident:
        with self.db.session() as s:
            inc = self._incident(s, principal, incident_id, "write")
            self._require(principal, "write", "incident", inc.unit_id)
            self._transition(s, principal, inc, status, reason)
            return inc

    def _transition(self, s: Session, principal: Principal | None, inc: Incident, status: str,
                    reason: str | None) -> None:
        allowed = TRANSITIONS.get(inc.status, set())
        if status not in allowed:
            raise Conflict(f"an incident cannot go from {inc.status} to {status}",
                           code="dispatch.transition_not_allowed",
                           details={"from": inc.status, "to": status,
                                    "allowed": sorted(allowed)})
        if status == "closed" and not reason:
            raise BadInput("closing an incident needs a reason", code="dispatch.reason_required")
        now = utcnow()
        old = inc.status
        inc.status = status
        if status == "en_route":
            inc.en_route_at = inc.en_route_at or now
        elif status == "on_scene":
            inc.on_scene_at = inc.on_scene_at or now
        elif status == "closed":
            inc.closed_at, inc.close_reason = now, reason
            for a in s.scalars(select(Assignment).where(Assignment.incident_id == inc.id,
                                                        Assignment.status.in_(ACTIVE))):
                self._end_assignment(s, principal, a, "released", "incident closed")
        self._bump(inc)
        self._timeline(s, inc.id, principal, "status",
                       f"{old} → {status}" + (f": {reason}" if reason else ""),
                       {"from": old, "to": status, "reason": reason})
        self._emit_incident(s, "dispatch.incident.status", principal, inc, previous=old,
                            reason=reason)

    def add_note(self, principal: Principal, incident_id: int, text: str) -> TimelineEntry:
        with self.db.session() as s:
            inc = self._incident(s, principal, incident_id, "read")
            self._require_write_or_crew(s, principal, inc)
            entry = TimelineEntry(incident_id=inc.id, actor_id=principal.user_id, kind="note",
                                  text=text, at=utcnow())
            s.add(entry)
            inc.updated_at = utcnow()
            s.flush()
            self._emit_incident(s, "dispatch.incident.note", principal, inc, note_id=entry.id)
            return entry

    def _require_write_or_crew(self, s: Session, principal: Principal, inc: Incident) -> None:
        if access.decide(principal, "write", Resource("incident", self._path(inc.unit_id))):
            return
        if not self._is_crew_on(s, principal, inc.id):
            raise Forbidden("not allowed to write this incident", code="access_denied")

    def add_attachment(self, principal: Principal, incident_id: int, filename: str,
                       content_type: str, data: bytes) -> Attachment:
        if not data:
            raise BadInput("empty file", code="dispatch.attachment_empty")
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise BadInput("file too large", code="dispatch.attachment_too_large")
        filename = (filename or "file").replace("/", "_").replace("\\", "_")[:200]
        digest = hashlib.sha256(data).hexdigest()
        path = self._media_path(digest)
        with self.db.session() as s:
            inc = self._incident(s, principal, incident_id, "read")
            self._require_write_or_crew(s, principal, inc)
            existing = s.scalar(select(Attachment).where(Attachment.incident_id == inc.id,
                                                         Attachment.sha256 == digest))
            if existing is not None:
                return existing
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
            att = Attachment(incident_id=inc.id, filename=filename,
                             content_type=(content_type or "application/octet-stream")[:100],
                             size=len(data), sha256=digest, uploaded_by=principal.user_id,
                             uploaded_at=utcnow())
            s.add(att)
            s.flush()
            self._timeline(s, inc.id, principal, "attachment", f"attached {filename}",
                           {"attachment_id": att.id, "size": len(data)})
            self._emit_incident(s, "dispatch.incident.attachment", principal, inc,
                                attachment_id=att.id)
            return att

    def _media_path(self, digest: str):
        return self.runtime.settings.resolved_media_dir / "dispatch" / digest[:2] / digest

    def attachment_content(self, principal: Principal, incident_id: int,
                           attachment_id: int) -> tuple[Attachment, bytes]:
        with self.db.read() as s:
            self._incident(s, principal, incident_id)
            att = s.get(Attachment, attachment_id)
            if att is None or att.incident_id != incident_id:
                raise NotFound("attachment not found", code="dispatch.attachment_not_found")
        return att, self._media_path(att.sha256).read_bytes()

    def surroundings(self, principal: Principal, incident_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            inc = self._incident(s, principal, incident_id)
            la0, la1, lo0, lo1 = _box(inc.lat, inc.lon, SURROUNDINGS_RADIUS_M)
            past = [p for p in s.scalars(select(Incident).where(
                Incident.id != inc.id, Incident.lat.between(la0, la1),
                Incident.lon.between(lo0, lo1),
                access.readable_units_clause(principal, "incident", Incident.unit_id,
                                             Incident.id)).order_by(Incident.created_at.desc())
                .limit(50))
                if haversine_m(inc.lat, inc.lon, p.lat, p.lon) <= SURROUNDINGS_RADIUS_M]
            calls = [c for c in s.scalars(select(Call).where(
                Call.status == "open", Call.lat.between(la0, la1), Call.lon.between(lo0, lo1),
                access.readable_units_clause(principal, "call", Call.unit_id)).limit(50))
                if haversine_m(inc.lat, inc.lon, c.lat, c.lon) <= SURROUNDINGS_RADIUS_M]
        return {"past_incidents": past, "open_calls": calls,
                "hazards": self.briefing(principal, inc)}

    def briefing(self, principal: Principal, inc: Incident) -> dict[str, Any]:
        """The field-safety briefing for the incident's place, from the safety module
        (``tocsin.safety.service.briefing_for``). Until that module is installed this
        says so plainly instead of showing an empty, reassuring panel.

        Call it outside a write transaction: the safety module records the read."""
        try:
            from tocsin.safety.service import briefing_for
        except ImportError:
            return {"available": False,
                    "message": "Field-safety briefing not available: the safety module is "
                               "not installed yet. Ask for hazards by radio.",
                    "content": None}
        try:
            content = briefing_for(self.runtime, principal, inc.lat, inc.lon)
        except TocsinError as exc:
            return {"available": False, "message": f"briefing refused: {exc.message}",
                    "content": None}
        except Exception:  # the safety module failing must not block a dispatch
            log.exception("safety briefing failed for incident %s", inc.id)
            return {"available": False, "message": "briefing failed; ask for hazards by radio",
                    "content": None}
        return {"available": True, "message": "", "content": content}

    @staticmethod
    def briefing_ref(inc: Incident) -> dict[str, Any]:
        """What a crew is pushed about the briefing: where to fetch it, never its
        content. The crew reads it itself (``incident_briefing``), so it sees what it
        may see and the read is recorded as its own; no flag, reason or name enters
        the event payload that the ledger and the bus carry."""
        available = importlib.util.find_spec("tocsin.safety.service") is not None
        return {"incident_id": inc.id, "available": available}

    def incident_briefing(self, principal: Principal, incident_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            inc = self._incident(s, principal, incident_id)
        return self.briefing(principal, inc)

    # ---------------------------------------------------------------- units
    def _unit(self, s: Session, unit_id: int) -> DispatchUnit:
        u = s.get(DispatchUnit, unit_id)
        if u is None:
            raise NotFound(f"unit {unit_id} not found", code="dispatch.unit_not_found")
        return u

    def _crew_ids(self, s: Session, unit_id: int) -> list[int]:
        return list(s.scalars(select(CrewMember.user_id)
                              .where(CrewMember.dispatch_unit_id == unit_id)))

    def _set_crew(self, s: Session, u: DispatchUnit, usernames: Iterable[str]) -> list[int]:
        names = sorted(set(usernames))
        users = {un: uid for uid, un in s.execute(select(User.id, User.username)
                                                  .where(User.username.in_(names)))}
        unknown = [n for n in names if n not in users]
        if unknown:
            raise BadInput(f"unknown crew members: {', '.join(unknown)}",
                           code="dispatch.crew_unknown", details={"unknown": unknown})
        ids = list(users.values())
        s.execute(delete(CrewMember).where(or_(CrewMember.dispatch_unit_id == u.id,
                                               CrewMember.user_id.in_(ids))))
        for uid in ids:
            s.add(CrewMember(dispatch_unit_id=u.id, user_id=uid))
        return ids

    def create_unit(self, principal: Principal | None, body) -> DispatchUnit:
        if body.position is not None:
            self.check_on_map(body.position.lat, body.position.lon, "unit position")
        with self.db.session() as s:
            owner = self.runtime.identity.unit_by_code(s, body.unit_code)
            if principal is not None:
                self._require(principal, "write", "dispatch_unit", owner.id)
            if s.scalar(select(DispatchUnit.id).where(DispatchUnit.call_sign == body.call_sign)):
                raise Conflict(f"call sign {body.call_sign!r} is taken",
                               code="dispatch.call_sign_taken")
            caps = body.capabilities if body.capabilities is not None else \
                UNIT_KINDS[body.kind][0]
            now = utcnow()
            u = DispatchUnit(call_sign=body.call_sign, kind=body.kind, capabilities=list(caps),
                             unit_id=owner.id, status="available", version=1, updated_at=now,
                             lat=body.position and body.position.lat,
                             lon=body.position and body.position.lon,
                             position_at=now if body.position else None)
            s.add(u)
            s.flush()
            self._set_crew(s, u, body.crew)
            self._emit_unit(s, "dispatch.unit.created", principal, u)
            return u

    def list_units(self, principal: Principal, status: str | None = None) -> list[DispatchUnit]:
        with self.db.read() as s:
            q = select(DispatchUnit).where(access.readable_units_clause(
                principal, "dispatch_unit", DispatchUnit.unit_id))
            if status:
                q = q.where(DispatchUnit.status == status)
            return list(s.scalars(q.order_by(DispatchUnit.call_sign)))

    def crews(self, unit_ids: list[int]) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {i: [] for i in unit_ids}
        if not unit_ids:
            return out
        with self.db.read() as s:
            for duid, uid, name in s.execute(
                    select(CrewMember.dispatch_unit_id, User.id, User.display_name)
                    .join(User, User.id == CrewMember.user_id)
                    .where(CrewMember.dispatch_unit_id.in_(unit_ids))):
                out[duid].append({"user_id": uid, "name": name})
        return out

    def get_unit(self, principal: Principal, unit_id: int) -> DispatchUnit:
        with self.db.read() as s:
            u = self._unit(s, unit_id)
            if principal.user_id not in self._crew_ids(s, u.id):
                self._require(principal, "read", "dispatch_unit", u.unit_id)
            return u

    def my_units(self, principal: Principal) -> list[DispatchUnit]:
        with self.db.read() as s:
            return list(s.scalars(select(DispatchUnit).join(
                CrewMember, CrewMember.dispatch_unit_id == DispatchUnit.id)
                .where(CrewMember.user_id == principal.user_id)))

    def _may_drive(self, s: Session, principal: Principal, u: DispatchUnit) -> None:
        """The crew, or whoever may write dispatch units there, may change a unit."""
        if principal.user_id in self._crew_ids(s, u.id):
            return
        self._require(principal, "write", "dispatch_unit", u.unit_id)

    def set_crew(self, principal: Principal, unit_id: int, usernames: list[str]) -> DispatchUnit:
        with self.db.session() as s:
            u = self._unit(s, unit_id)
            self._require(principal, "write", "dispatch_unit", u.unit_id)
            self._set_crew(s, u, usernames)
            u.version += 1
            self._emit_unit(s, "dispatch.unit.crew", principal, u)
            return u

    def update_position(self, principal: Principal, unit_id: int, lat: float, lon: float
                        ) -> DispatchUnit:
        self.check_on_map(lat, lon, "unit position")
        with self.db.session() as s:
            u = self._unit(s, unit_id)
            self._may_drive(s, principal, u)
            u.lat, u.lon, u.position_at = lat, lon, utcnow()
            self._emit_unit(s, "dispatch.unit.moved", principal, u)
            return u

    def set_unit_status(self, principal: Principal, unit_id: int, status: str,
                        reason: str | None = None) -> DispatchUnit:
        with self.db.session() as s:
            u = self._unit(s, unit_id)
            self._may_drive(s, principal, u)
            old = u.status
            if status not in UNIT_TRANSITIONS.get(old, set()):
                code = ("dispatch.unit_not_assigned" if status in ("en_route", "on_scene")
                        and old in ("available", "unavailable")
                        else "dispatch.transition_not_allowed")
                raise Conflict(f"unit {u.call_sign} cannot go from {old} to {status}", code=code,
                               details={"from": old, "to": status,
                                        "allowed": sorted(UNIT_TRANSITIONS.get(old, set()))})
            # Claim the row at the status we saw: a concurrent change makes this a conflict.
            done = s.execute(update(DispatchUnit)
                             .where(DispatchUnit.id == u.id, DispatchUnit.version == u.version)
                             .values(status=status, version=DispatchUnit.version + 1,
                                     updated_at=utcnow())
                             .execution_options(synchronize_session=False)).rowcount
            if done != 1:
                raise Conflict(f"unit {u.call_sign} changed meanwhile; retry",
                               code="dispatch.unit_changed")
            s.refresh(u)
            assignment = None
            if u.incident_id is not None:
                assignment = s.scalar(select(Assignment).where(
                    Assignment.dispatch_unit_id == u.id, Assignment.incident_id == u.incident_id,
                    Assignment.status.in_(ACTIVE)))
            if assignment is not None:
                if status in ("en_route", "on_scene"):
                    assignment.status = status
                    inc = s.get(Incident, assignment.incident_id)
                    self._timeline(s, inc.id, principal, "unit_status",
                                   f"{u.call_sign}: {old} → {status}",
                                   {"unit_id": u.id, "from": old, "to": status})
                    order = ["dispatched", "en_route", "on_scene"]
                    if inc.status in order and order.index(status) > order.index(inc.status):
                        self._transition(s, principal, inc, status, None)
                    else:
                        self._bump(inc)
                        self._emit_incident(s, "dispatch.incident.updated", principal, inc)
                else:  # available (cleared) or unavailable (lost mid-assignment)
                    end = "released" if status == "available" else "cancelled"
                    why = reason or ("cleared by the unit" if status == "available"
                                     else "unit became unavailable")
                    self._end_assignment(s, principal, assignment, end, why, unit=u)
            self._emit_unit(s, "dispatch.unit.status", principal, u, previous=old,
                            reason=reason)
            return u

    def _end_assignment(self, s: Session, principal: Principal | None, a: Assignment,
                        end: str, why: str, *, unit: DispatchUnit | None = None) -> None:
        """Release (done) or cancel (unit lost) one assignment; the unit is freed and an
        incident left without any unit goes back to the queue as "new"."""
        a.status, a.end_reason, a.ended_at = end, why, utcnow()
        if unit is None and a.dispatch_unit_id is not None:
            unit = s.get(DispatchUnit, a.dispatch_unit_id)
        if unit is not None and unit.incident_id == a.incident_id:
            unit.incident_id = None
            if unit.status in ACTIVE:
                unit.status = "available"
            unit.version += 1
            unit.updated_at = utcnow()
            self._emit_unit(s, "dispatch.unit.released", principal, unit, reason=why)
        inc = s.get(Incident, a.incident_id)
        if unit is not None:  # through access: the live feed forgets what the crew saw
            for share_id in s.scalars(select(Share.id).where(
                    Share.record_kind == "incident", Share.record_id == str(a.incident_id),
                    Share.grantee_unit_id == unit.unit_id)).all():
                access.revoke(s, "incident", str(a.incident_id), share_id,
                              revoked_by=principal.user_id if principal else None,
                              record_unit_id=inc.unit_id)
        self._timeline(s, inc.id, principal, "unit_" + end, f"{a.call_sign} {end}: {why}",
                       {"assignment_id": a.id, "unit_id": a.dispatch_unit_id})
        if inc.status in ("dispatched", "en_route"):
            s.flush()
            left = s.scalar(select(func.count()).select_from(Assignment).where(
                Assignment.incident_id == inc.id, Assignment.status.in_(ACTIVE)))
            if not left:
                old = inc.status
                inc.status = "new"
                self._timeline(s, inc.id, principal, "status",
                               f"{old} → new: no unit assigned any more",
                               {"from": old, "to": "new", "reason": "no unit left"})
        self._bump(inc)
        self._emit_incident(s, "dispatch.incident.updated", principal, inc,
                            unit_left=a.call_sign)

    def delete_unit(self, principal: Principal | None, unit_id: int,
                    reason: str = "unit removed") -> None:
        """Take a unit off the roll (it vanished, was decommissioned): its
        assignment ends, its incident goes back to the queue if no one is left."""
        with self.db.session() as s:
            u = self._unit(s, unit_id)
            if principal is not None:
                self._require(principal, "write", "dispatch_unit", u.unit_id)
            for a in s.scalars(select(Assignment).where(Assignment.dispatch_unit_id == u.id,
                                                        Assignment.status.in_(ACTIVE))):
                self._end_assignment(s, principal, a, "cancelled", reason, unit=u)
            snapshot = unit_brief(u)
            snapshot["status"] = "removed"
            s.execute(delete(CrewMember).where(CrewMember.dispatch_unit_id == u.id))
            s.execute(update(Assignment).where(Assignment.dispatch_unit_id == u.id)
                      .values(dispatch_unit_id=None))
            s.delete(u)
            owner = u.unit_id
            emit(s, DomainEvent(type="dispatch.unit.removed",
                                actor_id=principal and principal.user_id, unit_id=owner,
                                record_kind="dispatch_unit", record_id=str(unit_id),
                                payload={"unit": snapshot, "reason": reason}))

    # ------------------------------------------------------ recommendation
    def candidate_units(self, principal: Principal) -> list[UnitRow]:
        """Available units the principal may see, read from the database (by id): the
        reference the in-memory index (``candidates``) must agree with. Capabilities
        come back as raw JSON text and are decoded once per distinct value."""
        from sqlalchemy import Text as SqlText
        from sqlalchemy import type_coerce

        with self.db.read() as s:
            rows = s.execute(select(DispatchUnit.id, DispatchUnit.call_sign, DispatchUnit.kind,
                                    type_coerce(DispatchUnit.capabilities, SqlText),
                                    DispatchUnit.lat, DispatchUnit.lon)
                             .where(DispatchUnit.status == "available",
                                    access.readable_units_clause(principal, "dispatch_unit",
                                                                 DispatchUnit.unit_id))
                             .order_by(DispatchUnit.id)).all()
        decoded: dict[str, tuple[str, ...]] = {}
        return [UnitRow(r[0], r[1], r[2], capabilities(r[3], decoded), r[4], r[5])
                for r in rows]

    def candidates(self, principal: Principal, graph=None) -> Candidates:
        """Available units the principal may see, by id, snapped to the road graph: the
        event-maintained index (``self.available``) filtered by ``core.access`` for
        this request, one decision per owning unit (a dispatch unit has no access fact
        of its own: no shares, no owning user, as ``candidate_units``' SQL filter)."""
        graph = graph if graph is not None else self.graph()
        rule = access.rule_for("dispatch_unit")
        if rule.describe is not None or getattr(rule, "need_to_know", None) is not None:
            # records with facts of their own: decided per record, in the database
            return candidates_of(graph, self.candidate_units(principal))
        snap = self.available.snapshot(graph)
        owners = snap.owners.tolist()
        allowed = np.fromiter(
            (access.decide(principal, "read", Resource("dispatch_unit", self._path(o))).allowed
             for o in owners), dtype=bool, count=len(owners))
        if allowed.all():
            return snap.units
        return snap.units.take(np.flatnonzero(allowed[snap.owner_pos]))

    def recommend(self, principal: Principal, incident_id: int, limit: int = 10
                  ) -> tuple[Incident, Recommendation]:
        from tocsin.engines.routing import RoutingError

        with self.db.read() as s:
            inc = self._incident(s, principal, incident_id)
        plan = self.catalogue.types[inc.type_code].plan if inc.type_code in \
            self.catalogue.types else {}
        graph = self.graph()
        try:
            rec = rank(graph, inc.lat, inc.lon, self.candidates(principal, graph), plan,
                       limit=limit)
        except RoutingError as exc:
            raise BadInput(str(exc), code="dispatch.outside_map") from None
        return inc, rec

    # ------------------------------------------------------------ dispatch
    def assign(self, principal: Principal, incident_id: int, unit_ids: list[int]
               ) -> list[Assignment]:
        """Send units to an incident: all of them or none (409 names the unit that
        another dispatcher took first, 404 one that no longer exists). Each crew is
        pushed the incident, its route and a reference to the briefing, which the
        crew then fetches as itself (``briefing_ref``)."""
        unit_ids = list(dict.fromkeys(unit_ids))
        with self.db.read() as s:
            inc = self._incident(s, principal, incident_id, "write")
            positions = {u.id: (u.lat, u.lon) for u in s.scalars(
                select(DispatchUnit).where(DispatchUnit.id.in_(unit_ids)))}
        routes: dict[int, Any] = {}
        graph = self.graph()
        from tocsin.engines.routing import RoutingError

        for uid, (lat, lon) in positions.items():
            if lat is None:
                continue
            try:
                routes[uid] = graph.route((lat, lon), (inc.lat, inc.lon))
            except RoutingError:
                routes[uid] = None
        packets = []
        with self.db.session() as s:
            inc = self._incident(s, principal, incident_id, "write")
            self._require(principal, "write", "incident", inc.unit_id)
            if inc.status == "closed":
                raise Conflict(f"incident {inc.id} is closed", code="dispatch.incident_closed")
            out = []
            now = utcnow()
            for uid in unit_ids:
                u = s.get(DispatchUnit, uid)
                if u is None:
                    raise NotFound(f"unit {uid} no longer exists", code="dispatch.unit_not_found",
                                   details={"unit_id": uid})
                self._require(principal, "read", "dispatch_unit", u.unit_id)
                claimed = s.execute(
                    update(DispatchUnit)
                    .where(DispatchUnit.id == uid, DispatchUnit.status == "available")
                    .values(status="dispatched", incident_id=inc.id,
                            version=DispatchUnit.version + 1, updated_at=now)
                    .execution_options(synchronize_session=False)).rowcount
                if claimed != 1:
                    s.refresh(u)
                    raise Conflict(f"unit {u.call_sign} is not available ({u.status}"
                                   + (f", on incident {u.incident_id}" if u.incident_id else "")
                                   + ")", code="dispatch.unit_unavailable",
                                   details={"unit_id": uid, "call_sign": u.call_sign,
                                            "status": u.status, "incident_id": u.incident_id})
                s.refresh(u)
                r = routes.get(uid)
                a = Assignment(incident_id=inc.id, dispatch_unit_id=uid, call_sign=u.call_sign,
                               status="dispatched", assigned_by=principal.user_id,
                               assigned_at=now, travel_time_s=r and round(r.time_s, 1),
                               distance_m=r and round(r.distance_m, 1),
                               route=[list(p) for p in r.path] if r and r.path else None)
                s.add(a)
                s.flush()
                if not s.scalar(select(Share.id).where(
                        Share.record_kind == "incident", Share.record_id == str(inc.id),
                        Share.grantee_unit_id == u.unit_id)):
                    access.grant(s, "incident", str(inc.id), unit_id=u.unit_id,
                                 granted_by=principal.user_id, record_unit_id=inc.unit_id)
                self._timeline(s, inc.id, principal, "assigned",
                               f"{u.call_sign} dispatched"
                               + (f", {round(r.time_s / 60, 1)} min by road" if r else ""),
                               {"unit_id": uid, "assignment_id": a.id})
                self._emit_unit(s, "dispatch.unit.assigned", principal, u,
                                incident=incident_brief(inc))
                packets.append((u, a))
                out.append(a)
            if inc.status == "new":
                inc.status, inc.dispatched_at = "dispatched", inc.dispatched_at or now
                self._timeline(s, inc.id, principal, "status", "new → dispatched",
                               {"from": "new", "to": "dispatched"})
            self._bump(inc)
            self._emit_incident(s, "dispatch.incident.dispatched", principal, inc,
                                units=[u.call_sign for u, _ in packets])
            for u, a in packets:
                crew = self._crew_ids(s, u.id)
                if crew:
                    emit(s, DomainEvent(
                        type="dispatch.assignment.received", actor_id=principal.user_id,
                        record_kind="incident", record_id=str(inc.id), unit_id=inc.unit_id,
                        audience=crew,
                        payload={"unit": unit_brief(u), "incident": incident_brief(inc),
                                 "summary": inc.summary, "assignment_id": a.id,
                                 "route": a.route, "travel_time_s": a.travel_time_s,
                                 "briefing": self.briefing_ref(inc)}))
            return out

    def assignment_for_unit(self, principal: Principal, unit_id: int) -> dict[str, Any] | None:
        with self.db.read() as s:
            u = self._unit(s, unit_id)
            if principal.user_id not in self._crew_ids(s, u.id):
                self._require(principal, "read", "dispatch_unit", u.unit_id)
            if u.incident_id is None:
                return None
            a = s.scalar(select(Assignment).where(Assignment.dispatch_unit_id == u.id,
                                                  Assignment.incident_id == u.incident_id,
                                                  Assignment.status.in_(ACTIVE)))
            inc = s.get(Incident, u.incident_id)
        return {"assignment": a, "incident": inc, "briefing": self.briefing_ref(inc)}


def get_service(runtime: Runtime) -> DispatchService:
    return runtime.service("dispatch", DispatchService)

