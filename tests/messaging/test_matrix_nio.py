"""matrix-nio, a real Matrix client from PyPI, drives a real Tocsin server process."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.messaging.helpers import jpeg

nio = pytest.importorskip("nio")


async def _client(url: str, user: str, device: str) -> nio.AsyncClient:
    c = nio.AsyncClient(url, f"@{user}:tocsin.local")
    r = await c.login(PASSWORD, device_name=device)
    assert isinstance(r, nio.LoginResponse), r
    return c


async def _scenario(url: str) -> None:
    a = await _client(url, "patrol1", "nio phone")
    b = await _client(url, "patrol2", "nio desk")
    try:
        who = await a.whoami()
        assert who.user_id == "@patrol1:tocsin.local" and who.device_id == a.device_id
        created = await a.room_create(name="Scene 42", invite=["@patrol2:tocsin.local"])
        assert isinstance(created, nio.RoomCreateResponse), created
        room = created.room_id
        first = await b.sync(timeout=0)
        assert room in first.rooms.invite
        assert isinstance(await b.join(room), nio.JoinResponse)
        await b.sync(timeout=0, since=b.next_batch)
        # b long-polls; a sends while b waits: the sync returns with the message
        waiting = asyncio.ensure_future(b.sync(timeout=20000, since=b.next_batch))
        await asyncio.sleep(0.3)
        sent = await a.room_send(room, "m.room.message", {"msgtype": "m.text",
                                                          "body": "unit 7 on scene"})
        assert isinstance(sent, nio.RoomSendResponse), sent
        got = await waiting
        bodies = [e.body for e in got.rooms.join[room].timeline.events
                  if isinstance(e, nio.RoomMessageText)]
        assert bodies == ["unit 7 on scene"]
        # a photo: upload, send as m.image, the other client downloads it
        data = jpeg((320, 240))
        up, _ = await a.upload(io.BytesIO(data), content_type="image/jpeg",
                               filename="scene.jpg", filesize=len(data))
        assert isinstance(up, nio.UploadResponse), up
        await a.room_send(room, "m.room.message", {"msgtype": "m.image", "body": "scene.jpg",
                                                   "url": up.content_uri})
        dl = await b.download(up.content_uri)
        assert isinstance(dl, nio.DownloadResponse), dl
        assert dl.body[:3] == b"\xff\xd8\xff" and dl.content_type == "image/jpeg"
        hist = await b.room_messages(room, start="", limit=10)
        assert isinstance(hist, nio.RoomMessagesResponse), hist
        assert any(isinstance(e, nio.RoomMessageImage) for e in hist.chunk)
        red = await a.room_redact(room, sent.event_id, reason="typo")
        assert isinstance(red, nio.RoomRedactResponse), red
        assert isinstance(await b.room_typing(room, True), nio.RoomTypingResponse)
        assert isinstance(await b.room_read_markers(room, sent.event_id, sent.event_id),
                          nio.RoomReadMarkersResponse)
        assert isinstance(await b.room_leave(room), nio.RoomLeaveResponse)
        left = await a.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "x"})
        assert isinstance(left, nio.RoomSendResponse)
        assert isinstance(await b.room_messages(room, start=""), nio.RoomMessagesError)
        await _alerts_reach_a_standard_client(url, b)
        # logging out (revoking the Tocsin session) cuts the client off
        token = a.access_token
        assert isinstance(await a.logout(), nio.LogoutResponse)
        after = httpx.get(url + "/_matrix/client/v3/account/whoami",
                          headers={"Authorization": f"Bearer {token}"})
        assert after.status_code == 401 and after.json()["errcode"] == "M_UNKNOWN_TOKEN"
    finally:
        await a.close()
        await b.close()


async def _alerts_reach_a_standard_client(url: str, b: nio.AsyncClient) -> None:
    """Broadcast alerts are ordinary messages to nio: text, and a photo with a caption."""
    async with httpx.AsyncClient(base_url=url) as http:
        login = await http.post("/api/v1/auth/login", json={"username": "commander1",
                                                           "password": PASSWORD})
        cmd = {"Authorization": f"Bearer {login.json()['access_token']}"}
        photo = await http.post("/_matrix/media/v3/upload", params={"filename": "aino.jpg"},
                                content=jpeg((120, 90)),
                                headers={**cmd, "Content-Type": "image/jpeg"})
        uri = photo.json()["content_uri"]
        alerts = []
        for body in ({"kind": "wanted_vehicle", "title": "Blue van ABC-123",
                      "description": "Armed occupants", "unit_codes": ["B1112"]},
                     {"kind": "missing_person", "title": "Missing: Aino, 8",
                      "unit_codes": ["B1112"], "photo": uri}):
            r = await http.post("/api/v1/messaging/alerts", json=body, headers=cmd)
            assert r.status_code == 201, r.text
            alerts.append(r.json())
    got = await b.sync(timeout=0, since=b.next_batch)
    events = {e.event_id: e for e in got.rooms.join[alerts[0]["room_id"]].timeline.events}
    text, image = events[alerts[0]["event_id"]], events[alerts[1]["event_id"]]
    assert isinstance(text, nio.RoomMessageText), text
    assert text.body == "ALERT (wanted vehicle): Blue van ABC-123\nArmed occupants"
    assert "<strong>ALERT (wanted vehicle): Blue van ABC-123</strong>" in text.formatted_body
    assert isinstance(image, nio.RoomMessageImage), image
    assert image.body == "ALERT (missing person): Missing: Aino, 8" and image.url == uri
    assert image.source["content"]["org.tocsin.alert"]["kind"] == "missing_person"
    dl = await b.download(uri)
    assert isinstance(dl, nio.DownloadResponse) and dl.body[:3] == b"\xff\xd8\xff"


def test_matrix_nio_client_end_to_end(node):
    # In its own thread: the session's Playwright browser keeps an event loop
    # running on the main thread once an end-to-end test has started it.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _scenario(node.url)).result()
