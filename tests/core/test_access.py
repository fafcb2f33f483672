"""Access decisions across the unit tree, shares, force-wide kinds, and the SQL form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tocsin.core import access
from tocsin.core.access import Resource
from tocsin.core.identity.models import Share, Unit, User

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


def test_sql_clause_agrees_with_decide(force):
    """For every user and every unit, the SQL filter and ``decide`` give the same answer."""
    rt = force.runtime
    with rt.db.session() as s:
        s.add(Share(record_kind="user", record_id=str(force.users["inv2"]),
                    grantee_user_id=force.users["patrol1"]))
    with rt.db.read() as s:
        users = list(s.scalars(select(User)))
        for viewer in users:
            p = force.principal(viewer.username)
            visible = set(s.scalars(select(User.id).where(
                access.readable_units_clause(p, "user", User.unit_id, User.id))))
            shares = {u.id: access.shares_of(s, "user", str(u.id)) for u in users}
            expected = {u.id for u in users if access.decide(
                p, "read", Resource("user", u.unit.path, shared_user_ids=shares[u.id][0],
                                    shared_unit_paths=shares[u.id][1]))}
            assert visible == expected, viewer.username
