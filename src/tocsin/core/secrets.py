"""Secrets generated on first use, stored 0600 under the keys directory, never printed."""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Callable
from pathlib import Path


def _once(keys_dir: Path, name: str, make: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The file's bytes, created atomically (O_EXCL) with ``make()`` if absent.

    O_EXCL makes two processes starting together agree on one secret.
    Returns ``(data, created)``.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    path = keys_dir / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes(), False
    try:
        value = make()
        os.write(fd, value)
        os.fsync(fd)
    finally:
        os.close(fd)
    return value, True


def load_or_create(keys_dir: Path, name: str, nbytes: int = 32) -> bytes:
    """Return the random secret ``name`` of ``nbytes`` bytes, creating it if absent."""
    data, _ = _once(keys_dir, name, lambda: _secrets.token_bytes(nbytes))
    if len(data) < nbytes:
        raise RuntimeError(f"secret file {keys_dir / name} is truncated; remove it to regenerate")
    return data


def load_or_create_text(keys_dir: Path, name: str, make: Callable[[], str]) -> str:
    """Like ``load_or_create`` for a key kept as text (e.g. a signed-note skey)."""
    data, _ = _once(keys_dir, name, lambda: make().encode("utf-8") + b"\n")
    text = data.decode("utf-8").strip()
    if not text:
        raise RuntimeError(f"key file {keys_dir / name} is empty; remove it to regenerate")
    return text
