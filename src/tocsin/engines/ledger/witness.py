"""Witness cosigning: c2sp.org/tlog-cosignature (v1, Ed25519) and c2sp.org/tlog-witness.

A witness keeps, per log origin, the latest checkpoint it cosigned.  It cosigns
a new checkpoint only if it is signed by the log, and provably extends that
latest checkpoint (RFC 9162 consistency proof).  A log that forks (two roots
for one size) or rewinds (a smaller size) is refused, loudly: a warning is
logged and the rejected submission is kept in the ``evidence`` table, since a
validly signed inconsistent checkpoint is proof of log misbehaviour.

Layers, from the inside out:

* :func:`cosign` / :func:`verify_cosignature`: the cosignature/v1 format;
* :class:`WitnessState`: the tlog-witness rules over a SQLite state file,
  with the check-and-update done in one ``BEGIN IMMEDIATE`` transaction so
  that concurrent submissions (threads or processes) cannot roll the witness
  back;
* :func:`parse_add_checkpoint_body` / :func:`format_add_checkpoint_body` /
  :func:`handle_add_checkpoint`: the HTTP-free request layer returning
  ``(status, headers, body)``, which any server can expose;
* :func:`request_cosignature`: an ``urllib`` client;
* :mod:`.witness_server` serves :func:`handle_add_checkpoint` with the stdlib.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import closing

from . import merkle
from . import note as _note
from .checkpoint import Checkpoint, CheckpointError

__all__ = [
    "MAX_PROOF_LINES",
    "BadProof",
    "BadRequest",
    "BadSignature",
    "Conflict",
    "UnknownLog",
    "WitnessError",
    "WitnessState",
    "cosign",
    "format_add_checkpoint_body",
    "generate_witness_key",
    "handle_add_checkpoint",
    "parse_add_checkpoint_body",
    "request_cosignature",
    "verify_cosignature",
]

log = logging.getLogger("tocsin.ledger.witness")

MAX_PROOF_LINES = 63
MAX_BODY = 1 << 16


class WitnessError(Exception):
    """A refused add-checkpoint; ``status`` is the tlog-witness HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WitnessError):
    status = 400


class BadSignature(WitnessError):
    status = 403


class UnknownLog(WitnessError):
    status = 404


class Conflict(WitnessError):
    """Old size is not the latest cosigned size (or a same-size fork)."""

    status = 409

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class BadProof(WitnessError):
    status = 422


# ------------------------------------------------------------- cosignatures


def generate_witness_key(name: str) -> tuple[str, str]:
    """New cosigner key pair ``(skey, vkey)`` with signature type 0x04."""
    return _note.generate_key(name, _note.SIG_COSIGNATURE_V1)


def _cosigner(signer: _note.Signer | str) -> _note.Signer:
    if isinstance(signer, str):
        signer = _note.Signer.from_skey(signer)
    if signer.sig_type != _note.SIG_COSIGNATURE_V1:
        raise ValueError("a witness key must have signature type 0x04 (cosignature/v1)")
    return signer


def cosign(signer: _note.Signer | str, checkpoint_text: str, timestamp: int | None = None) -> str:
    """A cosignature/v1 signature line over a checkpoint note text (body)."""
    signer = _cosigner(signer)
    Checkpoint.parse(checkpoint_text)
    return signer.signature_line(checkpoint_text, timestamp)


def verify_cosignature(signed_checkpoint: str, witness: _note.Verifier | str) -> int:
    """Check ``witness``'s cosignature on a signed checkpoint; returns its timestamp.

    Raises :class:`.note.UnverifiedNote` if the witness did not cosign and
    :class:`.note.InvalidSignature` if its cosignature is wrong.
    """
    v = _note.parse_vkey(witness) if isinstance(witness, str) else witness
    if v.sig_type != _note.SIG_COSIGNATURE_V1:
        raise ValueError(f"{v.name} is not a cosignature/v1 key")
    opened = _note.open_note(signed_checkpoint, [v])
    Checkpoint.parse(opened.text)
    return _note.signature_timestamp(opened.verified[0])


# ------------------------------------------------------------ witness state


