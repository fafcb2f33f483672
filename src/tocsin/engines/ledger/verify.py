"""Standalone auditor's verifier for Tocsin ledger inclusion-proof bundles.

Usage::

    python -m tocsin.engines.ledger.verify PROOF.json
    python verify.py PROOF.json          # this file alone, copied anywhere

It needs only the Python standard library and ``cryptography``, and imports
nothing else from Tocsin: an auditor can read all of it.  It prints ``OK``
and exits 0 when the bundle checks out, or prints ``FAIL: <what failed>``
and exits 1.  Exit status 2 means the bundle could not be read.

Bundle format (JSON object, see :func:`make_proof_bundle`):

``format``      ``"tocsin-inclusion-proof/v1"``
``leaf``        hex of the log entry (a salted commitment, 32 bytes in Tocsin)
``index``       the entry's leaf index
``tree_size``   size of the tree the proof is for (= the checkpoint size)
``proof``       list of hex hashes: the RFC 9162 inclusion proof
``checkpoint``  the signed checkpoint note (c2sp.org/tlog-checkpoint), with
                any witness cosignatures appended
``log_vkey``    the log's verifier key ``name+keyid+base64(0x01||pubkey)``
``witnesses``   optional list of ``{"name", "vkey"}`` (cosignature/v1 keys)
``quorum``      optional: how many of those witnesses must have cosigned
``opening``     optional ``{"salt": hex, "record": base64}``: the salt and the
                canonical record bytes that the leaf commits to

Checks, in order: the checkpoint is signed by the log key (and its origin
is the log key name), its size is ``tree_size``, the proof leads from
``SHA-256(0x00 || leaf)`` to its root hash (RFC 9162 2.1.3.2), the witness
quorum holds, and, with an opening, ``leaf`` commits to the record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "tocsin-inclusion-proof/v1"
COMMITMENT_DOMAIN = b"tocsin/commitment/v1\n"  # same as commitment.DOMAIN
EM_DASH = "\u2014"

__all__ = ["FORMAT", "main", "make_proof_bundle", "verify_bundle"]


class Failure(Exception):
    """A named verification failure."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise Failure(f"{what} is not valid base64") from None


