"""Secrets generated on first use, stored 0600 under the keys directory, never printed."""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path


def load_or_create(keys_dir: Path, name: str, nbytes: int = 32) -> bytes:
    """Return the secret ``name``, creating it atomically (O_EXCL) if absent.

    O_EXCL makes two processes starting together agree on one secret.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    path = keys_dir / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) < nbytes:
            raise RuntimeError(f"secret file {path} is truncated; remove it to regenerate")
        return data
    try:
        value = _secrets.token_bytes(nbytes)
        os.write(fd, value)
        os.fsync(fd)
    finally:
        os.close(fd)
    return value
