"""Field safety listening to the other modules on the bus.

Dispatch: when an incident is closed (``dispatch.incident.status`` whose
``incident.status`` is ``closed``), the intervention becomes a field operation:
the incident's place (address and point from the event), its times (created,
closed), the units sent (call signs of its assignments), the closing reason as
outcome. Details the event does not carry (times, units) are asked of the
dispatch service, as the user who closed the incident; if that fails the
operation is still recorded from the event alone.

Each incident is one operation: its natural key is ``dispatch.incident:<id>``
(the unique ``client_ref``), so the same event delivered twice (two app nodes
sharing Redis, a replay) records one operation. An incident closed without any
unit ever sent to it (a duplicate call, a hoax) was no field intervention and
records nothing.

Wired by ``on_startup(runtime)`` (``STARTUP_HOOKS`` in ``tocsin.app``).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from tocsin.core.access import Principal
from tocsin.core.database import as_utc
from tocsin.core.errors import TocsinError
from tocsin.core.events import DomainEvent
from tocsin.core.runtime import Runtime
from tocsin.safety import service
from tocsin.safety.schemas import OperationIn

log = logging.getLogger(__name__)

CLOSED_EVENT = "dispatch.incident.status"
MAX_OUTCOME = 80


def incident_ref(incident_id: Any) -> str:
    return f"dispatch.incident:{incident_id}"


def on_startup(runtime: Runtime) -> None:
    """Subscribe the listeners once per runtime (a second call changes nothing)."""
    runtime.service("safety.listeners", _subscribe)


def _subscribe(runtime: Runtime) -> Any:
    handler = functools.partial(on_event, runtime)
    runtime.bus.subscribe(handler)
    return handler


def on_event(runtime: Runtime, event: DomainEvent) -> None:
    if event.type != CLOSED_EVENT:
        return
    incident = (event.payload or {}).get("incident") or {}
    if incident.get("status") != "closed":
        return
    try:
        record_closed_incident(runtime, event)
    except Exception:  # a bad event must not stop the bus; the incident stays in dispatch
        log.exception("could not record closed incident %s as a field operation",
                      incident.get("id"))


def _actor(runtime: Runtime, user_id: int | None) -> Principal | None:
    if user_id is None:
        return None
    try:
        with runtime.db.read() as s:
            username = runtime.identity.get_user(s, user_id).username
        return runtime.identity.principal_for(username)
    except TocsinError:
        return None


def _dispatch_detail(runtime: Runtime, event: DomainEvent, incident_id: int
                     ) -> dict[str, Any] | None:
    """The incident as the dispatch service tells it to the user who closed it."""
    principal = _actor(runtime, event.actor_id)
    if principal is None:
        return None
    try:
        from tocsin.dispatch.service import get_service

        return get_service(runtime).get_incident(principal, incident_id)
    except TocsinError as exc:
        log.warning("closed incident %s: dispatch detail refused (%s); recording from the "
                    "event", incident_id, exc.message)
        return None


def _nature(runtime: Runtime, type_code: str | None) -> str:
    code = type_code or "incident"
    try:
        from tocsin.dispatch.service import get_service

        title = get_service(runtime).catalogue.types[code].title
    except (ImportError, KeyError, AttributeError):
        title = code
    return (title if len(title) >= 2 else f"{title} incident")[:80]


def intervention(runtime: Runtime, event: DomainEvent) -> OperationIn | None:
    """The field operation a closed-incident event stands for (``None``: no unit went)."""
    p = event.payload or {}
    inc = p["incident"]
    reason = (p.get("reason") or "").strip() or "closed"
    detail = _dispatch_detail(runtime, event, int(inc["id"]))
    started = ended = event.occurred_at
    summary, units = None, []
    if detail is None:  # the event alone: a unit went unless it was closed straight from new
        if p.get("previous") == "new":
            return None
    else:
        row = detail["incident"]
        units = list(dict.fromkeys(a.call_sign for a in detail["assignments"]))
        if not units:
            return None
        calls = [as_utc(c.received_at) for c in detail["calls"] if c.received_at]
        started = min([as_utc(row.created_at), *calls])
        ended = as_utc(row.closed_at) if row.closed_at else ended
        summary = row.summary or None
    started = min(started, ended)
    note = f"Closed: {reason}"
    address = str(inc.get("address") or "").strip()[:300] or None
    return OperationIn(
        lat=float(inc["lat"]), lon=float(inc["lon"]), address=address,
        started_at=started, ended_at=ended,
        nature=_nature(runtime, inc.get("type_code")),
        outcome=reason[:MAX_OUTCOME] if len(reason) >= 2 else "closed",
        summary="\n".join(x for x in (summary, note) if x)[:20_000], units=units,
        client_ref=incident_ref(inc["id"]))


def record_closed_incident(runtime: Runtime, event: DomainEvent) -> dict[str, Any] | None:
    """Record the closed incident of ``event`` as a field operation, once.

    Returns the operation stored, or ``None`` (already recorded, or no unit went)."""
    inc = event.payload["incident"]
    ref = incident_ref(inc["id"])
    if service.operation_by_ref(runtime, ref) is not None:
        return None  # delivered again (another node, a replay): nothing to do
    if event.unit_id is None:
        raise ValueError(f"closed incident {inc['id']}: the event names no owning unit")
    body = intervention(runtime, event)
    if body is None:
        return None
    return service.record_intervention(runtime, body, unit_id=event.unit_id,
                                       actor_id=event.actor_id, source="dispatch",
                                       incident_id=inc["id"])


__all__ = ["incident_ref", "intervention", "on_event", "on_startup", "record_closed_incident"]