_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT NOT NULL,
    vkey   TEXT NOT NULL,
    PRIMARY KEY (origin, vkey)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    origin     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    root_hash  BLOB NOT NULL,
    note       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id          INTEGER PRIMARY KEY,
    origin      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    old_size    INTEGER NOT NULL,
    proof       TEXT NOT NULL,
    note        TEXT NOT NULL
);
"""


class WitnessState:
    """The state of a tlog-witness: known logs and latest cosigned checkpoints.

    ``path`` is a SQLite file (WAL, ``synchronous=FULL``).  ``signer`` is the
    witness's cosignature key (a :class:`.note.Signer` of type 0x04, or its
    skey string).  Safe to use from many threads and processes at once: every
    call opens its own connection.
    """

    def __init__(self, path: str | os.PathLike[str], signer: _note.Signer | str) -> None:
        self.path = os.fspath(path)
        self.signer = _cosigner(signer)
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    # -- configuration

    def add_log(self, vkey: str, origin: str | None = None) -> str:
        """Trust ``vkey`` (type 0x01) for ``origin`` (default: the key name)."""
        v = _note.parse_vkey(vkey)
        if v.sig_type != _note.SIG_ED25519:
            raise ValueError("a log key must have signature type 0x01")
        origin = origin or v.name
        with closing(self._connect()) as conn:
            conn.execute("INSERT OR IGNORE INTO logs (origin, vkey) VALUES (?, ?)",
                         (origin, v.vkey))
        return origin

    def log_keys(self, origin: str) -> list[_note.Verifier]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT vkey FROM logs WHERE origin = ?", (origin,)).fetchall()
        return [_note.parse_vkey(r[0]) for r in rows]

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        """``(size, root_hash, signed note)`` of the latest cosigned checkpoint."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT size, root_hash, note FROM checkpoints WHERE origin = ?",
                               (origin,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]), row[2])

    def evidence(self, origin: str | None = None) -> list[dict[str, object]]:
        """Rejected, validly signed submissions (possible log misbehaviour)."""
        q = "SELECT origin, received_at, reason, old_size, proof, note FROM evidence"
        args: tuple[object, ...] = ()
        if origin is not None:
            q += " WHERE origin = ?"
            args = (origin,)
        with closing(self._connect()) as conn:
            rows = conn.execute(q + " ORDER BY id", args).fetchall()
        keys = ("origin", "received_at", "reason", "old_size", "proof", "note")
        return [dict(zip(keys, r)) for r in rows]

    # -- the tlog-witness rules

    def add_checkpoint(self, old_size: int, consistency_proof: Sequence[bytes],
                       signed_checkpoint_note: str | bytes) -> str:
        """Verify and cosign a checkpoint; returns the cosignature line.

        Raises :class:`BadRequest` (400), :class:`BadSignature` (403),
        :class:`UnknownLog` (404), :class:`Conflict` (409, carrying
        ``latest_size``) or :class:`BadProof` (422).  State is updated only
        when the checkpoint is cosigned.
        """
        if not isinstance(old_size, int) or isinstance(old_size, bool) or old_size < 0:
            raise BadRequest(f"old size must be a non-negative integer, got {old_size!r}")
        proof = list(consistency_proof)
        if len(proof) > MAX_PROOF_LINES:
            raise BadRequest(f"consistency proof has {len(proof)} hashes (at most 63)")
        if any(len(p) != merkle.HASH_SIZE for p in proof):
            raise BadRequest("consistency proof hashes must be 32 bytes")
        try:
            parsed = _note.parse_note(signed_checkpoint_note)
            cp = Checkpoint.parse(parsed.text)
        except (_note.MalformedNote, CheckpointError) as exc:
            raise BadRequest(f"malformed checkpoint: {exc}") from None
        keys = self.log_keys(cp.origin)
        if not keys:
            raise UnknownLog(f"unknown log origin {cp.origin!r}")
        try:
            _note.open_note(signed_checkpoint_note, keys)
        except _note.NoteError as exc:
            raise BadSignature(f"checkpoint for {cp.origin!r} is not signed by the log: {exc}") \
                from None
        if old_size > cp.size:
            raise BadRequest(f"old size {old_size} is larger than the checkpoint size {cp.size}")
        note_text = parsed.signed_text()

        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT size, root_hash FROM checkpoints WHERE origin = ?",
                               (cp.origin,)).fetchone()
            latest_size, latest_root = (0, merkle.EMPTY_ROOT) if row is None else \
                (row[0], bytes(row[1]))
            failure: WitnessError | None = None
            if old_size != latest_size:
                if cp.size < latest_size:
                    msg = (f"REWIND refused for {cp.origin!r}: checkpoint size {cp.size} is "
                           f"below the latest cosigned size {latest_size}")
                else:
                    msg = (f"old size {old_size} is not the latest cosigned size "
                           f"{latest_size} for {cp.origin!r}")
                failure = Conflict(msg, latest_size)
            elif old_size == cp.size:
                if proof:
                    failure = BadProof("a consistency proof between equal sizes must be empty")
                elif cp.root_hash != latest_root:
                    failure = Conflict(
                        f"FORK refused for {cp.origin!r}: size {cp.size} has root "
                        f"{latest_root.hex()} but the checkpoint says {cp.root_hash.hex()}",
                        latest_size)
            elif not merkle.verify_consistency(old_size, cp.size, latest_root, cp.root_hash,
                                               proof):
                failure = BadProof(
                    f"consistency proof from {old_size} to {cp.size} does not verify for "
                    f"{cp.origin!r} (fork, or a wrong proof)")
            if failure is not None:
                reason = type(failure).__name__
                if reason != "Conflict" or "FORK" in failure.message or "REWIND" in \
                        failure.message:
                    log.warning("witness: %s", failure.message)
                    conn.execute(
                        "INSERT INTO evidence (origin, received_at, reason, old_size, proof,"
                        " note) VALUES (?, ?, ?, ?, ?, ?)",
                        (cp.origin, int(time.time()), failure.message, old_size,
                         "\n".join(base64.b64encode(p).decode() for p in proof), note_text))
                conn.execute("COMMIT")
                raise failure
            conn.execute(
                "INSERT INTO checkpoints (origin, size, root_hash, note, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(origin) DO UPDATE SET size = excluded.size,"
                " root_hash = excluded.root_hash, note = excluded.note,"
                " updated_at = excluded.updated_at",
                (cp.origin, cp.size, cp.root_hash, note_text, int(time.time())))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return self.signer.signature_line(parsed.text)


