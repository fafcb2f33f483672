"""Retention: the purge deletes expired messages and the media only they used, runs
periodically on the server, and from ``tocsin messaging purge``."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.messaging.helpers import Mx, jpeg
from tocsin.messaging.models import Event, Media, MediaRef
from tocsin.messaging.retention import get_retention
from tocsin.messaging.service import get_service, now_ms
from tocsin.messaging.storage import get_media

DAY_MS = 86_400_000


def _age(runtime, *event_ids: str, days: int = 40) -> None:
    """Make messages look ``days`` old (instead of waiting)."""
    with runtime.db.session() as s:
        s.execute(update(Event).where(Event.event_id.in_(event_ids))
                  .values(origin_ts=now_ms() - days * DAY_MS))


def _retention(client, force, room: str, days: int = 30) -> None:
    r = client.post(f"/api/v1/messaging/rooms/{room}/retention", json={"days": days},
                    headers=force.headers(client, "admin"))
    assert r.status_code == 200, r.text


def _photo(a: Mx, room: str | None, color) -> dict:
    params = {"org.tocsin.room_id": room} if room else {}
    up = a.upload(jpeg((80, 60), color=color), **params)
    assert up.status_code == 200, up.text
    return up.json()


def _send_photo(a: Mx, room: str, up: dict) -> str:
    return a.send_ok(room, content={"msgtype": "m.image", "body": "scene.jpg",
                                    "url": up["content_uri"],
                                    "info": {"thumbnail_url": up["org.tocsin.thumbnail_uri"]}})


def _media(runtime, up: dict) -> Media | None:
    with runtime.db.read() as s:
        return s.get(Media, up["content_uri"].rsplit("/", 1)[1])


def _file(runtime, m: Media):
    return get_media(runtime).store.path(m.scope, m.sha256)


def test_purge_deletes_media_only_expired_messages_used(client, force, runtime):
    a = Mx(client, "patrol1")
    room = a.create_room(name="Short lived", invite=["@patrol2:tocsin.local"])
    other = a.create_room(name="Kept forever")
    b = Mx(client, "patrol2")
    assert b.post(f"/_matrix/client/v3/rooms/{room}/join").status_code == 200
    _retention(client, force, room)
    only_old = _photo(a, room, (200, 0, 0))
    still_used = _photo(a, room, (0, 200, 0))
    twin_old, twin_new = _photo(a, room, (0, 0, 200)), _photo(a, room, (0, 0, 200))
    shared = _photo(a, None, (90, 90, 90))
    old = [a.send_ok(room, "old news"), _send_photo(a, room, only_old),
           _send_photo(a, room, still_used), _send_photo(a, room, twin_old),
           _send_photo(a, room, shared)]
    _age(runtime, *old)
    new = [_send_photo(a, room, still_used), _send_photo(a, room, twin_new)]
    _send_photo(a, other, shared)
    gone, twin = _media(runtime, only_old), _media(runtime, twin_old)
    assert _file(runtime, gone).exists()
    assert (twin.scope, twin.sha256) == ((m := _media(runtime, twin_new)).scope, m.sha256)

    report = get_service(runtime).purge_expired()
    assert (report.events, report.conversations) == (5, 1)
    # only_old and twin_old lost their last reference (with their thumbnails)
    assert (report.media, report.media_refs) == (2, 6)
    # only_old and its thumbnail; twin_old shares its files (same bytes) with twin_new
    assert report.blobs == 2
    assert [e["event_id"] for e in a.messages(room).json()["chunk"]
            if e["type"] == "m.room.message"] == new[::-1]
    assert _media(runtime, only_old) is None and not _file(runtime, gone).exists()
    with runtime.db.read() as s:
        assert s.get(Media, gone.thumbnail_id) is None
        assert s.scalars(select(MediaRef).where(MediaRef.media_id == gone.id)).all() == []
    download = "/_matrix/client/v1/media/download/"
    assert b.get(download + only_old["content_uri"][6:]).status_code == 404
    assert _media(runtime, twin_old) is None and _file(runtime, twin).exists()
    for up in (still_used, twin_new):  # named by a kept message: still there for members
        assert b.get(download + up["content_uri"][6:]).status_code == 200
    assert a.get(download + shared["content_uri"][6:]).status_code == 200  # other room
    # nothing more is due: a second purge changes nothing
    assert get_service(runtime).purge_expired().events == 0


def test_purge_keeps_everything_under_legal_hold_and_removes_expired_alerts(client, force,
                                                                             runtime):
    cmd = force.headers(client, "commander1")
    r = client.post("/api/v1/messaging/alerts", headers=cmd, json={
        "kind": "general", "title": "Road closed", "unit_codes": ["B1111"]})
    alert = r.json()
    _retention(client, force, alert["room_id"])
    client.post(f"/api/v1/messaging/alerts/{alert['alert_id']}/ack",
                headers=force.headers(client, "patrol1"))
    _age(runtime, alert["event_id"])
    client.post(f"/api/v1/messaging/rooms/{alert['room_id']}/retention",
                json={"legal_hold": True}, headers=force.headers(client, "admin"))
    assert get_service(runtime).purge_expired().events == 0
    client.post(f"/api/v1/messaging/rooms/{alert['room_id']}/retention",
                json={"days": 30, "legal_hold": False}, headers=force.headers(client, "admin"))
    report = get_service(runtime).purge_expired()
    assert (report.events, report.alerts) == (1, 1)
    assert client.get(f"/api/v1/messaging/alerts/{alert['alert_id']}",
                      headers=cmd).status_code == 404


@pytest.fixture
def fast_purge(monkeypatch):
    monkeypatch.setenv("TOCSIN_MESSAGING_PURGE_INTERVAL", "0.2")


def test_the_server_purges_periodically_and_stops_cleanly(fast_purge, app, force, runtime):
    with TestClient(app) as client:
        worker = get_retention(runtime)
        assert worker.running and worker.interval == 0.2
        a = Mx(client, "patrol1")
        room = a.create_room(name="Short lived")
        _retention(client, force, room)
        _age(runtime, a.send_ok(room, "old news"))
        a.send_ok(room, "fresh")
        deadline = time.time() + 10
        while a.bodies(room) != ["fresh"] and time.time() < deadline:
            time.sleep(0.05)
        assert a.bodies(room) == ["fresh"]
        assert worker.runs >= 1
    assert not worker.running  # the runtime stopped: the thread ended


def test_interval_zero_turns_the_periodic_purge_off(monkeypatch, app, runtime):
    monkeypatch.setenv("TOCSIN_MESSAGING_PURGE_INTERVAL", "0")
    with TestClient(app):
        assert not get_retention(runtime).running


def test_cli_purge_prints_what_it_purged(client, force, runtime, settings, database_url,
                                         monkeypatch, capsys):
    from tocsin.cli import main

    a = Mx(client, "patrol1")
    room = a.create_room(name="Short lived")
    _retention(client, force, room)
    up = _photo(a, room, (250, 100, 0))
    _age(runtime, a.send_ok(room, "old news"), _send_photo(a, room, up))
    monkeypatch.delenv("TOCSIN_CONFIG_FILE", raising=False)
    monkeypatch.setenv("TOCSIN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TOCSIN_DATABASE_URL", database_url)
    capsys.readouterr()
    assert main(["messaging", "purge"]) == 0
    assert capsys.readouterr().out.strip() == (
        "Purged 2 messages in 1 conversations, 0 alerts, 2 media references, 1 media "
        "(2 encrypted files deleted).")
    assert _media(runtime, up) is None
    assert main(["messaging", "purge"]) == 0
    assert capsys.readouterr().out.startswith("Purged 0 messages in 0 conversations")
