"""The operation websocket (positions and journal live, revocation) and CAP 1.2 alerts."""

from __future__ import annotations

import pytest
from lxml import etree
from starlette.websockets import WebSocketDisconnect

from tests.operations.helpers import LAT, LON, make_operation, png_bytes, square
from tocsin.core.errors import BadInput
from tocsin.operations import cap


def _subscribe(client, token: str, op_id: int):
    ws = client.websocket_connect("/api/v1/operations/live")
    conn = ws.__enter__()
    conn.send_json({"type": "auth", "access_token": token, "operation_id": op_id})
    return ws, conn


def _next(conn, type_: str, predicate=lambda m: True, limit: int = 50):
    for _ in range(limit):
        msg = conn.receive_json()
        if msg["type"] == type_ and predicate(msg):
            return msg
    raise AssertionError(f"no {type_} frame")


def test_positions_and_reports_reach_the_commander_live(client, force):
    op = make_operation(client, force)
    cmd_token = force.login(client, "commander1")["access_token"]
    patrol_token = force.login(client, "patrol1")["access_token"]
    ws_c, commander = _subscribe(client, cmd_token, op.id)
    ws_p, device = _subscribe(client, patrol_token, op.id)
    try:
        ready = commander.receive_json()
        assert ready["type"] == "ready" and ready["manage"] is True
        assert device.receive_json()["manage"] is False
        device.send_json({"type": "position", "op_unit_id": op.unit_id, "lat": LAT + 0.004,
                          "lon": LON + 0.004, "heading": 90})
        ack = _next(device, "ack")
        assert ack["accepted"] == 1 and ack["rejected"] == []
        frame = _next(commander, "positions")
        assert frame["u"][0][:3] == [op.unit_id, round(LAT + 0.004, 6), round(LON + 0.004, 6)]
        # not the device's unit: refused with the reason, nothing broadcast
        device.send_json({"type": "position", "op_unit_id": op.other_unit_id, "lat": LAT,
                          "lon": LON})
        assert _next(device, "ack")["rejected"] == [{"index": 0, "reason": "not_your_unit"}]
        device.send_text("{not json")
        assert _next(device, "error")["code"] == "malformed"
        # a journal entry is pushed as an event
        client.post(f"/api/v1/operations/{op.id}/journal", headers=op.patrol,
                    json={"kind": "report", "text": "All calm", "op_unit_id": op.unit_id})
        ev = _next(commander, "event", lambda m: m["event"]["type"] == "operations.journal.added"
                   and m["event"]["payload"]["entry"]["kind"] == "report")
        assert ev["event"]["payload"]["entry"]["text"] == "All calm"
        # the device's session is revoked: its socket is closed at once
        client.delete(f"/api/v1/users/{force.users['patrol1']}/sessions",
                      headers=force.headers(client, "admin"))
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(100):
                device.receive_json()
        assert closed.value.code == 4401
    finally:
        ws_c.__exit__(None, None, None)
        ws_p.__exit__(None, None, None)


def test_websocket_refuses_outsiders_and_bad_tokens(client, force):
    op = make_operation(client, force)
    ws, conn = _subscribe(client, force.login(client, "inv2")["access_token"], op.id)
    try:
        assert conn.receive_json() == {"type": "error", "code": "access_denied"}
    finally:
        ws.__exit__(None, None, None)
    ws, conn = _subscribe(client, "forged", op.id)
    try:
        assert conn.receive_json() == {"type": "error", "code": "token_invalid"}
    finally:
        ws.__exit__(None, None, None)


def _publish_with_photo(client, op, **fields):
    """A missing-person alert to ALPHA-1 with a photo: (photo bytes, response)."""
    photo = png_bytes((10, 120, 200))
    sha = client.post(f"/api/v1/operations/photos/{op.id}", headers=op.cmd,
                      content=photo).json()["photo"]
    r = client.post(f"/api/v1/operations/{op.id}/alerts", headers=op.cmd, json={
        "kind": "missing_person", "headline": "Missing child, 7, red coat",
        "op_unit_ids": [op.unit_id], "photo": sha, **fields})
    assert r.status_code == 201, r.text
    return photo, r


def test_alert_is_valid_cap_with_photo_and_area(client, force):
    op = make_operation(client, force)
    base = f"/api/v1/operations/{op.id}"
    photo, r = _publish_with_photo(client, op, area=square(LON, LAT, 0.02),
                                   description="Last seen near the station & the fountain "
                                               "<east side>")
    assert r.status_code == 201, r.text
    alert = r.json()
    assert alert["messenger"].startswith("sent: "), alert["messenger"]
    xml = client.get(f"{base}/alerts/{alert['id']}/cap", headers=op.patrol)
    assert xml.status_code == 200 and xml.headers["content-type"].startswith(
        "application/cap+xml")
    cap.validate(xml.content)  # the official CAP 1.2 schema
    doc = etree.fromstring(xml.content)
    ns = {"c": cap.NS}
    assert doc.findtext("c:identifier", namespaces=ns) == alert["identifier"]
    assert doc.findtext("c:info/c:event", namespaces=ns) == "Missing person"
    assert doc.findtext("c:addresses", namespaces=ns) == "ALPHA-1"
    poly = doc.findtext("c:info/c:area/c:polygon", namespaces=ns).split()
    assert poly[0] == poly[-1] and len(poly) == 5
    assert poly[0] == f"{LAT:.6f},{LON:.6f}"
    import base64
    import hashlib

    res = doc.find("c:info/c:resource", namespaces=ns)
    assert base64.b64decode(res.findtext("c:derefUri", namespaces=ns)) == photo
    assert res.findtext("c:digest", namespaces=ns) == hashlib.sha1(photo).hexdigest()
    assert res.findtext("c:mimeType", namespaces=ns) == "image/png"
    alerts = client.get(f"{base}/journal", headers=op.cmd, params={"kind": "alert"}).json()
    assert alerts[0]["data"]["identifier"] == alert["identifier"]
    # bad input
    assert client.post(f"{base}/alerts", headers=op.cmd, json={
        "kind": "wanted_vehicle", "headline": "ABC-123"}).status_code == 422
    assert client.post(f"{base}/alerts", headers=op.patrol, json={
        "kind": "wanted_vehicle", "headline": "ABC-123",
        "op_unit_ids": [op.unit_id]}).status_code == 403


