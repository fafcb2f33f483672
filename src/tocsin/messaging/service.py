"""Messenger rules: conversations, membership, events, receipts, alerts, retention.

No HTTP here. The Matrix client-server routes (``matrix.py``), Tocsin's own
routes (``api.py``), the live hub (``hub.py``) and the demo all call this service.

Membership is decided here: explicit rows (``msg_members``) for direct, group
and bound conversations, and *audiences* (``msg_room_audience``) for unit
channels and broadcast channels, whose members are everyone whose unit lies in
the audience unit's subtree (core's unit paths), so membership follows the unit
tree with no copy to keep in sync.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, delete, func, literal, or_, select, text, update
from sqlalchemy.orm import Session

from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.database import utcnow
from tocsin.core.errors import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    TocsinError,
    TooLarge,
    TooManyRequests,
)
from tocsin.core.events import DomainEvent, EventRecord, emit
from tocsin.core.events import erase as erase_events
from tocsin.core.identity.models import Role, Unit, User
from tocsin.core.runtime import Runtime
from tocsin.core.group_commit import GroupCommit
from tocsin.messaging.config import MessagingConfig
from tocsin.messaging.models import (
    Alert,
    AlertAck,
    Delivery,
    Event,
    Media,
    MediaRef,
    Member,
    ReceiptLog,
    Room,
    RoomAudience,
    Upload,
)

log = logging.getLogger(__name__)
ALL_ROLES = [r.value for r in Role]
ALERT_ROLES = ["commander", "dispatcher", "administrator"]
# Members reach a conversation through the service's membership rules; the kinds
# below cover what is decided by role: audit/export, retention, alerts.
access.register_kind("conversation", read=["auditor", "administrator"], write=["administrator"])
access.register_kind("alert", read=ALL_ROLES, write=ALERT_ROLES, scope="force")

ALERT_KINDS = ("missing_person", "wanted_person", "wanted_vehicle", "imminent_danger",
               "general")
# Alerts are ``m.room.message`` events carrying these keys (see ``_alert_content``);
# only the alerts API may set them.
ALERT_KEY = "org.tocsin.alert"
ALERT_UPDATE_KEY = "org.tocsin.alert.update"
SCENE_KEY = "org.tocsin.scene"
PRIORITY_KEY = "org.tocsin.priority"
STATE_TYPES = {"m.room.create", "m.room.name", "m.room.topic", "m.room.member",
               "m.room.power_levels", "m.room.join_rules", "org.tocsin.room"}
KINDS = ("direct", "group", "unit", "bound", "broadcast")
_MXID = re.compile(r"^@([a-z0-9][a-z0-9._-]*):(.+)$")
_MENTION = re.compile(r"@([a-z0-9][a-z0-9._-]*):([A-Za-z0-9.\-]+(?::\d+)?)")
_STREAM_LOCK = 0x70C5110  # PostgreSQL advisory lock serialising stream positions
_PURGE_LOCK = 0x70C5111  # one node at a time runs the retention purge


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SyncToken:
    stream: int = 0
    receipt: int = 0
    typing: int = 0

    @classmethod
    def parse(cls, token: str | None) -> SyncToken | None:
        if not token:
            return None
        m = re.fullmatch(r"s(\d+)_r(\d+)(?:_t(\d+))?", token)
        if not m:
            raise BadInput("sync token is not one of ours", code="messaging.bad_token")
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    def __str__(self) -> str:
        return f"s{self.stream}_r{self.receipt}_t{self.typing}"


@dataclass
class SyncResult:
    body: dict[str, Any]
    news: bool
    joined: list[str]  # the user's joined rooms (local ids) ...
    stream: int  # ... at this stream position


@dataclass
class _Send:
    """One message waiting for the group commit (``MessagingService._apply_sends``)."""

    principal: Principal
    room_id: str
    etype: str
    content: dict[str, Any]
    body: str | None
    txn_id: str | None
    relates_to: str | None
    rel_type: str | None


@dataclass
class PurgeReport:
    """What a retention purge removed."""

    events: int = 0
    conversations: int = 0
    alerts: int = 0
    media_refs: int = 0
    media: int = 0
    blobs: int = 0

    def __str__(self) -> str:
        return (f"Purged {self.events} messages in {self.conversations} conversations, "
                f"{self.alerts} alerts, {self.media_refs} media references, {self.media} "
                f"media ({self.blobs} encrypted files deleted)")


class RateLimiter:
    """Token bucket per device: an emoji flood or a runaway client gets 429, not the room."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                retry = (1 - tokens) / self.rate
                self._buckets[key] = (tokens, now)
                raise TooManyRequests("sending too fast; slow down",
                                      retry_after=max(1, int(retry + 0.999)),
                                      code="messaging.rate_limited")
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()


