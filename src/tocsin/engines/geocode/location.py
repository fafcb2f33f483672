"""Caller location parsers: Advanced Mobile Location (ETSI TS 103 625) as
SMS and as HTTPS form post, and PIDF-LO (RFC 4119, shapes of RFC 5491,
civic addresses of RFC 5139).

Every parser returns a :class:`CallerLocation` or raises
:class:`LocationError` (a ``ValueError``) carrying a machine-readable
``code``.  Input is bounded (size, characters, field counts) and XML is
parsed with defusedxml with DTDs, entities and external references
forbidden, so hostile input gets a clear error, never a hang.

Device identifiers (IMEI, IMSI, phone number) are kept in
``CallerLocation.extra``, which ``repr`` does not show and ``to_dict``
leaves out unless asked, so they do not end up in logs by accident.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

MAX_INPUT = 64 * 1024
MAX_SMS = 1024
MAX_FORM = 8 * 1024
DEFAULT_MAX_AGE = timedelta(minutes=5)
DEFAULT_IMPRECISE_M = 100.0
FUTURE_SKEW = timedelta(minutes=5)

SRC_AML_SMS = "aml-sms"
SRC_AML_HTTPS = "aml-https"
SRC_PIDF = "pidf-lo"

AML_METHODS = {"G": "GNSS", "W": "WiFi", "C": "Cell", "N": "None"}
HTTPS_METHODS = {"gps": "GNSS", "gnss": "GNSS", "wifi": "WiFi", "cell": "Cell",
                 "fused": "Hybrid", "hybrid": "Hybrid", "unknown": "Unknown", "network": "Cell"}
PIDF_METHODS = {"gps": "GNSS", "a-gps": "GNSS", "gnss": "GNSS", "802.11": "WiFi",
                "wifi": "WiFi", "cell": "Cell", "hybrid": "Hybrid", "manual": "Manual",
                "dhcp": "DHCP", "wiremap": "Wiremap", "triangulation": "Triangulation",
                "lldp-med": "LLDP-MED", "derived": "Derived", "device-assisted_a-gps": "GNSS",
                "device-based_a-gps": "GNSS", "ipdl": "Cell", "rfid": "RFID", "afltp": "Cell",
                "e-otd": "Cell", "u-tdoa": "Cell", "ota": "Cell", "tdoa": "Cell", "aoa": "Cell",
                "ooth": "Other"}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DECIMAL = re.compile(r"^[+-]?\d{1,3}(?:\.\d{1,12})?$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,9}(?:\.\d{0,9})?|\.\d{1,9})(?:[eE][+-]?\d{1,3})?$")


class LocationError(ValueError):
    """Unusable caller location; ``code`` says why (e.g. ``aml.length_mismatch``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class CallerLocation:
    """A caller's location.  ``lat``/``lon`` are None only for a PIDF-LO
    that carries a civic address alone (then ``civic`` is set and the
    ``civic_only`` flag too): geocode :meth:`civic_text` to place it."""

    lat: float | None
    lon: float | None
    radius_m: float | None  # uncertainty radius (metres) at ``confidence``
    time: datetime | None  # aware, UTC
    source: str  # aml-sms | aml-https | pidf-lo
    method: str | None  # GNSS | WiFi | Cell | Hybrid | Manual | ...
    confidence: float | None  # percent
    flags: list[str] = field(default_factory=list)  # stale, imprecise, future, no_time...
    altitude_m: float | None = None
    shape: str | None = None  # point | circle | ellipse | polygon | sphere | ...
    civic: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict, repr=False)

    def civic_text(self) -> str:
        """The civic address as one line, ready for ``AddressIndex.search``."""
        c = self.civic
        street = " ".join(x for x in (c.get("PRD"), c.get("RD"), c.get("STS"), c.get("POD"))
                          if x)
        number = "".join(x for x in (c.get("HNO"), c.get("HNS")) if x)
        first = " ".join(x for x in (number, street) if x)
        place = " ".join(x for x in (c.get("PC"), c.get("A3") or c.get("A2")) if x)
        return ", ".join(x for x in (c.get("NAM"), first, c.get("LOC"), place) if x)

    def to_dict(self, include_private: bool = False) -> dict:
        d = {
            "lat": self.lat, "lon": self.lon, "radius_m": self.radius_m,
            "time": self.time.isoformat() if self.time else None, "source": self.source,
            "method": self.method, "confidence": self.confidence, "flags": list(self.flags),
            "altitude_m": self.altitude_m, "shape": self.shape, "civic": dict(self.civic),
        }
        if include_private:
            d["extra"] = dict(self.extra)
        return d