def test_the_cap_schema_refuses_what_the_standard_refuses():
    import datetime as dt

    good = cap.build(identifier="x-1", sender="s@example.org",
                     sent=dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
                     kind="imminent_danger", headline="Gas leak", description="",
                     area=square(LON, LAT))
    cap.validate(good)
    assert "<sent>2026-05-01T12:00:00+00:00</sent>" in good
    for broken in (good.replace("<status>Actual</status>", "<status>Bogus</status>"),
                   good.replace("+00:00</sent>", "Z</sent>"),
                   good.replace("<urgency>Immediate</urgency>", ""),
                   good.replace("<identifier>x-1</identifier>", ""),
                   good.replace("<category>Safety</category>", "<category>Police</category>")):
        with pytest.raises(BadInput) as exc:
            cap.validate(broken)
        assert exc.value.code == "cap.invalid"
    with pytest.raises(BadInput) as exc:
        cap.validate(good[:-20])
    assert exc.value.code == "cap.malformed"


def _messenger_alert(client, headers, alert_id: str) -> dict:
    r = client.get(f"/api/v1/messaging/alerts/{alert_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_published_alert_is_broadcast_in_the_messenger_with_its_photo(client, force):
    from tests.messaging.helpers import Mx

    op = make_operation(client, force)
    _, r = _publish_with_photo(client, op, description="Last seen near the fountain")
    sent = r.json()["messenger"]
    assert sent.startswith("sent: "), sent  # not "messenger error: ..."
    alert_id = sent.removeprefix("sent: ")
    # ALPHA-1 is from brigade B1111: its officer patrol1 is the audience, nobody else
    status = _messenger_alert(client, op.patrol, alert_id)
    assert status["kind"] == "missing_person" and status["audience"] == 1
    assert status["title"] == "Missing child, 7, red coat"
    patrol2 = force.headers(client, "patrol2")
    assert client.get(f"/api/v1/messaging/alerts/{alert_id}", headers=patrol2).status_code \
        == 403
    assert client.post(f"/api/v1/messaging/alerts/{alert_id}/ack",
                       headers=patrol2).status_code == 403
    # patrol1's Matrix client receives it with the photo, and can fetch the photo
    mx = Mx(client, "patrol1")
    timeline = mx.sync()["rooms"]["join"][status["room_id"]]["timeline"]["events"]
    shown = next(e for e in timeline if e["event_id"] == status["event_id"])
    fields = shown["content"]["org.tocsin.alert"]
    assert fields["source"]["cap_identifier"] == r.json()["identifier"]
    assert fields["units"] == ["B1111"]
    got = mx.get("/_matrix/client/v1/media/download/" + fields["photo"][len("mxc://"):])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(got.content)).getpixel((0, 0))[:3] == (10, 120, 200)
    # ... and acknowledges it; the commander sees the count
    ack = client.post(f"/api/v1/messaging/alerts/{alert_id}/ack", headers=op.patrol)
    assert ack.status_code == 200 and ack.json()["you_acknowledged"] is True
    assert _messenger_alert(client, op.cmd, alert_id)["summary"] == "acknowledged by 1 of 1"


def test_an_area_alert_reaches_every_unit_of_the_operation(client, force):
    op = make_operation(client, force)
    area = square(LON, LAT, 0.02)
    r = client.post(f"/api/v1/operations/{op.id}/alerts", headers=op.cmd, json={
        "kind": "imminent_danger", "headline": "Gas leak", "area": area})
    assert r.status_code == 201, r.text
    alert_id = r.json()["messenger"].removeprefix("sent: ")
    status = _messenger_alert(client, op.cmd, alert_id)
    assert status["kind"] == "imminent_danger"
    assert status["audience"] == 2  # patrol1 (B1111) and patrol2 (B1112), the participants
    listed = client.get("/api/v1/messaging/alerts", headers=force.headers(client, "patrol2"))
    assert [a["alert_id"] for a in listed.json()] == [alert_id]


def test_a_messenger_refusal_is_reported_and_the_alert_stays_published(client, force):
    op = make_operation(client, force)
    # an analyst on the staff may publish the operation's alert, but the messenger only
    # lets commanders, dispatchers and administrators broadcast
    assert client.post(f"/api/v1/operations/{op.id}/staff", headers=op.cmd, json={
        "user_id": force.users["analyst"], "function": "intelligence"}).status_code == 201
    r = client.post(f"/api/v1/operations/{op.id}/alerts",
                    headers=force.headers(client, "analyst"), json={
                        "kind": "wanted_vehicle", "headline": "ABC-123",
                        "op_unit_ids": [op.unit_id]})
    assert r.status_code == 201, r.text
    assert r.json()["messenger"] == "messenger error: your role may not send alerts"
    assert [a["identifier"] for a in client.get(
        f"/api/v1/operations/{op.id}/alerts", headers=op.cmd).json()] == [r.json()["identifier"]]
    assert client.get("/api/v1/messaging/alerts", headers=op.patrol).json() == []
