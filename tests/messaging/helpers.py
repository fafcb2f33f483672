"""Small Matrix client over a TestClient or httpx (tests only)."""

from __future__ import annotations

import io
import itertools

from tests.conftest import PASSWORD

C3 = "/_matrix/client/v3"
_txn = itertools.count(1)


class Mx:
    def __init__(self, http, username: str, device: str = "test device"):
        self.http = http
        r = http.post(C3 + "/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": username},
            "password": PASSWORD, "initial_device_display_name": device})
        assert r.status_code == 200, r.text
        body = r.json()
        self.token, self.user_id, self.device_id = (body["access_token"], body["user_id"],
                                                    body["device_id"])
        self.h = {"Authorization": f"Bearer {self.token}"}

    def get(self, path, **kw):
        return self.http.get(path, headers=self.h, **kw)

    def post(self, path, json=None, **kw):
        return self.http.post(path, headers=self.h, json=json if json is not None else {}, **kw)

    def put(self, path, json=None, **kw):
        return self.http.put(path, headers=self.h, json=json if json is not None else {}, **kw)

    def create_room(self, **body) -> str:
        r = self.post(C3 + "/createRoom", body)
        assert r.status_code == 200, r.text
        return r.json()["room_id"]

    def send(self, room: str, body: str = "hi", txn: str | None = None, etype="m.room.message",
             content: dict | None = None):
        content = content if content is not None else {"msgtype": "m.text", "body": body}
        return self.put(f"{C3}/rooms/{room}/send/{etype}/{txn or next(_txn)}", content)

    def send_ok(self, room: str, body: str = "hi", **kw) -> str:
        r = self.send(room, body, **kw)
        assert r.status_code == 200, r.text
        return r.json()["event_id"]

    def messages(self, room: str, limit: int = 50):
        return self.get(f"{C3}/rooms/{room}/messages", params={"dir": "b", "limit": limit})

    def bodies(self, room: str) -> list[str]:
        r = self.messages(room)
        assert r.status_code == 200, r.text
        return [e["content"].get("body") for e in reversed(r.json()["chunk"])
                if e["type"] == "m.room.message"]

    def sync(self, since: str | None = None, timeout: int = 0) -> dict:
        params = {"timeout": timeout}
        if since:
            params["since"] = since
        r = self.get(C3 + "/sync", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def upload(self, data: bytes, filename="photo.jpg", ctype="image/jpeg", **params):
        return self.http.post("/_matrix/media/v3/upload", params={"filename": filename, **params},
                              content=data, headers={**self.h, "Content-Type": ctype})


def jpeg(size=(64, 48), gps: bool = False, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    img = Image.new("RGB", size, color)
    buf = io.BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PoliceCam"
        exif[0x8825] = {1: "N", 2: (60.0, 10.0, 12.0), 3: "E", 4: (24.0, 56.0, 30.0)}
        img.save(buf, "JPEG", exif=exif.tobytes())
    else:
        img.save(buf, "JPEG")
    return buf.getvalue()
