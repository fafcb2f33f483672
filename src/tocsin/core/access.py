"""Access policy: the one place that decides who may read or change what.

A record belongs to a unit. A user may act on it when
  1. one of the user's roles is allowed that action on that kind of record, and
  2. the record's unit is the user's unit or lies below it in the unit tree
     (a region sees its departments), or the kind is declared force-wide
     (``scope="force"``, e.g. broadcast alerts);
or the record is explicitly shared with the user or with a unit that contains
the user. A share carries its action: a ``read`` share lets its grantee read,
a ``write`` share lets it read and change; an expired share gives nothing.

A kind may declare need-to-know (``NeedToKnow``): its records may name members
(a case's investigators), who read a record that names them and change it when
a role lets them, as long as they serve in the owning unit's line (the owning
unit, a unit above it or below it: a member moved elsewhere loses it at once);
and some of its records are *need-to-know* (a secret case): for those, the
unit subtree rule gives nothing. Only the owner, the named members and explicit
grantees see them, and a unit grant reaches only the owning unit's chain of
command (the units from the granted one down to the owning unit, not the units
below it nor beside it).
Domain modules declare their record kinds with ``register_kind`` (with a
``describe`` hook when a record has an owning user) and ask ``decide``/``require``
about the ``Resource`` that ``resource_of`` builds (owner, grants); no route
decides alone. ``readable_units_clause`` and ``writable_units_clause`` give the
same rule as SQL filters for listings and searches.

Shares are made and withdrawn with ``grant``/``revoke``, which emit an
``access.share.*`` event about the record; a module whose own data changes who
may see a record emits ``access.changed`` (``changed``). Whoever caches access
facts (the live feed) drops them on these events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    cast,
    false,
    literal,
    not_,
    or_,
    select,
    true,
)

from tocsin.core.database import utcnow
from tocsin.core.errors import BadInput, Forbidden, NotFound
from tocsin.core.events import DomainEvent, emit
from tocsin.core.identity.models import Role, Share, Unit

ALL_ROLES = frozenset(r.value for r in Role)
ACTIONS = ("read", "write")
CHANGE_EVENTS = "access."  # type prefix of the events after which access facts are stale


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
class Grants:
    """The live shares of one record. Every share lets its grantee read; the
    ``write_*`` ones (shares with ``action="write"``) also let it change the record."""

    user_ids: frozenset[int] = frozenset()
    unit_paths: tuple[str, ...] = ()
    write_user_ids: frozenset[int] = frozenset()
    write_unit_paths: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Resource:
    """What is asked about. The ``shared_*`` grants come from ``grants_of``
    (``with_grants``): ``shared_*`` let read, ``shared_write_*`` let read and write."""

    kind: str
    owner_unit_path: str | None
    id: str | None = None
    owner_user_id: int | None = None
    shared_user_ids: frozenset[int] = frozenset()
    shared_unit_paths: tuple[str, ...] = ()
    shared_write_user_ids: frozenset[int] = frozenset()
    shared_write_unit_paths: tuple[str, ...] = ()
    need_to_know: bool = False  # the subtree rule gives nothing: see NeedToKnow
    member_user_ids: frozenset[int] = frozenset()

    def with_grants(self, grants: Grants) -> Resource:
        return dataclasses.replace(
            self, shared_user_ids=grants.user_ids, shared_unit_paths=grants.unit_paths,
            shared_write_user_ids=grants.write_user_ids,
            shared_write_unit_paths=grants.write_unit_paths)


# ``describe(session, record_id)``: the ``Resource`` fields a kind's own tables hold
# (e.g. ``{"owner_user_id": 7}``); {} for a record that does not exist.
Describe = Callable[[Any, str], dict[str, Any]]
# ``describe_many(session, record_ids)``: the same for several records, in one query:
# {record id: fields} with an entry for every id asked about.
DescribeMany = Callable[[Any, list[str]], dict[str, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class NeedToKnow:
    """The SQL form of a kind's ``need_to_know`` and ``member_user_ids`` (which its
    ``describe`` hook gives ``decide``), for ``readable_units_clause``:
    ``restricted(record_id_col)`` is true for need-to-know records and
    ``member(record_id_col, user_id)`` for the records that name the user."""

    restricted: Callable[[Any], ColumnElement[bool]]
    member: Callable[[Any, int], ColumnElement[bool]]


@dataclasses.dataclass(frozen=True)
class KindRule:
    read: frozenset[str]
    write: frozenset[str]
    scope: str = "subtree"  # or "force": every holder of the role, nationwide
    describe: Describe | None = None
    need_to_know: NeedToKnow | None = None
    describe_many: DescribeMany | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


_RULES: dict[str, KindRule] = {}


def register_kind(kind: str, *, read: Iterable[str], write: Iterable[str], scope: str = "subtree",
                  describe: Describe | None = None, need_to_know: NeedToKnow | None = None,
                  describe_many: DescribeMany | None = None) -> None:
    """Declare a record kind, which roles may read and change it and, with ``describe``,
    how to read the access facts of one record that live in the kind's own tables
    (``describe_many``: of several at once, for ``resources_of``; ``need_to_know`` gives
    the same facts in SQL; both need ``describe``)."""
    unknown = (set(read) | set(write)) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles for {kind}: {sorted(unknown)}")
    if scope not in ("subtree", "force"):
        raise ValueError(f"unknown scope {scope!r}")
    if (need_to_know is not None or describe_many is not None) and describe is None:
        raise ValueError(f"{kind}: need_to_know and describe_many need a describe hook")
    _RULES[kind] = KindRule(frozenset(read), frozenset(write), scope, describe, need_to_know,
                            describe_many)


def rule_for(kind: str) -> KindRule:
    try:
        return _RULES[kind]
    except KeyError:
        raise KeyError(f"record kind {kind!r} is not registered with core.access") from None


def in_subtree(unit_path: str, ancestor_path: str) -> bool:
    return unit_path.startswith(ancestor_path)


def _shared(principal: Principal, action: str, resource: Resource) -> str | None:
    """Why a share lets ``principal`` do ``action``, or None."""
    users, paths = resource.shared_write_user_ids, resource.shared_write_unit_paths
    if action == "read":  # a write share lets its grantee read too
        users, paths = users | resource.shared_user_ids, paths + resource.shared_unit_paths
    if principal.user_id in users:
        return "shared with user"
    if resource.need_to_know and not in_subtree(resource.owner_unit_path or "",
                                                principal.unit_path):
        return None  # a unit grant reaches the owning unit's chain of command only
    if any(in_subtree(principal.unit_path, p) for p in paths):
        return "shared with unit"
    return None


def decide(principal: Principal, action: str, resource: Resource) -> Decision:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    rule = rule_for(resource.kind)
    allowed_roles = rule.read | rule.write if action == "read" else rule.write
    if resource.owner_user_id is not None and resource.owner_user_id == principal.user_id:
        return Decision(True, "owner")
    shared = _shared(principal, action, resource)
    if shared:
        return Decision(True, shared)
    owner = resource.owner_unit_path
    if principal.user_id in resource.member_user_ids and owner and (
            in_subtree(owner, principal.unit_path) or in_subtree(principal.unit_path, owner)
    ) and (action == "read" or principal.roles & rule.write):
        return Decision(True, "named member")
    if resource.need_to_know:
        return Decision(False, "need to know: neither named nor granted")
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


def _live_shares(kind: Any, now: Any = None):
    """Shares of ``kind`` that have not expired (by ``now``, else the present); either may be
    a ``bindparam`` for a statement built once."""
    return (Share.record_kind == kind,
            or_(Share.expires_at.is_(None),
                Share.expires_at > (utcnow() if now is None else now)))


def grants_of(session, kind: str, record_id: str) -> Grants:
    """The live explicit grants of one record, by action."""
    return grants_of_many(session, kind, [record_id])[record_id]


_GRANTS = (select(Share.record_id, Share.grantee_user_id, Unit.path, Share.action)
           .outerjoin(Unit, Unit.id == Share.grantee_unit_id)
           .where(Share.record_id.in_(bindparam("ids", expanding=True)),
                  *_live_shares(bindparam("kind"), bindparam("now"))))


def grants_of_many(session, kind: str, record_ids: list[str]) -> dict[str, Grants]:
    """The live explicit grants of several records in one query: {record id: Grants}.
    The statement is built once: it runs for every access decision."""
    rows: dict[str, list[Any]] = {rid: [] for rid in record_ids}
    for rid, user_id, path, action in session.execute(
            _GRANTS, {"kind": kind, "ids": list(rows), "now": utcnow()}):
        rows[rid].append((user_id, path, action))
    out = {}
    for rid, shares in rows.items():
        writes = [r for r in shares if r[2] == "write"]
        out[rid] = Grants(
            user_ids=frozenset(r[0] for r in shares if r[0] is not None),
            unit_paths=tuple(r[1] for r in shares if r[1] is not None),
            write_user_ids=frozenset(r[0] for r in writes if r[0] is not None),
            write_unit_paths=tuple(r[1] for r in writes if r[1] is not None))
    return out


def shares_of(session, kind: str, record_id: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """The grantees of one record's live shares: (user ids, unit paths). Each may *read*
    the record (pass them as ``shared_user_ids``/``shared_unit_paths``); to honour
    write shares as well, use ``grants_of`` and ``Resource.with_grants``."""
    grants = grants_of(session, kind, record_id)
    return grants.user_ids, grants.unit_paths


def resource_of(session, kind: str, record_id: str | None, owner_unit_path: str | None
                ) -> Resource:
    """Everything ``decide`` needs about one record: its owning unit (given), what the
    kind's ``describe`` reads (owner, ...) and its live grants. The same queries run
    whether the record exists or not."""
    resource = Resource(kind, owner_unit_path, id=record_id)
    if record_id is None:
        return resource
    describe = rule_for(kind).describe
    if describe is not None:
        resource = dataclasses.replace(resource, **describe(session, record_id))
    return resource.with_grants(grants_of(session, kind, record_id))


def resources_of(session, kind: str, owners: dict[str, str | None]) -> dict[str, Resource]:
    """``resource_of`` for several records of one kind ({record id: owning unit path}):
    two queries whatever their number when the kind has a ``describe_many`` hook (one
    per record otherwise), the same whether the records exist or not."""
    if not owners:
        return {}
    ids = list(owners)
    rule = rule_for(kind)
    if rule.describe_many is not None:
        facts = rule.describe_many(session, ids)
    elif rule.describe is not None:
        facts = {rid: rule.describe(session, rid) for rid in ids}
    else:
        facts = {}
    grants = grants_of_many(session, kind, ids)
    return {rid: dataclasses.replace(Resource(kind, owners[rid], id=rid),
                                     **facts.get(rid, {})).with_grants(grants[rid])
            for rid in ids}


def _share_event(session, type_: str, share: Share, actor_id: int | None,
                 unit_id: int | None) -> None:
    emit(session, DomainEvent(
        type=type_, actor_id=actor_id, unit_id=unit_id, record_kind=share.record_kind,
        record_id=share.record_id, audience=[],  # a fact for caches and the log, not a push
        payload={"share_id": share.id, "action": share.action,
                 "grantee_user_id": share.grantee_user_id,
                 "grantee_unit_id": share.grantee_unit_id}))


def grant(session, kind: str, record_id: str, *, user_id: int | None = None,
          unit_id: int | None = None, action: str = "read", granted_by: int | None = None,
          expires_at=None, record_unit_id: int | None = None) -> Share:
    """Share one record with a user or a unit (and its subtree), for ``action``.
    ``record_unit_id``, the record's owning unit, files the event where auditors look."""
    if action not in ACTIONS:
        raise BadInput(f"a share is for one of {ACTIONS}", code="share.action_invalid")
    if (user_id is None) == (unit_id is None):
        raise BadInput("share with one user or one unit", code="share.grantee_invalid")
    rule_for(kind)
    share = Share(record_kind=kind, record_id=record_id, grantee_user_id=user_id,
                  grantee_unit_id=unit_id, action=action, granted_by=granted_by,
                  expires_at=expires_at)
    session.add(share)
    session.flush()
    _share_event(session, "access.share.granted", share, granted_by, record_unit_id)
    return share


