"""Media service: uploads (one-shot or resumable chunks), keys, downloads with access checks."""

from __future__ import annotations

import os
import re
import secrets
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from sqlalchemy import func, select, update

from tocsin.core import secrets as core_secrets
from tocsin.core.access import Principal
from tocsin.core.errors import BadInput, Conflict, Forbidden, NotFound, TooLarge
from tocsin.core.events import DomainEvent, emit
from tocsin.core.runtime import Runtime
from tocsin.messaging import crypto, media
from tocsin.messaging.models import Media, MediaRef, Room, RoomKey, Upload
from tocsin.messaging.service import MessagingService, get_service

CHUNK_MAX = 8 * 1024 * 1024


class MediaService:
    def __init__(self, runtime: Runtime, svc: MessagingService):
        self.rt = runtime
        self.svc = svc
        self.config = self.svc.config
        self.master = core_secrets.load_or_create(runtime.settings.resolved_keys_dir,
                                                  "media-master.key")
        self.root = runtime.settings.resolved_media_dir
        self.store = media.BlobStore(self.root, self.master)
        self.parts = self.root / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        os.chmod(self.parts, 0o700)
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # Keys --------------------------------------------------------------
    def key_for(self, scope: str) -> bytes:
        """The scope's data key (created and wrapped by the master key on first use)."""
        key = self._keys.get(scope)
        if key is not None:
            return key
        with self._lock:
            with self.rt.db.read() as s:
                row = s.get(RoomKey, scope)
            if row is None:
                fresh = secrets.token_bytes(32)
                try:
                    with self.rt.db.session() as s:
                        s.add(RoomKey(scope=scope, wrapped=crypto.wrap_key(self.master, scope,
                                                                           fresh)))
                except Exception:  # another node created it first
                    pass
                with self.rt.db.read() as s:
                    row = s.get(RoomKey, scope)
            key = crypto.unwrap_key(self.master, scope, row.wrapped)
            self._keys[scope] = key
            return key

    def _scope(self, principal: Principal, room_id: str | None) -> tuple[str, str | None]:
        if not room_id:
            return f"user:{principal.user_id}", None
        with self.rt.db.read() as s:
            room = self.svc.get_room(s, room_id)
            self.svc.require_member(s, room, principal)
            return f"room:{room.id}", room.id

    # One-shot upload ---------------------------------------------------
    async def receive_to_file(self, chunks: AsyncIterator[bytes], declared: int | None) -> Path:
        limit = self.config.max_upload_bytes
        if declared is not None and declared > limit:
            raise TooLarge(f"file over {limit} bytes", code="media.too_large")
        fd, path = self.store.temp_file()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"file over {limit} bytes", code="media.too_large")
                    out.write(chunk)
            if declared is not None and size != declared:
                raise BadInput(f"upload truncated: {size} of {declared} bytes",
                               code="media.truncated")
            if size == 0:
                raise BadInput("empty upload", code="media.empty")
            return path
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def store_file(self, principal: Principal, path: Path, *, filename: str | None,
                   room_id: str | None, scene: bool) -> Media:
        """Validate, clean and encrypt a received plaintext file (which is then removed)."""
        scope, room_local = self._scope(principal, room_id)
        cleaned = None
        try:
            processed = media.process(path, keep_location=scene, workdir=self.store.tmp)
            cleaned = processed.path if processed.path != path else None
            key = self.key_for(scope)
            sha, size = self.store.put_file(scope, key, processed.path)
            thumb_id = None
            with self.rt.db.session() as s:
                if processed.thumbnail:
                    tsha, tsize = self.store.put_bytes(scope, key, processed.thumbnail)
                    thumb = Media(id=secrets.token_urlsafe(18), sha256=tsha, scope=scope,
                                  content_type="image/jpeg", size=tsize,
                                  uploader_id=principal.user_id, room_id=room_local,
                                  is_thumbnail=True)
                    s.add(thumb)
                    thumb_id = thumb.id
                m = Media(id=secrets.token_urlsafe(18), sha256=sha, scope=scope,
                          content_type=processed.content_type, size=size,
                          filename=_safe_name(filename), width=processed.width,
                          height=processed.height, uploader_id=principal.user_id,
                          room_id=room_local, thumbnail_id=thumb_id, scene=scene,
                          lat=processed.lat if scene else None,
                          lon=processed.lon if scene else None)
                s.add(m)
                s.flush()
                emit(s, DomainEvent(type="messaging.media.uploaded", actor_id=principal.user_id,
                                    unit_id=principal.unit_id, record_kind="conversation",
                                    record_id=room_local, audience=[],
                                    payload={"media_id": m.id, "sha256": sha, "size": size,
                                             "content_type": m.content_type, "scene": scene}))
                return m
        finally:
            path.unlink(missing_ok=True)
            if cleaned is not None:
                cleaned.unlink(missing_ok=True)

    def store_bytes(self, principal: Principal, data: bytes, *, filename: str | None,
                    room_id: str | None = None, scene: bool = False) -> Media:
        """``store_file`` for bytes already in memory (another module's photo)."""
        if not data:
            raise BadInput("empty upload", code="media.empty")
        if len(data) > self.config.max_upload_bytes:
            raise TooLarge(f"file over {self.config.max_upload_bytes} bytes",
                           code="media.too_large")
        fd, path = self.store.temp_file()
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return self.store_file(principal, path, filename=filename, room_id=room_id,
                               scene=scene)

    # Resumable upload --------------------------------------------------
    def start_upload(self, principal: Principal, *, size: int, filename: str | None,
                     room_id: str | None, scene: bool) -> Upload:
        if size <= 0:
            raise BadInput("size must be positive", code="media.empty")
        if size > self.config.max_upload_bytes:
            raise TooLarge(f"file over {self.config.max_upload_bytes} bytes",
                           code="media.too_large")
        _, room_local = self._scope(principal, room_id)
        with self.rt.db.session() as s:
            up = Upload(id=secrets.token_urlsafe(18), user_id=principal.user_id,
                        room_id=room_local, size=size, received=0,
                        filename=_safe_name(filename), scene=scene)
            s.add(up)
            return up

    def _upload(self, s, principal: Principal, upload_id: str) -> Upload:
        up = s.get(Upload, upload_id, with_for_update=True)
        if up is None or up.user_id != principal.user_id:
            raise NotFound("no such upload", code="media.upload_not_found")
        return up

    def upload_status(self, principal: Principal, upload_id: str) -> Upload:
        with self.rt.db.read() as s:
            up = s.get(Upload, upload_id)
            if up is None or up.user_id != principal.user_id:
                raise NotFound("no such upload", code="media.upload_not_found")
            return up

    def put_chunk(self, principal: Principal, upload_id: str, offset: int, data: bytes) -> int:
        """Append a chunk at ``offset`` (= bytes received so far); a resent chunk is a no-op."""
        if len(data) > CHUNK_MAX:
            raise TooLarge(f"chunk over {CHUNK_MAX} bytes", code="media.chunk_too_large")
        if not data:
            raise BadInput("empty chunk", code="media.empty")
        key = self.key_for(self._scope_of(self.upload_status(principal, upload_id)))
        with self.rt.db.session() as s:
            up = self._upload(s, principal, upload_id)
            if up.media_id:
                raise Conflict("upload already completed", code="media.upload_complete")
            if offset + len(data) <= up.received:
                return up.received  # a retried chunk that already arrived
            if offset != up.received:
                raise Conflict(f"expected offset {up.received}", code="media.bad_offset",
                               details={"received": up.received})
            if up.received + len(data) > up.size:
                raise TooLarge("more bytes than declared", code="media.too_large")
            part = self.parts / up.id
            record = crypto.seal(key, data, struct.pack(">Q", offset))
            with open(part, "ab") as fh:
                fh.write(struct.pack(">I", len(record)) + record)
                fh.flush()
                os.fsync(fh.fileno())
            up.received += len(data)
            return up.received

    def _scope_of(self, up: Upload) -> str:
        return f"room:{up.room_id}" if up.room_id else f"user:{up.user_id}"

    def complete_upload(self, principal: Principal, upload_id: str) -> Media:
        with self.rt.db.read() as s:
            up = s.get(Upload, upload_id)
            if up is None or up.user_id != principal.user_id:
                raise NotFound("no such upload", code="media.upload_not_found")
        if up.media_id:
            with self.rt.db.read() as s:
                return s.get(Media, up.media_id)
        if up.received != up.size:
            raise BadInput(f"upload incomplete: {up.received} of {up.size} bytes",
                           code="media.truncated", details={"received": up.received})
        key = self.key_for(self._scope_of(up))
        fd, path = self.store.temp_file()
        with os.fdopen(fd, "wb") as out, open(self.parts / up.id, "rb") as fh:
            offset = 0
            while True:
                head = fh.read(4)
                if not head:
                    break
                (n,) = struct.unpack(">I", head)
                chunk = crypto.open_sealed(key, fh.read(n), struct.pack(">Q", offset))
                out.write(chunk)
                offset += len(chunk)
        room_mx = self.svc.room_mx(up.room_id) if up.room_id else None
        m = self.store_file(principal, path, filename=up.filename, room_id=room_mx,
                            scene=up.scene)
        with self.rt.db.session() as s:
            row = s.get(Upload, up.id)
            row.media_id = m.id
        (self.parts / up.id).unlink(missing_ok=True)
        return m

    # Download ----------------------------------------------------------
    def open(self, principal: Principal, media_id: str, *, thumbnail: bool = False
             ) -> tuple[Media, Iterator[bytes]]:
        """Check access, record the read, and stream the decrypted bytes."""
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", media_id):
            raise NotFound("no such media", code="media.not_found")
        with self.rt.db.session() as s:
            m = s.get(Media, media_id)
            if m is None:
                raise NotFound("no such media", code="media.not_found")
            if not self._readable(s, m, principal):
                raise Forbidden("you may not see this media", code="media.forbidden")
            if thumbnail and m.thumbnail_id:
                m = s.get(Media, m.thumbnail_id)
            emit(s, DomainEvent(type="messaging.media.read", actor_id=principal.user_id,
                                unit_id=principal.unit_id, record_kind="conversation",
                                record_id=m.room_id, audience=[],
                                payload={"media_id": m.id, "thumbnail": m.is_thumbnail}))
        try:
            return m, self.store.read(m.scope, self.key_for(m.scope), m.sha256)
        except FileNotFoundError:  # moved to its conversation's key an instant ago?
            with self.rt.db.read() as s:
                m = s.get(Media, m.id)
            if m is None:
                raise NotFound("no such media", code="media.not_found") from None
            return m, self.store.read(m.scope, self.key_for(m.scope), m.sha256)

    # Moving media to its conversation's key ------------------------------
    def rescope(self, media_id: str, room_id: str) -> bool:
        """Re-encrypt media uploaded without a conversation (a standard Matrix client
        names none at upload, so it is stored under its uploader's key) under the key
        of the conversation it is first attached to, like media uploaded into it, and
        delete the uploader-key copy. Thumbnail included. Returns whether it moved.

        Safe against a concurrent move (the database row decides the winner; the
        loser removes its copy) and against a crash (the row still names the old
        copy, which stays until the row moves; ``rescope_pending`` finishes it)."""
        with self.rt.db.read() as s:
            m = s.get(Media, media_id)
            if m is None or not m.scope.startswith("user:") or m.is_thumbnail:
                return False
            rows = [m] + [t for t in [s.get(Media, m.thumbnail_id or "")] if t is not None]
        old, new = m.scope, f"room:{room_id}"
        old_key, new_key = self.key_for(old), self.key_for(new)
        files = {r.sha256 for r in rows}
        for sha in files:
            self.store.reencrypt(old, old_key, new, new_key, sha)
        ids = [r.id for r in rows]
        with self.rt.db.session() as s:
            moved = s.execute(update(Media).where(Media.id.in_(ids), Media.scope == old)
                              .values(scope=new, room_id=room_id)).rowcount or 0
            if moved:
                emit(s, DomainEvent(type="messaging.media.rescoped", actor_id=m.uploader_id,
                                    record_kind="conversation", record_id=room_id,
                                    audience=[], payload={"media_ids": ids,
                                                          "room_id": room_id}))
            scope_left = old if moved else new  # the loser of a race undoes its copy
            unused = [sha for sha in files if s.scalar(select(Media.id).where(
                Media.scope == scope_left, Media.sha256 == sha).limit(1)) is None]
        for sha in unused:
            self.store.delete(scope_left, sha)
        return bool(moved)

    def rescope_pending(self, limit: int = 1000) -> int:
        """Finish moves that a crash or an error interrupted: media still under an
        uploader's key although a conversation references it."""
        with self.rt.db.read() as s:
            pending = s.execute(
                select(Media.id, func.min(MediaRef.room_id))
                .join(MediaRef, MediaRef.media_id == Media.id)
                .where(Media.scope.like("user:%"), Media.is_thumbnail.is_(False))
                .group_by(Media.id).limit(limit)).all()
        return sum(self.rescope(mid, rid) for mid, rid in pending)

    def _readable(self, s, m: Media, principal: Principal) -> bool:
        if m.uploader_id == principal.user_id:
            return True
        if m.room_id:
            room = s.get(Room, m.room_id)
            if room and self.svc.membership(s, room, principal.user_id,
                                            principal.unit_path) == "join":
                return True
        if m.is_thumbnail:
            parent = s.scalar(select(Media).where(Media.thumbnail_id == m.id))
            if parent is not None:
                return self.svc._media_readable(s, parent, principal)
        return self.svc._media_readable(s, m, principal)


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    name = os.path.basename(name.replace("\\", "/"))
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name)[:200]
    return name or None


def get_media(runtime: Runtime) -> MediaService:
    svc = get_service(runtime)  # built first: runtime.service is not re-entrant
    return runtime.service("messaging.media", lambda rt: MediaService(rt, svc))