# --------------------------------------------------------------------- helpers
def _check_text(text: str | bytes, limit: int, code: str) -> str:
    if isinstance(text, bytes | bytearray | memoryview):
        if len(text) > limit:
            raise LocationError("input.too_long", f"{len(text)} bytes, limit {limit}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise LocationError("input.encoding", "not UTF-8") from None
    if not isinstance(text, str):
        raise LocationError("input.type", f"expected text, got {type(text).__name__}")
    if len(text) > limit:
        raise LocationError("input.too_long", f"{len(text)} characters, limit {limit}")
    if not text.strip():
        raise LocationError("input.empty", "empty message")
    return text


def _coord(value: str, lo: float, hi: float, code: str, name: str) -> float:
    v = value.strip()
    if not _DECIMAL.match(v):
        raise LocationError(code, f"{name} {value[:20]!r} is not a decimal number")
    x = float(v)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise LocationError(code, f"{name} {x} out of range [{lo}, {hi}]")
    return x


def _number(value: str, code: str, name: str, lo: float = 0.0,
            hi: float = 1e7) -> float:
    v = value.strip()
    if not _NUMBER.match(v):
        raise LocationError(code, f"{name} {value[:20]!r} is not a number")
    x = float(v)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise LocationError(code, f"{name} {x} out of range [{lo}, {hi}]")
    return x


def _flags(loc: CallerLocation, now: datetime | None, max_age: timedelta,
           imprecise_m: float) -> CallerLocation:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if loc.time is None:
        loc.flags.append("no_time")
    else:
        if now - loc.time > max_age:
            loc.flags.append("stale")
        if loc.time - now > FUTURE_SKEW:
            loc.flags.append("future")
    if loc.lat is not None and (loc.radius_m is None or loc.radius_m > imprecise_m):
        loc.flags.append("imprecise")
    if loc.confidence is not None and loc.confidence < 50:
        loc.flags.append("low_confidence")
    return loc


# ------------------------------------------------------------------- AML SMS
_AML_REQUIRED = ("lt", "lg", "rd", "top", "lc", "pm", "ml")
_AML_KNOWN = set(_AML_REQUIRED) | {"si", "ei", "mcc", "mnc", "pd", "pt", "ha", "fl", "hd"}


def parse_aml_sms(text: str | bytes, *, now: datetime | None = None,
                  max_age: timedelta = DEFAULT_MAX_AGE,
                  imprecise_m: float = DEFAULT_IMPRECISE_M,
                  strict_length: bool = True) -> CallerLocation:
    """Parse an AML SMS body (``A"ML=1;lt=...;ml=128``).

    ``ml`` must equal the message length (ETSI TS 103 625); with
    ``strict_length=False`` a mismatch only adds the ``length_mismatch``
    flag (some handsets and published examples are off by one)."""
    text = _check_text(text, MAX_SMS, "aml")
    msg = text.rstrip("\r\n")
    if _CONTROL.search(msg) or "\n" in msg or "\r" in msg:
        raise LocationError("aml.control_chars", "control characters in message")
    if not msg.isascii():
        raise LocationError("aml.not_ascii", "AML messages are plain ASCII")
    if not msg.startswith('A"ML='):
        raise LocationError("aml.header", "message does not start with A\"ML=")
    parts = msg.split(";")
    version = parts[0][5:]
    if version != "1":
        raise LocationError("aml.version", f"unsupported AML version {version[:8]!r}")
    fields: dict[str, str] = {}
    for p in parts[1:]:
        if "=" not in p:
            raise LocationError("aml.syntax", f"field {p[:20]!r} has no '='")
        k, v = p.split("=", 1)
        if k in fields:
            raise LocationError("aml.duplicate_field", f"field {k!r} appears twice")
        fields[k] = v
    missing = [k for k in _AML_REQUIRED if k not in fields]
    if missing:
        raise LocationError("aml.missing_field", f"missing field(s): {', '.join(missing)}")
    flags: list[str] = []
    if not fields["ml"].isdigit():
        raise LocationError("aml.length", f"ml={fields['ml'][:10]!r} is not a number")
    if int(fields["ml"]) != len(msg):
        if strict_length:
            raise LocationError("aml.length_mismatch",
                                f"ml={fields['ml']} but the message has {len(msg)} characters")
        flags.append("length_mismatch")
    pm = fields["pm"]
    if pm not in AML_METHODS:
        raise LocationError("aml.bad_method", f"positioning method {pm[:4]!r} not in G/W/C/N")
    if pm == "N" or fields["rd"] == "N":
        raise LocationError("aml.no_location", "the handset sent no location (pm=N)")
    lat = _coord(fields["lt"], -90, 90, "aml.bad_latitude", "latitude")
    lon = _coord(fields["lg"], -180, 180, "aml.bad_longitude", "longitude")
    rd = _number(fields["rd"], "aml.bad_radius", "radius", 0, 1e6)
    if not fields["lc"].isdigit() or not 0 <= int(fields["lc"]) <= 100:
        raise LocationError("aml.bad_confidence", f"lc={fields['lc'][:8]!r} not in 0..100")
    top = fields["top"]
    try:
        if not (len(top) == 14 and top.isdigit()):
            raise ValueError
        when = datetime.strptime(top + "+0000", "%Y%m%d%H%M%S%z")
    except ValueError:
        raise LocationError("aml.bad_time", f"top={top[:20]!r} is not YYYYMMDDhhmmss") from None
    extra = {k: fields[k] for k in ("si", "ei", "mcc", "mnc") if fields.get(k)}
    for k, name in (("si", "imsi"), ("ei", "imei")):
        if k in extra:
            extra[name] = extra.pop(k)
    loc = CallerLocation(lat, lon, rd, when, SRC_AML_SMS, AML_METHODS[pm],
                         float(int(fields["lc"])), flags, shape="circle", extra=extra)
    return _flags(loc, now, max_age, imprecise_m)


# ----------------------------------------------------------------- AML HTTPS
def _https_time(v: str, code: str) -> datetime:
    v = v.strip()
    if v.isdigit() and len(v) <= 16:
        n = int(v)
        secs = n / 1000 if n > 10**11 else n  # ms since epoch (ELS) or seconds
        try:
            return datetime.fromtimestamp(secs, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise LocationError(code, f"timestamp {v!r} out of range") from None
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))  # noqa: FURB162
    except ValueError:
        raise LocationError(code, f"time {v[:30]!r} is neither epoch ms nor ISO 8601") from None
    if d.tzinfo is None:
        raise LocationError(code, f"time {v[:30]!r} has no time zone")
    return d.astimezone(UTC)


