"""C2SP signed-note with Ed25519 keys (c2sp.org/signed-note).

A signed note is a UTF-8 text ending in a newline, a blank line, and one or
more signature lines ``— <key name> base64(key ID || signature)`` (the dash
is the em dash U+2014).  The key ID is
``SHA-256(key name || 0x0A || signature type || public key)[:4]``.

Two signature types are supported, both Ed25519:

* ``0x01`` (:data:`SIG_ED25519`): the signature is over the note text.  This
  is what a log uses to sign its checkpoints.
* ``0x04`` (:data:`SIG_COSIGNATURE_V1`): a c2sp.org/tlog-cosignature v1
  witness cosignature: the signature is ``u64 timestamp || Ed25519 sig`` over
  ``"cosignature/v1\\ntime <timestamp>\\n" || note text``.

Keys travel as strings:

* verifier key (vkey): ``<name>+<8 hex digits key ID>+base64(type || 32-byte public key)``
* signer key (skey): ``PRIVATE+KEY+<name>+<8 hex digits key ID>+base64(type || 32-byte seed)``
  (the Go ``golang.org/x/mod/sumdb/note`` private key layout).

Opening a note follows the spec: signatures from unknown keys (name *and* key
ID must match) are ignored; a known key whose signature fails rejects the
whole note (:class:`InvalidSignature`); a note without a verified known
signature is rejected (:class:`UnverifiedNote`); anything not of the format
is :class:`MalformedNote`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "EM_DASH",
    "MAX_SIGNATURES",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "InvalidSignature",
    "MalformedNote",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "UnverifiedNote",
    "Verifier",
    "add_signature_lines",
    "check_key_name",
    "cosignature_message",
    "format_vkey",
    "generate_key",
    "key_id",
    "open_note",
    "parse_note",
    "parse_vkey",
    "sign_note",
    "signature_timestamp",
]

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
_TS = struct.Struct(">Q")


class NoteError(ValueError):
    """Base class of note rejections."""


class MalformedNote(NoteError):
    """The text is not a signed note (bad framing, encoding or signature line)."""


class UnverifiedNote(NoteError):
    """No signature from a known key verified."""


class InvalidSignature(NoteError):
    """A signature from a known key (name and key ID match) failed to verify."""


# --------------------------------------------------------------------- keys


def check_key_name(name: str) -> str:
    """Key names are non-empty, without Unicode spaces or ``+``."""
    if not isinstance(name, str) or not name:
        raise ValueError("key name must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name):
        raise ValueError(f"key name {name!r} must not contain spaces or '+'")
    if any(ord(ch) < 0x20 for ch in name):
        raise ValueError(f"key name {name!r} must not contain control characters")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || sig_type || public_key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def cosignature_message(timestamp: int, text: str | bytes) -> bytes:
    """The message a tlog-cosignature/v1 Ed25519 cosigner signs."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_type(sig_type: int) -> int:
    if sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise ValueError(f"unsupported signature type 0x{sig_type:02x} (want 0x01 or 0x04)")
    return sig_type


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: name, key ID, signature type and Ed25519 key."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        return parse_vkey(vkey)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key, self.sig_type)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Check ``signature`` (without the key ID) over note text ``text``."""
        pub = Ed25519PublicKey.from_public_bytes(self.public_key)
        if self.sig_type == SIG_ED25519:
            if len(signature) != 64:
                return False
            message = text
        else:
            if len(signature) != 8 + 64:
                return False
            (timestamp,) = _TS.unpack(signature[:8])
            if timestamp >= 1 << 63:
                return False
            message = cosignature_message(timestamp, text)
            signature = signature[8:]
        try:
            pub.verify(signature, message)
        except _CryptoInvalidSignature:
            return False
        return True


