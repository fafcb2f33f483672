"""Moving a user, changing roles, disabling an account: decided by access, effective at once."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.core.test_cli import run
from tests.core.test_livefeed import _connect


def test_moved_user_gets_her_new_unit_and_her_live_socket_reconnects(client, force):
    patrol = force.login(client, "patrol1")
    mine = {"Authorization": f"Bearer {patrol['access_token']}"}
    ws, conn = _connect(client, patrol["access_token"])
    try:
        admin = force.headers(client, "admin")
        r = client.patch(f"/api/v1/users/{force.users['patrol1']}", headers=admin,
                         json={"unit_code": "D21", "roles": ["patrol_officer", "dispatcher"]})
        assert r.status_code == 200, r.text
        seen = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(conn.receive_json())
        assert closed.value.code == 4409 and {"type": "closed", "code": 4409} in seen
    finally:
        ws.__exit__(None, None, None)
    who = client.get("/api/v1/auth/whoami", headers=mine).json()  # same token, new facts
    assert who["unit_code"] == "D21"
    assert sorted(who["roles"]) == ["dispatcher", "patrol_officer"]


def test_user_changes_are_refused_outside_the_actors_subtree(client, force):
    radmin = force.headers(client, "radmin")  # administrator of region R1
    target = force.users["patrol1"]  # in B1111, below R1
    r = client.patch(f"/api/v1/users/{target}", headers=radmin, json={"unit_code": "D21"})
    assert r.status_code == 403  # D21 is in region R2
    r = client.patch(f"/api/v1/users/{force.users['inv2']}", headers=radmin,
                     json={"unit_code": "D11"})
    assert r.status_code == 403  # inv2 is in R2
    patrol = force.headers(client, "patrol2")
    assert client.patch(f"/api/v1/users/{target}", headers=patrol,
                        json={"roles": ["administrator"]}).status_code == 403
    r = client.patch(f"/api/v1/users/{target}", headers=radmin, json={"roles": []})
    assert r.status_code == 422
    r = client.patch(f"/api/v1/users/{target}", headers=radmin, json={"unit_code": "NOPE"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unit.not_found"
    r = client.patch(f"/api/v1/users/{target}", headers=radmin, json={"password": "x"})
    assert r.status_code == 422  # unknown fields are refused
    with force.runtime.db.read() as s:
        user = force.runtime.identity.get_user(s, target)
        assert user.unit.code == "B1111" and user.roles == ["patrol_officer"]


def test_disabled_account_is_cut_off(client, force):
    patrol = force.headers(client, "patrol1")
    radmin = force.headers(client, "radmin")
    r = client.patch(f"/api/v1/users/{force.users['patrol1']}", headers=radmin,
                     json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/auth/whoami", headers=patrol).status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "patrol1",
                                                 "password": "correct horse battery"})
    assert r.status_code == 401


def test_cli_users_update(tmp_path):
    csv = tmp_path / "units.csv"
    csv.write_text("code,name,kind,parent_code\nNAT,Nation,nation,\nR1,Region,region,NAT\n"
                   "R2,Region 2,region,NAT\n")
    assert run(tmp_path, "units", "import", str(csv)).returncode == 0
    assert run(tmp_path, "users", "create", "jdoe", "--name", "Jane Doe", "--unit", "R1",
               "--role", "patrol-officer", "--password-stdin",
               stdin="a long password 9\n").returncode == 0
    r = run(tmp_path, "users", "update", "jdoe", "--unit", "R2", "--role", "dispatcher")
    assert r.returncode == 0 and "jdoe" in r.stdout and "R2" in r.stdout, r.stderr
    r = run(tmp_path, "users", "list")
    assert "dispatcher" in r.stdout and "R2" in r.stdout
    r = run(tmp_path, "users", "update", "jdoe", "--unit", "NOWHERE")
    assert r.returncode == 2 and "unit.not_found" in r.stderr
    r = run(tmp_path, "users", "update", "ghost", "--disable")
    assert r.returncode == 2 and "user.not_found" in r.stderr
