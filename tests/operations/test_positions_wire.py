"""What the operation websocket promises a sender and a screen: an ``ack`` means the
positions are in the database (and a position dropped while the database was down is
said to be so), and screens that ask for it get positions as compact binary frames."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect

from tests.operations.helpers import LAT, LON, make_operation
from tocsin.operations import positions
from tocsin.operations.models import Position
from tocsin.operations.positions import decode_binary, encode_binary, get_hub


def _stored(force, op_id: int) -> int:
    with force.runtime.db.read() as s:
        return s.scalar(select(func.count()).select_from(Position)
                        .where(Position.operation_id == op_id))


def _auth(ws, force, client, username: str, op_id: int, **extra) -> None:
    ws.send_json({"type": "auth", "access_token": force.login(client, username)[
        "access_token"], "operation_id": op_id, **extra})
    assert ws.receive_json()["type"] == "ready"


def _ack(ws) -> dict:
    while (msg := ws.receive_json())["type"] != "ack":
        pass
    return msg


def _fixes(unit_id: int, n: int) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    return [{"op_unit_id": unit_id, "lat": LAT + k / 1000, "lon": LON,
             "at": (now - dt.timedelta(seconds=n - k)).isoformat()} for k in range(n)]


def test_binary_frames_round_trip():
    rows = [[7, 60.123457, 24.987654, 1764547200123, 359.5, 12.25],
            [4_000_000_000, -33.9, -151.2, 1764547200999, None, None]]
    op_id, back = decode_binary(encode_binary(42, rows))
    assert op_id == 42 and len(back) == 2
    for got, want in zip(back, rows, strict=True):
        assert got[0] == want[0] and got[3] == want[3]
        assert got[1] == pytest.approx(want[1], abs=1e-7)
        assert got[2] == pytest.approx(want[2], abs=1e-7)
        assert got[4:] == want[4:]
    frame = encode_binary(42, rows)
    for bad in (frame[:-1], b"\x02" + frame[1:], b"", frame + b"\0"):
        with pytest.raises(ValueError, match="not a positions frame"):
            decode_binary(bad)


def test_an_ack_comes_once_the_positions_are_stored(client, force):
    op = make_operation(client, force)
    with client.websocket_connect("/api/v1/operations/live") as device:
        _auth(device, force, client, "patrol1", op.id)
        device.send_json({"type": "positions", "id": 1, "items": _fixes(op.unit_id, 3)})
        ack = _ack(device)
        assert (ack["id"], ack["accepted"], ack["rejected"]) == (1, 3, [])
        assert _stored(force, op.id) == 3  # acknowledged: already written
        device.send_json({"type": "position", **_fixes(op.unit_id, 1)[0], "lat": 95})
        assert _ack(device)["rejected"] == [{"index": 0, "reason": "bad_coordinates"}]


def test_positions_dropped_while_the_database_is_down_are_not_acknowledged(
        client, force, monkeypatch):
    op = make_operation(client, force)
    hub = get_hub(force.runtime)

    def database_down(*_a, **_k):
        raise RuntimeError("database unreachable (test)")

    write = hub._write_rows  # put back when "the database is back"

    with client.websocket_connect("/api/v1/operations/live") as device:
        _auth(device, force, client, "patrol1", op.id)
        monkeypatch.setattr(positions, "MAX_PENDING", 2)
        monkeypatch.setattr(hub, "_write_rows", database_down)
        fixes = _fixes(op.unit_id, 3)
        device.send_json({"type": "positions", "id": 1, "items": fixes[:1]})
        device.send_json({"type": "positions", "id": 2, "items": fixes[1:]})
        first = _ack(device)  # three waiting, room for two: the oldest is given up
        assert (first["id"], first["accepted"], first["not_stored"]) == (1, 0, 1)
        assert hub.stats["dropped.db_unavailable"] == 1
        monkeypatch.setattr(hub, "_write_rows", write)  # the database is back
        second = _ack(device)
        assert (second["id"], second["accepted"], "not_stored" in second) == (2, 2, False)
    assert _stored(force, op.id) == 2


def test_a_post_answers_once_stored_or_says_it_could_not(client, force, monkeypatch):
    op = make_operation(client, force)
    url = f"/api/v1/operations/{op.id}/positions"
    r = client.post(url, headers=op.patrol, json={"items": _fixes(op.unit_id, 2)})
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert _stored(force, op.id) == 2
    hub = get_hub(force.runtime)
    write = hub._write_rows
    monkeypatch.setattr(hub, "_write_rows", lambda *_a: 1 / 0)  # the database is down
    from tocsin.operations import api

    monkeypatch.setattr(api, "STORE_TIMEOUT", 0.5)
    r = client.post(url, headers=op.patrol, json={"items": _fixes(op.unit_id, 1)})
    assert r.status_code == 503 and r.json()["error"]["code"] == "positions.not_stored"
    monkeypatch.setattr(hub, "_write_rows", write)
    hub.flush()
    assert _stored(force, op.id) == 3  # kept, and written once the database answered


def test_a_screen_asking_for_binary_gets_binary_positions(client, force):
    op = make_operation(client, force)
    hub = get_hub(force.runtime)
    with client.websocket_connect("/api/v1/operations/live") as screen, \
            client.websocket_connect("/api/v1/operations/live") as text_screen, \
            client.websocket_connect("/api/v1/operations/live") as device:
        _auth(screen, force, client, "commander1", op.id, format="binary", paced=True)
        _auth(text_screen, force, client, "commander1", op.id)
        _auth(device, force, client, "patrol1", op.id)
        fix = _fixes(op.unit_id, 1)[0]
        device.send_json({"type": "position", "heading": 90.5, **fix})
        assert _ack(device)["accepted"] == 1
        hub.tick()
        op_id, rows = decode_binary(screen.receive_bytes())
        as_text = text_screen.receive_json()
        assert op_id == op.id == as_text["operation_id"]
        ((uid, lat, lon, at, heading, speed),) = rows
        ((t_uid, t_lat, t_lon, t_at, t_heading, t_speed),) = as_text["u"]
        assert (uid, at, heading, speed) == (t_uid, t_at, t_heading, t_speed)
        assert (uid, heading, speed) == (op.unit_id, 90.5, None)
        assert math.isclose(lat, t_lat, abs_tol=1e-7) and math.isclose(lon, t_lon,
                                                                        abs_tol=1e-7)
        assert at == int(dt.datetime.fromisoformat(fix["at"]).timestamp() * 1000)
        screen.send_json({"type": "seen"})


def test_a_changed_user_is_told_to_reconnect(client, force):
    op = make_operation(client, force)
    with client.websocket_connect("/api/v1/operations/live") as device, \
            client.websocket_connect("/api/v1/operations/live") as screen:
        _auth(device, force, client, "patrol1", op.id)
        _auth(screen, force, client, "commander1", op.id)
        r = client.patch(f"/api/v1/users/{force.users['patrol1']}",
                         headers=force.headers(client, "admin"),
                         json={"roles": ["patrol_officer", "dispatcher"]})
        assert r.status_code == 200, r.text
        seen = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(device.receive_json())
        assert closed.value.code == 4409 and {"type": "closed", "code": 4409} in seen
        device_fix = _fixes(op.unit_id, 1)  # the other screen stays
        screen.send_json({"type": "positions", "id": 9, "items": device_fix})
        assert _ack(screen)["accepted"] == 1
