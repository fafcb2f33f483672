"""Encryption at rest: a key per conversation, wrapped by the media master key.

Blobs are AES-256-GCM in 1 MiB segments (a STREAM-like construction): each
segment has its own nonce (random prefix + counter) and the segment index and a
"last segment" flag in its associated data, so segments cannot be reordered,
dropped or truncated without decryption failing.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TCM1"
SEGMENT = 1 << 20
TAG = 16


class CorruptBlob(Exception):
    pass


def wrap_key(master: bytes, scope: str, key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(master).encrypt(nonce, key, b"tocsin-media-key|" + scope.encode())


def unwrap_key(master: bytes, scope: str, wrapped: bytes) -> bytes:
    return AESGCM(master).decrypt(wrapped[:12], wrapped[12:],
                                  b"tocsin-media-key|" + scope.encode())


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">QB", index, 1 if last else 0)


def encrypt_stream(key: bytes, chunks: Iterable[bytes], out: BinaryIO) -> int:
    """Encrypt a stream of plaintext chunks into ``out``; returns plaintext size."""
    aes = AESGCM(key)
    prefix = os.urandom(8)
    out.write(MAGIC + prefix)
    buf = bytearray()
    index = total = 0
    pending: bytes | None = None

    def flush(segment: bytes, last: bool) -> None:
        nonlocal index
        nonce = prefix + struct.pack(">I", index)
        out.write(aes.encrypt(nonce, segment, _aad(index, last)))
        index += 1

    for chunk in chunks:
        total += len(chunk)
        buf += chunk
        while len(buf) > SEGMENT:
            if pending is not None:
                flush(pending, False)
            pending = bytes(buf[:SEGMENT])
            del buf[:SEGMENT]
    if buf:
        if pending is not None:
            flush(pending, False)
        flush(bytes(buf), True)
    elif pending is not None:
        flush(pending, True)
    else:
        flush(b"", True)
    return total


def decrypt_stream(key: bytes, src: BinaryIO) -> Iterator[bytes]:
    head = src.read(12)
    if len(head) != 12 or head[:4] != MAGIC:
        raise CorruptBlob("not a Tocsin media blob")
    prefix = head[4:]
    aes = AESGCM(key)
    index = 0
    current = src.read(SEGMENT + TAG)
    while True:
        nxt = src.read(SEGMENT + TAG)
        last = not nxt
        nonce = prefix + struct.pack(">I", index)
        try:
            yield aes.decrypt(nonce, current, _aad(index, last))
        except Exception:
            raise CorruptBlob("media blob failed authentication") from None
        if last:
            return
        current, index = nxt, index + 1


def seal(key: bytes, data: bytes, aad: bytes = b"") -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, data, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    return AESGCM(key).decrypt(blob[:12], blob[12:], aad)
