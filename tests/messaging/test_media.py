"""Media: real content type, bombs, truncation, size limit, EXIF GPS, thumbnails,
resumable chunks, encryption at rest, access to downloads."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image
from sqlalchemy import select

from tests.messaging.helpers import C3, Mx, jpeg
from tocsin.messaging import crypto
from tocsin.messaging.models import Media
from tocsin.messaging.storage import MediaService, get_media


def _media_id(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def test_photo_sent_with_thumbnail_and_only_members_can_download(client, force, runtime):
    a, b, c = Mx(client, "patrol1"), Mx(client, "patrol2"), Mx(client, "inv2")
    room = a.create_room(name="Scene", invite=[b.user_id])
    b.post(f"{C3}/rooms/{room}/join")
    photo = jpeg((800, 600))
    up = a.upload(photo, filename="../../etc/passwd.jpg")
    assert up.status_code == 200, up.text
    uri, thumb = up.json()["content_uri"], up.json()["org.tocsin.thumbnail_uri"]
    dl = f"/_matrix/client/v1/media/download/tocsin.local/{_media_id(uri)}"
    # before it is shared, only the uploader may fetch it
    assert b.get(dl).status_code == 403
    a.send_ok(room, content={"msgtype": "m.image", "body": "scene.jpg", "url": uri,
                             "info": {"mimetype": "image/jpeg", "thumbnail_url": thumb}})
    got = b.get(dl)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(got.content)).size == (800, 600)
    assert "passwd" in got.headers["content-disposition"] and "/" not in \
        got.headers["content-disposition"].split("''")[-1].replace("%2F", "/").strip("/")
    small = b.get(f"/_matrix/client/v1/media/thumbnail/tocsin.local/{_media_id(uri)}")
    assert small.status_code == 200
    assert max(Image.open(io.BytesIO(small.content)).size) <= 320
    assert c.get(dl).status_code == 403
    # a member cannot re-share media into a room its uploader did not choose... unless
    # they could see it: b can forward it, c cannot attach it anywhere
    other = c.create_room(name="elsewhere")
    bad = c.send(other, content={"msgtype": "m.image", "body": "x", "url": uri})
    assert bad.status_code == 403
    # stored encrypted: the file on disk does not contain the JPEG
    with runtime.db.read() as s:
        m = s.get(Media, _media_id(uri))
    blob = get_media(runtime).store.path(m.scope, m.sha256).read_bytes()
    assert blob[:4] == b"TCM1" and b"JFIF" not in blob and got.content[:200] not in blob


def test_exif_gps_is_removed_unless_scene_photo(client, force, runtime):
    a = Mx(client, "patrol1")
    plain = a.upload(jpeg(gps=True)).json()["content_uri"]
    data = a.get(f"/_matrix/client/v1/media/download/tocsin.local/{_media_id(plain)}").content
    assert 0x8825 not in Image.open(io.BytesIO(data)).getexif()
    assert b"PoliceCam" not in data
    scene = a.upload(jpeg(gps=True), **{"org.tocsin.scene": "1"}).json()["content_uri"]
    data = a.get(f"/_matrix/client/v1/media/download/tocsin.local/{_media_id(scene)}").content
    assert 0x8825 not in Image.open(io.BytesIO(data)).getexif()  # never in the file
    with runtime.db.read() as s:
        m = s.get(Media, _media_id(scene))
        assert m.scene and abs(m.lat - 60.17) < 0.01 and abs(m.lon - 24.94) < 0.01
        assert s.get(Media, _media_id(plain)).lat is None


def test_real_content_type_bombs_truncation_and_size(client, force, runtime):
    a = Mx(client, "patrol1")
    html = a.upload(b"<html><script>alert(1)</script></html>", filename="cat.jpg")
    assert html.status_code == 415 and html.json()["org.tocsin.code"] == "media.unsupported_type"
    truncated = jpeg((400, 300))[:300]
    r = a.upload(truncated)
    assert r.status_code in (400, 422) and r.json()["org.tocsin.code"] == "media.corrupt"
    # a PNG declaring 30000 x 30000 pixels (900 Mpx) in a few kB
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")
    r = a.upload(bomb.getvalue(), filename="bomb.png", ctype="image/png")
    assert r.json()["org.tocsin.code"] == "media.decompression_bomb"
    get_media(runtime).config.max_upload_bytes = 50_000
    r = a.upload(b"\xff\xd8\xff" + b"\0" * 60_000)
    assert r.status_code == 413 and r.json()["errcode"] == "M_TOO_LARGE"
    with runtime.db.read() as s:
        assert s.scalars(select(Media)).all() == []
    assert list(get_media(runtime).store.tmp.iterdir()) == []  # no plaintext left behind


def test_resumable_upload_in_chunks(client, force, runtime):
    h = force.headers(client, "patrol1")
    a = Mx(client, "patrol1")
    room = a.create_room(name="Video")
    data = jpeg((1200, 900), color=(10, 120, 200))
    r = client.post("/api/v1/messaging/uploads", headers=h,
                    json={"size": len(data), "filename": "scene.jpg", "room_id": room})
    assert r.status_code == 201
    uid = r.json()["upload_id"]
    half = len(data) // 2
    assert client.put(f"/api/v1/messaging/uploads/{uid}?offset=0", content=data[:half],
                      headers=h).json()["received"] == half
    # the connection drops; the client asks where to resume and resends a chunk twice
    assert client.get(f"/api/v1/messaging/uploads/{uid}", headers=h).json()["received"] == half
    assert client.put(f"/api/v1/messaging/uploads/{uid}?offset=0", content=data[:half],
                      headers=h).json()["received"] == half
    wrong = client.put(f"/api/v1/messaging/uploads/{uid}?offset=7", content=data[7:half + 9],
                       headers=h)
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "media.bad_offset"
    early = client.post(f"/api/v1/messaging/uploads/{uid}/complete", headers=h)
    assert early.json()["error"]["code"] == "media.truncated"
    client.put(f"/api/v1/messaging/uploads/{uid}?offset={half}", content=data[half:], headers=h)
    done = client.post(f"/api/v1/messaging/uploads/{uid}/complete", headers=h).json()
    assert done["content_type"] == "image/jpeg" and done["thumbnail_uri"]
    # partial chunks were kept encrypted too
    other = force.headers(client, "patrol2")
    assert client.get(f"/api/v1/messaging/uploads/{uid}", headers=other).status_code == 404
    got = a.get(f"/_matrix/client/v1/media/download/tocsin.local/"
                f"{_media_id(done['content_uri'])}")
    assert Image.open(io.BytesIO(got.content)).size == (1200, 900)


def test_video_gets_a_poster_frame(client, force):
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), (i * 40, 80, 160)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    a = Mx(client, "patrol1")
    r = a.upload(buf.getvalue(), filename="clip.mp4", ctype="video/mp4")
    assert r.status_code == 200, r.text
    assert r.json()["org.tocsin.content_type"] == "video/mp4"
    assert r.json()["org.tocsin.thumbnail_uri"] and r.json()["org.tocsin.w"] == 160


def test_encrypted_blob_detects_tampering(tmp_path):
    from tocsin.messaging import crypto

    key = b"k" * 32
    data = bytes(range(256)) * 9000  # > 2 segments
    path = tmp_path / "blob"
    with open(path, "wb") as fh:
        crypto.encrypt_stream(key, [data[:1000], data[1000:]], fh)
    with open(path, "rb") as fh:
        assert b"".join(crypto.decrypt_stream(key, fh)) == data
    raw = path.read_bytes()
    seg = crypto.SEGMENT + crypto.TAG
    for broken in (raw[:12 + seg], raw[:-1], raw[:40] + bytes([raw[40] ^ 1]) + raw[41:]):
        path.write_bytes(broken)
        with open(path, "rb") as fh:
            try:
                b"".join(crypto.decrypt_stream(key, fh))
            except crypto.CorruptBlob:
                continue
        raise AssertionError("tampered blob decrypted")
    assert struct.calcsize(">QB") == 9


def _row(runtime, media_id: str) -> Media:
    with runtime.db.read() as s:
        return s.get(Media, media_id)


def _decrypts_under(runtime, m: Media, scope: str) -> bytes:
    ms = get_media(runtime)
    return b"".join(ms.store.read(scope, ms.key_for(scope), m.sha256))


def test_media_from_a_standard_client_moves_to_the_conversation_key(client, force, runtime):
    a, b = Mx(client, "patrol1"), Mx(client, "patrol2")
    room = a.create_room(name="Scene", invite=[b.user_id])
    b.post(f"{C3}/rooms/{room}/join")
    other = a.create_room(name="Station")
    # a standard Matrix client names no conversation at upload: the uploader's key
    up = a.upload(jpeg((400, 300))).json()
    uri, thumb_uri = up["content_uri"], up["org.tocsin.thumbnail_uri"]
    before, thumb_before = _row(runtime, _media_id(uri)), _row(runtime, _media_id(thumb_uri))
    user_scope = f"user:{force.users['patrol1']}"
    assert before.scope == thumb_before.scope == user_scope and before.room_id is None
    store = get_media(runtime).store
    plain = _decrypts_under(runtime, before, user_scope)
    # first attached to a conversation: re-encrypted under that conversation's key
    a.send_ok(room, content={"msgtype": "m.image", "body": "scene.jpg", "url": uri,
                             "info": {"thumbnail_url": thumb_uri}})
    room_scope = "room:" + room[1:].split(":")[0]
    for before_row in (before, thumb_before):
        after = _row(runtime, before_row.id)
        assert (after.scope, after.room_id) == (room_scope, room[1:].split(":")[0])
        assert not store.path(user_scope, after.sha256).exists()  # the old copy is gone
        assert store.path(room_scope, after.sha256).read_bytes()[:4] == b"TCM1"
    moved = _row(runtime, before.id)
    assert _decrypts_under(runtime, moved, room_scope) == plain
    with pytest.raises(crypto.CorruptBlob):  # the uploader's key no longer opens it
        ms = get_media(runtime)
        with open(store.path(room_scope, moved.sha256), "rb") as fh:
            b"".join(crypto.decrypt_stream(ms.key_for(user_scope), fh))
    dl = f"/_matrix/client/v1/media/download/tocsin.local/{_media_id(uri)}"
    assert b.get(dl).content == plain
    # shared again elsewhere: it stays under the first conversation's key, still readable
    a.send_ok(other, content={"msgtype": "m.image", "body": "again", "url": uri})
    assert _row(runtime, before.id).scope == room_scope
    assert a.get(dl).content == plain


def test_an_interrupted_move_is_finished_later(client, force, runtime, monkeypatch):
    a = Mx(client, "patrol1")
    room = a.create_room(name="Scene")
    uri = a.upload(jpeg((64, 48))).json()["content_uri"]

    def crash(self, media_id, room_id):
        raise OSError("disk full")

    monkeypatch.setattr(MediaService, "rescope", crash)
    a.send_ok(room, content={"msgtype": "m.image", "body": "x.jpg", "url": uri})  # still sent
    assert _row(runtime, _media_id(uri)).scope.startswith("user:")
    dl = f"/_matrix/client/v1/media/download/tocsin.local/{_media_id(uri)}"
    assert a.get(dl).status_code == 200
    monkeypatch.undo()
    assert get_media(runtime).rescope_pending() == 1
    assert _row(runtime, _media_id(uri)).scope == "room:" + room[1:].split(":")[0]
    assert a.get(dl).status_code == 200
    assert get_media(runtime).rescope_pending() == 0


def test_an_alert_photo_moves_to_the_broadcast_channel_key(client, force, runtime):
    up = Mx(client, "commander1").upload(jpeg((64, 48))).json()
    r = client.post("/api/v1/messaging/alerts", headers=force.headers(client, "commander1"),
                    json={"kind": "missing_person", "title": "Missing: Aino, 8",
                          "unit_codes": ["B1111"], "photo": up["content_uri"]})
    room = r.json()["room_id"][1:].split(":")[0]
    assert _row(runtime, _media_id(up["content_uri"])).scope == f"room:{room}"
    got = Mx(client, "patrol1").get("/_matrix/client/v1/media/download/tocsin.local/"
                                    + _media_id(up["content_uri"]))
    assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"