# ---------------------------------------------------------------- HTTP-free


def _canonical_int(text: str) -> int | None:
    if text.isascii() and text.isdigit() and (text == "0" or text[0] != "0"):
        return int(text)
    return None


def parse_add_checkpoint_body(body: bytes | str) -> tuple[int, list[bytes], str]:
    """Split a tlog-witness add-checkpoint body into ``(old_size, proof, note)``."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("request body is not UTF-8") from None
    first, sep, rest = body.partition("\n")
    if not sep or not first.startswith("old "):
        raise BadRequest("request body must start with 'old <size>\\n'")
    old_size = _canonical_int(first[4:])
    if old_size is None:
        raise BadRequest(f"old size {first[4:]!r} is not a canonical decimal")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise BadRequest("request body has no empty line before the checkpoint")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise BadRequest("more than 63 consistency proof lines")
        try:
            h = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise BadRequest(f"consistency proof line {line[:50]!r} is not base64") from None
        if len(h) != merkle.HASH_SIZE:
            raise BadRequest("consistency proof lines must encode 32-byte hashes")
        proof.append(h)
    if not rest:
        raise BadRequest("request body has no checkpoint")
    return old_size, proof, rest


def format_add_checkpoint_body(old_size: int, proof: Sequence[bytes],
                               signed_checkpoint: str) -> bytes:
    """The request body of tlog-witness add-checkpoint."""
    lines = [f"old {int(old_size)}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + signed_checkpoint).encode("utf-8")


def handle_add_checkpoint(state: WitnessState, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Serve one add-checkpoint request: returns ``(status, headers, body)``."""
    try:
        old_size, proof, signed = parse_add_checkpoint_body(body)
        line = state.add_checkpoint(old_size, proof, signed)
    except Conflict as exc:
        return 409, {"Content-Type": "text/x.tlog.size"}, f"{exc.latest_size}\n".encode()
    except WitnessError as exc:
        return exc.status, {"Content-Type": "text/plain; charset=utf-8"}, \
            (exc.message + "\n").encode("utf-8")
    return 200, {"Content-Type": "text/plain; charset=utf-8"}, line.encode("utf-8")


# ------------------------------------------------------------------- client


_STATUS_ERRORS: dict[int, type[WitnessError]] = {
    400: BadRequest, 403: BadSignature, 404: UnknownLog, 422: BadProof,
}


def request_cosignature(url: str, old_size: int, proof: Sequence[bytes], note: str, *,
                        witness_vkey: str | None = None, timeout: float = 30.0) -> str:
    """POST to a witness's add-checkpoint; returns its cosignature line(s).

    ``url`` is the witness submission prefix (``/add-checkpoint`` is added
    unless already there).  With ``witness_vkey`` the returned cosignature is
    verified over the checkpoint before being returned.  Refusals raise the
    matching :class:`WitnessError` (409 as :class:`Conflict` with the
    witness's ``latest_size``).
    """
    if not url.rstrip("/").endswith("/add-checkpoint"):
        url = url.rstrip("/") + "/add-checkpoint"
    body = format_add_checkpoint_body(old_size, proof, note)
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        payload = exc.read().decode("utf-8", "replace")
        if exc.code == 409:
            size = _canonical_int(payload.strip())
            if exc.headers.get("Content-Type", "").split(";")[0].strip() != "text/x.tlog.size" \
                    or size is None:
                raise WitnessError(f"witness answered 409 without a tlog size: {payload!r}") \
                    from None
            raise Conflict(f"witness has cosigned size {size}", size) from None
        cls = _STATUS_ERRORS.get(exc.code, WitnessError)
        err = cls(f"witness answered {exc.code}: {payload.strip()}")
        err.status = exc.code
        raise err from None
    lines = [ln + "\n" for ln in text.split("\n") if ln]
    if not lines:
        raise WitnessError("witness answered 200 without a cosignature")
    for ln in lines:
        _note.Signature.parse_line(ln[:-1])
    result = "".join(lines)
    if witness_vkey is not None:
        verify_cosignature(note + result, witness_vkey)
    return result
