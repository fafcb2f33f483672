"""Access policy: the one place that decides who may read or change what.

A record belongs to a unit. A user may act on it when
  1. one of the user's roles is allowed that action on that kind of record, and
  2. the record's unit is the user's unit or lies below it in the unit tree
     (a region sees its departments), or the record is explicitly shared with
     the user or with a unit that contains the user, or the kind is declared
     force-wide (``scope="force"``, e.g. broadcast alerts).
Domain modules declare their record kinds with ``register_kind`` and ask
``decide``/``require``; no route decides alone. ``readable_units_clause`` gives
the same rule as a SQL filter for listings and searches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import ColumnElement, String, cast, false, literal, or_, select, true

from tocsin.core.errors import Forbidden
from tocsin.core.identity.models import Role, Share, Unit

ALL_ROLES = frozenset(r.value for r in Role)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: resolved from a verified, unrevoked session."""

    user_id: int
    username: str
    unit_id: int
    unit_path: str
    roles: frozenset[str]
    session_id: str | None = None

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclasses.dataclass(frozen=True)
class Resource:
    """What is asked about. ``shared_*`` come from ``shares_of`` when relevant."""

    kind: str
    owner_unit_path: str | None
    id: str | None = None
    owner_user_id: int | None = None
    shared_user_ids: frozenset[int] = frozenset()
    shared_unit_paths: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KindRule:
    read: frozenset[str]
    write: frozenset[str]
    scope: str = "subtree"  # or "force": every holder of the role, nationwide


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


_RULES: dict[str, KindRule] = {}


def register_kind(kind: str, *, read: Iterable[str], write: Iterable[str], scope: str = "subtree"
                  ) -> None:
    """Declare a record kind and which roles may read and change it."""
    unknown = (set(read) | set(write)) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles for {kind}: {sorted(unknown)}")
    if scope not in ("subtree", "force"):
        raise ValueError(f"unknown scope {scope!r}")
    _RULES[kind] = KindRule(frozenset(read), frozenset(write), scope)


def rule_for(kind: str) -> KindRule:
    try:
        return _RULES[kind]
    except KeyError:
        raise KeyError(f"record kind {kind!r} is not registered with core.access") from None


def in_subtree(unit_path: str, ancestor_path: str) -> bool:
    return unit_path.startswith(ancestor_path)


def decide(principal: Principal, action: str, resource: Resource) -> Decision:
    if action not in ("read", "write"):
        raise ValueError(f"unknown action {action!r}")
    rule = rule_for(resource.kind)
    allowed_roles = rule.read | rule.write if action == "read" else rule.write
    if resource.owner_user_id is not None and resource.owner_user_id == principal.user_id:
        return Decision(True, "owner")
    if principal.user_id in resource.shared_user_ids:
        return Decision(True, "shared with user")
    if any(in_subtree(principal.unit_path, p) for p in resource.shared_unit_paths):
        return Decision(True, "shared with unit")
    if not principal.roles & allowed_roles:
        return Decision(False, f"no role may {action} {resource.kind}")
    if rule.scope == "force":
        return Decision(True, "force-wide kind")
    if resource.owner_unit_path and in_subtree(resource.owner_unit_path, principal.unit_path):
        return Decision(True, "unit subtree")
    return Decision(False, "outside the user's unit subtree")


def require(principal: Principal, action: str, resource: Resource) -> None:
    decision = decide(principal, action, resource)
    if not decision:
        # The message never says what the record holds: only that access is refused.
        raise Forbidden(f"not allowed to {action} this {resource.kind}", code="access_denied")


def shares_of(session, kind: str, record_id: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """The explicit grants of one record: (user ids, unit paths)."""
    from tocsin.core.database import utcnow

    now = utcnow()
    rows = session.execute(
        select(Share.grantee_user_id, Unit.path)
        .outerjoin(Unit, Unit.id == Share.grantee_unit_id)
        .where(Share.record_kind == kind, Share.record_id == record_id)
        .where(or_(Share.expires_at.is_(None), Share.expires_at > now))
    ).all()
    users = frozenset(r[0] for r in rows if r[0] is not None)
    paths = tuple(r[1] for r in rows if r[1] is not None)
    return users, paths


def readable_units_clause(principal: Principal, kind: str, owner_unit_id_col, record_id_col=None
                          ) -> ColumnElement[bool]:
    """SQL form of ``decide(principal, 'read', ...)`` for listing records of ``kind``."""
    rule = rule_for(kind)
    share_clause: ColumnElement[bool] = false()
    if record_id_col is not None:
        unit_shares = select(Share.record_id).join(Unit, Unit.id == Share.grantee_unit_id).where(
            Share.record_kind == kind,
            # the grantee unit contains the principal's unit
            literal(principal.unit_path).like(Unit.path + "%"),
        )
        user_shares = select(Share.record_id).where(
            Share.record_kind == kind, Share.grantee_user_id == principal.user_id
        )
        rid = cast(record_id_col, String)  # shares name records by text id, whatever their type
        share_clause = or_(rid.in_(unit_shares), rid.in_(user_shares))
    if not principal.roles & (rule.read | rule.write):
        return share_clause
    if rule.scope == "force":
        return true()
    subtree = select(Unit.id).where(Unit.path.like(principal.unit_path + "%"))
    return or_(owner_unit_id_col.in_(subtree), share_clause)
