"""C2SP tlog-checkpoint: the signed tree head of a log (c2sp.org/tlog-checkpoint).

The note text is::

    <origin>
    <tree size, decimal, no leading zeroes>
    <base64 root hash>
    [extension lines, each non-empty]

and it is signed as a :mod:`.note` by the log key, whose name should equal
the origin.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from . import note as _note

__all__ = ["Checkpoint", "CheckpointError", "open_checkpoint", "sign_checkpoint"]


class CheckpointError(_note.MalformedNote):
    """The note text is not a well-formed checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty single line")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise CheckpointError(f"checkpoint size must be a non-negative int, got {self.size!r}")
        if not isinstance(self.root_hash, (bytes, bytearray)) or len(self.root_hash) != 32:
            raise CheckpointError("checkpoint root hash must be 32 bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        """The note text (body), ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(),
                 *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str | bytes) -> Checkpoint:
        """Parse a checkpoint note *text* (without signatures)."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CheckpointError("checkpoint is not UTF-8") from exc
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_s, root_s, *ext = lines
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s[0] == "0"):
            raise CheckpointError(f"checkpoint size {size_s!r} is not a canonical decimal")
        try:
            root = base64.b64decode(root_s.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise CheckpointError("checkpoint root hash is not base64") from exc
        if len(root) != 32 or base64.b64encode(root).decode() != root_s:
            raise CheckpointError("checkpoint root hash must be the base64 of 32 bytes")
        if any(not e for e in ext):
            raise CheckpointError("checkpoint extension lines must be non-empty")
        return cls(origin, int(size_s), root, tuple(ext))


def sign_checkpoint(checkpoint: Checkpoint, *signers: _note.Signer) -> str:
    """The signed note of ``checkpoint``."""
    return _note.sign_note(checkpoint.text(), *signers)


def open_checkpoint(
    signed: str | bytes,
    verifiers: Iterable[_note.Verifier | str],
    *,
    origin: str | None = None,
) -> tuple[Checkpoint, _note.Note]:
    """Verify a signed checkpoint against the log's key(s) and parse it.

    Only verifiers whose name equals the checkpoint origin count as the log's
    (a witness cosignature is not a log signature).  ``origin``, if given,
    must match too.  Raises :class:`.note.NoteError` subclasses.
    """
    parsed = _note.parse_note(signed)
    cp = Checkpoint.parse(parsed.text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    vs = [_note.parse_vkey(v) if isinstance(v, str) else v for v in verifiers]
    log_keys = [v for v in vs if v.name == cp.origin and v.sig_type == _note.SIG_ED25519]
    if not log_keys:
        raise _note.UnverifiedNote(f"no known log key for origin {cp.origin!r}")
    opened = _note.open_note(signed, log_keys)
    return cp, opened
