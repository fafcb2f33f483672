"""Who may read and change a case: the ``case`` kind as declared to ``core.access``.

Investigators and analysts read the cases of their unit's subtree, investigators
change them. A case names its investigators: they read it and (investigators)
change it while they serve in the owning unit's line (that unit, above or below
it; moved elsewhere, they lose it). A case classified ``confidential`` or ``secret``
is need-to-know: the subtree rule gives nothing on it, so an investigator or
analyst of a unit above (up to the national root) does not see it. It is read
only by its named investigators, by the owning unit's chain of command when the
case's investigators grant it (a grant to the owning unit or a unit above it),
and by users granted access, one by one, through the access-request flow.

``describe`` gives ``decide`` these facts for one case, ``NEED_TO_KNOW_SQL`` the
same facts to the SQL filters of listings and searches: the two are kept in step
by tests/cases/test_need_to_know.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import aliased

from tocsin.cases.models import Case, CaseInvestigator
from tocsin.core import access

CLASSIFICATIONS = ("restricted", "confidential", "secret")
NEED_TO_KNOW = ("confidential", "secret")  # above "restricted": named and granted only
READ_ROLES = ("investigator", "analyst")


# built once: every decision about a case runs one of them
_FACTS = (select(Case.classification, CaseInvestigator.user_id)
          .outerjoin(CaseInvestigator, CaseInvestigator.case_id == Case.id)
          .where(Case.id == bindparam("case_id")))
_FACTS_MANY = (select(Case.id, Case.classification, CaseInvestigator.user_id)
               .outerjoin(CaseInvestigator, CaseInvestigator.case_id == Case.id)
               .where(Case.id.in_(bindparam("ids", expanding=True))))


def describe(s, record_id: str) -> dict[str, Any]:
    """The case's need-to-know and named investigators; one query, case or no case."""
    case_id = int(record_id) if record_id.isdigit() else -1
    rows = s.execute(_FACTS, {"case_id": case_id}).all()
    return {"need_to_know": any(r[0] in NEED_TO_KNOW for r in rows),
            "member_user_ids": frozenset(r[1] for r in rows if r[1] is not None)}


def describe_many(s, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``describe`` of several cases in one query (the batch decisions of hit lists)."""
    ids = {rid: int(rid) if rid.isdigit() else -1 for rid in record_ids}
    need: dict[int, bool] = {}
    members: dict[int, set[int]] = {}
    for case_id, classification, user_id in s.execute(
            _FACTS_MANY, {"ids": sorted(set(ids.values()))}):
        need[case_id] = classification in NEED_TO_KNOW
        if user_id is not None:
            members.setdefault(case_id, set()).add(user_id)
    return {rid: {"need_to_know": need.get(cid, False),
                  "member_user_ids": frozenset(members.get(cid, ()))}
            for rid, cid in ids.items()}


def _restricted(case_id_col):
    other = aliased(Case)
    return exists().where(other.id == case_id_col, other.classification.in_(NEED_TO_KNOW))


def _member(case_id_col, user_id: int):
    return case_id_col.in_(select(CaseInvestigator.case_id)
                           .where(CaseInvestigator.user_id == user_id))


NEED_TO_KNOW_SQL = access.NeedToKnow(restricted=_restricted, member=_member)

access.register_kind("case", read=READ_ROLES, write=["investigator"], describe=describe,
                     describe_many=describe_many, need_to_know=NEED_TO_KNOW_SQL)
access.register_kind("case_audit", read=["auditor"], write=[])
access.register_kind("case_watch", read=[], write=[])