def parse_aml_https(body: str | bytes, *, now: datetime | None = None,
                    max_age: timedelta = DEFAULT_MAX_AGE,
                    imprecise_m: float = DEFAULT_IMPRECISE_M) -> CallerLocation:
    """Parse an AML/ELS HTTPS POST body (``application/x-www-form-urlencoded``:
    ``v, emergency_number, time, location_latitude, location_longitude,
    location_time, location_accuracy, location_source, location_altitude,
    location_floor, location_confidence, device_number, device_imei,
    device_imsi, network_mcc, network_mnc``...).  Times are epoch
    milliseconds (ISO 8601 accepted too)."""
    text = _check_text(body, MAX_FORM, "aml")
    if _CONTROL.search(text):
        raise LocationError("aml.control_chars", "control characters in body")
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=100)
    except ValueError as e:
        raise LocationError("aml.syntax", f"not a form-encoded body: {e}") from None
    f: dict[str, str] = {}
    for k, v in pairs:
        if k in f:
            raise LocationError("aml.duplicate_field", f"field {k!r} appears twice")
        if _CONTROL.search(v):
            raise LocationError("aml.control_chars", f"control characters in {k!r}")
        f[k] = v
    missing = [k for k in ("location_latitude", "location_longitude") if not f.get(k)]
    if missing:
        raise LocationError("aml.missing_field", f"missing field(s): {', '.join(missing)}")
    if "v" in f and f["v"] not in ("1", "2", "3"):
        raise LocationError("aml.version", f"unsupported version {f['v'][:8]!r}")
    lat = _coord(f["location_latitude"], -90, 90, "aml.bad_latitude", "latitude")
    lon = _coord(f["location_longitude"], -180, 180, "aml.bad_longitude", "longitude")
    acc = None
    if f.get("location_accuracy"):
        acc = _number(f["location_accuracy"], "aml.bad_radius", "accuracy", 0, 1e6)
    when = None
    for key in ("location_time", "time", "emergency_date"):
        if f.get(key):
            when = _https_time(f[key], "aml.bad_time")
            break
    src = (f.get("location_source") or "").strip().lower()
    method = HTTPS_METHODS.get(src, src.capitalize() or None) if src else None
    if method is not None and len(method) > 20:
        raise LocationError("aml.bad_method", "location_source too long")
    conf = 68.0  # Android reports accuracy at 68 % confidence
    if f.get("location_confidence"):
        conf = _number(f["location_confidence"], "aml.bad_confidence", "confidence", 0, 100)
        if conf <= 1.0 and "." in f["location_confidence"]:
            conf *= 100
    alt = None
    if f.get("location_altitude"):
        alt = _number(f["location_altitude"], "aml.bad_altitude", "altitude", -1000, 100_000)
    extra = {}
    for k, name in (("device_number", "number"), ("device_imei", "imei"),
                    ("device_imsi", "imsi"), ("network_mcc", "mcc"), ("network_mnc", "mnc"),
                    ("emergency_number", "emergency_number"), ("location_floor", "floor"),
                    ("device_model", "device_model"), ("v", "version")):
        if f.get(k):
            extra[name] = f[k][:64]
    loc = CallerLocation(lat, lon, acc, when, SRC_AML_HTTPS, method, conf, [], alt,
                         "circle" if acc is not None else "point", extra=extra)
    return _flags(loc, now, max_age, imprecise_m)


