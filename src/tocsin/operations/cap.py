"""Alerts as OASIS Common Alerting Protocol 1.2 documents, checked against the
official schema (``data/CAP-v1.2.xsd``) before anything is published."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from pathlib import Path
from typing import Any

from lxml import etree

from tocsin.core.errors import BadInput

NS = "urn:oasis:names:tc:emergency:cap:1.2"
XSD = Path(__file__).resolve().parent / "data" / "CAP-v1.2.xsd"
EVENTS = {
    "missing_person": ("Missing person", "Rescue", "Monitor", "Expected", "Moderate", "Observed"),
    "wanted_vehicle": ("Wanted vehicle", "Security", "Monitor", "Expected", "Moderate",
                       "Observed"),
    "imminent_danger": ("Imminent danger", "Safety", "Avoid", "Immediate", "Severe", "Likely"),
}


@functools.lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def cap_time(value: dt.datetime) -> str:
    """CAP's form: seconds, explicit offset, never 'Z' (the schema's pattern)."""
    value = value.astimezone(dt.timezone.utc).replace(microsecond=0)
    return value.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def cap_polygon(geometry: dict[str, Any]) -> str:
    """GeoJSON Polygon outer ring -> CAP 'lat,lon lat,lon ...' (closed, ≥ 4 pairs)."""
    ring = geometry["coordinates"][0]
    if ring[0] != ring[-1]:
        ring = [*ring, ring[0]]
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in ring)


def build(*, identifier: str, sender: str, sent: dt.datetime, kind: str, headline: str,
          description: str, instruction: str = "", sender_name: str = "",
          area: dict[str, Any] | None = None, area_desc: str = "",
          addresses: list[str] | None = None, expires: dt.datetime | None = None,
          photo: tuple[bytes, str] | None = None, operation_name: str = "",
          status: str = "Actual") -> str:
    event, category, response, urgency, severity, certainty = EVENTS[kind]
    E = lambda tag, text=None, parent=None: _el(parent, tag, text)  # noqa: E731
    alert = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    for tag, text in (("identifier", identifier), ("sender", sender), ("sent", cap_time(sent)),
                      ("status", status), ("msgType", "Alert"), ("source", "Tocsin"),
                      ("scope", "Restricted" if not addresses else "Private")):
        E(tag, text, alert)
    if not addresses:
        E("restriction", "Police personnel of the participating units", alert)
    else:
        # CAP: space-separated, addresses containing spaces in double quotes
        E("addresses", " ".join(f'"{a}"' if " " in a else a for a in addresses), alert)
    if operation_name:
        E("note", f"Operation: {operation_name}", alert)
    info = E("info", None, alert)
    for tag, text in (("language", "en-US"), ("category", category), ("event", event),
                      ("responseType", response), ("urgency", urgency), ("severity", severity),
                      ("certainty", certainty), ("audience", "Police")):
        E(tag, text, info)
    E("effective", cap_time(sent), info)
    if expires:
        E("expires", cap_time(expires), info)
    if sender_name:
        E("senderName", sender_name, info)
    E("headline", headline, info)
    if description:
        E("description", description, info)
    if instruction:
        E("instruction", instruction, info)
    if photo:
        data, mime = photo
        res = E("resource", None, info)
        E("resourceDesc", "Photo", res)
        E("mimeType", mime, res)
        E("size", str(len(data)), res)
        E("derefUri", base64.b64encode(data).decode(), res)
        E("digest", hashlib.sha1(data).hexdigest(), res)  # CAP 1.2 names SHA-1 here
    if area:
        a = E("area", None, info)
        E("areaDesc", area_desc or "Operation area", a)
        E("polygon", cap_polygon(area), a)
    return etree.tostring(alert, xml_declaration=True, encoding="UTF-8").decode()


def _el(parent, tag: str, text: str | None):
    el = etree.SubElement(parent, f"{{{NS}}}{tag}") if parent is not None else etree.Element(
        f"{{{NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def validate(xml: str | bytes) -> None:
    """Raise BadInput with the schema's own messages unless ``xml`` is valid CAP 1.2."""
    data = xml.encode() if isinstance(xml, str) else xml
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        doc = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise BadInput(f"not well-formed XML: {exc}", code="cap.malformed") from None
    s = schema()
    if not s.validate(doc):
        errors = [f"line {e.line}: {e.message}" for e in s.error_log][:20]
        raise BadInput("not a valid CAP 1.2 alert", code="cap.invalid", details=errors)
