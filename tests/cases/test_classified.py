"""Need-to-know on confidential and secret cases: the unit subtree gives nothing, not
even to the national root. Named investigators, the owning unit's chain of command
with an explicit grant, and users granted access on request read them; nothing else
of them comes out through search, lists, hits, alerts, the link chart, exports,
errors or the live feed."""

from __future__ import annotations

import pytest

from tests.cases.helpers import add, new_case, search
from tests.conftest import PASSWORD

SECRET = "kilimanjaro"
EXTRA = [("inv_r1", "R1", ["investigator"]), ("inv_d11", "D11", ["investigator"]),
         ("inv_c111", "C111", ["investigator"])]


@pytest.fixture
def more(force):
    for username, unit, roles in EXTRA:
        force.users[username] = force.runtime.identity.create_user(
            username=username, display_name=username.title(), unit_code=unit, roles=roles,
            password=PASSWORD).id
    return force


@pytest.fixture
def secret(client, more):
    """inv1's (D11) secret case, with a person and a phone."""
    h1 = more.headers(client, "inv1")
    cid = new_case(client, h1, f"Operation {SECRET}", summary=f"{SECRET} source",
                   classification="secret")
    add(client, h1, cid, "person", given_name="Ana", family_name="Sorel",
        birth_date="1975-05-06")
    add(client, h1, cid, "phone", number="0655443322")
    return cid


def _reads(client, force, username, case_id) -> bool:
    h = force.headers(client, username)
    r = client.get(f"/api/v1/cases/{case_id}", headers=h)
    assert r.status_code in (200, 404), r.text
    found = {x["case"]["id"] for x in search(client, h, q=SECRET)["results"]}
    listed = {c["id"] for c in client.get("/api/v1/cases", headers=h).json()}
    assert (r.status_code == 200) == (case_id in found) == (case_id in listed), username
    return r.status_code == 200


def test_no_one_above_or_beside_reads_a_secret_case(client, more, secret):
    h1 = more.headers(client, "inv1")
    normal = new_case(client, h1, f"Ordinary {SECRET}")
    confidential = new_case(client, h1, f"Quiet {SECRET}", classification="confidential")
    for username in ("analyst", "inv_r1", "inv_d11", "inv_c111", "inv2", "commander1"):
        assert not _reads(client, more, username, secret), username
        assert not _reads(client, more, username, confidential), username
        h = more.headers(client, username)
        for path in (f"/api/v1/cases/{secret}/chart", f"/api/v1/cases/{secret}/export",
                     f"/api/v1/cases/{secret}/hits"):
            r = client.get(path, headers=h)
            assert r.status_code == 404 and r.json()["error"]["code"] == "case.not_found"
        assert search(client, h, name="Sorel")["total"] == 0
        assert search(client, h, q=SECRET)["facets"]["classification"].get("secret") is None
    # the same people read a normal case of D11 by the subtree rule, as before
    for username in ("analyst", "inv_r1", "inv_d11"):
        assert _reads(client, more, username, normal), username
    assert _reads(client, more, "inv1", secret)  # the lead, named when she opened it


def test_named_investigators_read_and_write(client, more, secret):
    h1 = more.headers(client, "inv1")
    for username in ("inv_d11", "inv_c111"):  # a colleague, a unit below
        assert client.post(f"/api/v1/cases/{secret}/investigators", json={"username": username},
                           headers=h1).status_code == 204
        assert _reads(client, more, username, secret)
        h = more.headers(client, username)
        opened = client.get(f"/api/v1/cases/{secret}", headers=h).json()
        assert opened["can_write"] is True
        assert client.post(f"/api/v1/cases/{secret}/entities", headers=h, json={
            "type": "phone", "properties": {"number": "0611223344"}}).status_code == 201
    assert not _reads(client, more, "inv_r1", secret)  # naming one opens it to no one else
    r = client.post(f"/api/v1/cases/{secret}/investigators", json={"username": "patrol1"},
                    headers=h1)
    assert r.status_code == 422 and r.json()["error"]["code"] == "case.investigator_role"
    # a named investigator moved to another region loses it at once
    import sqlalchemy as sa

    from tocsin.core.identity.models import Unit, User

    with more.runtime.db.session() as s:
        d21 = s.scalar(sa.select(Unit.id).where(Unit.code == "D21"))
        s.execute(sa.update(User).where(User.id == more.users["inv_d11"]).values(unit_id=d21))
    assert not _reads(client, more, "inv_d11", secret)


