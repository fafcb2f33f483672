"""Access decisions across the unit tree, shares, force-wide kinds, and the SQL form."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from tocsin.core import access
from tocsin.core.access import Grants, Resource
from tocsin.core.database import utcnow
from tocsin.core.errors import BadInput
from tocsin.core.identity.models import Unit, User

access.register_kind("test_note", read=["investigator", "commander"], write=["investigator"])
access.register_kind("test_alert", read=["patrol_officer", "commander"], write=["commander"],
                     scope="force")


def _path(rt, code):
    with rt.db.read() as s:
        return s.scalar(select(Unit.path).where(Unit.code == code))


def test_subtree_role_and_action(force):
    rt = force.runtime
    note_d11 = Resource("test_note", _path(rt, "D11"), id="n1")
    note_d21 = Resource("test_note", _path(rt, "D21"), id="n2")
    inv1, inv2 = force.principal("inv1"), force.principal("inv2")
    cmd = force.principal("commander1")  # region R1, above D11
    patrol = force.principal("patrol1")
    assert access.decide(inv1, "read", note_d11)
    assert access.decide(inv1, "write", note_d11)
    assert not access.decide(inv1, "read", note_d21)  # another region
    assert access.decide(inv2, "read", note_d21)
    assert access.decide(cmd, "read", note_d11)  # a region sees its departments
    assert not access.decide(cmd, "write", note_d11)  # but commanders only read notes
    assert not access.decide(cmd, "read", note_d21)
    assert not access.decide(patrol, "read", note_d11)  # role does not allow it
    # a unit below does not see what belongs to the unit above
    note_r1 = Resource("test_note", _path(rt, "R1"))
    assert not access.decide(inv1, "read", note_r1)


def test_explicit_shares(force):
    rt = force.runtime
    inv2 = force.principal("inv2")
    patrol = force.principal("patrol1")
    shared_user = Resource("test_note", _path(rt, "D11"), shared_user_ids=frozenset({inv2.user_id}))
    assert access.decide(inv2, "read", shared_user).reason == "shared with user"
    shared_unit = Resource("test_note", _path(rt, "D11"), shared_unit_paths=(_path(rt, "C111"),))
    assert access.decide(patrol, "read", shared_unit)  # B1111 lies inside C111
    assert not access.decide(force.principal("inv2"), "read", shared_unit)


def test_force_scope_and_unknown_kind(force):
    alert = Resource("test_alert", _path(force.runtime, "D21"))
    assert access.decide(force.principal("patrol1"), "read", alert)
    assert not access.decide(force.principal("inv1"), "read", alert)
    assert not access.decide(force.principal("patrol1"), "write", alert)
    with pytest.raises(KeyError):
        access.decide(force.principal("patrol1"), "read", Resource("nope", "/1/"))
    with pytest.raises(ValueError):
        access.decide(force.principal("patrol1"), "delete", alert)


def test_require_raises_without_leaking(force):
    from tocsin.core.errors import Forbidden

    with pytest.raises(Forbidden) as err:
        access.require(force.principal("inv2"), "read",
                       Resource("test_note", _path(force.runtime, "D11"), id="secret-42"))
    assert "secret-42" not in err.value.message


def test_a_read_share_lets_read_only_a_write_share_lets_write(force):
    rt = force.runtime
    inv2, patrol = force.principal("inv2"), force.principal("patrol1")
    d11 = _path(rt, "D11")
    read_user = Resource("test_note", d11).with_grants(Grants(user_ids=frozenset({inv2.user_id})))
    assert access.decide(inv2, "read", read_user)
    assert not access.decide(inv2, "write", read_user)
    read_unit = Resource("test_note", d11).with_grants(Grants(unit_paths=(_path(rt, "C111"),)))
    assert access.decide(patrol, "read", read_unit)
    assert not access.decide(patrol, "write", read_unit)
    write_user = Resource("test_note", d11).with_grants(
        Grants(write_user_ids=frozenset({inv2.user_id})))
    assert access.decide(inv2, "write", write_user).reason == "shared with user"
    assert access.decide(inv2, "read", write_user)  # a write share lets read too
    write_unit = Resource("test_note", d11).with_grants(
        Grants(write_unit_paths=(_path(rt, "C111"),)))
    assert access.decide(patrol, "write", write_unit).reason == "shared with unit"
    assert access.decide(patrol, "read", write_unit)
    assert not access.decide(inv2, "write", write_unit)


def test_grants_of_reads_each_share_action_and_skips_expired(force):
    rt = force.runtime
    inv2, patrol, caller = (force.principal(u) for u in ("inv2", "patrol1", "calltaker"))
    with rt.db.session() as s:
        c111 = s.scalar(select(Unit.id).where(Unit.code == "C111"))
        access.grant(s, "test_note", "n1", user_id=inv2.user_id)  # read by default
        access.grant(s, "test_note", "n1", unit_id=c111, action="write")
        access.grant(s, "test_note", "n1", user_id=caller.user_id, action="write",
                     expires_at=utcnow() - dt.timedelta(seconds=1))
        with pytest.raises(BadInput):
            access.grant(s, "test_note", "n1", user_id=inv2.user_id, action="delete")
        with pytest.raises(BadInput):
            access.grant(s, "test_note", "n1")
    with rt.db.read() as s:
        note = Resource("test_note", _path(rt, "D11"), id="n1").with_grants(
            access.grants_of(s, "test_note", "n1"))
        users, paths = access.shares_of(s, "test_note", "n1")
    assert access.decide(inv2, "read", note) and not access.decide(inv2, "write", note)
    assert access.decide(patrol, "write", note)
    assert not access.decide(caller, "read", note)  # expired
    assert users == {inv2.user_id} and paths == (_path(rt, "C111"),)


def test_sql_clause_agrees_with_decide(force):
    """For every user, unit and action, the SQL filters and ``decide`` give the same
    answer, whatever the shares: read or write, to a user or a unit, live or expired."""
    rt = force.runtime
    past = utcnow() - dt.timedelta(days=1)
    with rt.db.session() as s:
        unit = {u.code: u.id for u in s.scalars(select(Unit))}
        access.grant(s, "user", str(force.users["inv2"]), user_id=force.users["patrol1"])
        access.grant(s, "user", str(force.users["inv1"]), user_id=force.users["patrol2"],
                     action="write")
        access.grant(s, "user", str(force.users["admin"]), unit_id=unit["C111"],
                     action="write")
        access.grant(s, "user", str(force.users["analyst"]), unit_id=unit["R2"])
        access.grant(s, "user", str(force.users["auditor"]), user_id=force.users["inv2"],
                     action="write", expires_at=past)
        access.grant(s, "user", str(force.users["radmin"]), unit_id=unit["NAT"],
                     expires_at=past)
    clauses = {"read": access.readable_units_clause, "write": access.writable_units_clause}
    with rt.db.read() as s:
        users = list(s.scalars(select(User)))
        grants = {u.id: access.grants_of(s, "user", str(u.id)) for u in users}
        for viewer in users:
            p = force.principal(viewer.username)
            for action, clause in clauses.items():
                visible = set(s.scalars(select(User.id).where(
                    clause(p, "user", User.unit_id, User.id))))
                expected = {u.id for u in users if access.decide(
                    p, action, Resource("user", u.unit.path).with_grants(grants[u.id]))}
                assert visible == expected, (viewer.username, action)


def test_need_to_know_records(force):
    """The subtree rule gives nothing on a need-to-know record; named members in the
    owning unit's line, personal grants and unit grants on its chain of command do."""
    rt = force.runtime
    d11, r1, c111 = (_path(rt, c) for c in ("D11", "R1", "C111"))
    inv1, inv2, cmd, analyst, patrol = (force.principal(u) for u in (
        "inv1", "inv2", "commander1", "analyst", "patrol1"))
    secret = Resource("test_note", d11, need_to_know=True)
    assert not access.decide(inv1, "read", secret)  # her own unit, not named
    assert not access.decide(cmd, "read", secret)
    named = dataclasses.replace(secret, member_user_ids=frozenset({inv1.user_id,
                                                                   inv2.user_id}))
    assert access.decide(inv1, "write", named).reason == "named member"
    assert not access.decide(inv2, "read", named)  # named, but serving in another region
    assert access.decide(inv2, "read", named.with_grants(
        Grants(user_ids=frozenset({inv2.user_id}))))
    chain = secret.with_grants(Grants(unit_paths=(r1,)))
    assert access.decide(cmd, "read", chain)  # R1 lies on D11's chain of command
    assert not access.decide(patrol, "read", chain)  # B1111 is below D11
    assert not access.decide(analyst, "read", chain)  # NAT is above the granted unit
    assert not access.decide(patrol, "read", secret.with_grants(Grants(unit_paths=(c111,))))
    assert access.decide(patrol, "read", Resource("test_note", d11).with_grants(
        Grants(unit_paths=(c111,))))  # without need-to-know, a unit grant reaches below
