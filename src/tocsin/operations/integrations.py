"""The only places where operations touches other domain modules.

Design rule: never read their tables; call their ``service`` or listen to their
events. Each integration is one small function here, so that when the other
module's API settles there is one place to adapt.

- dispatch incidents: ``dispatch.incident.*`` events on the bus (``on_event``);
  the location is read from the event payload (``incident_location``).
- messenger: ``alert_to_messenger`` hands a published alert to
  ``tocsin.messaging.service`` when that module is installed.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from tocsin.core.access import Principal
from tocsin.core.events import DomainEvent
from tocsin.core.runtime import Runtime

log = logging.getLogger(__name__)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def incident_location(event: DomainEvent) -> tuple[float, float] | None:
    """(lat, lon) of a dispatch incident event, from the shapes its payload may take:
    ``lat``/``lon``, ``location: {lat, lon}``, or a GeoJSON ``geometry`` Point."""
    p = event.payload or {}
    candidates = [p, p.get("location") or {}, p.get("incident") or {},
                  (p.get("incident") or {}).get("location") or {} if isinstance(
                      p.get("incident"), dict) else {}]
    for c in candidates:
        if isinstance(c, dict):
            lat, lon = _num(c.get("lat", c.get("latitude"))), _num(
                c.get("lon", c.get("lng", c.get("longitude"))))
            if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
                return lat, lon
    g = p.get("geometry")
    if isinstance(g, dict) and g.get("type") == "Point":
        c = g.get("coordinates") or []
        if len(c) >= 2 and _num(c[0]) is not None and _num(c[1]) is not None:
            return float(c[1]), float(c[0])
    return None


def on_dispatch_event(runtime: Runtime, event: DomainEvent) -> None:
    if not event.type.startswith("dispatch.incident."):
        return
    from tocsin.operations.service import get_service

    try:
        get_service(runtime).record_incident(event)
    except Exception:  # a bad incident event must not stop the bus
        log.exception("could not record dispatch incident event %s", event.id)


def alert_to_messenger(runtime: Runtime, principal: Principal, alert: dict, cap_xml: str
                       ) -> str:
    """Broadcast the alert in the messenger when it exists; returns what happened."""
    try:
        messaging = importlib.import_module("tocsin.messaging.service")
    except ImportError:
        return "messenger not installed"
    broadcast = getattr(messaging, "broadcast_alert", None)
    if broadcast is None:
        return "messenger has no broadcast_alert"
    try:
        broadcast(runtime, principal, title=alert["headline"], text=alert["description"],
                  cap_xml=cap_xml, photo_sha256=alert.get("photo"))
        return "sent"
    except Exception as exc:  # the alert stays published; the journal has it
        log.exception("messenger broadcast failed")
        return f"messenger error: {type(exc).__name__}"