# ------------------------------------------------------------------- PIDF-LO
NS_GML = "http://www.opengis.net/gml"
NS_GS = "http://www.opengis.net/pidflo/1.0"
NS_CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
NS_GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
NS_CONF = "urn:ietf:params:xml:ns:geopriv:conf"
CIVIC_FIELDS = ("country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS",
                "POD", "POM", "RDSEC", "RDBR", "RDSUBBR", "HNO", "HNS", "LMK", "LOC", "FLR",
                "NAM", "PC", "BLD", "UNIT", "ROOM", "SEAT", "PLC", "PCN", "POBOX", "ADDCODE")
_SHAPES = {f"{{{NS_GML}}}Point": "point", f"{{{NS_GS}}}Circle": "circle",
           f"{{{NS_GS}}}Ellipse": "ellipse", f"{{{NS_GML}}}Polygon": "polygon",
           f"{{{NS_GS}}}Sphere": "sphere", f"{{{NS_GS}}}Ellipsoid": "ellipsoid",
           f"{{{NS_GS}}}ArcBand": "arcband", f"{{{NS_GS}}}Prism": "prism"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _floats(text: str | None, code: str) -> list[float]:
    parts = (text or "").split()
    if not parts or len(parts) > 2000:
        raise LocationError(code, "empty or oversized coordinate list")
    out = []
    for p in parts:
        out.append(_number(p, code, "coordinate", -1e7, 1e7))
    return out


def _latlon(vals: list[float]) -> tuple[float, float, float | None]:
    if len(vals) not in (2, 3):
        raise LocationError("pidf.bad_position", f"a position has {len(vals)} values")
    lat, lon = vals[0], vals[1]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise LocationError("pidf.bad_position", f"position {lat}, {lon} out of range")
    return lat, lon, (vals[2] if len(vals) == 3 else None)


def _length(el, code: str) -> float:
    if el is None:
        raise LocationError(code, "missing length")
    uom = el.get("uom", "urn:ogc:def:uom:EPSG::9001")
    if not uom.endswith("9001"):
        raise LocationError(code, f"unsupported unit {uom[:60]!r} (metres expected)")
    return _number(el.text or "", code, "length", 0, 1e7)


def _geodetic(shape_el) -> tuple[float, float, float | None, float | None, str]:
    """(lat, lon, altitude, radius, shape)."""
    shape = _SHAPES[shape_el.tag]
    srs = shape_el.get("srsName", "urn:ogc:def:crs:EPSG::4326")
    if not srs.endswith(("4326", "4979")):
        raise LocationError("pidf.bad_crs", f"unsupported CRS {srs[:60]!r}")
    if shape == "polygon" or shape == "prism":
        pts: list[tuple[float, float]] = []
        for pl in shape_el.iter(f"{{{NS_GML}}}posList"):
            vals = _floats(pl.text, "pidf.bad_position")
            dim = 3 if pl.get("srsDimension") == "3" or srs.endswith("4979") else 2
            if len(vals) % dim:
                raise LocationError("pidf.bad_position", "posList length not a multiple of 2/3")
            pts += [(vals[i], vals[i + 1]) for i in range(0, len(vals), dim)]
        for p in shape_el.iter(f"{{{NS_GML}}}pos"):
            la, lo, _ = _latlon(_floats(p.text, "pidf.bad_position"))
            pts.append((la, lo))
        if len(pts) > 1 and pts[0] == pts[-1]:
            pts = pts[:-1]
        if len(pts) < 3:
            raise LocationError("pidf.bad_shape", "a polygon needs at least 3 points")
        for la, lo in pts:
            _latlon([la, lo])
        clat = sum(p[0] for p in pts) / len(pts)
        clon = sum(p[1] for p in pts) / len(pts)
        ky = 6_371_008.8 * math.pi / 180
        kx = ky * math.cos(math.radians(clat))
        radius = max(math.hypot((la - clat) * ky, (lo - clon) * kx) for la, lo in pts)
        return clat, clon, None, radius, shape
    pos = shape_el.find(f"{{{NS_GML}}}pos")
    if pos is None:
        raise LocationError("pidf.bad_shape", f"{shape} without gml:pos")
    lat, lon, alt = _latlon(_floats(pos.text, "pidf.bad_position"))
    radius: float | None = None
    if shape in ("circle", "sphere"):
        radius = _length(shape_el.find(f"{{{NS_GS}}}radius"), "pidf.bad_shape")
    elif shape in ("ellipse", "ellipsoid"):
        radius = _length(shape_el.find(f"{{{NS_GS}}}semiMajorAxis"), "pidf.bad_shape")
    elif shape == "arcband":
        radius = _length(shape_el.find(f"{{{NS_GS}}}outerRadius"), "pidf.bad_shape")
    return lat, lon, alt, radius, shape


def parse_pidf_lo(xml: str | bytes, *, now: datetime | None = None,
                  max_age: timedelta = DEFAULT_MAX_AGE,
                  imprecise_m: float = DEFAULT_IMPRECISE_M) -> CallerLocation:
    """Parse a PIDF-LO document.  The first geodetic shape found wins
    (Point, Circle, Ellipse, Polygon -> centroid and enclosing radius,
    Sphere, Ellipsoid, ArcBand); a civic address is always kept in
    ``civic`` for geocoding; ``method`` comes from ``<gp:method>``,
    ``time`` from ``<timestamp>``."""
    if isinstance(xml, str):
        if len(xml) > MAX_INPUT:
            raise LocationError("input.too_long", f"{len(xml)} characters, limit {MAX_INPUT}")
        data = xml.encode("utf-8", errors="replace")
    elif isinstance(xml, bytes | bytearray | memoryview):
        data = bytes(xml)
    else:
        raise LocationError("input.type", f"expected XML text, got {type(xml).__name__}")
    if len(data) > MAX_INPUT:
        raise LocationError("input.too_long", f"{len(data)} bytes, limit {MAX_INPUT}")
    if not data.strip():
        raise LocationError("input.empty", "empty document")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException as e:
        raise LocationError("pidf.xml_unsafe",
                            f"refused XML construct ({type(e).__name__})") from None
    except SafeET.ParseError as e:
        raise LocationError("pidf.xml_malformed", f"malformed XML: {e}") from None
    if _local(root.tag) != "presence":
        raise LocationError("pidf.not_pidf", f"root element is <{_local(root.tag)[:40]}>, "
                                             "not <presence>")
    geo = None
    civic: dict[str, str] = {}
    method = None
    conf = None
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if geo is None and tag in _SHAPES:
            geo = _geodetic(el)
        elif tag == f"{{{NS_CA}}}civicAddress" and not civic:
            for child in el:
                name = _local(child.tag) if isinstance(child.tag, str) else ""
                if name in CIVIC_FIELDS and child.text and child.text.strip():
                    civic[name] = " ".join(child.text.split())[:200]
        elif tag == f"{{{NS_GP}}}method" and method is None and el.text:
            raw = el.text.strip()
            method = PIDF_METHODS.get(raw.lower(), raw[:40])
        elif tag == f"{{{NS_CONF}}}confidence" and el.text:
            conf = _number(el.text, "pidf.bad_confidence", "confidence", 0, 100)
    when = None
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el.tag) == "timestamp" and el.text:
            try:
                when = datetime.fromisoformat(el.text.strip().replace("Z", "+00:00"))  # noqa: FURB162
            except ValueError:
                raise LocationError("pidf.bad_time",
                                    f"timestamp {el.text.strip()[:40]!r} not ISO 8601") from None
            if when.tzinfo is None:
                raise LocationError("pidf.bad_time", "timestamp without time zone")
            when = when.astimezone(UTC)
            break
    if geo is None and not civic:
        raise LocationError("pidf.no_location", "no geodetic shape and no civic address")
    flags: list[str] = []
    if geo is None:
        loc = CallerLocation(None, None, None, when, SRC_PIDF, method, conf, flags,
                             civic=civic, shape="civic")
        flags.append("civic_only")
    else:
        lat, lon, alt, radius, shape = geo
        loc = CallerLocation(lat, lon, radius, when, SRC_PIDF, method,
                             conf if conf is not None else 95.0, flags, alt, shape, civic)
    return _flags(loc, now, max_age, imprecise_m)


