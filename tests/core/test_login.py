"""Login, tokens, TOTP, throttling and device sessions through the HTTP API."""

from __future__ import annotations

import datetime as dt
import time

import pyotp

from tests.conftest import PASSWORD
from tocsin.core.identity import tokens


def test_login_and_whoami(client, force):
    tok = force.login(client, "patrol1", device_name="phone of patrol1")
    r = client.get("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "patrol1" and body["roles"] == ["patrol_officer"]
    assert body["unit_code"] == "B1111"
    assert tok["expires_in"] == force.runtime.settings.access_token_ttl


def test_wrong_password_and_unknown_user_look_the_same(client, force):
    a = client.post("/api/v1/auth/login", json={"username": "patrol1", "password": "nope-nope-1"})
    b = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope-nope-1"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()
    assert a.json()["error"]["code"] == "login_failed"


def test_throttling_blocks_after_repeated_failures(client, force):
    for _ in range(3):
        r = client.post("/api/v1/auth/login", json={"username": "patrol2", "password": "x" * 12})
        assert r.status_code == 401
    # even the right password is refused while the account is throttled
    r = client.post("/api/v1/auth/login", json={"username": "patrol2", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "login_throttled"
    assert int(r.headers["Retry-After"]) > 0
    # other accounts are unaffected
    assert client.post("/api/v1/auth/login",
                       json={"username": "patrol1", "password": PASSWORD}).status_code == 200


def test_missing_forged_and_expired_tokens(client, force):
    assert client.get("/api/v1/auth/whoami").json()["error"]["code"] == "token_missing"
    forged, _ = tokens.issue_access(b"k" * 32, user_id=force.users["admin"], session_id="x", ttl=60)
    r = client.get("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"
    sid = force.login(client, "patrol1")["session_id"]
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    expired, _ = tokens.issue_access(force.runtime.token_key, user_id=force.users["patrol1"],
                                     session_id=sid, ttl=60, now=past)
    r = client.get("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
    r = client.get("/api/v1/auth/whoami", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401


def test_token_of_one_user_cannot_claim_another_session(client, force):
    sid = force.login(client, "patrol1")["session_id"]
    mixed, _ = tokens.issue_access(force.runtime.token_key, user_id=force.users["admin"],
                                   session_id=sid, ttl=60)
    r = client.get("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {mixed}"})
    assert r.status_code == 401


def test_refresh_rotates_and_reuse_revokes(client, force):
    first = force.login(client, "patrol1")
    second = client.post("/api/v1/auth/refresh",
                         json={"refresh_token": first["refresh_token"]}).json()
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    # replaying the old refresh token: theft is assumed, the session dies
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_reused"
    r = client.get("/api/v1/auth/whoami",
                   headers={"Authorization": f"Bearer {second['access_token']}"})
    assert r.json()["error"]["code"] == "session_revoked"
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.json()["error"]["code"] == "session_revoked"


def test_revoking_a_device_takes_effect_on_next_request(client, force):
    phone = force.login(client, "patrol1", device_name="phone")
    desk = force.login(client, "patrol1", device_name="desk")
    h_phone = {"Authorization": f"Bearer {phone['access_token']}"}
    h_desk = {"Authorization": f"Bearer {desk['access_token']}"}
    sessions = client.get("/api/v1/auth/sessions", headers=h_desk).json()
    assert {s["device_name"] for s in sessions} == {"phone", "desk"}
    assert [s["current"] for s in sessions if s["device_name"] == "desk"] == [True]
    assert client.delete(f"/api/v1/auth/sessions/{phone['session_id']}",
                         headers=h_desk).status_code == 204
    r = client.get("/api/v1/auth/whoami", headers=h_phone)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"
    assert client.get("/api/v1/auth/whoami", headers=h_desk).status_code == 200


def test_administrator_revokes_all_devices_within_subtree_only(client, force):
    lost = force.login(client, "patrol1")
    admin = force.headers(client, "radmin")
    r = client.delete(f"/api/v1/users/{force.users['patrol1']}/sessions", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] == 1
    r = client.get("/api/v1/auth/whoami",
                   headers={"Authorization": f"Bearer {lost['access_token']}"})
    assert r.status_code == 401
    # a regional administrator cannot touch another region's officers
    r = client.delete(f"/api/v1/users/{force.users['inv2']}/sessions", headers=admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    # an ordinary officer cannot revoke a colleague
    r = client.delete(f"/api/v1/users/{force.users['patrol1']}/sessions",
                      headers=force.headers(client, "patrol2"))
    assert r.status_code == 403


def test_totp_enrolment_and_login(client, force):
    h = force.headers(client, "inv1")
    setup = client.post("/api/v1/auth/totp/setup", headers=h).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    assert client.post("/api/v1/auth/totp/confirm", headers=h,
                       json={"code": "000000" if totp.now() != "000000" else "111111"}
                       ).status_code == 422
    code = totp.now()
    assert client.post("/api/v1/auth/totp/confirm", headers=h, json={"code": code}).status_code == 204
    r = client.post("/api/v1/auth/login", json={"username": "inv1", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["code"] == "totp_required"
    # the code used to confirm cannot be replayed
    r = client.post("/api/v1/auth/login",
                    json={"username": "inv1", "password": PASSWORD, "totp_code": code})
    assert r.status_code == 401 and r.json()["error"]["code"] == "totp_invalid"
    nxt = totp.at(time.time() + 30)
    r = client.post("/api/v1/auth/login",
                    json={"username": "inv1", "password": PASSWORD, "totp_code": nxt})
    assert r.status_code == 200, r.text


def test_password_change_logs_out_other_devices(client, force):
    other = force.login(client, "patrol2")
    me = force.headers(client, "patrol2")
    r = client.post("/api/v1/auth/password", headers=me,
                    json={"current_password": PASSWORD, "new_password": "short"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "user.weak_password"
    r = client.post("/api/v1/auth/password", headers=me,
                    json={"current_password": PASSWORD, "new_password": "a much better one 42"})
    assert r.status_code == 204
    assert client.get("/api/v1/auth/whoami", headers=me).status_code == 200
    assert client.get("/api/v1/auth/whoami",
                      headers={"Authorization": f"Bearer {other['access_token']}"}
                      ).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "patrol2",
                       "password": "a much better one 42"}).status_code == 200


def test_logout(client, force):
    h = force.headers(client, "patrol1")
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert client.get("/api/v1/auth/whoami", headers=h).status_code == 401


def test_disabled_account_is_cut_off(client, force):
    h = force.headers(client, "patrol1")
    force.runtime.identity.set_active(None, force.users["patrol1"], False)
    assert client.get("/api/v1/auth/whoami", headers=h).status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "patrol1", "password": PASSWORD})
    assert r.status_code == 401


def test_last_seen_is_written_in_batches_and_shown_in_the_device_list(client, force):
    from sqlalchemy import update

    from tocsin.core.database import as_utc, utcnow
    from tocsin.core.identity.models import DeviceSession

    phone = force.login(client, "patrol1", device_name="phone")
    desk = force.login(client, "patrol1", device_name="desk")
    long_ago = utcnow() - dt.timedelta(hours=2)
    with force.runtime.db.session() as s:
        s.execute(update(DeviceSession).where(DeviceSession.id.in_(
            [phone["session_id"], desk["session_id"]])).values(last_seen_at=long_ago))
    h_phone = {"Authorization": f"Bearer {phone['access_token']}"}
    assert client.get("/api/v1/auth/whoami", headers=h_phone).status_code == 200
    sessions = {s["device_name"]: s for s in client.get(
        "/api/v1/auth/sessions", headers={"Authorization": f"Bearer {desk['access_token']}"}
    ).json()}  # the list writes what was noted first
    for name in ("phone", "desk"):  # both were seen just now
        seen = as_utc(dt.datetime.fromisoformat(sessions[name]["last_seen_at"]))
        assert seen > long_ago + dt.timedelta(hours=1)
    # a revoked session is refused at once, whatever is still waiting to be written
    assert client.delete(f"/api/v1/auth/sessions/{phone['session_id']}",
                         headers={"Authorization": f"Bearer {desk['access_token']}"}
                         ).status_code == 204
    r = client.get("/api/v1/auth/whoami", headers=h_phone)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"
    force.runtime.identity.flush_seen()  # a revoked (or deleted) session's time is harmless
