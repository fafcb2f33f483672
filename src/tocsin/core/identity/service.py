"""Identity rules: units, users, login, tokens, device sessions, TOTP.

No HTTP here: the routes in ``api.py`` and the CLI both call this service.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from tocsin.core import access
from tocsin.core.access import Principal, Resource
from tocsin.core.database import Database, as_utc, utcnow
from tocsin.core.errors import BadInput, Conflict, NotFound, TooManyRequests, Unauthorized
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity import passwords, tokens, totp
from tocsin.core.identity.models import DeviceSession, LoginFailure, Role, Unit, UnitKind, User
from tocsin.core.identity.schemas import TokenOut

KIND_ORDER = [k.value for k in UnitKind]
log = logging.getLogger(__name__)
LAST_SEEN_GRANULARITY = dt.timedelta(seconds=60)
# Last-seen times are written in batches, at most one transaction a second (one write per
# authenticated request queued behind every other writer and its fsync otherwise).
LAST_SEEN_BATCH = dt.timedelta(seconds=1)
# The check of every authenticated request: built once (building a select and its cache key
# costs several times what running it does), read as one plain row, no ORM objects.
_LIVE_SESSION = (select(DeviceSession.user_id, DeviceSession.revoked_at,
                        DeviceSession.expires_at, DeviceSession.last_seen_at, User.username,
                        User.active, User.roles, Unit.id, Unit.path)
                 .join(User, User.id == DeviceSession.user_id)
                 .join(Unit, Unit.id == User.unit_id)
                 .where(DeviceSession.id == bindparam("sid")))

access.register_kind("user", read=["administrator", "auditor"], write=["administrator"])
access.register_kind("session", read=["administrator", "auditor"], write=["administrator"])
access.register_kind("unit", read=[r.value for r in Role], write=["administrator"])


class IdentityService:
    def __init__(self, db: Database, *, token_key: bytes, access_ttl: int = 900,
                 refresh_ttl: int = 30 * 86400, max_failures: int = 5, window_seconds: int = 900):
        self.db = db
        self.token_key = token_key
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.max_failures = max_failures
        self.window = dt.timedelta(seconds=window_seconds)
        self._seen: dict[str, dt.datetime] = {}  # session id -> last seen, not yet written
        self._seen_since: dt.datetime | None = None  # when the oldest of them was noted
        self._seen_lock = threading.Lock()

    # Units -------------------------------------------------------------
    def create_unit(self, s: Session, *, code: str, name: str, kind: str,
                    parent_code: str | None, actor: Principal | None = None) -> Unit:
        if kind not in KIND_ORDER:
            raise BadInput(f"unknown unit kind {kind!r}", code="unit.kind_unknown")
        if s.scalar(select(Unit.id).where(Unit.code == code)) is not None:
            raise Conflict(f"unit code {code!r} already exists", code="unit.duplicate")
        parent = None
        if parent_code:
            parent = s.scalar(select(Unit).where(Unit.code == parent_code))
            if parent is None:
                raise BadInput(f"parent unit {parent_code!r} does not exist",
                               code="unit.parent_unknown")
            if KIND_ORDER.index(kind) <= KIND_ORDER.index(parent.kind):
                raise BadInput(f"a {kind} cannot sit under a {parent.kind}",
                               code="unit.bad_nesting")
        elif s.scalar(select(func.count()).select_from(Unit)):
            raise BadInput("only the first unit (the nation) may have no parent",
                           code="unit.parent_required")
        if actor is not None:
            access.require(actor, "write", Resource("unit", parent.path if parent else None))
        unit = Unit(code=code, name=name, kind=kind, parent_id=parent.id if parent else None,
                    path="")
        s.add(unit)
        s.flush()
        unit.path = f"{parent.path if parent else '/'}{unit.id}/"
        emit(s, DomainEvent(type="identity.unit.created", actor_id=actor and actor.user_id,
                            unit_id=unit.id, record_kind="unit", record_id=str(unit.id),
                            payload={"code": code, "kind": kind}))
        return unit

    def import_units_csv(self, path: Path, actor: Principal | None = None) -> int:
        """Import ``code,name,kind,parent_code`` rows in any order; all or nothing."""
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = {"code", "name", "kind", "parent_code"} - set(reader.fieldnames or [])
                if missing:
                    raise BadInput(f"{path}: missing columns {sorted(missing)}",
                                   code="unit.csv_columns")
                rows = list(reader)
        except FileNotFoundError:
            raise BadInput(f"{path}: no such file", code="file_not_found") from None
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not UTF-8 text", code="unit.csv_encoding") from None
        by_code: dict[str, dict] = {}
        for line, row in enumerate(rows, start=2):
            code = (row.get("code") or "").strip()
            if not code:
                raise BadInput(f"{path}:{line}: empty code", code="unit.csv_row")
            if code in by_code:
                raise BadInput(f"{path}:{line}: duplicate code {code!r}", code="unit.csv_row")
            by_code[code] = {**row, "_line": line}
        created = 0
        with self.db.session() as s:
            existing = set(s.scalars(select(Unit.code)))
            done: set[str] = set(existing)
            pending = [c for c in by_code if c not in existing]
            while pending:
                progressed = False
                for code in list(pending):
                    row = by_code[code]
                    parent = (row.get("parent_code") or "").strip() or None
                    if parent is not None and parent not in done:
                        if parent not in by_code:
                            raise BadInput(f"{path}:{row['_line']}: unknown parent {parent!r}",
                                           code="unit.parent_unknown")
                        continue
                    try:
                        self.create_unit(s, code=code, name=(row.get("name") or "").strip()
                                         or code, kind=(row.get("kind") or "").strip(),
                                         parent_code=parent, actor=actor)
                    except BadInput as exc:
                        raise BadInput(f"{path}:{row['_line']}: {exc.message}",
                                       code=exc.code) from None
                    done.add(code)
                    pending.remove(code)
                    created += 1
                    progressed = True
                if not progressed:
                    raise BadInput(f"{path}: parent cycle among {sorted(pending)[:5]}",
                                   code="unit.cycle")
        return created

    def unit_by_code(self, s: Session, code: str) -> Unit:
        unit = s.scalar(select(Unit).where(Unit.code == code))
        if unit is None:
            raise NotFound(f"unit {code!r} not found", code="unit.not_found")
        return unit

    # Users -------------------------------------------------------------
    def create_user(self, *, username: str, display_name: str, unit_code: str,
                    roles: Iterable[str], password: str, actor: Principal | None = None) -> User:
        roles = sorted({Role(r).value for r in roles})
        if not roles:
            raise BadInput("a user needs at least one role", code="user.no_role")
        weak = passwords.check_strength(password)
        if weak:
            raise BadInput(weak, code="user.weak_password")
        hashed = passwords.hash_password(password)
        with self.db.session() as s:
            unit = self.unit_by_code(s, unit_code)
            if actor is not None:
                access.require(actor, "write", Resource("user", unit.path))
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"username {username!r} is taken", code="user.duplicate")
            user = User(username=username, display_name=display_name, unit_id=unit.id,
                        roles=roles, password_hash=hashed)
            s.add(user)
            s.flush()
            emit(s, DomainEvent(type="identity.user.created", actor_id=actor and actor.user_id,
                                unit_id=unit.id, record_kind="user", record_id=str(user.id),
                                payload={"roles": roles}))
            s.refresh(user)
            return user

    def get_user(self, s: Session, user_id: int) -> User:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("user not found", code="user.not_found")
        return user

    def list_users(self, principal: Principal, *, unit_code: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[User]:
        with self.db.read() as s:
            q = select(User).join(Unit, Unit.id == User.unit_id).order_by(User.id)
            q = q.where(access.readable_units_clause(principal, "user", User.unit_id))
            if unit_code:
                unit = self.unit_by_code(s, unit_code)
                q = q.where(Unit.path.like(unit.path + "%"))
            return list(s.scalars(q.limit(limit).offset(offset)).unique())

    def set_active(self, actor: Principal | None, user_id: int, active: bool) -> None:
        self.update_user(actor, user_id, active=active)

    def update_user(self, actor: Principal | None, user_id: int, *,
                    unit_code: str | None = None, roles: Iterable[str] | None = None,
                    active: bool | None = None) -> User:
        """Move a user to another unit, change her roles, or (de)activate her account.

        The actor must be allowed to change users both where the user is and where
        she goes. The change takes effect on the user's next request; her open live
        sockets are told to reconnect (``identity.user.changed``), so nothing keeps
        flowing to her under the unit or roles she no longer has.
        """
        new_roles = None
        if roles is not None:
            new_roles = sorted({Role(r).value for r in roles})
            if not new_roles:
                raise BadInput("a user needs at least one role", code="user.no_role")
        with self.db.session() as s:
            user = self.get_user(s, user_id)
            if actor is not None:
                access.require(actor, "write", Resource("user", user.unit.path))
            changes: dict[str, object] = {}
            if unit_code is not None:
                unit = self.unit_by_code(s, unit_code)
                if actor is not None:
                    access.require(actor, "write", Resource("user", unit.path))
                if unit.id != user.unit_id:
                    changes["unit_id"] = unit.id
                    user.unit_id = unit.id
            if new_roles is not None and new_roles != sorted(user.roles):
                changes["roles"] = new_roles
                user.roles = new_roles
            if active is not None and active != user.active:
                changes["active"] = active
                user.active = active
                if not active:
                    self._revoke(s, user.id, None, "account disabled", actor)
            if changes:
                emit(s, DomainEvent(type="identity.user.changed",
                                    actor_id=actor and actor.user_id, unit_id=user.unit_id,
                                    record_kind="user", record_id=str(user.id),
                                    payload={"user_id": user.id, **changes}))
            s.flush()
            s.refresh(user)
            return user

    # Login and tokens --------------------------------------------------
    def login(self, *, username: str, password: str, totp_code: str | None = None,
              device_name: str = "unnamed device", client: str = "unknown") -> TokenOut:
        keys = [f"user:{username.lower()}", f"client:{client}"]
        limits = [self.max_failures, self.max_failures * 20]
        self._check_throttle(keys, limits)
        with self.db.read() as s:
            user = s.scalar(select(User).where(User.username == username))
            stored = user.password_hash if user and user.active else None
        if not passwords.verify_password(stored, password):
            self._record_failure(keys)
            raise Unauthorized("wrong username or password", code="login_failed")
        assert user is not None
        try:
            return self._open_session(user.id, password, totp_code, device_name, keys[0])
        except Unauthorized as exc:
            if exc.code == "totp_invalid":
                self._record_failure(keys)
            raise

    def _open_session(self, user_id: int, password: str, totp_code: str | None,
                      device_name: str, throttle_key: str) -> TokenOut:
        with self.db.session() as s:
            user = s.get(User, user_id, with_for_update=True)
            assert user is not None
            if user.totp_enabled:
                if not totp_code:
                    raise Unauthorized("a TOTP code is required", code="totp_required")
                step = totp.accepted_step(user.totp_secret or "", totp_code, user.totp_last_step)
                if step is None:
                    raise Unauthorized("wrong or reused TOTP code", code="totp_invalid")
                user.totp_last_step = step
            if passwords.needs_rehash(user.password_hash or ""):
                user.password_hash = passwords.hash_password(password)
            s.execute(delete(LoginFailure).where(LoginFailure.key == throttle_key))
            secret, digest = tokens.new_refresh_secret()
            now = utcnow()
            sess = DeviceSession(id=secrets.token_hex(16), user_id=user.id,
                                 device_name=device_name, refresh_hash=digest, created_at=now,
                                 last_seen_at=now,
                                 expires_at=now + dt.timedelta(seconds=self.refresh_ttl))
            s.add(sess)
            emit(s, DomainEvent(type="identity.session.created", actor_id=user.id,
                                unit_id=user.unit_id, record_kind="session", record_id=sess.id,
                                audience=[user.id], payload={"device_name": device_name}))
            return self._token_pair(user.id, sess.id, secret)

    def _token_pair(self, user_id: int, session_id: str, secret: str) -> TokenOut:
        token, ttl = tokens.issue_access(self.token_key, user_id=user_id, session_id=session_id,
                                         ttl=self.access_ttl)
        return TokenOut(access_token=token, refresh_token=f"{session_id}.{secret}",
                        expires_in=ttl, session_id=session_id)

    def refresh(self, refresh_token: str) -> TokenOut:
        session_id, _, secret = refresh_token.partition(".")
        if not session_id or not secret:
            raise Unauthorized("refresh token invalid", code="refresh_invalid")
        with self.db.session() as s:
            sess = s.get(DeviceSession, session_id, with_for_update=True)
            if sess is None:
                raise Unauthorized("refresh token invalid", code="refresh_invalid")
            if sess.revoked_at is not None:
                raise Unauthorized("session revoked", code="session_revoked")
            if as_utc(sess.expires_at) <= utcnow():
                raise Unauthorized("session expired", code="session_expired")
            reused = not tokens.same_hash(sess.refresh_hash, tokens.hash_secret(secret))
            if reused:
                # An old refresh token came back: someone holds a copy. Cut the session
                # (committed before the error is raised).
                self._revoke(s, sess.user_id, sess.id, "refresh token reuse", None)
        if reused:
            raise Unauthorized("refresh token reused; session revoked", code="refresh_reused")
        with self.db.session() as s:
            sess = s.get(DeviceSession, session_id, with_for_update=True)
            assert sess is not None
            if sess.revoked_at is not None:
                raise Unauthorized("session revoked", code="session_revoked")
            user = s.get(User, sess.user_id)
            if user is None or not user.active:
                raise Unauthorized("account disabled", code="account_disabled")
            new_secret, digest = tokens.new_refresh_secret()
            sess.refresh_hash = digest
            sess.last_seen_at = utcnow()
            return self._token_pair(user.id, sess.id, new_secret)

    def authenticate(self, access_token: str) -> Principal:
        """Principal of a valid token whose session is live (checked on every call)."""
        user_id, session_id = tokens.decode_access(self.token_key, access_token)
        return self.authenticate_session(user_id, session_id)

    def authenticate_session(self, user_id: int, session_id: str) -> Principal:
        """Principal of a live session of this user (not revoked, not expired, the account
        active), read from the database on every call: a revocation takes effect at once."""
        # what db.read() does (BEGIN, not BEGIN IMMEDIATE, on SQLite), without a Session
        with self.db.engine.connect().execution_options(tocsin_read_only=True) as c:
            row = c.execute(_LIVE_SESSION, {"sid": session_id}).first()
        if row is None:
            raise Unauthorized("session not found", code="session_revoked")
        owner, revoked_at, expires_at, last_seen_at, username, active, roles, unit_id, path = row
        if owner != user_id:
            raise Unauthorized("access token invalid", code="token_invalid")
        if revoked_at is not None:
            raise Unauthorized("session revoked", code="session_revoked")
        now = utcnow()
        if as_utc(expires_at) <= now:
            raise Unauthorized("session expired", code="session_expired")
        if not active:
            raise Unauthorized("account disabled", code="account_disabled")
        if now - as_utc(last_seen_at) > LAST_SEEN_GRANULARITY:
            self._note_seen(session_id, now)
        return Principal(user_id=owner, username=username, unit_id=unit_id, unit_path=path,
                         roles=frozenset(roles or ()), session_id=session_id)

    def _note_seen(self, session_id: str, now: dt.datetime) -> None:
        with self._seen_lock:
            self._seen[session_id] = now
            if self._seen_since is None:
                self._seen_since = now
            due = now - self._seen_since >= LAST_SEEN_BATCH
        if due:
            try:
                self.flush_seen()
            except Exception:  # a busy database: kept for the next flush
                log.exception("could not write the devices' last-seen times")

    def flush_seen(self) -> None:
        """Write the last-seen times noted since the last flush, in one transaction."""
        with self._seen_lock:
            seen, self._seen, self._seen_since = self._seen, {}, None
        if not seen:
            return
        try:
            table = DeviceSession.__table__  # Core: a session gone meanwhile is no error
            with self.db.session() as s:
                s.execute(update(table).where(table.c.id == bindparam("sid"))
                          .values(last_seen_at=bindparam("at")),
                          [{"sid": sid, "at": at} for sid, at in seen.items()])
        except Exception:
            with self._seen_lock:  # noted again meanwhile: the newer time wins
                for sid, at in seen.items():
                    self._seen.setdefault(sid, at)
                self._seen_since = self._seen_since or min(seen.values())
            raise

    def principal_for(self, username: str) -> Principal:
        """A principal without a session, for trusted local tools (CLI, demo)."""
        with self.db.read() as s:
            row = s.execute(select(User, Unit).join(Unit, Unit.id == User.unit_id)
                            .where(User.username == username)).first()
        if row is None:
            raise NotFound(f"user {username!r} not found", code="user.not_found")
        user, unit = row
        return Principal(user.id, user.username, unit.id, unit.path, frozenset(user.roles))

    # Throttling --------------------------------------------------------
    def _check_throttle(self, keys: list[str], limits: list[int]) -> None:
        now = utcnow()
        with self.db.read() as s:
            rows = {r.key: r for r in s.scalars(select(LoginFailure)
                                                 .where(LoginFailure.key.in_(keys)))}
        for key, limit in zip(keys, limits):
            row = rows.get(key)
            if row is None:
                continue
            end = as_utc(row.window_start) + self.window
            if end > now and row.count >= limit:
                raise TooManyRequests("too many failed logins; try again later",
                                      retry_after=max(1, int((end - now).total_seconds())),
                                      code="login_throttled")

    def _record_failure(self, keys: list[str]) -> None:
        now = utcnow()
        with self.db.session() as s:
            for key in keys:
                row = s.get(LoginFailure, key, with_for_update=True)
                if row is None:
                    s.add(LoginFailure(key=key, count=1, window_start=now))
                elif as_utc(row.window_start) + self.window <= now:
                    row.count, row.window_start = 1, now
                else:
                    row.count += 1

    # Device sessions ---------------------------------------------------
    def list_sessions(self, principal: Principal, user_id: int) -> list[DeviceSession]:
        self.flush_seen()
        with self.db.read() as s:
            self._require_session_admin(s, principal, user_id, "read")
            return list(s.scalars(select(DeviceSession).where(DeviceSession.user_id == user_id)
                                  .order_by(DeviceSession.created_at.desc())))

    def revoke_session(self, principal: Principal | None, session_id: str) -> None:
        with self.db.session() as s:
            sess = s.get(DeviceSession, session_id)
            if sess is None:
                raise NotFound("session not found", code="session.not_found")
            if principal is not None:
                self._require_session_admin(s, principal, sess.user_id, "write")
            self._revoke(s, sess.user_id, session_id, "revoked", principal)

    def revoke_all(self, principal: Principal | None, user_id: int) -> int:
        with self.db.session() as s:
            if principal is not None:
                self._require_session_admin(s, principal, user_id, "write")
            else:
                self.get_user(s, user_id)
            return self._revoke(s, user_id, None, "revoked", principal)

    def logout(self, principal: Principal) -> None:
        if principal.session_id:
            with self.db.session() as s:
                self._revoke(s, principal.user_id, principal.session_id, "logout", principal)

    def _require_session_admin(self, s: Session, principal: Principal, user_id: int,
                               action: str) -> None:
        if principal.user_id == user_id:
            return  # everyone manages their own devices
        user = self.get_user(s, user_id)
        access.require(principal, action, Resource("session", user.unit.path))

    def _revoke(self, s: Session, user_id: int, session_id: str | None, reason: str,
                actor: Principal | None) -> int:
        q = select(DeviceSession).where(DeviceSession.user_id == user_id,
                                        DeviceSession.revoked_at.is_(None))
        if session_id:
            q = q.where(DeviceSession.id == session_id)
        now = utcnow()
        sessions = list(s.scalars(q))
        for sess in sessions:
            sess.revoked_at, sess.revoked_reason = now, reason
            emit(s, DomainEvent(type="identity.session.revoked",
                                actor_id=actor.user_id if actor else None, record_kind="session",
                                record_id=sess.id, audience=[user_id],
                                payload={"session_id": sess.id, "user_id": user_id,
                                         "reason": reason}))
        return len(sessions)

    # TOTP --------------------------------------------------------------
    def totp_setup(self, principal: Principal) -> tuple[str, str]:
        with self.db.session() as s:
            user = self.get_user(s, principal.user_id)
            if user.totp_enabled:
                raise Conflict("TOTP is already enabled", code="totp_enabled")
            user.totp_secret = totp.new_secret()
            return user.totp_secret, totp.provisioning_uri(user.totp_secret, user.username)

    def totp_confirm(self, principal: Principal, code: str) -> None:
        with self.db.session() as s:
            user = self.get_user(s, principal.user_id)
            if not user.totp_secret:
                raise BadInput("start TOTP setup first", code="totp_not_started")
            step = totp.accepted_step(user.totp_secret, code, user.totp_last_step)
            if step is None:
                raise BadInput("wrong TOTP code", code="totp_invalid")
            user.totp_enabled, user.totp_last_step = True, step
            emit(s, DomainEvent(type="identity.user.totp_enabled", actor_id=user.id,
                                unit_id=user.unit_id, record_kind="user",
                                record_id=str(user.id)))

    def change_password(self, principal: Principal, current: str, new: str) -> None:
        weak = passwords.check_strength(new)
        if weak:
            raise BadInput(weak, code="user.weak_password")
        with self.db.session() as s:
            user = self.get_user(s, principal.user_id)
            if not passwords.verify_password(user.password_hash, current):
                raise Unauthorized("current password is wrong", code="login_failed")
            user.password_hash = passwords.hash_password(new)
            # Every other device must log in again with the new password.
            q = select(DeviceSession.id).where(DeviceSession.user_id == user.id,
                                               DeviceSession.revoked_at.is_(None),
                                               DeviceSession.id != principal.session_id)
            for sid in list(s.scalars(q)):
                self._revoke(s, user.id, sid, "password changed", principal)
