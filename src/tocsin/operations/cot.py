"""Cursor-on-Target for TAK clients (ATAK, WinTAK, iTAK): XML events over TCP.

The listener starts when ``TOCSIN_COT_PORT`` is set (``TOCSIN_COT_HOST``, default
127.0.0.1). With ``TOCSIN_COT_CERT`` and ``TOCSIN_COT_KEY`` it speaks TLS; with
``TOCSIN_COT_CA`` as well, clients must present a certificate signed by that CA.

Who may connect. A CoT event names its sender only by its ``uid``, which is no
secret (every TAK client on a network sees the others'), so without client
certificates anybody who can reach the port could move a unit on the map and
receive the operation's picture. Tocsin therefore does what a TAK Server
operator expects: on the network, TAK clients authenticate with client
certificates (mutual TLS, the TAK Server "tls" input on port 8089, with the
data package / certificate enrolment TAK users already know). Concretely:

- ``TOCSIN_COT_CA`` set (with ``CERT`` and ``KEY``): mutual TLS on any address.
- no CA: the listener only starts on a loopback address (127.0.0.0/8, ::1,
  ``localhost``), for a gateway on the same machine (a TAK Server federating to
  Tocsin, or a TLS terminator that checks client certificates itself).
- no CA on any other address: the listener refuses to start and logs why, unless
  ``TOCSIN_COT_ALLOW_UNAUTHENTICATED=1`` says the network itself is trusted (a
  closed radio mesh); it then starts with a warning.
- ``TOCSIN_COT_CA`` without ``CERT``/``KEY`` is a configuration error: refused.

No shared token is offered: CoT events have no field for one, and the only
in-band credential TAK clients send is a TAK Server account login (the
``<auth><cot username password/></auth>`` message, meant to travel over TLS),
which is not implemented here; client certificates serve that purpose.

In: each ``<event>`` is parsed with defusedxml (no entities, no DTD), checked
against the CoT base schema (uid, type, how, time/start/stale, point
lat/lon/hae/ce/le), its uid mapped to operation units (``OpUnit.cot_uid``), and
handed to the position hub, which applies the same checks as for any other
source (future, outside the operation, flood: the flood limit is per unit,
shared by all CoT connections, so reconnecting does not reset it). A rejected
event is logged with
its reason and counted; the connection stays open. Only the XML stream protocol
is spoken (no TAK protobuf).

Out: once a client has sent a position for a known uid it is bound to that
unit's operations, and every ``PUSH_INTERVAL`` it receives the operation's
other units that moved, as CoT events, so TAK users see the same picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import math
import re
import ssl
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
UNKNOWN = 9999999.0  # CoT's "not known" for hae/ce/le
TYPE_RE = re.compile(r"^[a-zA-Z0-9]+(-[a-zA-Z0-9.]+)*$")
HOW_RE = re.compile(r"^[a-z](-[a-z0-9]+)*$")
UID_RE = re.compile(r"^[\x21-\x7e]{1,120}$")


class CotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_COT_", extra="ignore")

    port: int | None = None
    host: str = "127.0.0.1"
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    push_interval: float = 1.0
    allow_unauthenticated: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, or "" (every address)
        return False


def refusal(settings: CotSettings) -> str | None:
    """Why the listener must not start with these settings (None: it may)."""
    if settings.ca and not (settings.cert and settings.key):
        return "TOCSIN_COT_CA needs TOCSIN_COT_CERT and TOCSIN_COT_KEY (mutual TLS)"
    if settings.ca or is_loopback(settings.host) or settings.allow_unauthenticated:
        return None
    return (f"refusing to listen for CoT on {settings.host or 'every address'} without "
            "client certificates: set TOCSIN_COT_CA (with TOCSIN_COT_CERT and "
            "TOCSIN_COT_KEY), listen on a loopback address, or set "
            "TOCSIN_COT_ALLOW_UNAUTHENTICATED=1 on a trusted network")


class CotError(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class CotEvent:
    uid: str
    type: str
    how: str
    time: dt.datetime
    start: dt.datetime
    stale: dt.datetime
    lat: float
    lon: float
    hae: float
    ce: float
    le: float
    callsign: str | None = None
    course: float | None = None
    speed: float | None = None


def _time(el, name: str) -> dt.datetime:
    raw = el.get(name)
    if not raw:
        raise CotError(f"missing {name}")
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CotError(f"{name} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise CotError(f"{name} has no time zone")
    return value.astimezone(dt.timezone.utc)


def _num(el, name: str, lo: float | None = None, hi: float | None = None,
         required: bool = True) -> float | None:
    raw = el.get(name)
    if raw is None:
        if required:
            raise CotError(f"point has no {name}")
        return None
    try:
        v = float(raw)
    except ValueError:
        raise CotError(f"{name} is not a number") from None
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise CotError(f"{name} out of range")
    return v


def parse_event(data: bytes, now: dt.datetime | None = None) -> CotEvent:
    """One ``<event>`` document -> CotEvent, or CotError with the reason."""
    if len(data) > MAX_EVENT_BYTES:
        raise CotError("event larger than 64 KiB")
    try:
        root = SafeET.fromstring(data)
    except SafeET.ParseError as exc:
        raise CotError(f"not well-formed XML ({exc})") from None
    except Exception as exc:  # defusedxml: entities, DTDs, external references
        raise CotError(f"forbidden XML construct ({type(exc).__name__})") from None
    if root.tag != "event":
        raise CotError(f"root element is <{root.tag}>, not <event>")
    uid, typ, how = root.get("uid"), root.get("type"), root.get("how")
    if not uid or not UID_RE.match(uid):
        raise CotError("missing or bad uid")
    if not typ or not TYPE_RE.match(typ):
        raise CotError("missing or bad type")
    if not how or not HOW_RE.match(how):
        raise CotError("missing or bad how")
    version = root.get("version")
    if version is not None and not re.match(r"^\d+(\.\d+)?$", version):
        raise CotError("bad version")
    t, start, stale = _time(root, "time"), _time(root, "start"), _time(root, "stale")
    if stale < start:
        raise CotError("stale before start")
    now = now or dt.datetime.now(dt.timezone.utc)
    if stale < now - dt.timedelta(seconds=5):
        raise CotError("event already stale")
    point = root.find("point")
    if point is None:
        raise CotError("no <point>")
    lat = _num(point, "lat", -90, 90)
    lon = _num(point, "lon", -180, 180)
    hae = _num(point, "hae")
    ce = _num(point, "ce", 0)
    le = _num(point, "le", 0)
    ev = CotEvent(uid=uid, type=typ, how=how, time=t, start=start, stale=stale, lat=lat,
                  lon=lon, hae=hae, ce=ce, le=le)
    detail = root.find("detail")
    if detail is not None:
        contact = detail.find("contact")
        if contact is not None:
            ev.callsign = (contact.get("callsign") or "")[:60] or None
        track = detail.find("track")
        if track is not None:
            with contextlib.suppress(CotError):
                ev.course = _num(track, "course", 0, 360, required=False)
                ev.speed = _num(track, "speed", 0, None, required=False)
    return ev


def _cot_time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_event(*, uid: str, type_: str, lat: float, lon: float, at: dt.datetime,
                callsign: str, stale_seconds: int = 300, course: float | None = None,
                speed: float | None = None, ce: float | None = None, remarks: str = "",
                group: str = "Cyan") -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    ev = Element("event", {"version": "2.0", "uid": uid, "type": type_, "how": "m-g",
                           "time": _cot_time(now), "start": _cot_time(at),
                           "stale": _cot_time(now + dt.timedelta(seconds=stale_seconds))})
    SubElement(ev, "point", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "hae": f"{UNKNOWN}",
                             "ce": f"{ce if ce is not None else UNKNOWN}", "le": f"{UNKNOWN}"})
    detail = SubElement(ev, "detail")
    SubElement(detail, "contact", {"callsign": callsign})
    SubElement(detail, "__group", {"name": group, "role": "Team Member"})
    if course is not None or speed is not None:
        SubElement(detail, "track", {"course": f"{course or 0.0:.1f}",
                                     "speed": f"{speed or 0.0:.2f}"})
    if remarks:
        SubElement(detail, "remarks").text = remarks
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(ev)


COT_TYPES = {"vehicle": "a-f-G-E-V", "air": "a-f-A", "boat": "a-f-S", "command": "a-f-G-U-H"}


def unit_cot_type(kind: str) -> str:
    return COT_TYPES.get(kind, "a-f-G-U-C")


def split_stream(buf: bytearray) -> tuple[list[bytes], int]:
    """Cut complete ``<event>...</event>`` documents off the front of ``buf``.

    Returns (events, junk_bytes): text between events other than whitespace and
    XML declarations is discarded and counted."""
    events, junk = [], 0
    while True:
        start = buf.find(b"<event")
        if start < 0:
            tail = bytes(buf).strip()
            keep = 0
            # keep a possible partial "<eve" at the end
            lt = buf.rfind(b"<")
            if lt >= 0 and b">" not in buf[lt:]:
                keep = len(buf) - lt
            cut = len(buf) - keep
            junk += len(_junk(bytes(buf[:cut]))) if tail else 0
            del buf[:cut]
            return events, junk
        junk += len(_junk(bytes(buf[:start])))
        del buf[:start]
        end = buf.find(b"</event>")
        selfclose = buf.find(b"/>")
        first_gt = buf.find(b">")
        if first_gt >= 0 and selfclose >= 0 and selfclose + 1 == first_gt:
            events.append(bytes(buf[:first_gt + 1]))
            del buf[:first_gt + 1]
            continue
        if end < 0:
            return events, junk
        events.append(bytes(buf[:end + len(b"</event>")]))
        del buf[:end + len(b"</event>")]


def _junk(b: bytes) -> bytes:
    b = re.sub(rb"<\?xml[^>]*\?>", b"", b)
    return b.strip()


@dataclass(eq=False)
class CotClient:
    peer: str
    writer: asyncio.StreamWriter
    ops: set[int] = field(default_factory=set)
    own_uids: set[str] = field(default_factory=set)
    sent: dict[tuple[int, int], int] = field(default_factory=dict)


class CotServer:
    def __init__(self, runtime: Runtime, settings: CotSettings | None = None):
        self.rt = runtime
        self.settings = settings or CotSettings()
        self.server: asyncio.base_events.Server | None = None
        self.clients: set[CotClient] = set()
        self.stats: Counter = Counter()
        self.port: int | None = None
        self.refused: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not (s.cert and s.key):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(s.cert), str(s.key))
        if s.ca:
            ctx.load_verify_locations(str(s.ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    async def start(self) -> None:
        """Listen, unless the settings would let unauthenticated clients in from the
        network (see the module docstring): then log why and stay closed."""
        self.refused = refusal(self.settings)
        if self.refused:
            log.error("CoT listener not started: %s", self.refused)
            return
        if not self.settings.ca and not is_loopback(self.settings.host):
            log.warning("CoT listener on %s accepts clients without certificates "
                        "(TOCSIN_COT_ALLOW_UNAUTHENTICATED)", self.settings.host)
        ctx = self.ssl_context()
        self.server = await asyncio.start_server(self._serve, self.settings.host,
                                                 self.settings.port, ssl=ctx,
                                                 limit=MAX_EVENT_BYTES * 2)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("CoT listener on %s:%s (%s)", self.settings.host, self.port,
                 "TLS" if ctx else "plain TCP")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                c.writer.close()

    def _reject(self, client: CotClient, reason: str) -> None:
        self.stats["rejected"] += 1
        self.stats["rejected." + reason.split(" (")[0]] += 1
        log.warning("CoT event from %s rejected: %s", client.peer, reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from tocsin.operations.positions import get_hub

        hub = get_hub(self.rt)
        peer = writer.get_extra_info("peername")
        name = _cert_name(writer.get_extra_info("peercert"))
        client = CotClient((f"{peer[0]}:{peer[1]}" if peer else "?")
                           + (f" ({name})" if name else ""), writer)
        self.clients.add(client)
        pusher = asyncio.create_task(self._push(client))
        buf = bytearray()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf.extend(chunk)
                events, junk = split_stream(buf)
                if junk:
                    self._reject(client, f"{junk} bytes outside any <event>")
                for raw in events:
                    self.handle(hub, client, raw)
                if len(buf) > MAX_EVENT_BYTES:
                    self._reject(client, "event larger than 64 KiB; connection closed")
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            pusher.cancel()
            self.clients.discard(client)
            with contextlib.suppress(Exception):
                writer.close()

    def handle(self, hub, client: CotClient, raw: bytes) -> None:
        try:
            ev = parse_event(raw)
        except CotError as exc:
            self._reject(client, exc.reason)
            return
        if not ev.type.startswith("a-"):
            self.stats["ignored.not_a_position"] += 1  # pings (t-x-c-t), chat, markers
            return
        unit_ids = hub.units_for_cot_uid(ev.uid)
        if not unit_ids:
            self._reject(client, f"unknown uid {ev.uid!r}")
            return
        items = [{"op_unit_id": u, "lat": ev.lat, "lon": ev.lon, "at": ev.time,
                  "heading": ev.course, "speed": ev.speed,
                  "accuracy": ev.ce if ev.ce < UNKNOWN else None} for u in unit_ids]
        result = hub.ingest(items, source="cot", client=f"cot:{client.peer}", rate_key="cot")
        for r in result["rejected"]:
            self._reject(client, f"position of {ev.uid!r}: {r['reason']}")
        if result["accepted"]:
            self.stats["accepted"] += result["accepted"]
            client.own_uids.add(ev.uid)
            for u in unit_ids:
                info = hub.unit(u)
                if info:
                    client.ops.add(info.operation_id)

    async def _push(self, client: CotClient) -> None:
        from tocsin.operations.positions import get_hub

        hub = get_hub(self.rt)
        while True:
            await asyncio.sleep(self.settings.push_interval)
            if not client.ops:
                continue
            out = []
            for op_id in list(client.ops):
                latest = {row[0]: row for row in await asyncio.to_thread(hub.snapshot, op_id)}
                for unit in hub.units_of(op_id):
                    if unit.cot_uid in client.own_uids:
                        continue
                    row = latest.get(unit.id)
                    if row is None or client.sent.get((op_id, unit.id)) == row[3]:
                        continue
                    client.sent[(op_id, unit.id)] = row[3]
                    out.append(build_event(
                        uid=unit.cot_uid or f"tocsin-op{op_id}-unit{unit.id}",
                        type_=unit_cot_type(unit.kind), lat=row[1], lon=row[2],
                        at=dt.datetime.fromtimestamp(row[3] / 1000, dt.timezone.utc),
                        callsign=unit.callsign, course=row[4], speed=row[5],
                        remarks=f"status: {unit.status}"))
            if out:
                client.writer.write(b"".join(out))
                try:
                    await client.writer.drain()
                except ConnectionError:
                    return
                self.stats["sent"] += len(out)


def _cert_name(cert: dict | None) -> str | None:
    """The common name of a verified client certificate (for the logs)."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def get_cot(runtime: Runtime) -> CotServer:
    return runtime.service("operations.cot", CotServer)
