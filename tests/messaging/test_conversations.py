"""Conversations through the Matrix API: kinds, membership, edits, deletions, receipts,
search, broadcast channels, alerts, retention and export, bad input."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests.messaging.helpers import C3, Mx, jpeg
from tocsin.core.events import EventRecord
from tocsin.messaging.models import Event
from tocsin.messaging.service import get_service


def test_versions_login_whoami_and_matrix_errors(client, force):
    assert "v1.11" in client.get("/_matrix/client/versions").json()["versions"]
    bad = client.post(C3 + "/login", json={"type": "m.login.password", "user": "patrol1",
                                           "password": "wrong"})
    assert bad.status_code == 403 and bad.json()["errcode"] == "M_FORBIDDEN"
    a = Mx(client, "patrol1")
    me = a.get(C3 + "/account/whoami").json()
    assert me == {"user_id": "@patrol1:tocsin.local", "device_id": a.device_id,
                  "is_guest": False}
    # the Matrix device is a Tocsin device session
    tocsin = force.headers(client, "patrol1")
    sessions = client.get("/api/v1/auth/sessions", headers=tocsin).json()
    assert a.device_id in {s["id"] for s in sessions}
    r = client.get(C3 + "/sync", params={"access_token": "mat_forged"})
    assert r.status_code == 401 and r.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert client.get(C3 + "/sync").json()["errcode"] == "M_MISSING_TOKEN"
    assert client.get("/_matrix/client/v3/nonsense").json()["errcode"] == "M_UNRECOGNIZED"


def test_group_invite_join_send_history_and_kicked_user_loses_access(client, force):
    a, b, c = Mx(client, "patrol1"), Mx(client, "patrol2"), Mx(client, "inv1")
    room = a.create_room(name="Night shift", invite=[b.user_id])
    assert c.send(room).json()["errcode"] == "M_FORBIDDEN"
    assert b.send(room).status_code == 403  # invited, not joined
    first = b.sync()
    assert room in first["rooms"]["invite"]
    assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
    a.send_ok(room, "one")
    b.send_ok(room, "two")
    assert a.bodies(room) == ["one", "two"]
    inc = b.sync(first["next_batch"])
    timeline = inc["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"] == \
        ["one", "two"]
    # only the creator (or a unit administrator) may remove members
    assert b.post(f"{C3}/rooms/{room}/kick", {"user_id": a.user_id}).status_code == 403
    assert a.post(f"{C3}/rooms/{room}/kick", {"user_id": b.user_id,
                                              "reason": "transferred"}).status_code == 200
    assert b.messages(room).status_code == 403
    assert b.send(room, "still here?").status_code == 403
    after = b.sync(inc["next_batch"])
    assert room in after["rooms"]["leave"] and room not in after["rooms"]["join"]
    a.send_ok(room, "three")
    assert room not in b.sync(after["next_batch"])["rooms"]["join"]


def test_unit_channel_membership_follows_the_unit_tree(client, force, runtime):
    svc = get_service(runtime)
    company = svc.unit_channel("C111")
    rid = svc.room_mx(company.id)
    p1, p2, inv2 = Mx(client, "patrol1"), Mx(client, "patrol2"), Mx(client, "inv2")
    p1.send_ok(rid, "brigade 1111 here")
    assert p2.bodies(rid) == ["brigade 1111 here"]  # B1112 is inside C111 too
    assert inv2.messages(rid).status_code == 403   # D21 is not
    assert rid in p2.get(C3 + "/joined_rooms").json()["joined_rooms"]
    # a new officer of a brigade below is a member at once, with no copy to update
    admin = force.headers(client, "admin")
    r = client.post("/api/v1/users", headers=admin, json={
        "username": "rookie", "display_name": "Rookie", "unit_code": "B1112",
        "roles": ["patrol_officer"], "password": "rookie password 1"})
    assert r.status_code == 201
    from tests.conftest import PASSWORD  # noqa: F401

    rookie = client.post(C3 + "/login", json={"type": "m.login.password", "user": "rookie",
                                              "password": "rookie password 1"}).json()
    hist = client.get(f"{C3}/rooms/{rid}/messages",
                      headers={"Authorization": f"Bearer {rookie['access_token']}"})
    assert hist.status_code == 200
    # nobody leaves a unit channel by choice; an administrator can remove someone
    assert p2.post(f"{C3}/rooms/{rid}/leave").status_code == 403
    radmin = Mx(client, "radmin")
    assert radmin.post(f"{C3}/rooms/{rid}/kick", {"user_id": p2.user_id}).status_code == 200
    assert p2.messages(rid).status_code == 403


def test_edits_deletions_reactions_replies_keep_history_for_the_audit(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Ops", invite=[b.user_id])
    b.post(f"{C3}/rooms/{room}/join")
    orig = a.send_ok(room, "suspect wears a red jacket")
    edit = a.send(room, content={"msgtype": "m.text", "body": "* suspect wears a blue jacket",
                                 "m.new_content": {"msgtype": "m.text",
                                                   "body": "suspect wears a blue jacket"},
                                 "m.relates_to": {"rel_type": "m.replace", "event_id": orig}})
    assert edit.status_code == 200
    # only the sender may edit
    assert b.send(room, content={"msgtype": "m.text", "body": "* x", "m.new_content": {
        "msgtype": "m.text", "body": "x"}, "m.relates_to": {"rel_type": "m.replace",
                                                            "event_id": orig}}).status_code == 403
    reply = b.send(room, content={"msgtype": "m.text", "body": f"copy {a.user_id}",
                                  "m.relates_to": {"m.in_reply_to": {"event_id": orig}}})
    assert reply.status_code == 200
    react = b.send(room, etype="m.reaction", content={"m.relates_to": {
        "rel_type": "m.annotation", "event_id": orig, "key": "👍"}})
    assert react.status_code == 200
    thread = b.send(room, content={"msgtype": "m.text", "body": "in thread", "m.relates_to": {
        "rel_type": "m.thread", "event_id": orig}})
    assert thread.status_code == 200
    assert b.put(f"{C3}/rooms/{room}/redact/{orig}/r1", {"reason": "x"}).status_code == 403
    red = a.put(f"{C3}/rooms/{room}/redact/{orig}/r1", {"reason": "wrong"})
    assert red.status_code == 200
    again = a.put(f"{C3}/rooms/{room}/redact/{orig}/r1", {"reason": "wrong"})
    assert again.json()["event_id"] == red.json()["event_id"]  # replayed transaction
    shown = a.get(f"{C3}/rooms/{room}/event/{orig}").json()
    assert shown["content"] == {} and "redacted_because" in shown["unsigned"]
    with runtime.db.read() as s:
        ev = s.scalar(select(Event).where(Event.event_id == orig))
        assert ev.content["body"] == "suspect wears a red jacket"  # kept for the audit
        mention = s.scalar(select(Event).where(Event.event_id == reply.json()["event_id"]))
        assert mention.content["m.mentions"] == {"user_ids": [a.user_id]}
    # search sees what the user may see, not deleted text
    hits = b.post(C3 + "/search", {"search_categories": {"room_events": {
        "search_term": "blue jacket"}}}).json()["search_categories"]["room_events"]
    assert hits["count"] == 1
    assert b.post(C3 + "/search", {"search_categories": {"room_events": {
        "search_term": "red jacket"}}}).json()["search_categories"]["room_events"]["count"] == 0
    outsider = Mx(client, "inv2")
    assert outsider.post(C3 + "/search", {"search_categories": {"room_events": {
        "search_term": "jacket"}}}).json()["search_categories"]["room_events"]["count"] == 0
    # an auditor exports it for a court: deleted and edited versions, ledger references
    admin = force.headers(client, "admin")
    assert client.get(f"/api/v1/messaging/rooms/{room}/export",
                      headers=force.headers(client, "patrol1")).status_code == 403
    export = client.get(f"/api/v1/messaging/rooms/{room}/export", headers=admin)
    assert export.status_code == 200
    events = export.json()["events"]
    original = next(e for e in events if e["event_id"] == orig)
    assert original["content"]["body"] == "suspect wears a red jacket"
    assert original["redacted_by"] == red.json()["event_id"]
    assert original["ledger"]["core_event_id"] and original["ledger"]["salt"]
    # each event comes with an inclusion proof that checks offline
    from tocsin.engines.ledger import verify_bundle

    proofs = export.json()["proofs"]
    bundle = proofs["bundles"][original["ledger"]["core_event_id"]]
    assert verify_bundle(bundle).startswith("OK")
    assert set(proofs["bundles"]) | set(proofs["pending"]) >= {
        e["ledger"]["core_event_id"] for e in events if e["ledger"]["core_event_id"]}
    with runtime.db.read() as s:
        kinds = set(s.scalars(select(EventRecord.type)))
    assert {"messaging.room.exported", "messaging.history.read",
            "messaging.event.sent"} <= kinds


def test_receipts_typing_and_delivery_state(client, force):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Pair", invite=[b.user_id])
    b.post(f"{C3}/rooms/{room}/join")
    since = a.sync()["next_batch"]
    ev = a.send_ok(room, "are you there?")
    state = client.get(f"/api/v1/messaging/rooms/{room}/delivery/{ev}", headers=a.h).json()
    assert state["per_recipient"] == [{"user_id": b.user_id, "state": "sent"}]
    b.sync()  # b's device receives it
    state = client.get(f"/api/v1/messaging/rooms/{room}/delivery/{ev}", headers=a.h).json()
    assert state["per_recipient"][0]["state"] == "delivered"
    assert b.post(f"{C3}/rooms/{room}/receipt/m.read/{ev}").status_code == 200
    state = client.get(f"/api/v1/messaging/rooms/{room}/delivery/{ev}", headers=a.h).json()
    assert state["read"] == 1
    eph = a.sync(since)["rooms"]["join"][room]["ephemeral"]["events"]
    receipt = next(e for e in eph if e["type"] == "m.receipt")
    assert b.user_id in receipt["content"][ev]["m.read"]
    assert b.put(f"{C3}/rooms/{room}/typing/{a.user_id}", {"typing": True}).status_code == 403
    assert b.put(f"{C3}/rooms/{room}/typing/{b.user_id}",
                 {"typing": True, "timeout": 5000}).status_code == 200


def test_broadcast_channel_only_some_roles_post(client, force):
    radmin = Mx(client, "radmin")
    room = radmin.create_room(name="R1 notices", **{"org.tocsin.kind": "broadcast",
                                                    "org.tocsin.audience": ["R1"]})
    patrol = Mx(client, "patrol1")
    assert patrol.bodies(room) == []
    r = patrol.send(room, "can I post?")
    assert r.status_code == 403 and r.json()["org.tocsin.code"] == "messaging.post_forbidden"
    radmin.send_ok(room, "Roadworks on the E18 all week.")
    assert patrol.bodies(room) == ["Roadworks on the E18 all week."]
    # a patrol officer cannot open a broadcast channel for a region
    assert patrol.post(C3 + "/createRoom", {"org.tocsin.kind": "broadcast",
                                            "org.tocsin.audience": ["R1"]}).status_code == 403


def test_alert_with_acknowledgement_update_and_cancel(client, force):
    cmd = force.headers(client, "commander1")
    body = {"kind": "missing_person", "title": "Missing: Aino, 8",
            "description": "Red coat, last seen at the station", "unit_codes": ["R1"]}
    assert client.post("/api/v1/messaging/alerts", json=body,
                       headers=force.headers(client, "patrol1")).status_code == 403
    r = client.post("/api/v1/messaging/alerts", json=body, headers=cmd)
    assert r.status_code == 201, r.text
    alert = r.json()
    # R1 holds radmin, commander1, calltaker, dispatcher, patrol1, patrol2, inv1
    assert alert["audience"] == 7 and alert["acknowledged"] == 0
    p1 = Mx(client, "patrol1")
    sync = p1.sync()
    timeline = sync["rooms"]["join"][alert["room_id"]]["timeline"]["events"]
    # a standard message any Matrix client shows, with the police fields namespaced
    shown = next(e for e in timeline if e["event_id"] == alert["event_id"])
    assert shown["type"] == "m.room.message" and shown["content"]["msgtype"] == "m.text"
    assert shown["content"]["body"] == ("ALERT (missing person): Missing: Aino, 8\n"
                                        "Red coat, last seen at the station")
    assert shown["content"]["m.mentions"] == {"room": True}
    assert shown["content"]["org.tocsin.alert"]["kind"] == "missing_person"
    inv2 = force.headers(client, "inv2")  # outside the area
    assert client.post(f"/api/v1/messaging/alerts/{alert['alert_id']}/ack",
                       headers=inv2).status_code == 403
    for user in ("patrol1", "patrol2", "patrol1"):
        r = client.post(f"/api/v1/messaging/alerts/{alert['alert_id']}/ack",
                        headers=force.headers(client, user))
        assert r.status_code == 200
    status = client.get(f"/api/v1/messaging/alerts/{alert['alert_id']}", headers=cmd).json()
    assert status["acknowledged"] == 2 and status["summary"] == "acknowledged by 2 of 7"
    r = client.post(f"/api/v1/messaging/alerts/{alert['alert_id']}/status",
                    json={"status": "cancelled", "note": "Found safe"}, headers=cmd)
    assert r.json()["status"] == "cancelled" and r.json()["revision"] == 2
    # the update is a notice replying to the alert
    assert p1.bodies(alert["room_id"]) == [shown["content"]["body"],
                                           "Alert cancelled: Missing: Aino, 8\nFound safe"]
    update = p1.messages(alert["room_id"]).json()["chunk"][0]
    assert update["content"]["msgtype"] == "m.notice"
    assert update["content"]["m.relates_to"] == {"m.in_reply_to": {
        "event_id": alert["event_id"]}}
    assert update["content"]["org.tocsin.alert.update"]["status"] == "cancelled"


def test_an_alert_with_a_photo_is_an_image_message_and_alerts_cannot_be_forged(client,
                                                                                force):
    cmd = Mx(client, "commander1")
    up = cmd.upload(jpeg((200, 100)), filename="aino.jpg")
    assert up.status_code == 200, up.text
    r = client.post("/api/v1/messaging/alerts", headers=force.headers(client, "commander1"),
                    json={"kind": "missing_person", "title": "Missing: Aino, 8",
                          "unit_codes": ["B1111"], "photo": up.json()["content_uri"]})
    assert r.status_code == 201, r.text
    alert = r.json()
    p1 = Mx(client, "patrol1")
    timeline = p1.sync()["rooms"]["join"][alert["room_id"]]["timeline"]["events"]
    shown = next(e for e in timeline if e["event_id"] == alert["event_id"])["content"]
    assert shown["msgtype"] == "m.image" and shown["url"] == up.json()["content_uri"]
    assert shown["body"] == "ALERT (missing person): Missing: Aino, 8"  # the caption
    assert shown["filename"] == "aino.jpg" and shown["info"]["mimetype"] == "image/jpeg"
    assert (shown["info"]["w"], shown["info"]["h"]) == (200, 100)
    thumb = p1.get("/_matrix/client/v1/media/download/"
                   + shown["info"]["thumbnail_url"][len("mxc://"):])
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    # nobody fakes an alert (no acknowledgement tracking behind it) with a plain send
    room = p1.create_room(name="Patrol")
    for etype, content in [
            ("m.room.message", {"msgtype": "m.text", "body": "ALERT: fake",
                                "org.tocsin.alert": {"kind": "general", "title": "fake"}}),
            ("m.room.message", {"msgtype": "m.notice", "body": "cancelled",
                                "org.tocsin.alert.update": {"status": "cancelled"}}),
            ("org.tocsin.alert", {"body": "fake"})]:
        forged = p1.send(room, etype=etype, content=content)
        assert forged.status_code == 403, forged.text
        assert forged.json()["errcode"] == "M_FORBIDDEN"
        assert forged.json()["org.tocsin.code"] == "messaging.alert_reserved"
    mine = p1.send_ok(room, "typo")
    edit = p1.send(room, content={"msgtype": "m.text", "body": "* x", "m.new_content": {
        "msgtype": "m.text", "body": "x", "org.tocsin.alert": {}},
        "m.relates_to": {"rel_type": "m.replace", "event_id": mine}})
    assert edit.status_code == 403
    assert p1.bodies(room) == ["typo"]


def test_bad_input_is_refused_with_clear_errors_and_nothing_stored(client, force, runtime):
    a = Mx(client, "patrol1")
    room = a.create_room(name="Limits")
    big = a.send(room, "x" * 100_000)
    assert big.status_code == 413 and big.json()["errcode"] == "M_TOO_LARGE"
    emoji = a.send(room, "🚨" * 9000)
    assert emoji.status_code == 413
    ok_emoji = a.send(room, "🚨" * 500)
    assert ok_emoji.status_code == 200
    assert a.put(f"{C3}/rooms/{room}/send/m.room.message/t1", None,
                 content=b"{not json").status_code in (400, 422)
    assert a.send(room, content=["not", "an", "object"]).status_code in (400, 422)
    assert a.send(room, etype="m.room.member", content={"membership": "join"}).status_code \
        in (400, 422)
    assert a.send(room, content={"msgtype": "m.text", "body": "x", "m.relates_to": {
        "rel_type": "m.replace", "event_id": "$nope"}}).status_code in (400, 422)
    assert a.get(f"{C3}/sync", params={"since": "garbage"}).json()["errcode"] == \
        "M_INVALID_PARAM"
    # a replayed client message is stored once
    first = a.send(room, "only once", txn="dup-1").json()["event_id"]
    second = a.send(room, "only once", txn="dup-1").json()["event_id"]
    assert first == second
    assert a.bodies(room).count("only once") == 1
    with runtime.db.read() as s:
        assert not any(len(b or "") > 8000 for b in s.scalars(select(Event.search_text)))


def test_flood_is_rate_limited_per_device(client, force, runtime):
    get_service(runtime).limiter.rate, get_service(runtime).limiter.burst = 1.0, 5
    a = Mx(client, "patrol1")
    room = a.create_room(name="Flood")
    codes = [a.send(room, f"m{i}").status_code for i in range(12)]
    assert codes[:4] == [200] * 4 and 429 in codes
    limited = a.send(room, "again")
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED" and limited.json()["retry_after_ms"]


def test_retention_purges_old_messages_unless_on_legal_hold(client, force, runtime):
    a = Mx(client, "patrol1")
    room = a.create_room(name="Short lived")
    a.send_ok(room, "old news")
    admin = force.headers(client, "admin")
    assert client.post(f"/api/v1/messaging/rooms/{room}/retention", json={"days": 30},
                       headers=force.headers(client, "patrol2")).status_code == 403
    r = client.post(f"/api/v1/messaging/rooms/{room}/retention",
                    json={"days": 30, "legal_hold": True}, headers=admin)
    assert r.status_code == 200 and r.json()["legal_hold"] is True
    svc = get_service(runtime)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert svc.purge_expired(later).events == 0
    assert a.bodies(room) == ["old news"]
    client.post(f"/api/v1/messaging/rooms/{room}/retention",
                json={"days": 30, "legal_hold": False}, headers=admin)
    from tocsin.ledger.audit import audit
    from tocsin.ledger.service import get_service as get_ledger

    ledger = get_ledger(runtime)
    ledger.seal()
    ledger.checkpoint()
    with runtime.db.read() as s:
        sent = list(s.scalars(select(EventRecord.id).where(
            EventRecord.type == "messaging.event.sent")))
    assert svc.purge_expired(later).events == 1
    assert a.bodies(room) == []
    # the stored copy of the message's event lost content and salt; the log still verifies
    with runtime.db.read() as s:
        erased = s.scalars(select(EventRecord).where(EventRecord.id == sent[-1])).one()
    assert erased.payload is None and erased.salt is None
    # Seal what the purge and the reads emitted first: an audit that runs while the
    # background sealer appends can see rows the log does not hold yet.
    ledger.seal()
    assert audit(ledger).erased >= 1


def test_devices_listed_and_remote_logout_cuts_matrix_client(client, force):
    phone = Mx(client, "patrol1", device="phone")
    desk = Mx(client, "patrol1", device="desk")
    names = {d["display_name"] for d in desk.get(C3 + "/devices").json()["devices"]}
    assert {"phone", "desk"} <= names
    assert desk.http.delete(f"{C3}/devices/{phone.device_id}", headers=desk.h).status_code == 200
    r = phone.get(C3 + "/sync")
    assert r.status_code == 401 and r.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert r.json()["soft_logout"] is False
    assert "storage" in r.headers.get("clear-site-data", "")
    other = Mx(client, "patrol2")
    assert other.http.delete(f"{C3}/devices/{desk.device_id}",
                             headers=other.h).status_code == 404