class MessagingService:
    def __init__(self, runtime: Runtime, config: MessagingConfig | None = None):
        self.rt = runtime
        self.db = runtime.db
        self.config = config or MessagingConfig()
        self.server_name = getattr(runtime.settings, "server_name", None) or self.config.server_name
        self.limiter = RateLimiter(self.config.rate_per_second, self.config.rate_burst)
        self._users: dict[int, tuple[str, str]] = {}
        self._users_lock = threading.Lock()
        self._first_stream: dict[str, int] = {}
        self._deliveries: dict[tuple[str, int], int] = {}
        self._delivery_lock = threading.Lock()
        self._delivery_flushed = time.monotonic()
        # Concurrent sends share a transaction; delivery state is written by the same
        # thread between them, so the messenger's writes never wait on each other's lock.
        self._sends: GroupCommit[_Send] = GroupCommit(
            self.db, self._apply_sends, name="tocsin-messaging-send",
            idle=self.flush_deliveries)

    def start(self) -> None:
        """Start the writer thread (the app does; it also starts with the first send)."""
        self._sends.start()

    def close(self) -> None:
        self._sends.close()

    # Identifiers -------------------------------------------------------
    def mxid(self, user_id: int) -> str:
        return f"@{self.username(user_id)}:{self.server_name}"

    def username(self, user_id: int) -> str:
        return self._user(user_id)[0]

    def display_name(self, user_id: int) -> str:
        return self._user(user_id)[1]

    def _user(self, user_id: int) -> tuple[str, str]:
        found = self._users.get(user_id)
        if found is None:
            with self.db.read() as s:
                row = s.execute(select(User.username, User.display_name)
                                .where(User.id == user_id)).first()
            found = (row[0], row[1]) if row else (f"u{user_id}", f"user {user_id}")
            with self._users_lock:
                self._users[user_id] = found
        return found

    def user_id_of(self, s: Session, mxid: str) -> int:
        m = _MXID.match(mxid or "")
        if not m or m[2] != self.server_name:
            raise BadInput(f"not a user of this server: {mxid!r}", code="messaging.bad_user_id")
        uid = s.scalar(select(User.id).where(User.username == m[1], User.active.is_(True)))
        if uid is None:
            raise NotFound("no such user", code="messaging.user_not_found")
        return uid

    def room_mx(self, room_id: str) -> str:
        return f"!{room_id}:{self.server_name}"

    def room_local(self, mx_room_id: str) -> str:
        if mx_room_id.startswith("!"):
            local, _, server = mx_room_id[1:].partition(":")
            if server != self.server_name:
                raise NotFound("no such room", code="messaging.room_not_found")
            return local
        return mx_room_id

    # Writing events ----------------------------------------------------
    def lock_stream(self, s: Session) -> None:
        """Serialise stream allocation: positions become visible in order."""
        if self.db.engine.dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _STREAM_LOCK})

    def _append(self, s: Session, room: Room, sender_id: int, etype: str,
                content: dict[str, Any], *, state_key: str | None = None,
                session_id: str | None = None, txn_id: str | None = None,
                relates_to: str | None = None, rel_type: str | None = None,
                search_text: str | None = None) -> Event:
        self.lock_stream(s)
        depth = s.execute(update(Room).where(Room.id == room.id)
                          .values(depth=Room.depth + 1).returning(Room.depth)).scalar_one()
        ev = self._new_event(room, depth, sender_id, etype, content, state_key=state_key,
                             session_id=session_id, txn_id=txn_id, relates_to=relates_to,
                             rel_type=rel_type, search_text=search_text)
        s.add(ev)
        s.flush()
        self._emit_sent(s, room, ev)
        return ev

    def _new_event(self, room: Room, depth: int, sender_id: int, etype: str,
                   content: dict[str, Any], **fields: Any) -> Event:
        # The domain event's id is chosen now, so the row is written once, complete.
        return Event(event_id="$" + secrets.token_urlsafe(18), room_id=room.id, depth=depth,
                     type=etype, sender_id=sender_id, content=content, origin_ts=now_ms(),
                     core_event_id=uuid.uuid4().hex, **fields)

    def _emit_sent(self, s: Session, room: Room, ev: Event) -> None:
        emit(s, DomainEvent(
            id=ev.core_event_id, type="messaging.event.sent", actor_id=ev.sender_id,
            unit_id=room.unit_id, record_kind="conversation", record_id=room.id, audience=[],
            payload={"room_id": room.id, "event_id": ev.event_id, "stream": ev.stream,
                     "type": ev.type}))

    # Rooms -------------------------------------------------------------
    def _new_room(self, s: Session, *, kind: str, creator_id: int, name: str | None,
                  topic: str | None = None, unit: Unit | None = None,
                  bound: tuple[str, str] | None = None, post_roles: list[str] | None = None,
                  audience: Iterable[Unit] = (), retention_days: int | None = None,
                  room_id: str | None = None) -> Room:
        room = Room(id=room_id or secrets.token_urlsafe(15), kind=kind, name=name, topic=topic,
                    creator_id=creator_id, unit_id=unit.id if unit else None,
                    bound_kind=bound[0] if bound else None, bound_id=bound[1] if bound else None,
                    post_roles=post_roles, retention_days=retention_days, depth=0)
        s.add(room)
        s.flush()
        for u in audience:
            s.add(RoomAudience(room_id=room.id, unit_id=u.id, unit_path=u.path))
        s.flush()
        self._append(s, room, creator_id, "m.room.create",
                     {"creator": self.mxid(creator_id), "room_version": "10",
                      "org.tocsin.kind": kind}, state_key="")
        info = {"kind": kind, "post_roles": post_roles, "retention_days": retention_days,
                "bound": f"{bound[0]}:{bound[1]}" if bound else None,
                "audience_units": [u.code for u in audience]}
        self._append(s, room, creator_id, "org.tocsin.room", info, state_key="")
        self._append(s, room, creator_id, "m.room.power_levels", {
            "users": {self.mxid(creator_id): 100}, "users_default": 0,
            "events_default": 50 if post_roles else 0, "state_default": 50,
            "invite": 0 if kind in ("group", "direct", "bound") else 50,
            "kick": 50, "ban": 50, "redact": 50}, state_key="")
        if name:
            self._append(s, room, creator_id, "m.room.name", {"name": name}, state_key="")
        if topic:
            self._append(s, room, creator_id, "m.room.topic", {"topic": topic}, state_key="")
        self._append(s, room, creator_id, "m.room.join_rules",
                     {"join_rule": "invite" if not audience else "restricted"}, state_key="")
        return room

    def create_room(self, principal: Principal, *, kind: str = "group", name: str | None = None,
                    topic: str | None = None, invite: Iterable[int] = (),
                    unit_code: str | None = None, bound: tuple[str, str] | None = None,
                    post_roles: list[str] | None = None,
                    audience_codes: Iterable[str] = (), retention_days: int | None = None,
                    is_direct: bool = False) -> Room:
        if is_direct:
            kind = "direct"
        if kind not in KINDS:
            raise BadInput(f"unknown conversation kind {kind!r}", code="messaging.bad_kind")
        if name is not None and (len(name) > 200 or not name.strip()):
            raise BadInput("room name must be 1-200 characters", code="messaging.bad_name")
        if post_roles is not None:
            unknown = set(post_roles) - set(ALL_ROLES)
            if unknown:
                raise BadInput(f"unknown roles {sorted(unknown)}", code="messaging.bad_roles")
        invite = list(dict.fromkeys(i for i in invite if i != principal.user_id))
        if kind == "direct" and len(invite) != 1:
            raise BadInput("a direct conversation has exactly one other person",
                           code="messaging.direct_needs_one")
        with self.db.session() as s:
            unit = None
            audience: list[Unit] = []
            if kind in ("unit", "broadcast"):
                codes = list(audience_codes) or ([unit_code] if unit_code else [])
                if not codes:
                    raise BadInput("a unit or broadcast channel needs its units",
                                   code="messaging.audience_required")
                for code in codes:
                    audience.append(self.rt.identity.unit_by_code(s, code))
                unit = audience[0] if len(audience) == 1 else s.get(
                    Unit, self._common_ancestor(s, audience))
                # Creating a channel for units is an administrative act on those units.
                for u in audience:
                    if kind == "unit":
                        access.require(principal, "write", Resource("conversation", u.path))
                    else:
                        access.require(principal, "write", Resource("alert", u.path))
                if kind == "broadcast" and post_roles is None:
                    post_roles = list(ALERT_ROLES)
            else:
                unit = s.get(Unit, principal.unit_id)
            if kind == "bound" and not bound:
                raise BadInput("a bound channel names its operation, incident or case",
                               code="messaging.bound_required")
            room = self._new_room(s, kind=kind, creator_id=principal.user_id, name=name,
                                  topic=topic, unit=unit, bound=bound, post_roles=post_roles,
                                  audience=audience, retention_days=retention_days)
            if not audience:
                self._set_membership(s, room, principal.user_id, principal.user_id, "join")
            for uid in invite:
                if s.get(User, uid) is None:
                    raise NotFound("no such user", code="messaging.user_not_found")
                self._set_membership(s, room, principal.user_id, uid,
                                     "join" if kind == "direct" else "invite")
            return room

    def _common_ancestor(self, s: Session, units: list[Unit]) -> int:
        parts = [u.path.strip("/").split("/") for u in units]
        common = []
        for level in zip(*parts):
            if len(set(level)) != 1:
                break
            common.append(level[0])
        return int(common[-1]) if common else units[0].id

    def unit_channel(self, unit_code: str, *, creator: Principal | None = None) -> Room:
        """The channel of a unit (its whole subtree), created on first use."""
        with self.db.session() as s:
            unit = self.rt.identity.unit_by_code(s, unit_code)
            room = s.scalar(select(Room).where(Room.kind == "unit", Room.unit_id == unit.id))
            if room is not None:
                return room
            creator_id = creator.user_id if creator else self._system_user(s)
            return self._new_room(s, kind="unit", creator_id=creator_id, name=unit.name,
                                  unit=unit, audience=[unit])

    def _system_user(self, s: Session) -> int:
        uid = s.scalar(select(User.id).where(User.roles.is_not(None)).order_by(User.id).limit(1))
        if uid is None:
            raise Conflict("no user to own the channel", code="messaging.no_users")
        return uid

    def get_room(self, s: Session, room_id: str) -> Room:
        room = s.get(Room, self.room_local(room_id))
        if room is None:
            raise NotFound("no such room", code="messaging.room_not_found")
        return room

    # Membership --------------------------------------------------------
    def _audience_paths(self, s: Session, room_id: str) -> list[str]:
        return list(s.scalars(select(RoomAudience.unit_path)
                              .where(RoomAudience.room_id == room_id)))

    def membership(self, s: Session, room: Room, user_id: int, unit_path: str) -> str | None:
        row = s.get(Member, (room.id, user_id))
        if row is not None:  # an explicit row (invite, kick, ban) overrides the audience
            return row.membership
        paths = self._audience_paths(s, room.id)
        return "join" if any(unit_path.startswith(p) for p in paths) else None

    def require_member(self, s: Session, room: Room, principal: Principal) -> None:
        if self.membership(s, room, principal.user_id, principal.unit_path) != "join":
            raise Forbidden("you are not a member of this conversation",
                            code="messaging.not_member")

    def _set_membership(self, s: Session, room: Room, actor_id: int, user_id: int,
                        membership: str, reason: str | None = None) -> Event:
        content: dict[str, Any] = {"membership": membership,
                                   "displayname": self.display_name(user_id)}
        if reason:
            content["reason"] = reason[:500]
        ev = self._append(s, room, actor_id, "m.room.member", content,
                          state_key=self.mxid(user_id))
        row = s.get(Member, (room.id, user_id))
        if row is None:
            s.add(Member(room_id=room.id, user_id=user_id, membership=membership,
                         stream=ev.stream))
        else:
            row.membership, row.stream, row.updated_at = membership, ev.stream, utcnow()
        return ev

    def _can_moderate(self, s: Session, room: Room, principal: Principal) -> bool:
        if room.creator_id == principal.user_id:
            return True
        if room.unit_id is not None:
            path = self.rt.units.path(room.unit_id)
            return bool(path and access.decide(principal, "write",
                                               Resource("conversation", path)).allowed)
        return False

    def invite(self, principal: Principal, room_id: str, user_id: int) -> None:
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            if room.kind in ("direct",):
                raise Forbidden("cannot invite into a direct conversation",
                                code="messaging.direct_closed")
            if room.kind in ("unit", "broadcast") and not self._can_moderate(s, room, principal):
                raise Forbidden("members of a unit channel follow the unit tree",
                                code="messaging.membership_by_unit")
            target = s.get(User, user_id)
            if target is None or not target.active:
                raise NotFound("no such user", code="messaging.user_not_found")
            current = self.membership(s, room, user_id, target.unit.path)
            if current == "join":
                return
            if current == "ban" and not self._can_moderate(s, room, principal):
                raise Forbidden("this user is banned from the conversation",
                                code="messaging.banned")
            self._set_membership(s, room, principal.user_id, user_id, "invite")

    def join(self, principal: Principal, room_id: str) -> Room:
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            current = self.membership(s, room, principal.user_id, principal.unit_path)
            if current == "join":
                return room
            if current != "invite":
                raise Forbidden("you are not invited to this conversation",
                                code="messaging.not_invited")
            self._set_membership(s, room, principal.user_id, principal.user_id, "join")
            return room

    def leave(self, principal: Principal, room_id: str) -> None:
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            current = self.membership(s, room, principal.user_id, principal.unit_path)
            if current not in ("join", "invite"):
                raise Forbidden("you are not in this conversation", code="messaging.not_member")
            if room.kind in ("unit", "broadcast") and current == "join" and \
                    s.get(Member, (room.id, principal.user_id)) is None:
                raise Forbidden("unit and broadcast channels follow your unit",
                                code="messaging.membership_by_unit")
            self._set_membership(s, room, principal.user_id, principal.user_id, "leave")

    def kick(self, principal: Principal, room_id: str, user_id: int, reason: str | None = None,
             ban: bool = False) -> None:
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            if not self._can_moderate(s, room, principal):
                self.require_member(s, room, principal)
                raise Forbidden("only the creator or an administrator of the unit may remove "
                                "members", code="messaging.not_moderator")
            target = s.get(User, user_id)
            if target is None:
                raise NotFound("no such user", code="messaging.user_not_found")
            current = self.membership(s, room, user_id, target.unit.path)
            if current not in ("join", "invite") and not ban:
                raise Conflict("that user is not in the conversation",
                               code="messaging.not_member")
            self._set_membership(s, room, principal.user_id, user_id, "ban" if ban else "leave",
                                 reason)

    def joined_room_ids(self, s: Session, principal: Principal) -> list[str]:
        explicit = select(Member.room_id).where(Member.user_id == principal.user_id,
                                                Member.membership == "join")
        excluded = select(Member.room_id).where(Member.user_id == principal.user_id,
                                                Member.membership.in_(("ban", "leave")))
        dynamic = (select(RoomAudience.room_id)
                   .where(literal(principal.unit_path).like(RoomAudience.unit_path + "%"))
                   .where(RoomAudience.room_id.not_in(excluded)))
        return list(dict.fromkeys(list(s.scalars(explicit)) + list(s.scalars(dynamic))))

    def members(self, s: Session, room: Room) -> list[int]:
        """Joined user ids (audience members resolved through the unit tree)."""
        paths = self._audience_paths(s, room.id)
        ids = set(s.scalars(select(Member.user_id).where(Member.room_id == room.id,
                                                         Member.membership == "join")))
        if paths:
            q = (select(User.id).join(Unit, Unit.id == User.unit_id)
                 .where(User.active.is_(True), or_(*[Unit.path.like(p + "%") for p in paths])))
            banned = set(s.scalars(select(Member.user_id).where(
                Member.room_id == room.id, Member.membership.in_(("ban", "leave")))))
            ids |= set(s.scalars(q)) - banned
        return sorted(ids)

    def member_count(self, s: Session, room: Room) -> int:
        paths = self._audience_paths(s, room.id)
        if not paths:
            return s.scalar(select(func.count()).select_from(Member).where(
                Member.room_id == room.id, Member.membership == "join")) or 0
        return len(self.members(s, room))

    # Sending -----------------------------------------------------------
    def _validate_content(self, etype: str, content: Any) -> str | None:
        if not isinstance(content, dict):
            raise BadInput("event content must be a JSON object", code="messaging.bad_content")
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,100}", etype) or "." not in etype:
            raise BadInput("bad event type", code="messaging.bad_event_type")
        size = len(json.dumps(content, ensure_ascii=False).encode())
        if size > self.config.max_event_bytes:
            raise TooLarge(f"event content is {size} bytes; the limit is "
                           f"{self.config.max_event_bytes}", code="messaging.too_large")
        body = content.get("body")
        if body is not None and not isinstance(body, str):
            raise BadInput("body must be text", code="messaging.bad_content")
        if isinstance(body, str):
            if len(body) > self.config.max_body_chars:
                raise TooLarge(f"message is {len(body)} characters; the limit is "
                               f"{self.config.max_body_chars}", code="messaging.too_long")
            if "\x00" in body:
                raise BadInput("control characters are not allowed", code="messaging.bad_content")
            return body
        return None

    def send(self, principal: Principal, room_id: str, etype: str, content: Any,
             txn_id: str | None = None) -> Event:
        if etype in STATE_TYPES or etype == "m.room.redaction":
            raise BadInput(f"{etype} cannot be sent as a message", code="messaging.bad_event_type")
        if txn_id is not None and (len(txn_id) > 100 or not txn_id):
            raise BadInput("transaction id must be 1-100 characters", code="messaging.bad_txn")
        body = self._validate_content(etype, content)
        new_content = content.get("m.new_content")
        if etype.startswith(ALERT_KEY) or any(
                k in c for c in (content, new_content if isinstance(new_content, dict) else {})
                for k in (ALERT_KEY, ALERT_UPDATE_KEY)):
            raise Forbidden("alerts are sent with the alerts API, not as messages",
                            code="messaging.alert_reserved")
        session_id = principal.session_id
        # A replayed client message (same device, same transaction id) returns the first
        # event: found by the group commit, under the write lock (no read per send here).
        try:
            self.limiter.take(session_id or f"user:{principal.user_id}")
        except TooManyRequests:
            done = self._by_txn(session_id, txn_id) if txn_id and session_id else None
            if done is not None:
                return done
            raise
        relation = content.get("m.relates_to") if isinstance(content, dict) else None
        relates_to = rel_type = None
        if relation is not None:
            if not isinstance(relation, dict):
                raise BadInput("m.relates_to must be an object", code="messaging.bad_content")
            relates_to = relation.get("event_id") or (relation.get("m.in_reply_to") or {}
                                                       ).get("event_id")
            rel_type = relation.get("rel_type") or ("m.reply" if relates_to else None)
        job = _Send(principal, self.room_local(room_id), etype, content, body, txn_id,
                    relates_to, rel_type)
        try:
            ev, to_move = self._sends.submit(job)
        except Exception as exc:
            # Two copies of one client message racing: the loser returns the winner's event.
            if txn_id and session_id and "uq_msg_events_txn" in str(exc).lower():
                done = self._by_txn(session_id, txn_id)
                if done is not None:
                    return done
            raise
        self._move_to_room_key(ev.room_id, to_move)
        return ev

    def _apply_sends(self, s: Session, jobs: list[_Send]) -> list[Any]:
        """(group commit) The messages of concurrent sends, checked and written in one
        transaction: rooms, memberships and audiences read once for the batch, under the
        stream lock, so each sender's membership is decided by the committed state its
        message follows. A refused message writes nothing."""
        self.lock_stream(s)
        rids = {j.room_id for j in jobs}
        uids = {j.principal.user_id for j in jobs}
        rooms = {r.id: r for r in s.scalars(select(Room).where(Room.id.in_(rids)))}
        explicit = {(r, u): m for r, u, m in s.execute(
            select(Member.room_id, Member.user_id, Member.membership)
            .where(Member.room_id.in_(rids), Member.user_id.in_(uids)))}
        paths: dict[str, list[str]] = {}
        for r, p in s.execute(select(RoomAudience.room_id, RoomAudience.unit_path)
                              .where(RoomAudience.room_id.in_(rids))):
            paths.setdefault(r, []).append(p)
        replays: dict[tuple[str | None, str | None], Event] = {}
        txns = [(j.principal.session_id, j.txn_id) for j in jobs
                if j.txn_id and j.principal.session_id]
        if txns:
            for ev in s.scalars(select(Event).where(
                    Event.session_id.in_({t[0] for t in txns}),
                    Event.txn_id.in_({t[1] for t in txns}))):
                replays[(ev.session_id, ev.txn_id)] = ev
        outcomes: list[Any] = []
        accepted: list[tuple[int, Event, list[str]]] = []
        refs: set[tuple[str, str]] = set()
        for j in jobs:
            p = j.principal
            key = (p.session_id, j.txn_id)
            if j.txn_id and key in replays:
                outcomes.append((replays[key], []))
                continue
            try:
                room = rooms.get(j.room_id)
                if room is None:
                    raise NotFound("no such room", code="messaging.room_not_found")
                membership = explicit.get((room.id, p.user_id))
                if membership is None and any(p.unit_path.startswith(a)
                                              for a in paths.get(room.id, ())):
                    membership = "join"
                if membership != "join":
                    raise Forbidden("you are not a member of this conversation",
                                    code="messaging.not_member")
                content = self._check_send(s, room, p, j)
                new_refs, to_move = self._media_refs(s, room, p, content)
            except TocsinError as exc:
                outcomes.append(exc)
                continue
            room.depth += 1
            ev = self._new_event(room, room.depth, p.user_id, j.etype, content,
                                 session_id=p.session_id, txn_id=j.txn_id,
                                 relates_to=j.relates_to, rel_type=j.rel_type,
                                 search_text=self._search_text(content))
            accepted.append((len(outcomes), ev, new_refs))
            outcomes.append((ev, to_move))
            if j.txn_id and p.session_id:
                replays[key] = ev
        if not accepted:
            return outcomes
        s.add_all([ev for _, ev, _ in accepted])
        s.flush()  # the room depths, then the events (their stream positions, in order)
        for _, ev, new_refs in accepted:
            self._emit_sent(s, rooms[ev.room_id], ev)
            for ref in new_refs:
                if (ref, ev.room_id) not in refs:
                    refs.add((ref, ev.room_id))
                    s.add(MediaRef(media_id=ref, room_id=ev.room_id))
        return outcomes

    def _check_send(self, s: Session, room: Room, principal: Principal, j: _Send) -> dict:
        """The rules of the room for one message (reads only); its stored content."""
        if room.post_roles and not principal.has_role(*room.post_roles) \
                and j.etype != "m.reaction":
            raise Forbidden("only some roles may post in this channel",
                            code="messaging.post_forbidden")
        if j.relates_to:
            target = s.scalar(select(Event).where(Event.event_id == j.relates_to))
            if target is None or target.room_id != room.id:
                raise BadInput("related event is not in this conversation",
                               code="messaging.bad_relation")
            if j.rel_type == "m.replace" and target.sender_id != principal.user_id:
                raise Forbidden("only the sender may edit a message",
                                code="messaging.not_sender")
        return self._normalise_mentions(s, dict(j.content), j.body)

    def _by_txn(self, session_id: str, txn_id: str) -> Event | None:
        with self.db.read() as s:
            return s.scalar(select(Event).where(Event.session_id == session_id,
                                                Event.txn_id == txn_id))

    def _search_text(self, content: dict) -> str | None:
        parts = []
        for key in ("body",):
            if isinstance(content.get(key), str):
                parts.append(content[key])
        new = content.get("m.new_content")
        if isinstance(new, dict) and isinstance(new.get("body"), str):
            parts.append(new["body"])
        return "\n".join(parts).lower()[:20000] if parts else None

    def _normalise_mentions(self, s: Session, content: dict, body: str | None) -> dict:
        mentioned = set()
        declared = content.get("m.mentions")
        if isinstance(declared, dict) and isinstance(declared.get("user_ids"), list):
            mentioned |= {u for u in declared["user_ids"] if isinstance(u, str)}
        if body:
            mentioned |= {m[0] for m in _MENTION.finditer(body) if m[2] == self.server_name}
        if mentioned:
            names = [m.split(":")[0][1:] for m in list(mentioned)[:50]]
            known = set(s.scalars(select(User.username).where(User.username.in_(names))))
            content["m.mentions"] = {"user_ids": sorted(
                f"@{n}:{self.server_name}" for n in known)}
        return content

    def _attach_media(self, s: Session, room: Room, principal: Principal, content: dict
                      ) -> list[str]:
        """Let the room's members read the media the content names. Returns the media
        still under their uploader's key, to move to the room's key after the commit."""
        refs, to_move = self._media_refs(s, room, principal, content)
        for mid in refs:
            s.add(MediaRef(media_id=mid, room_id=room.id))
        return to_move

    def _media_refs(self, s: Session, room: Room, principal: Principal, content: dict
                    ) -> tuple[list[str], list[str]]:
        """(media the room must reference, media to move to its key) for a content;
        checks only, writes nothing."""
        urls = []
        for key in ("url",):
            if isinstance(content.get(key), str):
                urls.append(content[key])
        info = content.get("info")
        if isinstance(info, dict) and isinstance(info.get("thumbnail_url"), str):
            urls.append(info["thumbnail_url"])
        refs: list[str] = []
        to_move: list[str] = []
        for url in urls:
            media_id = self.media_id_from_mxc(url)
            media = s.get(Media, media_id) if media_id else None
            if media is None:
                raise BadInput("attached media does not exist", code="media.not_found")
            if media.uploader_id != principal.user_id and not self._media_readable(
                    s, media, principal):
                raise Forbidden("you may not share that media", code="media.forbidden")
            for mid in (media.id, media.thumbnail_id):
                if mid and mid not in refs and s.get(MediaRef, (mid, room.id)) is None:
                    refs.append(mid)
            if media.scope.startswith("user:") and not media.is_thumbnail:
                to_move.append(media.id)
        return refs, to_move

    def _move_to_room_key(self, room_id: str, media_ids: list[str]) -> None:
        """Re-encrypt media uploaded without a conversation under this room's key
        (``MediaService.rescope``). The message is already sent: a failure is logged
        and the retention worker finishes the move later."""
        if not media_ids:
            return
        from tocsin.messaging.storage import get_media

        for media_id in dict.fromkeys(media_ids):
            try:
                get_media(self.rt).rescope(media_id, room_id)
            except Exception:
                log.exception("could not move media %s to its conversation's key", media_id)

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    def media_id_from_mxc(self, url: str) -> str | None:
        m = re.fullmatch(r"mxc://([^/]+)/([A-Za-z0-9_\-]{1,40})", url)
        if not m or m[1] != self.server_name:
            return None
        return m[2]

    def _media_readable(self, s: Session, media: Media, principal: Principal) -> bool:
        if media.uploader_id == principal.user_id:
            return True
        rooms = s.scalars(select(MediaRef.room_id).where(MediaRef.media_id == media.id))
        for rid in rooms:
            room = s.get(Room, rid)
            if room and self.membership(s, room, principal.user_id, principal.unit_path) == "join":
                return True
        return False

    def redact(self, principal: Principal, room_id: str, event_id: str,
               reason: str | None = None, txn_id: str | None = None) -> Event:
        """Hide a message from clients; the original stays for the audit and export."""
        if txn_id and principal.session_id:
            done = self._by_txn(principal.session_id, txn_id)
            if done is not None:
                return done
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            target = s.scalar(select(Event).where(Event.event_id == event_id))
            if target is None or target.room_id != room.id:
                raise NotFound("no such event in this conversation",
                               code="messaging.event_not_found")
            if target.sender_id != principal.user_id and not self._can_moderate(s, room,
                                                                               principal):
                raise Forbidden("only the sender or a moderator may delete a message",
                                code="messaging.not_sender")
            if target.state_key is not None:
                raise BadInput("state events cannot be deleted", code="messaging.bad_redaction")
            content = {"redacts": event_id}
            if reason:
                content["reason"] = str(reason)[:500]
            ev = self._append(s, room, principal.user_id, "m.room.redaction", content,
                              session_id=principal.session_id, txn_id=txn_id,
                              relates_to=event_id, rel_type="m.redaction")
            target.redacted_by = ev.event_id
            return ev

    # Reading -----------------------------------------------------------
    def client_event(self, ev: Event, *, with_room: bool = True,
                     session_id: str | None = None) -> dict[str, Any]:
        content = ev.content
        unsigned: dict[str, Any] = {"age": max(0, now_ms() - ev.origin_ts)}
        if ev.redacted_by:
            keep = {"membership", "creator", "name", "topic", "join_rule"}
            content = {k: v for k, v in content.items() if k in keep}
            unsigned["redacted_because"] = {"event_id": ev.redacted_by, "type": "m.room.redaction"}
        out: dict[str, Any] = {"type": ev.type, "content": content, "sender": self.mxid(
            ev.sender_id), "event_id": ev.event_id, "origin_server_ts": ev.origin_ts,
            "unsigned": unsigned}
        if ev.type == "m.room.redaction":
            out["redacts"] = ev.content.get("redacts")
        if ev.state_key is not None:
            out["state_key"] = ev.state_key
        if with_room:
            out["room_id"] = self.room_mx(ev.room_id)
        if session_id and ev.session_id == session_id and ev.txn_id:
            unsigned["transaction_id"] = ev.txn_id
        return out

    def current_state(self, s: Session, room_id: str) -> list[Event]:
        state: dict[tuple[str, str], Event] = {}
        for ev in s.scalars(select(Event).where(Event.room_id == room_id,
                                                Event.state_key.is_not(None))
                            .order_by(Event.stream)):
            state[(ev.type, ev.state_key or "")] = ev
        return list(state.values())

    def messages(self, principal: Principal, room_id: str, *, from_token: str | None = None,
                 direction: str = "b", limit: int = 20) -> dict[str, Any]:
        """A page of history. Opening a conversation's history is a recorded read."""
        limit = max(1, min(limit, self.config.history_limit))
        if direction not in ("b", "f"):
            raise BadInput("dir must be b or f", code="messaging.bad_direction")
        start = None
        if from_token:
            m = re.fullmatch(r"[st](\d+)(?:_.*)?", from_token)
            if not m:
                raise BadInput("bad pagination token", code="messaging.bad_token")
            start = int(m[1])
        with self.db.read() as s:  # no write lock while reading; the read is recorded below
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            q = select(Event).where(Event.room_id == room.id)
            if direction == "b":
                if start is not None:
                    q = q.where(Event.stream < start)
                q = q.order_by(Event.stream.desc())
            else:
                if start is not None:
                    q = q.where(Event.stream >= start)
                q = q.order_by(Event.stream)
            rows = list(s.scalars(q.limit(limit)))
            chunk = [self.client_event(e, session_id=principal.session_id) for e in rows]
            out: dict[str, Any] = {"chunk": chunk, "start": from_token or
                                   f"t{(self._max_stream(s) + 1) if direction == 'b' else 0}"}
            if len(rows) == limit:
                out["end"] = (f"t{rows[-1].stream}" if direction == "b"
                              else f"t{rows[-1].stream + 1}")
        self._record_history_read(principal, room, len(rows))
        return out

    def _record_history_read(self, principal: Principal, room: Room, events: int) -> None:
        """Opening history is a recorded read: stored before anything is returned."""
        self.rt.reads.record(DomainEvent(
            type="messaging.history.read", actor_id=principal.user_id, unit_id=room.unit_id,
            record_kind="conversation", record_id=room.id, audience=[],
            payload={"room_id": room.id, "events": events}))

    def stream_position(self) -> int:
        """The last committed stream position."""
        with self.db.read() as s:
            return self._max_stream(s)

    def _max_stream(self, s: Session) -> int:
        return s.scalar(select(func.max(Event.stream))) or 0

    def get_event(self, principal: Principal, room_id: str, event_id: str) -> dict:
        with self.db.read() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            ev = s.scalar(select(Event).where(Event.event_id == event_id,
                                              Event.room_id == room.id))
            if ev is None:
                raise NotFound("no such event", code="messaging.event_not_found")
            out = self.client_event(ev)
        self._record_history_read(principal, room, 1)
        return out

    def search(self, principal: Principal, term: str, limit: int = 50) -> list[dict]:
        term = (term or "").strip().lower()
        if not term or len(term) > 200:
            raise BadInput("search term must be 1-200 characters", code="messaging.bad_search")
        like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.db.session() as s:
            rooms = self.joined_room_ids(s, principal)
            if not rooms:
                return []
            rows = list(s.scalars(select(Event).where(
                Event.room_id.in_(rooms), Event.redacted_by.is_(None),
                Event.search_text.like(like, escape="\\")).order_by(Event.stream.desc())
                .limit(min(limit, 200))))
            emit(s, DomainEvent(type="messaging.search", actor_id=principal.user_id,
                                record_kind="conversation", audience=[],
                                payload={"results": len(rows)}))
            return [self.client_event(e) for e in rows]

    # Sync --------------------------------------------------------------
    def positions(self) -> tuple[int, int]:
        with self.db.read() as s:
            return (self._max_stream(s),
                    s.scalar(select(func.max(ReceiptLog.seq))) or 0)

    def sync(self, principal: Principal, since: SyncToken | None, *, timeline_limit: int = 20,
             full_state: bool = False, typing: dict[str, list[int]] | None = None,
             typing_version: int = 0) -> SyncResult:
        """A Matrix /sync at this instant (with the joined rooms it was computed for)."""
        timeline_limit = max(1, min(timeline_limit, 100))
        news = False
        rooms_join: dict[str, Any] = {}
        rooms_invite: dict[str, Any] = {}
        rooms_leave: dict[str, Any] = {}
        delivered: dict[str, int] = {}
        with self.db.read() as s:
            max_stream = self._max_stream(s)
            max_receipt = s.scalar(select(func.max(ReceiptLog.seq))) or 0
            joined = self.joined_room_ids(s, principal)
            base = since.stream if since else 0
            member_rows = {m.room_id: m for m in s.scalars(select(Member).where(
                Member.user_id == principal.user_id))}
            new_rooms = set()
            for rid in joined:
                m = member_rows.get(rid)
                first = self._first_stream.get(rid)
                if first is None:  # a room's first position never changes: cached
                    first = s.scalar(select(func.min(Event.stream)).where(Event.room_id == rid))
                    if first is not None:
                        self._first_stream[rid] = first
                if since is None or full_state or (m is not None and m.stream > base) or \
                        (first or 0) > base:
                    new_rooms.add(rid)
            by_room: dict[str, list[Event]] = {}
            limited: set[str] = set()
            if joined:
                for rid in joined:
                    if rid in new_rooms:
                        rows = list(s.scalars(select(Event).where(
                            Event.room_id == rid, Event.stream <= max_stream)
                            .order_by(Event.stream.desc()).limit(timeline_limit + 1)))
                    else:
                        rows = list(s.scalars(select(Event).where(
                            Event.room_id == rid, Event.stream > base,
                            Event.stream <= max_stream)
                            .order_by(Event.stream.desc()).limit(timeline_limit + 1)))
                    if len(rows) > timeline_limit:
                        limited.add(rid)
                        rows = rows[:timeline_limit]
                    if rows:
                        by_room[rid] = rows[::-1]
            receipts: dict[str, dict] = {}
            rq = select(ReceiptLog).where(ReceiptLog.seq > (since.receipt if since else 0),
                                          ReceiptLog.seq <= max_receipt)
            if joined:
                for r in s.scalars(rq.where(ReceiptLog.room_id.in_(joined))
                                   .order_by(ReceiptLog.seq).limit(2000)):
                    receipts.setdefault(r.room_id, {}).setdefault(r.event_id, {}).setdefault(
                        r.receipt_type, {})[self.mxid(r.user_id)] = {"ts": r.ts}
            for rid in joined:
                state = self.current_state(s, rid) if rid in new_rooms else []
                timeline = by_room.get(rid, [])
                ephemeral = []
                if rid in receipts:
                    ephemeral.append({"type": "m.receipt", "content": receipts[rid]})
                if typing is not None and rid in typing:
                    ephemeral.append({"type": "m.typing", "content": {
                        "user_ids": [self.mxid(u) for u in typing[rid]]}})
                if not (state or timeline or ephemeral):
                    continue
                news = news or bool(timeline or ephemeral or state)
                state_events = [self.client_event(e, with_room=False) for e in state]
                if rid in new_rooms and member_rows.get(rid) is None:
                    state_events.append(self._synthetic_member(rid, principal))
                tl_ids = {e.event_id for e in timeline}
                rooms_join[self.room_mx(rid)] = {
                    "state": {"events": [e for e in state_events if e["event_id"] not in tl_ids]},
                    "timeline": {"events": [self.client_event(
                        e, with_room=False, session_id=principal.session_id) for e in timeline],
                        "limited": rid in limited,
                        "prev_batch": f"t{timeline[0].stream}" if timeline else f"t{base + 1}"},
                    "ephemeral": {"events": ephemeral},
                    "account_data": {"events": []},
                    "unread_notifications": {},
                }
                if timeline:
                    delivered[rid] = timeline[-1].stream
            for rid, m in member_rows.items():
                if m.membership == "invite" and (since is None or m.stream > base):
                    state = self.current_state(s, rid)
                    rooms_invite[self.room_mx(rid)] = {"invite_state": {"events": [
                        {k: v for k, v in self.client_event(e, with_room=False).items()
                         if k in ("type", "state_key", "content", "sender")}
                        for e in state if e.type in ("m.room.create", "m.room.name",
                                                     "m.room.member", "m.room.join_rules")]}}
                    news = True
                elif m.membership in ("leave", "ban") and since is not None and m.stream > base:
                    ev = s.scalar(select(Event).where(Event.room_id == rid,
                                                      Event.stream == m.stream))
                    rooms_leave[self.room_mx(rid)] = {
                        "timeline": {"events": [self.client_event(ev, with_room=False)]
                                     if ev else []}, "state": {"events": []}}
                    news = True
        if delivered:
            self.mark_delivered(principal.user_id, delivered)
        token = SyncToken(max_stream, max_receipt, typing_version)
        return SyncResult(
            {"next_batch": str(token), "rooms": {"join": rooms_join, "invite": rooms_invite,
                                                 "leave": rooms_leave},
             "presence": {"events": []}, "account_data": {"events": []},
             "to_device": {"events": []}, "device_lists": {"changed": [], "left": []},
             "device_one_time_keys_count": {}}, news, joined, max_stream)

    def _synthetic_member(self, room_id: str, principal: Principal) -> dict:
        """Audience members have no join event; clients still want to see themselves."""
        mx = self.mxid(principal.user_id)
        digest = hashlib.sha256(f"{room_id}|{mx}".encode()).hexdigest()[:24]
        return {"type": "m.room.member", "state_key": mx, "sender": mx,
                "event_id": f"$member-{digest}", "origin_server_ts": 0,
                "content": {"membership": "join", "displayname": self.display_name(
                    principal.user_id)}, "unsigned": {}}

    def events_since(self, principal: Principal, since: int, limit: int
                     ) -> tuple[list[tuple[int, str, dict]], bool]:
        """Events after ``since`` in the user's rooms (websocket catch-up)."""
        with self.db.read() as s:
            rooms = self.joined_room_ids(s, principal)
            if not rooms:
                return [], False
            rows = list(s.scalars(select(Event).where(Event.room_id.in_(rooms),
                                                      Event.stream > since)
                                  .order_by(Event.stream).limit(limit + 1)))
        overflow = len(rows) > limit
        return ([(e.stream, e.room_id, self.client_event(e, session_id=principal.session_id))
                 for e in rows[:limit]], overflow)

    def mark_delivered(self, user_id: int, rooms: dict[str, int]) -> None:
        """Note that a user's device received a room up to ``stream``. Kept in memory and
        written in batches (``flush_deliveries``): one transaction per second, not one
        per delivery."""
        with self._delivery_lock:
            for rid, stream in rooms.items():
                key = (rid, user_id)
                if self._deliveries.get(key, 0) < stream:
                    self._deliveries[key] = stream
            due = time.monotonic() - self._delivery_flushed > 1.0
        if due:
            self.flush_deliveries()

    def note_delivered(self, user_ids: Iterable[int], room_id: str, stream: int) -> None:
        """Like ``mark_delivered`` for the recipients of one event, but never writes (safe
        on the event loop)."""
        with self._delivery_lock:
            pending = self._deliveries
            for uid in user_ids:
                key = (room_id, uid)
                if pending.get(key, 0) < stream:
                    pending[key] = stream

    def flush_deliveries(self) -> None:
        with self._delivery_lock:
            pending, self._deliveries = self._deliveries, {}
            self._delivery_flushed = time.monotonic()
        if not pending:
            return
        rows = [{"room_id": r, "user_id": u, "stream": st} for (r, u), st in pending.items()]
        try:
            with self.db.session() as s:
                # One upsert for all: a row only moves forward.
                stmt = self._upsert(Delivery.__table__)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["room_id", "user_id"],
                    set_={"stream": func.max(Delivery.__table__.c.stream, stmt.excluded.stream)}
                    if self.db.is_sqlite else
                    {"stream": func.greatest(Delivery.__table__.c.stream,
                                             stmt.excluded.stream)})
                for i in range(0, len(rows), 5000):
                    s.execute(stmt, rows[i:i + 5000])
        except Exception:
            with self._delivery_lock:  # kept for the next flush
                for key, stream in pending.items():
                    if self._deliveries.get(key, 0) < stream:
                        self._deliveries[key] = stream
            raise

    def _upsert(self, table):
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        return dialect_insert(table)

    # Receipts and typing -----------------------------------------------
    def receipt(self, principal: Principal, room_id: str, event_id: str,
                receipt_type: str = "m.read") -> None:
        if receipt_type not in ("m.read", "m.read.private", "m.fully_read"):
            raise BadInput("unknown receipt type", code="messaging.bad_receipt")
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            ev = s.scalar(select(Event).where(Event.event_id == event_id,
                                              Event.room_id == room.id))
            if ev is None:
                raise NotFound("no such event", code="messaging.event_not_found")
            if receipt_type == "m.fully_read":
                receipt_type = "m.read"
            prev = s.scalar(select(func.max(ReceiptLog.event_stream)).where(
                ReceiptLog.room_id == room.id, ReceiptLog.user_id == principal.user_id,
                ReceiptLog.receipt_type == receipt_type))
            if prev is not None and prev >= ev.stream:
                return  # receipts only move forward
            self.lock_stream(s)
            log = ReceiptLog(room_id=room.id, user_id=principal.user_id, event_id=ev.event_id,
                             event_stream=ev.stream, receipt_type=receipt_type, ts=now_ms())
            s.add(log)
            s.flush()
            emit(s, DomainEvent(type="messaging.receipt", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="conversation",
                                record_id=room.id, audience=[],
                                payload={"room_id": room.id, "event_id": ev.event_id,
                                         "seq": log.seq, "receipt_type": receipt_type,
                                         "user_id": principal.user_id, "ts": log.ts}))
        # Reading implies the message reached this user.
        self.mark_delivered(principal.user_id, {room.id: ev.stream})

    def typing(self, principal: Principal, room_id: str, typing: bool, timeout_ms: int) -> None:
        """Ephemeral: published on the bus to every node, not stored."""
        with self.db.read() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
        self.rt.bus.publish([DomainEvent(
            type="messaging.typing", actor_id=principal.user_id, audience=[],
            payload={"room_id": room.id, "user_id": principal.user_id, "typing": bool(typing),
                     "timeout_ms": max(0, min(int(timeout_ms or 30000), 120000))})])

    def delivery_state(self, principal: Principal, room_id: str, event_id: str) -> dict:
        """Per recipient: delivered / read, for one message (sender or moderator)."""
        self.flush_deliveries()
        with self.db.read() as s:
            room = self.get_room(s, room_id)
            self.require_member(s, room, principal)
            ev = s.scalar(select(Event).where(Event.event_id == event_id,
                                              Event.room_id == room.id))
            if ev is None:
                raise NotFound("no such event", code="messaging.event_not_found")
            members = [m for m in self.members(s, room) if m != ev.sender_id]
            delivered = dict(s.execute(select(Delivery.user_id, Delivery.stream).where(
                Delivery.room_id == room.id)).all())
            read = dict(s.execute(select(ReceiptLog.user_id, func.max(ReceiptLog.event_stream))
                                  .where(ReceiptLog.room_id == room.id)
                                  .group_by(ReceiptLog.user_id)).all())
            per = []
            for uid in members[:1000]:
                state = "sent"
                if delivered.get(uid, 0) >= ev.stream:
                    state = "delivered"
                if read.get(uid, 0) >= ev.stream:
                    state = "read"
                per.append({"user_id": self.mxid(uid), "state": state})
            return {"event_id": event_id, "recipients": len(members),
                    "delivered": sum(1 for p in per if p["state"] != "sent"),
                    "read": sum(1 for p in per if p["state"] == "read"), "per_recipient": per}

    # Rooms listing (Tocsin client) ----------------------------------------
    def list_rooms(self, principal: Principal) -> list[dict]:
        with self.db.read() as s:
            ids = self.joined_room_ids(s, principal)
            invites = list(s.scalars(select(Member.room_id).where(
                Member.user_id == principal.user_id, Member.membership == "invite")))
            out = []
            for rid in ids + invites:
                room = s.get(Room, rid)
                if room is None:
                    continue
                last = s.scalar(select(Event).where(Event.room_id == rid,
                                                    Event.state_key.is_(None))
                                .order_by(Event.stream.desc()).limit(1))
                read = s.scalar(select(func.max(ReceiptLog.event_stream)).where(
                    ReceiptLog.room_id == rid, ReceiptLog.user_id == principal.user_id)) or 0
                unread = s.scalar(select(func.count()).select_from(Event).where(
                    Event.room_id == rid, Event.stream > read, Event.state_key.is_(None),
                    Event.sender_id != principal.user_id, Event.type != "m.reaction")) or 0
                name = room.name
                if room.kind == "direct":
                    other = s.scalar(select(Member.user_id).where(
                        Member.room_id == rid, Member.user_id != principal.user_id))
                    name = self.display_name(other) if other else "direct"
                out.append({"room_id": self.room_mx(rid), "kind": room.kind, "name": name,
                            "membership": "invite" if rid in invites else "join",
                            "can_post": not room.post_roles or principal.has_role(
                                *room.post_roles),
                            "unread": min(unread, 999), "last_stream": last.stream if last else 0,
                            "last_ts": last.origin_ts if last else 0,
                            "retention_days": room.retention_days,
                            "legal_hold": room.legal_hold})
            out.sort(key=lambda r: -r["last_stream"])
            return out

    # Broadcast alerts --------------------------------------------------
    def create_alert(self, principal: Principal, *, kind: str, title: str, description: str,
                     unit_codes: Iterable[str], photo_mxc: str | None = None,
                     priority: int = 1, area: dict | None = None,
                     source: dict | None = None) -> Alert:
        """Broadcast an alert to everyone in ``unit_codes`` (their subtrees; none: the
        whole force). ``area`` (GeoJSON) and ``source`` (where the alert comes from, e.g.
        an operation's CAP identifier) travel with it for clients that show them."""
        if kind not in ALERT_KINDS:
            raise BadInput(f"alert kind must be one of {', '.join(ALERT_KINDS)}",
                           code="alert.bad_kind")
        if not title.strip() or len(title) > 200 or len(description) > 4000:
            raise BadInput("title 1-200 and description up to 4000 characters",
                           code="alert.bad_text")
        for name, value in (("area", area), ("source", source)):
            if value is not None and (not isinstance(value, dict) or len(json.dumps(
                    value)) > 16000):
                raise BadInput(f"{name} must be a JSON object under 16 kB",
                               code="alert.bad_" + name)
        codes = list(dict.fromkeys(unit_codes)) or [self._root_code()]
        if not principal.has_role(*ALERT_ROLES):
            raise Forbidden("your role may not send alerts", code="alert.forbidden")
        with self.db.session() as s:
            units = [self.rt.identity.unit_by_code(s, c) for c in codes]
            for u in units:
                access.require(principal, "write", Resource("alert", u.path))
            room = self._broadcast_room(s, principal, units)
            content = self._alert_content(s, priority, {
                "kind": kind, "title": title, "description": description, "photo": photo_mxc,
                "units": codes, "status": "active", "revision": 1, "area": area,
                "source": source})
            ev = self._append(s, room, principal.user_id, "m.room.message", content,
                              session_id=principal.session_id,
                              search_text=f"{title}\n{description}".lower())
            to_move = self._attach_media(s, room, principal, content)
            alert = Alert(id=secrets.token_urlsafe(12), room_id=room.id, event_id=ev.event_id,
                          kind=kind, title=title, status="active", revision=1,
                          audience_count=self.member_count(s, room),
                          created_by=principal.user_id)
            s.add(alert)
            s.flush()
            emit(s, DomainEvent(type="messaging.alert.created", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="alert", record_id=alert.id,
                                payload={"alert_id": alert.id, "kind": kind,
                                         "room_id": room.id, "units": codes}))
        self._move_to_room_key(alert.room_id, to_move)
        return alert

    def _alert_content(self, s: Session, priority: int, fields: dict) -> dict[str, Any]:
        """An alert as a standard ``m.room.message``: any Matrix client shows its text
        (``m.text``) or its photo with the text as caption (``m.image`` with a
        ``filename``), and notifies the whole room; the police fields ride along under
        ``org.tocsin.alert``, which Tocsin's client reads."""
        kind, title, description = fields["kind"], fields["title"], fields["description"]
        photo_mxc = fields["photo"]
        headline = f"ALERT ({kind.replace('_', ' ')}): {title}"
        html_desc = html.escape(description).replace("\n", "<br>")
        content: dict[str, Any] = {
            "msgtype": "m.text", "body": headline + (f"\n{description}" if description else ""),
            "format": "org.matrix.custom.html",
            "formatted_body": f"<p><strong>{html.escape(headline)}</strong></p>"
                              + (f"<p>{html_desc}</p>" if description else ""),
            "m.mentions": {"room": True}, ALERT_KEY: fields, PRIORITY_KEY: priority}
        if photo_mxc:
            media_id = self.media_id_from_mxc(photo_mxc)
            media = s.get(Media, media_id) if media_id else None
            if media is None:
                raise BadInput("attached media does not exist", code="media.not_found")
            info: dict[str, Any] = {"mimetype": media.content_type, "size": media.size}
            if media.width and media.height:
                info.update(w=media.width, h=media.height)
            if media.thumbnail_id:
                info["thumbnail_url"] = self.mxc(media.thumbnail_id)
            content.update(msgtype="m.image" if media.content_type.startswith("image/")
                           else "m.file", url=photo_mxc, info=info,
                           filename=media.filename or "alert-photo")
        return content

    def _root_code(self) -> str:
        with self.db.read() as s:
            code = s.scalar(select(Unit.code).where(Unit.parent_id.is_(None)))
        if code is None:
            raise NotFound("no units", code="unit.not_found")
        return code

    def _broadcast_room(self, s: Session, principal: Principal, units: list[Unit]) -> Room:
        """One broadcast channel per audience (set of units), reused by later alerts."""
        key = sorted(u.id for u in units)
        for room in s.scalars(select(Room).where(Room.kind == "broadcast")):
            ids = sorted(s.scalars(select(RoomAudience.unit_id)
                                   .where(RoomAudience.room_id == room.id)))
            if ids == key:
                return room
        name = "Alerts: " + ", ".join(u.name for u in units[:3]) + ("…" if len(units) > 3 else "")
        common = s.get(Unit, self._common_ancestor(s, units))
        return self._new_room(s, kind="broadcast", creator_id=principal.user_id, name=name,
                              unit=common, post_roles=list(ALERT_ROLES), audience=units)

    def update_alert(self, principal: Principal, alert_id: str, *, status: str,
                     note: str | None = None) -> Alert:
        if status not in ("active", "cancelled", "resolved"):
            raise BadInput("status must be active, cancelled or resolved", code="alert.bad_status")
        if note is not None and len(note) > 4000:
            raise TooLarge("note too long", code="alert.bad_text")
        with self.db.session() as s:
            alert = s.get(Alert, alert_id)
            if alert is None:
                raise NotFound("no such alert", code="alert.not_found")
            room = s.get(Room, alert.room_id)
            access.require(principal, "write", Resource("alert", self.rt.units.path(
                room.unit_id) if room.unit_id else None))
            alert.status, alert.revision, alert.updated_at = status, alert.revision + 1, utcnow()
            # A notice replying to the alert: shown as such by any Matrix client.
            self._append(s, room, principal.user_id, "m.room.message", {
                "msgtype": "m.notice", "body": f"Alert {status}: {alert.title}"
                                               + (f"\n{note}" if note else ""),
                ALERT_UPDATE_KEY: {"alert_id": alert.id, "status": status, "note": note,
                                   "revision": alert.revision},
                "m.relates_to": {"m.in_reply_to": {"event_id": alert.event_id}}},
                session_id=principal.session_id, relates_to=alert.event_id,
                rel_type="m.reply")
            emit(s, DomainEvent(type="messaging.alert.updated", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="alert", record_id=alert.id,
                                payload={"alert_id": alert.id, "status": status}))
            return alert

    def ack_alert(self, principal: Principal, alert_id: str, *, acknowledged: bool = True
                  ) -> None:
        with self.db.session() as s:
            alert = s.get(Alert, alert_id)
            if alert is None:
                raise NotFound("no such alert", code="alert.not_found")
            room = s.get(Room, alert.room_id)
            self.require_member(s, room, principal)
            row = s.get(AlertAck, (alert_id, principal.user_id))
            now = utcnow()
            if row is None:
                row = AlertAck(alert_id=alert_id, user_id=principal.user_id, seen_at=now)
                s.add(row)
            elif row.acked_at is not None or not acknowledged:
                return  # idempotent
            if acknowledged:
                row.acked_at = now
            emit(s, DomainEvent(type="messaging.alert.acknowledged" if acknowledged
                                else "messaging.alert.seen", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="alert", record_id=alert_id,
                                audience=[alert.created_by],
                                payload={"alert_id": alert_id}))

    def alert_status(self, principal: Principal, alert_id: str) -> dict:
        with self.db.read() as s:
            alert = s.get(Alert, alert_id)
            if alert is None:
                raise NotFound("no such alert", code="alert.not_found")
            room = s.get(Room, alert.room_id)
            if not principal.has_role(*ALERT_ROLES, "auditor"):
                self.require_member(s, room, principal)
            seen = s.scalar(select(func.count()).select_from(AlertAck).where(
                AlertAck.alert_id == alert_id)) or 0
            acked = s.scalar(select(func.count()).select_from(AlertAck).where(
                AlertAck.alert_id == alert_id, AlertAck.acked_at.is_not(None))) or 0
            mine = s.get(AlertAck, (alert_id, principal.user_id))
            return {"alert_id": alert.id, "room_id": self.room_mx(alert.room_id),
                    "event_id": alert.event_id, "kind": alert.kind, "title": alert.title,
                    "status": alert.status, "revision": alert.revision,
                    "audience": alert.audience_count, "seen": seen, "acknowledged": acked,
                    "summary": f"acknowledged by {acked:,} of {alert.audience_count:,}",
                    "you_acknowledged": bool(mine and mine.acked_at)}

    def list_alerts(self, principal: Principal, active_only: bool = True) -> list[dict]:
        with self.db.read() as s:
            rooms = self.joined_room_ids(s, principal)
            q = select(Alert.id).order_by(Alert.created_at.desc()).limit(100)
            if not principal.has_role("auditor", "administrator"):
                q = q.where(Alert.room_id.in_(rooms) if rooms else literal(False))
            if active_only:
                q = q.where(Alert.status == "active")
            ids = list(s.scalars(q))
        return [self.alert_status(principal, i) for i in ids]

    # Retention, legal hold, export -------------------------------------
    def set_retention(self, principal: Principal, room_id: str, *, days: int | None = None,
                      legal_hold: bool | None = None) -> Room:
        if days is not None and not 1 <= days <= 36500:
            raise BadInput("retention must be 1-36500 days", code="messaging.bad_retention")
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            path = self.rt.units.path(room.unit_id) if room.unit_id else None
            access.require(principal, "write", Resource("conversation", path))
            changes = {}
            if days is not None or legal_hold is None:
                room.retention_days, changes["retention_days"] = days, days
            if legal_hold is not None:
                room.legal_hold, changes["legal_hold"] = legal_hold, legal_hold
            emit(s, DomainEvent(type="messaging.retention.changed", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="conversation",
                                record_id=room.id, audience=[], payload=changes))
            return room

    def purge_expired(self, now: dt.datetime | None = None) -> PurgeReport:
        """Delete messages past their conversation's retention, except under legal hold,
        and the media they alone referenced.

        The stored domain events of the deleted messages are erased (the ledger keeps
        their leaves; content and salt go). A media's reference from a conversation
        goes when no kept event of that conversation names it (or its thumbnail); the
        media row when no conversation references it any more; its encrypted file
        when no other media row shares it (content-addressed: same scope, same
        digest). Alerts whose message is deleted go with their acknowledgements.
        Run periodically by ``retention.RetentionWorker`` and by
        ``tocsin messaging purge``."""
        now = now or utcnow()
        report = PurgeReport()
        due: list[tuple[str, int]] = []
        with self.db.read() as s:
            for room in s.scalars(select(Room).where(Room.retention_days.is_not(None),
                                                     Room.legal_hold.is_(False))):
                cutoff = int((now - dt.timedelta(days=room.retention_days)).timestamp() * 1000)
                if s.scalar(select(Event.stream).where(
                        Event.room_id == room.id, Event.state_key.is_(None),
                        Event.origin_ts < cutoff).limit(1)) is not None:
                    due.append((room.id, cutoff))
        if not due:
            return report  # nothing expired: no write transaction at all
        with self.db.session() as s:
            if self.db.engine.dialect.name == "postgresql" and not s.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PURGE_LOCK}):
                return report  # another node is purging right now
            orphans: set[str] = set()
            for room_id, cutoff in due:
                room = s.get(Room, room_id)
                if room is None or room.legal_hold:
                    continue
                rows = s.execute(select(Event.stream, Event.event_id, Event.core_event_id,
                                        Event.content).where(
                    Event.room_id == room.id, Event.state_key.is_(None),
                    Event.origin_ts < cutoff)).all()
                if not rows:
                    continue
                ids = [r[0] for r in rows]
                for i in range(0, len(ids), 500):
                    s.execute(delete(Event).where(Event.stream.in_(ids[i:i + 500])))
                # The ledger keeps their leaves; the stored copies lose content and salt.
                erase_events(s, [r[2] for r in rows if r[2]])
                report.alerts += self._purge_alerts(s, room.id, [r[1] for r in rows])
                named = {m for r in rows for m in self._media_named(r[3])}
                refs, gone = self._purge_media_refs(s, room.id, named)
                report.media_refs += refs
                orphans |= gone
                report.events += len(ids)
                report.conversations += 1
                emit(s, DomainEvent(type="messaging.retention.purged", unit_id=room.unit_id,
                                    record_kind="conversation", record_id=room.id, audience=[],
                                    payload={"room_id": room.id, "events": len(ids),
                                             "media_refs": refs}))
            blobs = self._purge_media(s, orphans)
            report.media = len(orphans)
        if blobs:  # after the commit: a failed transaction leaves every file in place
            from tocsin.messaging.storage import get_media

            store = get_media(self.rt).store
            for scope, sha in blobs:
                store.delete(scope, sha)
            report.blobs = len(blobs)
        return report

    def _media_named(self, content: Any) -> set[str]:
        """Ids of this server's media an event's content names (url, thumbnail, alert...)."""
        text_ = json.dumps(content or {})
        prefix = re.escape(f"mxc://{self.server_name}/")
        return set(re.findall(prefix + r"([A-Za-z0-9_\-]{1,40})", text_))

    def _purge_alerts(self, s: Session, room_id: str, event_ids: list[str]) -> int:
        alert_ids = []
        for i in range(0, len(event_ids), 500):
            alert_ids += list(s.scalars(select(Alert.id).where(
                Alert.room_id == room_id, Alert.event_id.in_(event_ids[i:i + 500]))))
        if alert_ids:
            s.execute(delete(AlertAck).where(AlertAck.alert_id.in_(alert_ids)))
            s.execute(delete(Alert).where(Alert.id.in_(alert_ids)))
        return len(alert_ids)

    def _purge_media_refs(self, s: Session, room_id: str, named: set[str]
                          ) -> tuple[int, set[str]]:
        """Drop the room's references to media (with their thumbnails) that no kept event
        of the room names. Returns (references dropped, media now referenced nowhere)."""
        dropped, gone = 0, set()
        for media in s.scalars(select(Media).where(Media.id.in_(named),
                                                   Media.is_thumbnail.is_(False))):
            group = [m for m in (media.id, media.thumbnail_id) if m]
            if any(self._named_in_room(s, room_id, m) for m in group):
                continue
            dropped += s.execute(delete(MediaRef).where(
                MediaRef.room_id == room_id, MediaRef.media_id.in_(group))).rowcount or 0
            if s.scalar(select(MediaRef.media_id).where(MediaRef.media_id == media.id)
                        .limit(1)) is None:
                gone.add(media.id)
        return dropped, gone

    def _named_in_room(self, s: Session, room_id: str, media_id: str) -> bool:
        pattern = "%" + self.mxc(media_id).replace("_", "\\_") + "%"
        return s.scalar(select(Event.stream).where(
            Event.room_id == room_id,
            cast(Event.content, Text).like(pattern, escape="\\")).limit(1)) is not None

    def _purge_media(self, s: Session, media_ids: set[str]) -> list[tuple[str, str]]:
        """Delete media rows (and their thumbnails); returns the (scope, sha256) files
        that no remaining media row shares."""
        rows = list(s.scalars(select(Media).where(Media.id.in_(media_ids))))
        thumbs = [m.thumbnail_id for m in rows if m.thumbnail_id]
        rows += list(s.scalars(select(Media).where(Media.id.in_(thumbs))))
        ids = [m.id for m in rows]
        if not ids:
            return []
        s.execute(delete(MediaRef).where(MediaRef.media_id.in_(ids)))
        s.execute(delete(Upload).where(Upload.media_id.in_(ids)))
        s.execute(delete(Media).where(Media.id.in_(ids)))
        files = {(m.scope, m.sha256) for m in rows}
        return [f for f in sorted(files) if s.scalar(select(Media.id).where(
            Media.scope == f[0], Media.sha256 == f[1]).limit(1)) is None]

    def export(self, principal: Principal, room_id: str) -> dict:
        """A conversation for a court: every event (deleted and edited ones in full),
        membership history, media digests, and the ledger references of each event."""
        with self.db.session() as s:
            room = self.get_room(s, room_id)
            path = self.rt.units.path(room.unit_id) if room.unit_id else None
            access.require(principal, "read", Resource("conversation", path))
            events = list(s.scalars(select(Event).where(Event.room_id == room.id)
                                    .order_by(Event.stream)))
            core_ids = [e.core_event_id for e in events if e.core_event_id]
            records = {}
            for i in range(0, len(core_ids), 500):
                for r in s.scalars(select(EventRecord).where(
                        EventRecord.id.in_(core_ids[i:i + 500]))):
                    records[r.id] = r
            media = list(s.scalars(select(Media).join(MediaRef, MediaRef.media_id == Media.id)
                                   .where(MediaRef.room_id == room.id)))
            exported = []
            for e in events:
                rec = records.get(e.core_event_id or "")
                exported.append({
                    "event_id": e.event_id, "stream": e.stream, "depth": e.depth,
                    "type": e.type, "state_key": e.state_key, "sender": self.mxid(e.sender_id),
                    "origin_server_ts": e.origin_ts, "content": e.content,
                    "content_sha256": hashlib.sha256(json.dumps(
                        e.content, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
                    "redacted_by": e.redacted_by, "relates_to": e.relates_to,
                    "rel_type": e.rel_type,
                    "ledger": {"core_event_id": e.core_event_id,
                               "seq": rec.seq if rec else None,
                               "ledger_index": rec.ledger_index if rec else None,
                               "salt": rec.salt.hex() if rec and rec.salt else None}})
            emit(s, DomainEvent(type="messaging.room.exported", actor_id=principal.user_id,
                                unit_id=room.unit_id, record_kind="conversation",
                                record_id=room.id, audience=[],
                                payload={"room_id": room.id, "events": len(events)}))
            result = {"room_id": self.room_mx(room.id), "kind": room.kind, "name": room.name,
                    "legal_hold": room.legal_hold, "retention_days": room.retention_days,
                    "exported_at": utcnow().isoformat(), "exported_by": self.mxid(
                        principal.user_id),
                    "events": exported,
                    "media": [{"media_id": m.id, "sha256": m.sha256, "size": m.size,
                               "content_type": m.content_type, "scene": m.scene,
                               "lat": m.lat, "lon": m.lon} for m in media]}
        # After the commit: the ledger may seal (a write of its own) to prove the latest events.
        result["proofs"] = self._ledger_proofs(list(records.values()))
        return result

    def _ledger_proofs(self, records: list[EventRecord]) -> dict:
        """Inclusion proof bundles from the ledger, one per event it has sealed."""
        from tocsin.ledger.service import get_service as get_ledger

        return get_ledger(self.rt).inclusion_proofs([r.id for r in records])


def get_service(runtime: Runtime) -> MessagingService:
    return runtime.service("messaging", MessagingService)

