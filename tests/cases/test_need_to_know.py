"""A user without access never sees another case's content: not through search
(results, totals, facets), hits, the link chart, exports, attachments, error
messages, nor through the amount of work the server does for hidden content."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select, update

from tests.cases.helpers import add, link, new_case, search
from tests.conftest import PASSWORD
from tocsin.cases.models import Case
from tocsin.core import access
from tocsin.core.identity.models import Unit, User

SECRET = "zanzibar"


@pytest.fixture
def hidden(client, force):
    """inv1's case (D11) holding a secret word, a person, a phone and an attachment."""
    h1 = force.headers(client, "inv1")
    cid = new_case(client, h1, f"Operation {SECRET}", summary=f"{SECRET} informant file")
    p = add(client, h1, cid, "person", given_name="Marc", family_name="Vasseur",
            birth_date="1970-01-02", notes=f"{SECRET} handler")
    ph = add(client, h1, cid, "phone", number="0699887766")
    link(client, h1, cid, p["id"], ph["id"], "uses")
    r = client.post(f"/api/v1/cases-upload/{cid}?filename=notes.txt",
                    content=f"meeting at the {SECRET} bar".encode(), headers=h1)
    assert r.status_code == 201, r.text
    return {"case": cid, "person": p["id"], "phone": ph["id"], "attachment": r.json()["id"]}


def test_search_never_returns_or_counts_hidden_content(client, force, hidden):
    h2 = force.headers(client, "inv2")
    found = search(client, h2, q=SECRET)
    never = search(client, h2, q="qwertyuiopasdf")
    assert found == never  # same body: no results, total 0, empty facets
    assert found["total"] == 0 and found["results"] == [] and found["facets"]["type"] == {}
    assert SECRET not in str(found)
    for crit in ({"name": "Vasseur"}, {"phone": "+33 6 99 88 77 66"},
                 {"birth_date": "1970-01-02", "dob_tolerance_days": 30}, {"q": "zanzi*"}):
        assert search(client, h2, **crit)["total"] == 0, crit
    # the owner finds all of it, and facets count by type
    h1 = force.headers(client, "inv1")
    mine = search(client, h1, q=SECRET)
    assert mine["total"] == 3  # the case (title, summary), the person's notes, the attachment
    assert mine["facets"]["type"] == {"case": 1, "person": 1, "attachment": 1}


def test_same_sql_work_whether_hidden_content_exists_or_not(client, force, hidden):
    """The number and shape of statements does not depend on what the user may not see."""
    h2 = force.headers(client, "inv2")
    engine = force.runtime.db.engine
    seen: list[str] = []

    def count(_conn, _cur, statement, _params, _ctx, _many):
        # the request's statements only: the ledger's sealer thread runs when it likes
        if threading.current_thread().name != "tocsin-ledger":
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        runs = {}
        for label, path in (("hidden", f"/api/v1/cases/{hidden['case']}"),
                            ("missing", "/api/v1/cases/987654")):
            seen.clear()
            r = client.get(path, headers=h2)
            runs[label] = (r.status_code, r.json(), list(seen))
        assert runs["hidden"][0] == runs["missing"][0] == 404
        assert runs["hidden"][1] == runs["missing"][1]
        assert runs["hidden"][2] == runs["missing"][2]
        for label, q in (("hidden", SECRET), ("missing", "qwertyuiopasdf")):
            seen.clear()
            r = client.post("/api/v1/cases/search", json={"q": q}, headers=h2)
            runs[label] = (r.status_code, r.json(), [s for s in seen])
        assert runs["hidden"][1] == runs["missing"][1]
        assert len(runs["hidden"][2]) == len(runs["missing"][2])
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_every_door_to_a_hidden_case_says_not_found(client, force, hidden):
    h2 = force.headers(client, "inv2")
    cid = hidden["case"]
    path_q = f"entity_id={hidden['person']}&path_to={hidden['phone']}"
    doors = [
        ("GET", f"/api/v1/cases/{cid}", None),
        ("GET", f"/api/v1/cases/{cid}/chart", None),
        ("GET", f"/api/v1/cases/{cid}/chart?{path_q}", None),
        ("GET", f"/api/v1/cases/{cid}/export", None),
        ("GET", f"/api/v1/cases/{cid}/hits", None),
        ("GET", f"/api/v1/cases/{cid}/attachments/{hidden['attachment']}", None),
        ("PATCH", f"/api/v1/cases/{cid}", {"title": "mine now"}),
        ("POST", f"/api/v1/cases/{cid}/entities", {"type": "phone",
                                                   "properties": {"number": "0611223344"}}),
        ("DELETE", f"/api/v1/cases/{cid}/entities/{hidden['person']}", None),
    ]
    for method, path, body in doors:
        r = client.request(method, path, json=body, headers=h2)
        assert r.status_code == 404, (path, r.status_code)
        assert r.json() == {"error": {"code": "case.not_found", "message": "case not found"}}
        missing = client.request(method, path.replace(f"/cases/{cid}", "/cases/424242"),
                                 json=body, headers=h2)
        assert missing.json() == r.json()
    upload = client.post(f"/api/v1/cases-upload/{cid}?filename=x.txt", content=b"hello",
                         headers=h2)
    assert upload.status_code == 404
    assert client.get("/api/v1/cases", headers=h2).json() == []