def revoke(session, kind: str, record_id: str, share_id: int, *,
           revoked_by: int | None = None, record_unit_id: int | None = None) -> None:
    """Withdraw one share of one record."""
    share = session.get(Share, share_id)
    if share is None or share.record_kind != kind or share.record_id != record_id:
        raise NotFound("share not found", code="share.not_found")
    _share_event(session, "access.share.revoked", share, revoked_by, record_unit_id)
    session.delete(share)
    session.flush()


def changed(session, kind: str, record_id: str, *, actor_id: int | None = None,
            record_unit_id: int | None = None, what: str = "") -> None:
    """Say that who may see a record changed for a reason of the kind's own (its members,
    its classification...): caches of access facts drop the record."""
    emit(session, DomainEvent(type="access.changed", actor_id=actor_id, unit_id=record_unit_id,
                              record_kind=kind, record_id=record_id, audience=[],
                              payload={"what": what}))


def _clause(principal: Principal, action: str, kind: str, owner_unit_id_col,
            record_id_col=None) -> ColumnElement[bool]:
    """SQL form of ``decide(principal, action, ...)`` over records of ``kind``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    rule = rule_for(kind)
    ntk = rule.need_to_know
    if ntk is not None and record_id_col is None:
        raise ValueError(f"{kind} is need-to-know: its SQL filter needs the record id column")
    allowed_roles = rule.read | rule.write if action == "read" else rule.write
    subtree = select(Unit.id).where(Unit.path.like(principal.unit_path + "%"))
    in_chain = owner_unit_id_col.in_(subtree)  # the principal's unit is the owner's or above
    not_restricted = not_(ntk.restricted(record_id_col)) if ntk is not None else true()
    grants: ColumnElement[bool] = false()
    if record_id_col is not None:
        live = _live_shares(kind)
        if action == "write":
            live = (*live, Share.action == "write")
        unit_shares = select(Share.record_id).join(Unit, Unit.id == Share.grantee_unit_id).where(
            *live,
            # the grantee unit contains the principal's unit
            literal(principal.unit_path).like(Unit.path + "%"),
        )
        user_shares = select(Share.record_id).where(*live,
                                                    Share.grantee_user_id == principal.user_id)
        rid = cast(record_id_col, String)  # shares name records by text id, whatever their type
        by_unit = rid.in_(unit_shares)
        if ntk is not None:
            by_unit = and_(by_unit, or_(not_restricted, in_chain))
        grants = or_(rid.in_(user_shares), by_unit)
        if ntk is not None and (action == "read" or principal.roles & rule.write):
            above = select(Unit.id).where(literal(principal.unit_path).like(Unit.path + "%"))
            in_line = or_(in_chain, owner_unit_id_col.in_(above))  # owner above or below
            grants = or_(grants, and_(ntk.member(record_id_col, principal.user_id), in_line))
    if not principal.roles & allowed_roles:
        return grants
    if rule.scope == "force":
        return or_(not_restricted, grants) if ntk is not None else true()
    return or_(and_(in_chain, not_restricted), grants)


def readable_units_clause(principal: Principal, kind: str, owner_unit_id_col, record_id_col=None
                          ) -> ColumnElement[bool]:
    """SQL form of ``decide(principal, 'read', ...)`` for listing records of ``kind``
    (shares count only when ``record_id_col`` is given)."""
    return _clause(principal, "read", kind, owner_unit_id_col, record_id_col)


def writable_units_clause(principal: Principal, kind: str, owner_unit_id_col, record_id_col=None
                          ) -> ColumnElement[bool]:
    """SQL form of ``decide(principal, 'write', ...)``: write shares only."""
    return _clause(principal, "write", kind, owner_unit_id_col, record_id_col)