class Signer:
    """A private Ed25519 key with its note name, type and key ID."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey,
                 sig_type: int = SIG_ED25519) -> None:
        self.name = check_key_name(name)
        self.sig_type = _check_type(sig_type)
        self._private = private_key
        self.public_key = _raw_public(private_key.public_key())
        self.key_id = key_id(name, sig_type, self.public_key)

    @classmethod
    def generate(cls, name: str, sig_type: int = SIG_ED25519) -> Signer:
        return cls(name, Ed25519PrivateKey.generate(), sig_type)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)  # base64 may contain "+"
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise ValueError("signer key must look like PRIVATE+KEY+<name>+<hex id>+<base64>")
        _, _, name, hex_id, b64 = parts
        raw = _b64decode(b64, "signer key material")
        if len(raw) != 33:
            raise ValueError("signer key material must be a type byte and a 32-byte seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]), raw[0])
        if signer.key_id.hex() != hex_id.lower() or len(hex_id) != 8:
            raise ValueError(f"signer key ID {hex_id} does not match the key")
        return signer

    @property
    def skey(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([self.sig_type]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{b64}"

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key, self.sig_type)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.sig_type, self.public_key)

    def sign_raw(self, message: bytes) -> bytes:
        """Plain Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def note_signature(self, text: bytes, timestamp: int | None = None) -> bytes:
        """Signature bytes (without key ID) over note text ``text``.

        For a cosignature key the current time (or ``timestamp``) is embedded.
        """
        if self.sig_type == SIG_ED25519:
            return self._private.sign(text)
        if timestamp is None:
            timestamp = int(time.time())
        if not 0 <= timestamp < 1 << 63:
            raise ValueError("cosignature timestamp out of range")
        return _TS.pack(timestamp) + self._private.sign(cosignature_message(timestamp, text))

    def signature_line(self, text: str | bytes, timestamp: int | None = None) -> str:
        """``— <name> base64(key ID || signature)\\n`` for note text ``text``."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        sig = self.note_signature(text, timestamp)
        return Signature(self.name, self.key_id, sig).line()

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, type=0x{self.sig_type:02x}, id={self.key_id.hex()})"


def generate_key(name: str, sig_type: int = SIG_ED25519) -> tuple[str, str]:
    """New key pair as ``(skey, vkey)`` strings."""
    signer = Signer.generate(name, sig_type)
    return signer.skey, signer.vkey


def format_vkey(name: str, public_key: bytes, sig_type: int = SIG_ED25519) -> str:
    """``<name>+<hex key ID>+base64(type || public key)``."""
    check_key_name(name)
    _check_type(sig_type)
    if len(public_key) != 32:
        raise ValueError("Ed25519 public keys are 32 bytes")
    b64 = base64.b64encode(bytes([sig_type]) + public_key).decode()
    return f"{name}+{key_id(name, sig_type, public_key).hex()}+{b64}"


def parse_vkey(vkey: str) -> Verifier:
    """Parse a verifier key string; rejects key IDs that do not match the key."""
    if not isinstance(vkey, str):
        raise TypeError("verifier key must be a string")
    parts = vkey.strip().split("+", 2)  # base64 may contain "+"
    if len(parts) != 3:
        raise ValueError(f"verifier key {vkey!r} must be <name>+<hex id>+<base64>")
    name, hex_id, b64 = parts
    check_key_name(name)
    if len(hex_id) != 8:
        raise ValueError(f"verifier key ID {hex_id!r} must be 8 hex digits")
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError as exc:
        raise ValueError(f"verifier key ID {hex_id!r} is not hex") from exc
    raw = _b64decode(b64, "verifier key material")
    if len(raw) != 33:
        raise ValueError("verifier key material must be a type byte and a 32-byte Ed25519 key")
    sig_type = _check_type(raw[0])
    if key_id(name, sig_type, raw[1:]) != kid:
        raise ValueError(f"verifier key ID {hex_id} does not match name and key")
    Ed25519PublicKey.from_public_bytes(raw[1:])  # reject invalid encodings early
    return Verifier(name, kid, sig_type, raw[1:])


# -------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        b64 = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {b64}\n"

    @classmethod
    def parse_line(cls, line: str) -> Signature:
        """Parse ``— name base64`` (without the trailing newline)."""
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise MalformedNote(f"signature line must start with '{EM_DASH} ': {line[:40]!r}")
        rest = line[len(prefix):]
        name, sep, b64 = rest.partition(" ")
        if not sep or not name or " " in b64:
            raise MalformedNote(f"signature line must be '{EM_DASH} <name> <base64>'")
        try:
            check_key_name(name)
        except ValueError as exc:
            raise MalformedNote(str(exc)) from None
        try:
            raw = _b64decode(b64, "signature")
        except ValueError as exc:
            raise MalformedNote(f"signature of {name}: {exc}") from None
        if len(raw) < 5:
            raise MalformedNote(f"signature of {name} is too short")
        return cls(name, raw[:4], raw[4:])


@dataclass
class Note:
    """A parsed note: its text, all its signatures, and the verified ones."""

    text: str
    signatures: list[Signature]
    verified: list[Signature] = field(default_factory=list)
    verified_by: list[Verifier] = field(default_factory=list)

    def signed_text(self) -> str:
        """The note with all its signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _to_str(note: str | bytes) -> str:
    if isinstance(note, (bytes, bytearray)):
        try:
            return bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote("note is not valid UTF-8") from exc
    if not isinstance(note, str):
        raise MalformedNote(f"note must be str or bytes, got {type(note).__name__}")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedNote("note is not valid UTF-8") from exc
    return note