def test_hits_reveal_unit_and_contact_only(client, force, hidden):
    h2 = force.headers(client, "inv2")
    c2 = new_case(client, h2)
    hit = add(client, h2, c2, "phone", number="+33699887766")["hits"][0]
    assert set(hit["other"]) == {"unit_code", "unit_name", "unit_phone", "contact_name",
                                 "contact_username"}
    chart = client.get(f"/api/v1/cases/{c2}/chart", headers=h2).json()
    assert SECRET not in str(chart) and "Vasseur" not in str(chart)
    assert chart["hits"][0]["other"]["unit_code"] == "D11"
    export = client.get(f"/api/v1/cases/{c2}/export", headers=h2)
    assert SECRET not in export.text and "Vasseur" not in export.text
    assert "/api/v1/cases/" not in str(client.get("/api/v1/cases/hits", headers=h2).json())


def test_a_user_moved_to_another_unit_loses_access_at_once(client, force, hidden):
    h1 = force.headers(client, "inv1")
    assert client.get(f"/api/v1/cases/{hidden['case']}", headers=h1).status_code == 200
    rt = force.runtime
    with rt.db.session() as s:
        d21 = s.scalar(select(Unit.id).where(Unit.code == "D21"))
        s.execute(update(User).where(User.id == force.users["inv1"]).values(unit_id=d21))
    # the same token, mid-session
    r = client.get(f"/api/v1/cases/{hidden['case']}", headers=h1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "case.not_found"
    assert search(client, h1, q=SECRET)["total"] == 0


def test_sql_filter_agrees_with_the_access_policy(client, force):
    """For every user and every case: searchable and listed exactly when core.access lets
    them read it, and among the cases they may change exactly when it lets them write:
    whatever the classification, the named investigators and the grants (to a user or a
    unit, read or write, live or expired)."""
    import datetime as dt

    from tocsin.core.database import utcnow

    rt = force.runtime
    for username, unit in (("inv_r1", "R1"), ("inv_c111", "C111"), ("inv_d11", "D11")):
        force.users[username] = rt.identity.create_user(
            username=username, display_name=username, unit_code=unit, roles=["investigator"],
            password=PASSWORD).id
    heads = {u: force.headers(client, u) for u in ("inv1", "inv2")}
    cases = [new_case(client, heads["inv1"], "alpha one"),
             new_case(client, heads["inv2"], "alpha two"),
             new_case(client, heads["inv1"], "alpha three"),
             new_case(client, heads["inv1"], "alpha four", classification="secret"),
             new_case(client, heads["inv1"], "alpha five", classification="confidential"),
             new_case(client, heads["inv1"], "alpha six", classification="secret"),
             new_case(client, heads["inv2"], "alpha seven", classification="secret")]
    for case_id, username in ((cases[3], "inv_c111"), (cases[4], "inv_d11"),
                              (cases[0], "inv_c111"), (cases[6], "analyst")):
        assert client.post(f"/api/v1/cases/{case_id}/investigators", json={
            "username": username}, headers=heads["inv1" if case_id != cases[6] else "inv2"]
        ).status_code == 204
    past = utcnow() - dt.timedelta(days=1)
    with rt.db.session() as s:
        unit = {u.code: u.id for u in s.scalars(select(Unit))}
        grants = [(cases[2], "user", force.users["inv2"], "read", None),
                  (cases[1], "unit", unit["C111"], "read", None),
                  (cases[3], "unit", unit["R1"], "read", None),  # chain of command
                  (cases[3], "unit", unit["C111"], "write", None),  # below: nothing
                  (cases[4], "user", force.users["inv2"], "write", None),
                  (cases[5], "unit", unit["NAT"], "read", past),  # expired
                  (cases[5], "user", force.users["inv_r1"], "read", past),
                  (cases[6], "unit", unit["R2"], "write", None)]
        for case_id, to, grantee, action, expires in grants:
            access.grant(s, "case", str(case_id), action=action, expires_at=expires,
                         **{f"{to}_id": grantee})
    # a named investigator moved away keeps her name on the case, not her access
    with rt.db.session() as s:
        s.execute(update(User).where(User.id == force.users["inv_d11"])
                  .values(unit_id=unit["D21"]))
    seen = {}
    for username in force.users:
        p = force.principal(username)
        h = force.headers(client, username)
        r = client.post("/api/v1/cases/search", json={"q": "alpha"}, headers=h)
        visible = {x["case"]["id"] for x in r.json().get("results", [])}
        listed = {c["id"] for c in client.get("/api/v1/cases", headers=h).json()}
        with rt.db.read() as s:
            writable = set(s.scalars(select(Case.id).where(
                access.writable_units_clause(p, "case", Case.unit_id, Case.id))))
            expected = {"read": set(), "write": set()}
            for c in s.scalars(select(Case)):
                res = access.resource_of(s, "case", str(c.id), rt.units.path(c.unit_id))
                for action, ids in expected.items():
                    if access.decide(p, action, res):
                        ids.add(c.id)
        assert visible == listed == expected["read"], username
        assert writable == expected["write"], username
        seen[username] = {action: {cases.index(c) for c in ids}
                          for action, ids in expected.items()}
    # what the rules above say, case by case (indexes into ``cases``)
    assert seen["analyst"] == {"read": {0, 1, 2, 6}, "write": set()}  # named on 6
    assert seen["inv_r1"] == {"read": {0, 2, 3}, "write": {0, 2}}  # R1 granted 3; 5 expired
    assert seen["inv_c111"] == {"read": {0, 1, 3}, "write": {0, 3}}  # named on 0, 3; C111 has 1
    assert seen["inv1"]["read"] == {0, 2, 3, 4, 5}
    assert seen["inv2"] == {"read": {1, 2, 4, 6}, "write": {1, 4, 6}}
    assert seen["inv_d11"] == {"read": {1, 6}, "write": {1, 6}}  # moved to D21: R2 granted 6
