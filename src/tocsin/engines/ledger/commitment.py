"""Salted commitments: what the ledger appends instead of personal data.

A record is serialised canonically (:func:`canonical_json`), a fresh random
salt is drawn (:func:`new_salt`), and the log receives only
``commit(salt, canonical_bytes)``.  Whoever holds the record and its salt can
later prove that the log committed to exactly that record; whoever holds only
the log learns nothing about it.  Erasing the salt (or the record) makes the
commitment meaningless without rewriting the log.

``commit`` is ``SHA-256("tocsin/commitment/v1\\n" || salt || data)`` with a
32-byte salt.  The domain prefix keeps commitments distinct from any other
SHA-256 use (leaf and node hashes start with 0x00 / 0x01), and the fixed salt
length makes the salt/data split unambiguous.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from typing import Any

__all__ = ["DOMAIN", "SALT_SIZE", "canonical_json", "commit", "new_salt", "open_commitment"]

DOMAIN = b"tocsin/commitment/v1\n"
SALT_SIZE = 32


def _check(obj: Any, path: str = "$") -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{path}: object keys must be strings, got {type(key).__name__} {key!r}")
            _check(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check(value, f"{path}[{i}]")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{path}: {obj!r} has no JSON representation")
    elif obj is None or isinstance(obj, (str, int, bool)):
        pass
    else:
        raise TypeError(f"{path}: {type(obj).__name__} is not JSON (convert it first)")


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity.

    Only str keys are accepted (JSON would silently turn ``1`` into ``"1"``
    and make two different records serialise alike).
    """
    _check(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def new_salt() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(SALT_SIZE)


def commit(salt: bytes, canonical_bytes: bytes) -> bytes:
    """``SHA-256(DOMAIN || salt || canonical_bytes)`` (32 bytes)."""
    if not isinstance(salt, (bytes, bytearray)) or len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    if not isinstance(canonical_bytes, (bytes, bytearray)):
        raise TypeError("commit() takes the canonical bytes of the record, see canonical_json()")
    return hashlib.sha256(DOMAIN + bytes(salt) + bytes(canonical_bytes)).digest()


def open_commitment(commitment: bytes, salt: bytes, canonical_bytes: bytes) -> bool:
    """True if ``commitment`` commits to ``canonical_bytes`` under ``salt``."""
    return secrets.compare_digest(commit(salt, canonical_bytes), bytes(commitment))
