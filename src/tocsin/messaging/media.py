"""Media: real content type, metadata stripping, thumbnails, encrypted storage.

The type of an upload is decided from its bytes, never its name or declared
header: a "JPEG" that is really HTML is refused. Images are decoded by Pillow
under a pixel limit (decompression bombs are refused), re-encoded without their
metadata (EXIF GPS, XMP, comments) unless the sender marks a "scene photo", in
which case the GPS position is kept apart (for the map) and still removed from
the file. Videos get a poster frame (PyAV, when installed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import os
import secrets
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from tocsin.core.errors import BadInput, TocsinError
from tocsin.messaging import crypto

MAX_PIXELS = 50_000_000
THUMB_SIZE = (320, 320)
IMAGE_MAX_BYTES = 60_000_000


class UnsupportedMedia(TocsinError):
    status = 415
    code = "media.unsupported_type"


def sniff(head: bytes) -> str | None:
    """Content type from the first bytes of a file, or None if not an accepted kind."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"qt  ",):
            return "video/quicktime"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand in (b"heic", b"heix", b"mif1", b"avif"):
            return None
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


@dataclasses.dataclass
class Processed:
    content_type: str
    path: Path  # plaintext file to store (metadata removed), temporary
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None  # JPEG
    lat: float | None = None
    lon: float | None = None


def _gps_to_deg(values, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
        deg = d + m / 60 + s / 3600
        return -deg if ref in ("S", "W", b"S", b"W") else deg
    except Exception:
        return None


def _open_image(path: Path):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.width * img.height > MAX_PIXELS:
                raise BadInput("image has too many pixels", code="media.decompression_bomb")
            img.load()
            return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput("image has too many pixels (decompression bomb)",
                       code="media.decompression_bomb") from None
    except BadInput:
        raise
    except Exception:
        raise BadInput("image is truncated or corrupt", code="media.corrupt") from None


def process_image(path: Path, content_type: str, keep_location: bool, workdir: Path
                  ) -> Processed:
    from PIL import ImageOps

    if path.stat().st_size > IMAGE_MAX_BYTES:
        raise BadInput("image file too large", code="media.too_large")
    img = _open_image(path)
    lat = lon = None
    exif = img.getexif()
    gps = exif.get_ifd(0x8825) if exif else {}
    if keep_location and gps:
        lat = _gps_to_deg(gps.get(2), gps.get(1))
        lon = _gps_to_deg(gps.get(4), gps.get(3))
    fmt = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF",
           "image/webp": "WEBP"}[content_type]
    # Re-encode: orientation applied, every metadata block (EXIF, GPS, XMP, comments) dropped.
    upright = ImageOps.exif_transpose(img) if fmt != "GIF" else img
    out = workdir / (secrets.token_hex(8) + ".clean")
    save_kwargs: dict = {}
    if fmt == "JPEG":
        upright = upright.convert("RGB") if upright.mode not in ("RGB", "L") else upright
        save_kwargs = {"quality": 92}
    elif fmt == "GIF":
        save_kwargs = {"save_all": getattr(img, "n_frames", 1) > 1}
    upright.save(out, fmt, **save_kwargs)
    thumb = upright.copy()
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    thumb.thumbnail(THUMB_SIZE)
    tb = io.BytesIO()
    thumb.save(tb, "JPEG", quality=80)
    return Processed(content_type, out, upright.width, upright.height, tb.getvalue(), lat, lon)


def process_video(path: Path, content_type: str) -> Processed:
    """Poster frame with PyAV if installed; a video that cannot be parsed is refused."""
    try:
        import av  # type: ignore
    except ImportError:  # pragma: no cover - optional
        return Processed(content_type, path)
    from PIL import Image

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise BadInput("video has no video stream", code="media.corrupt")
            for frame in container.decode(stream):
                img: Image.Image = frame.to_image()
                break
            else:
                raise BadInput("video has no frame", code="media.corrupt")
            width, height = img.width, img.height
    except BadInput:
        raise
    except Exception:
        raise BadInput("video is truncated or corrupt", code="media.corrupt") from None
    img.thumbnail(THUMB_SIZE)
    tb = io.BytesIO()
    img.convert("RGB").save(tb, "JPEG", quality=80)
    return Processed(content_type, path, width, height, tb.getvalue())


def process(path: Path, keep_location: bool, workdir: Path) -> Processed:
    with open(path, "rb") as fh:
        head = fh.read(64)
    content_type = sniff(head)
    if content_type is None:
        raise UnsupportedMedia("file content is not an accepted photo, video or PDF",
                               code="media.unsupported_type")
    if content_type.startswith("image/"):
        return process_image(path, content_type, keep_location, workdir)
    if content_type.startswith("video/"):
        return process_video(path, content_type)
    return Processed(content_type, path)


class BlobStore:
    """Content-addressed encrypted files: ``objects/<scope digest>/<sha[:2]>/<sha256>``."""

    def __init__(self, root: Path, master: bytes):
        self.root = root
        self.master = master
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmp, 0o700)

    def _dir(self, scope: str) -> Path:
        digest = hmac.new(self.master, scope.encode(), hashlib.sha256).hexdigest()[:24]
        return self.root / "objects" / digest

    def path(self, scope: str, sha: str) -> Path:
        return self._dir(scope) / sha[:2] / sha

    def temp_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp)
        return fd, Path(name)

    def put_file(self, scope: str, key: bytes, src: Path) -> tuple[str, int]:
        sha = hashlib.sha256()
        with open(src, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        digest = sha.hexdigest()
        with open(src, "rb") as fh:
            self._write(scope, key, digest, iter(lambda: fh.read(1 << 20), b""))
        return digest, src.stat().st_size

    def _write(self, scope: str, key: bytes, sha: str, chunks: Iterator[bytes]) -> None:
        """Encrypt plaintext ``chunks`` to the blob (scope, sha): atomic, durable, and a
        no-op when it exists (content-addressed: the same bytes in the same scope)."""
        dest = self.path(scope, sha)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = self.temp_file()
        try:
            with os.fdopen(fd, "wb") as out:
                crypto.encrypt_stream(key, chunks, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def reencrypt(self, old_scope: str, old_key: bytes, new_scope: str, new_key: bytes,
                  sha: str) -> None:
        """Copy a blob to another scope under that scope's key (streamed: the plaintext
        never reaches the disk). The old blob stays; the caller deletes it."""
        self._write(new_scope, new_key, sha, self.read(old_scope, old_key, sha))

    def put_bytes(self, scope: str, key: bytes, data: bytes) -> tuple[str, int]:
        fd, tmp = self.temp_file()
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return self.put_file(scope, key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, scope: str, key: bytes, sha: str) -> Iterator[bytes]:
        """The decrypted bytes. The file is opened now (FileNotFoundError if absent), so
        a download that has started survives the blob being moved or deleted."""
        try:
            fh = open(self.path(scope, sha), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise FileNotFoundError(sha) from None

        def chunks() -> Iterator[bytes]:
            with fh:
                yield from crypto.decrypt_stream(key, fh)

        return chunks()

    def delete(self, scope: str, sha: str) -> None:
        self.path(scope, sha).unlink(missing_ok=True)