def test_chain_of_command_reads_with_an_explicit_grant(client, more, secret):
    h1 = more.headers(client, "inv1")
    assert not _reads(client, more, "commander1", secret)
    r = client.post(f"/api/v1/cases/{secret}/grants", json={"unit_code": "R1"}, headers=h1)
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["unit_code"] == "R1" and grant["action"] == "read"
    for username in ("commander1", "inv_r1", "inv_d11"):  # R1 down to the owning D11
        assert _reads(client, more, username, secret), username
    for username in ("inv_c111", "inv2", "analyst"):  # below, beside, above the grant
        assert not _reads(client, more, username, secret), username
    h = more.headers(client, "inv_r1")
    assert client.get(f"/api/v1/cases/{secret}", headers=h).json()["can_write"] is False
    # a secret case is never granted to a unit off its chain of command
    for unit in ("C111", "D21", "R2"):
        r = client.post(f"/api/v1/cases/{secret}/grants", json={"unit_code": unit}, headers=h1)
        assert r.status_code == 422 and r.json()["error"]["code"] == "case.grant_outside_chain"
    # ... but a person may be granted, wherever she serves
    r = client.post(f"/api/v1/cases/{secret}/grants", json={"username": "inv2"}, headers=h1)
    assert r.status_code == 201 and _reads(client, more, "inv2", secret)
    # the grant is listed to those who may change the case, and withdrawn
    grants = client.get(f"/api/v1/cases/{secret}", headers=h1).json()["grants"]
    assert [g["unit_code"] or g["username"] for g in grants] == ["R1", "inv2"]
    assert client.get(f"/api/v1/cases/{secret}", headers=h).json()["grants"] == []
    assert client.delete(f"/api/v1/cases/{secret}/grants/{grant['id']}",
                         headers=h1).status_code == 204
    assert not _reads(client, more, "commander1", secret)
    # only those who may change the case grant it
    r = client.post(f"/api/v1/cases/{secret}/grants", json={"username": "analyst"},
                    headers=more.headers(client, "inv2"))
    assert r.status_code == 403


def test_hits_alerts_and_requests_on_a_secret_case(client, more, secret):
    """The other side learns a unit and a contact, asks, and is granted by the lead:
    no one in the ancestors' units may decide it in her place."""
    ha = more.headers(client, "analyst")
    assert client.post("/api/v1/cases/watches", json={"kind": "phone", "value": "0655443322"},
                       headers=ha).status_code == 201
    h2 = more.headers(client, "inv2")
    c2 = new_case(client, h2, "Drugs D21")
    hit = add(client, h2, c2, "phone", number="+33 6 55 44 33 22")["hits"][0]
    assert hit["other"]["unit_code"] == "D11" and hit["other_access"] is False
    assert SECRET not in str(hit) and "case_id" not in hit["other"]
    h1 = more.headers(client, "inv1")
    add(client, h1, secret, "phone", number="06 55 44 33 22", notes="again")
    alerts = client.get("/api/v1/cases/watch-alerts", headers=ha).json()
    on_secret = [a for a in alerts if a["other"]["unit_code"] == "D11"]
    assert on_secret and all(a["other_access"] is False for a in on_secret)
    assert [a["other_access"] for a in alerts if a["other"]["unit_code"] == "D21"] == [True]
    assert SECRET not in str(alerts)
    req = client.post("/api/v1/cases/access-requests", json={
        "hit_id": hit["id"], "reason": "same phone in my drugs case"}, headers=h2).json()
    for username in ("analyst", "inv_r1", "inv_d11"):
        h = more.headers(client, username)
        assert client.get("/api/v1/cases/access-requests", headers=h).json()["to_decide"] == []
        r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                        json={"grant": True}, headers=h)
        assert r.status_code == 404
    todo = client.get("/api/v1/cases/access-requests", headers=h1).json()["to_decide"]
    assert [t["id"] for t in todo] == [req["id"]]
    r = client.post(f"/api/v1/cases/access-requests/{req['id']}/decision",
                    json={"grant": True}, headers=h1)
    assert r.status_code == 200
    assert _reads(client, more, "inv2", secret)
    assert client.get(f"/api/v1/cases/{secret}", headers=h2).json()["can_write"] is False
    hits_now = client.get(f"/api/v1/cases/{c2}/hits", headers=h2).json()
    assert hits_now[0]["other_access"] is True
    assert not _reads(client, more, "analyst", secret)  # granted to her, to no one else


def test_the_live_feed_keeps_need_to_know(client, more, secret):
    from tests.core.test_livefeed import _connect

    h1 = more.headers(client, "inv1")
    normal = new_case(client, h1, "Ordinary")
    ws, conn = _connect(client, more.login(client, "inv_r1")["access_token"])
    try:
        def sees_secret_update() -> bool:
            # a change to the secret case, then one to the normal case (always seen):
            # did the first reach inv_r1 before the second?
            client.patch(f"/api/v1/cases/{secret}", json={"summary": "s"}, headers=h1)
            client.patch(f"/api/v1/cases/{normal}", json={"summary": "n"}, headers=h1)
            seen = []
            while normal not in seen:
                event = conn.receive_json()["event"]
                if event["type"] == "cases.case.updated":
                    seen.append(int(event["record_id"]))
            return secret in seen

        assert not sees_secret_update()
        r = client.post(f"/api/v1/cases/{secret}/grants", json={"unit_code": "R1"}, headers=h1)
        assert r.status_code == 201
        assert sees_secret_update()  # the grant took effect on the next event
        client.delete(f"/api/v1/cases/{secret}/grants/{r.json()['id']}", headers=h1)
        assert not sees_secret_update()
        client.patch(f"/api/v1/cases/{secret}", json={"classification": "restricted"},
                     headers=h1)
        assert sees_secret_update()  # declassified: the subtree rule again
    finally:
        ws.__exit__(None, None, None)