def _check_text(text: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise MalformedNote(f"note contains control character U+{ord(ch):04X}")
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and signature lines (no verification)."""
    note = _to_str(note)
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = note[:split + 1], note[split + 2:]
    if not block:
        raise MalformedNote("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text, [Signature.parse_line(line) for line in lines])


def sign_note(text: str, *signers: Signer, timestamp: int | None = None) -> str:
    """Sign note ``text`` (must end in a newline) with each signer, in order."""
    if not signers:
        raise ValueError("sign_note needs at least one signer")
    text = _to_str(text)
    _check_text(text)
    if text.endswith("\n\n") or text == "\n":
        raise ValueError("note text must not end with a blank line")
    raw = text.encode("utf-8")
    return text + "\n" + "".join(s.signature_line(raw, timestamp) for s in signers)


def open_note(note: str | bytes, verifiers: Iterable[Verifier | str]) -> Note:
    """Parse and verify a note against trusted ``verifiers`` (objects or vkeys).

    Returns the :class:`Note` with ``verified`` holding the signatures that
    verified.  Raises :class:`MalformedNote`, :class:`InvalidSignature` or
    :class:`UnverifiedNote`.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if isinstance(v, str):
            v = parse_vkey(v)
        known[(v.name, v.key_id)] = v
    parsed = parse_note(note)
    raw = parsed.text.encode("utf-8")
    for sig in parsed.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue  # unknown keys are ignored, even if name or ID collides
        if not v.verify(raw, sig.signature):
            raise InvalidSignature(
                f"signature by {sig.name} (key {sig.key_id.hex()}) does not verify")
        parsed.verified.append(sig)
        if v not in parsed.verified_by:
            parsed.verified_by.append(v)
    if not parsed.verified:
        names = ", ".join(sorted({n for n, _ in known})) or "none"
        raise UnverifiedNote(f"note carries no signature from a known key (known: {names})")
    return parsed


def signature_timestamp(sig: Signature) -> int:
    """The timestamp embedded in a cosignature/v1 signature."""
    if len(sig.signature) != 72:
        raise ValueError("not a cosignature/v1 signature")
    return _TS.unpack(sig.signature[:8])[0]


def add_signature_lines(note: str, lines: str | Sequence[str]) -> str:
    """Append signature lines (e.g. cosignatures) to a signed note."""
    note = _to_str(note)
    parse_note(note)
    if isinstance(lines, str):
        lines = [ln + "\n" for ln in lines.splitlines() if ln]
    for ln in lines:
        Signature.parse_line(ln.rstrip("\n"))
    return note + "".join(ln if ln.endswith("\n") else ln + "\n" for ln in lines)
