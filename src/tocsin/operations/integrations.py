"""The only places where operations touches other domain modules.

Design rule: never read their tables; call their ``service`` or listen to their
events. Each integration is one small function here, so that when the other
module's API settles there is one place to adapt.

- dispatch incidents: ``dispatch.incident.*`` events on the bus (``on_event``);
  the location is read from the event payload (``incident_location``).
- messenger: ``alert_to_messenger`` broadcasts a published alert with
  ``MessagingService.create_alert`` (photo stored as messenger media first).
"""

from __future__ import annotations

import logging
from pathlib import Path
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


def alert_to_messenger(runtime: Runtime, principal: Principal, alert: dict, *,
                       unit_codes: list[str], photo: Path | None = None) -> str:
    """Broadcast a published alert in the messenger; returns what happened.

    The messenger addresses units (their whole subtree), not places: the caller maps
    the alert's audience to core unit codes (see ``OperationsService.alert_targets``)
    and the area travels with the alert as GeoJSON. The photo becomes messenger media
    (re-encoded without metadata, encrypted under the broadcast channel's key when it
    is attached). Returns ``"sent: <alert id>"``; any failure leaves the operations
    alert published (the journal has it) and is returned as ``"messenger error: ..."``.
    """
    try:
        from tocsin.messaging.service import get_service
        from tocsin.messaging.storage import get_media
    except ImportError:
        return "messenger not installed"
    try:
        svc = get_service(runtime)
        photo_mxc = None
        if photo is not None:  # the messenger finds its real type from the bytes
            media = get_media(runtime).store_bytes(
                principal, photo.read_bytes(), filename=f"{alert['identifier']}{photo.suffix}")
            photo_mxc = svc.mxc(media.id)
        created = svc.create_alert(
            principal, kind=alert["kind"], title=alert["headline"],
            description=alert.get("description") or "", unit_codes=unit_codes,
            photo_mxc=photo_mxc, area=alert.get("area"),
            source={"cap_identifier": alert["identifier"],
                    "operation_id": alert.get("operation_id"), "alert_id": alert["id"]})
        return f"sent: {created.id}"
    except Exception as exc:  # the alert stays published; the journal has it
        log.exception("messenger broadcast failed")
        message = getattr(exc, "message", None) or type(exc).__name__
        return f"messenger error: {message}"