def _hex(text: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise Failure(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise Failure(f"{what} is not valid hex") from None
    if size is not None and len(raw) != size:
        raise Failure(f"{what} must be {size} bytes")
    return raw


def _parse_vkey(vkey: Any, want_type: int, what: str) -> tuple[str, bytes, bytes]:
    """Returns (name, key id, public key)."""
    if not isinstance(vkey, str) or vkey.count("+") < 2:
        raise Failure(f"{what} is not a name+keyid+base64 verifier key")
    name, hex_id, b64 = vkey.split("+", 2)  # base64 may contain "+"
    raw = _b64(b64, f"{what} key material")
    if len(raw) != 33 or raw[0] != want_type:
        raise Failure(f"{what} must be a type 0x{want_type:02x} Ed25519 key")
    kid = _sha256(name.encode() + b"\n" + raw[:1] + raw[1:])[:4]
    if not name or len(hex_id) != 8 or hex_id.lower() != kid.hex():
        raise Failure(f"{what}: key ID does not match name and key")
    return name, kid, raw[1:]


def _ed25519_ok(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(text, [(key name, key id || signature)]) of a signed note."""
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise Failure("checkpoint note is malformed (control characters or no final newline)")
    cut = note.rfind("\n\n")
    if cut < 0 or cut + 2 >= len(note):
        raise Failure("checkpoint note has no signature lines")
    text, block = note[:cut + 1], note[cut + 2:]
    sigs = []
    for line in block[:-1].split("\n"):
        if not line.startswith(EM_DASH + " ") or line.count(" ") != 2:
            raise Failure(f"checkpoint note has a malformed signature line: {line[:60]!r}")
        _, name, b64 = line.split(" ")
        raw = _b64(b64, f"signature of {name}")
        if len(raw) < 5:
            raise Failure(f"signature of {name} is too short")
        sigs.append((name, raw))
    return text, sigs


def _parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise Failure("checkpoint text needs origin, size and root hash lines")
    origin, size_s, root_s = lines[:3]
    if not origin or not size_s.isascii() or not size_s.isdigit() or \
            (size_s != "0" and size_s.startswith("0")):
        raise Failure("checkpoint origin or size line is malformed")
    root = _b64(root_s, "checkpoint root hash")
    if len(root) != 32:
        raise Failure("checkpoint root hash is not 32 bytes")
    return origin, int(size_s), root


def _root_from_proof(leaf_hash: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _nonneg_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Failure(f"{what} must be a non-negative integer")
    return value


def verify_bundle(bundle: dict[str, Any]) -> str:
    """Verify a proof bundle; returns a one-line summary or raises :class:`Failure`."""
    if not isinstance(bundle, dict):
        raise Failure("bundle: not a JSON object")
    if bundle.get("format") != FORMAT:
        raise Failure(f"bundle: format is not {FORMAT!r}")
    leaf = _hex(bundle.get("leaf"), "bundle leaf")
    index = _nonneg_int(bundle.get("index"), "bundle index")
    tree_size = _nonneg_int(bundle.get("tree_size"), "bundle tree_size")
    if not isinstance(bundle.get("proof"), list):
        raise Failure("bundle proof must be a list of hex hashes")
    proof = [_hex(p, f"proof[{i}]", 32) for i, p in enumerate(bundle["proof"])]
    note = bundle.get("checkpoint")
    if not isinstance(note, str):
        raise Failure("bundle checkpoint must be the signed note text")

    # 1. the log signed the checkpoint
    log_name, log_id, log_pub = _parse_vkey(bundle.get("log_vkey"), 0x01, "log_vkey")
    text, sigs = _split_note(note)
    origin, size, root = _parse_checkpoint(text)
    if origin != log_name:
        raise Failure(f"checkpoint origin {origin!r} is not the log key name {log_name!r}")
    raw_text = text.encode("utf-8")
    signed = False
    for name, raw in sigs:
        if name == log_name and raw[:4] == log_id:
            if not _ed25519_ok(log_pub, raw[4:], raw_text):
                raise Failure("checkpoint signature: the log's signature does not verify")
            signed = True
    if not signed:
        raise Failure("checkpoint signature: no signature by the log key")

    # 2. sizes agree
    if size != tree_size:
        raise Failure(f"tree size: checkpoint is for {size} leaves, the proof for {tree_size}")
    if index >= tree_size:
        raise Failure(f"index {index} is outside a tree of {tree_size} leaves")

    # 3. inclusion
    computed = _root_from_proof(_sha256(b"\x00" + leaf), index, tree_size, proof)
    if computed is None:
        raise Failure("inclusion proof: wrong number of hashes for this index and tree size")
    if computed != root:
        raise Failure("inclusion proof: does not lead to the checkpoint root hash")

    # 4. witnesses
    witnesses = bundle.get("witnesses") or []
    if not isinstance(witnesses, list):
        raise Failure("bundle witnesses must be a list")
    quorum = _nonneg_int(bundle.get("quorum", 0), "bundle quorum")
    if quorum > len(witnesses):
        raise Failure(f"witness quorum: {quorum} needed but only {len(witnesses)} witnesses listed")
    cosigned = []
    seen_keys: set[bytes] = set()
    for i, w in enumerate(witnesses):
        if not isinstance(w, dict):
            raise Failure(f"witnesses[{i}] must be an object with name and vkey")
        wname, wid, wpub = _parse_vkey(w.get("vkey"), 0x04, f"witness {w.get('name', i)} vkey")
        if wpub in seen_keys:
            raise Failure(f"witness {w.get('name', wname)} is listed twice (same key)")
        seen_keys.add(wpub)
        for name, raw in sigs:
            if name != wname or raw[:4] != wid:
                continue
            if len(raw) != 4 + 8 + 64:
                raise Failure(f"witness {w.get('name', wname)}: cosignature has the wrong length")
            (ts,) = struct.unpack(">Q", raw[4:12])
            msg = b"cosignature/v1\ntime %d\n" % ts + raw_text
            if ts >= 1 << 63 or not _ed25519_ok(wpub, raw[12:], msg):
                raise Failure(f"witness {w.get('name', wname)}: cosignature does not verify")
            cosigned.append(w.get("name", wname))
            break
    if len(cosigned) < quorum:
        raise Failure(f"witness quorum: {quorum} cosignatures needed, {len(cosigned)} valid "
                      f"({', '.join(map(str, cosigned)) or 'none'})")

    # 5. the commitment opening
    opening = bundle.get("opening")
    if opening is not None:
        if not isinstance(opening, dict):
            raise Failure("bundle opening must be an object with salt and record")
        salt = _hex(opening.get("salt"), "opening salt", 32)
        record = opening.get("record")
        if not isinstance(record, str):
            raise Failure("opening record must be base64 text")
        if _sha256(COMMITMENT_DOMAIN + salt + _b64(record, "opening record")) != leaf:
            raise Failure("commitment opening: leaf is not the commitment of this record and salt")

    summary = f"OK: leaf {index} is in {origin} at size {tree_size}"
    if witnesses:
        summary += f", cosigned by {len(cosigned)}/{len(witnesses)} witnesses (quorum {quorum})"
    if opening is not None:
        summary += ", commitment opens to the record"
    return summary


def make_proof_bundle(
    leaf: bytes,
    index: int,
    tree_size: int,
    proof: list[bytes],
    checkpoint: str,
    log_vkey: str,
    witnesses: list[tuple[str, str]] | list[dict[str, str]] | None = None,
    quorum: int | None = None,
    salt: bytes | None = None,
    record: bytes | None = None,
) -> dict[str, Any]:
    """Build the JSON-ready bundle that :func:`verify_bundle` checks.

    ``leaf`` is the log entry (the commitment), ``witnesses`` a list of
    ``(name, vkey)`` pairs or ``{"name", "vkey"}`` dicts, ``quorum`` defaults to
    all listed witnesses.  ``salt`` and ``record`` (the canonical bytes) add
    the commitment opening; leave them out to prove inclusion without
    revealing the record.
    """
    ws = []
    for w in witnesses or []:
        ws.append(dict(w) if isinstance(w, dict) else {"name": w[0], "vkey": w[1]})
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "leaf": bytes(leaf).hex(),
        "index": int(index),
        "tree_size": int(tree_size),
        "proof": [bytes(p).hex() for p in proof],
        "checkpoint": checkpoint,
        "log_vkey": log_vkey,
    }
    if ws:
        bundle["witnesses"] = ws
        bundle["quorum"] = len(ws) if quorum is None else int(quorum)
    if (salt is None) != (record is None):
        raise ValueError("give both salt and record for a commitment opening, or neither")
    if salt is not None and record is not None:
        bundle["opening"] = {"salt": bytes(salt).hex(),
                             "record": base64.b64encode(bytes(record)).decode()}
    return bundle


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m tocsin.engines.ledger.verify PROOF.json", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as fh:
            bundle = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"FAIL: cannot read bundle {args[0]}: {exc}")
        return 2
    try:
        print(verify_bundle(bundle))
    except Failure as exc:
        print(f"FAIL: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
