"""Attachments: sniff the real type, refuse what is dangerous, extract the text.

Accepted: plain text (UTF-8), PDF, JPEG and PNG, recognised by their bytes (the
declared name must agree). Refused with a clear reason: archives (zip bombs),
files that are two formats at once (polyglots: a PDF or an image carrying a ZIP
directory, HTML or script), PDFs with active content, images whose pixel count
would blow up on decoding, anything over the size limit. PDF text is
extracted in a child process with a memory and time limit, so a compression
bomb inside a PDF kills the child, not the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from tocsin.core.errors import BadInput, TooLarge

MAX_ATTACHMENT = 20 * 1024 * 1024
MAX_TEXT = 1_000_000
MAX_PIXELS = 60_000_000
EXTRACT_TIMEOUT = 20
EXTRACT_MEMORY = 768 * 1024 * 1024

TYPES = {"text/plain": (".txt", ".text", ".csv", ".log"), "application/pdf": (".pdf",),
         "image/jpeg": (".jpg", ".jpeg"), "image/png": (".png",)}
_ARCHIVES = [(b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gzip"),
             (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"),
             (b"Rar!\x1a\x07", "rar"), (b"\x28\xb5\x2f\xfd", "zstd")]
_EXECUTABLES = [b"MZ", b"\x7fELF", b"#!"]
_ACTIVE_HTML = re.compile(rb"<\s*(script|html|svg|iframe|object|embed)\b", re.IGNORECASE)
_PDF_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFile|RichMedia)\b")
_FILENAME = re.compile(r"^[\w .()\-]{1,200}$")


@dataclasses.dataclass
class Checked:
    media_type: str
    sha256: str
    size: int
    text: str


def _refuse(message: str, code: str) -> BadInput:
    return BadInput(message, code=code)


def check_filename(name: str) -> str:
    name = name.strip()
    if not _FILENAME.match(name) or name.startswith(".") or ".." in name:
        raise _refuse("file name must be 1-200 letters, digits, spaces, . _ - ( )",
                      "attachment.bad_name")
    return name


def sniff(head: bytes, filename: str) -> str:
    for magic, kind in _ARCHIVES:
        if head.startswith(magic):
            raise _refuse(f"archives ({kind}) are not accepted; attach the files themselves",
                          "attachment.archive")
    if any(head.startswith(m) for m in _EXECUTABLES):
        raise _refuse("executables and scripts are not accepted", "attachment.unsupported")
    if head.startswith(b"%PDF-"):
        media = "application/pdf"
    elif head.startswith(b"\xff\xd8\xff"):
        media = "image/jpeg"
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        media = "image/png"
    elif b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a cut multi-byte character at the end is fine
                raise _refuse("unsupported file type (not UTF-8 text, PDF, JPEG or PNG)",
                              "attachment.unsupported") from None
        media = "text/plain"
    else:
        raise _refuse("unsupported file type (not UTF-8 text, PDF, JPEG or PNG)",
                      "attachment.unsupported")
    ext = os.path.splitext(filename.lower())[1]
    if ext not in TYPES[media]:
        raise _refuse(f"the file's content is {media} but its name says {ext or 'nothing'}",
                      "attachment.type_mismatch")
    return media


def check_file(path: Path, filename: str) -> Checked:
    """Vet a stored upload; return its type, digest and extracted text, or raise."""
    size = path.stat().st_size
    if size == 0:
        raise _refuse("the file is empty", "attachment.empty")
    if size > MAX_ATTACHMENT:
        raise TooLarge(f"attachments are limited to {MAX_ATTACHMENT // (1024 * 1024)} MB",
                       code="attachment.too_large")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    media = sniff(head, filename)
    digest = hashlib.sha256()
    tail_zip = False
    active_html = False
    pdf_active = False
    with open(path, "rb") as fh:
        prev = b""
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            window = prev + chunk
            tail_zip = tail_zip or b"PK\x03\x04" in window or b"PK\x05\x06" in window
            active_html = active_html or bool(_ACTIVE_HTML.search(window))
            pdf_active = pdf_active or bool(_PDF_ACTIVE.search(window))
            prev = chunk[-64:]
    if tail_zip and media != "text/plain":
        raise _refuse("the file also holds a ZIP archive (polyglot); refused",
                      "attachment.polyglot")
    if active_html and media != "text/plain":
        raise _refuse("the file also holds HTML or script (polyglot); refused",
                      "attachment.polyglot")
    text = ""
    if media == "text/plain":
        raw = path.read_bytes()
        if b"\x00" in raw:
            raise _refuse("text files must not hold NUL bytes", "attachment.unsupported")
        try:
            text = raw.decode("utf-8")[:MAX_TEXT]
        except UnicodeDecodeError:
            raise _refuse("text files must be UTF-8", "attachment.unsupported") from None
    elif media == "application/pdf":
        if pdf_active:
            raise _refuse("PDFs with scripts, launch actions or embedded files are refused",
                          "attachment.active_content")
        text = extract_pdf_text(path)
    else:
        _check_image(path, media)
    return Checked(media, digest.hexdigest(), size, text)


def _check_image(path: Path, media: str) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt = {"JPEG": "image/jpeg", "PNG": "image/png"}.get(im.format or "")
            if fmt != media:
                raise _refuse("the image is not what its header says", "attachment.polyglot")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise _refuse(f"images are limited to {MAX_PIXELS // 1_000_000} megapixels "
                              "(decompression bomb?)", "attachment.image_too_large")
            im.verify()
    except BadInput:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure means "damaged"
        raise _refuse("the image is damaged or not a JPEG/PNG", "attachment.damaged") from None
    data = path.read_bytes()
    end = data.rfind(b"IEND\xaeB`\x82") + 8 if media == "image/png" else data.rfind(b"\xff\xd9") + 2
    if end < 8 or len(data) - end > 16:
        raise _refuse("data after the end of the image (polyglot); refused",
                      "attachment.polyglot")


def extract_pdf_text(path: Path) -> str:
    """Text of a PDF, extracted in a resource-limited child process."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tocsin.cases.extract_worker", str(path), str(MAX_TEXT),
             str(EXTRACT_MEMORY)],
            capture_output=True, timeout=EXTRACT_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        raise _refuse("the PDF takes too long to read (bomb?); refused",
                      "attachment.too_complex") from None
    if proc.returncode == 3:
        raise _refuse("the PDF is encrypted; attach a decrypted copy", "attachment.encrypted")
    if proc.returncode != 0:
        raise _refuse("the PDF is damaged or too large to read (bomb?); refused",
                      "attachment.damaged")
    return proc.stdout.decode("utf-8", "replace")[:MAX_TEXT]