# ----------------------------------------------------------------- detection
def parse_location(data: str | bytes, *, now: datetime | None = None,
                   max_age: timedelta = DEFAULT_MAX_AGE,
                   imprecise_m: float = DEFAULT_IMPRECISE_M) -> CallerLocation:
    """Detect the format (AML SMS, AML HTTPS form body, PIDF-LO XML) and parse."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > MAX_INPUT:
            raise LocationError("input.too_long", f"{len(data)} bytes, limit {MAX_INPUT}")
        head = bytes(data[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"<"):
            return parse_pidf_lo(bytes(data), now=now, max_age=max_age,
                                 imprecise_m=imprecise_m)
        data = _check_text(data, MAX_INPUT, "input")
    elif not isinstance(data, str):
        raise LocationError("input.type", f"expected text, got {type(data).__name__}")
    if len(data) > MAX_INPUT:
        raise LocationError("input.too_long", f"{len(data)} characters, limit {MAX_INPUT}")
    s = data.lstrip("\ufeff \t\r\n")
    if not s:
        raise LocationError("input.empty", "empty message")
    kw = {"now": now, "max_age": max_age, "imprecise_m": imprecise_m}
    if s.startswith('A"ML='):
        return parse_aml_sms(s, **kw)
    if s.startswith("<"):
        return parse_pidf_lo(s, **kw)
    if "location_latitude=" in s or "emergency_number=" in s:
        return parse_aml_https(s, **kw)
    raise LocationError("input.unknown_format", "neither AML (SMS/HTTPS) nor PIDF-LO")
