"""Ledger engine: tamper-evident history (design issue 3).

* :mod:`.merkle` - RFC 9162 hashing, inclusion and consistency proofs;
* :mod:`.log` - :class:`Log`, the persistent, crash-safe Merkle log;
* :mod:`.commitment` - salted commitments, the only thing a log ever holds;
* :mod:`.note`, :mod:`.checkpoint` - C2SP signed notes and checkpoints;
* :mod:`.witness`, :mod:`.witness_server`, :mod:`.policy` - C2SP
  tlog-cosignature / tlog-witness / tlog-policy;
* :mod:`.verify` - the standalone auditor's verifier and the proof bundle.

Wiring sketch (what the app's ledger listener and routes do)::

    from tocsin.engines.ledger import (Checkpoint, Log, Signer, canonical_json, commit,
                                       new_salt, sign_checkpoint, make_proof_bundle)
    log = Log("var/ledger")                       # one writer process
    signer = Signer.from_skey(open("var/ledger.key").read())
    salt = new_salt()                             # stored with the record, erasable
    leaf = commit(salt, canonical_json(event))    # personal data never enters the log
    index = log.append_batch([leaf])              # batch events for throughput
    note = sign_checkpoint(Checkpoint(signer.name, log.size, log.root()), signer)
    # witnesses: request_cosignature(url, old_size, log.consistency_proof(old_size), note)
    bundle = make_proof_bundle(leaf, index, log.size, log.inclusion_proof(index),
                               note + cosignatures, signer.vkey, witnesses, quorum)

Pure library: it imports nothing from ``tocsin.core`` or a domain module.
Names are loaded lazily, so that ``python -m tocsin.engines.ledger.verify``
imports nothing but the verifier itself.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "root_hash": "merkle",
    "inclusion_proof": "merkle",
    "verify_inclusion": "merkle",
    "consistency_proof": "merkle",
    "verify_consistency": "merkle",
    "leaf_hash": "merkle",
    "EMPTY_ROOT": "merkle",
    "Log": "log",
    "LogCorrupted": "log",
    "LogLocked": "log",
    "canonical_json": "commitment",
    "new_salt": "commitment",
    "commit": "commitment",
    "open_commitment": "commitment",
    "Signer": "note",
    "Verifier": "note",
    "generate_key": "note",
    "format_vkey": "note",
    "parse_vkey": "note",
    "sign_note": "note",
    "open_note": "note",
    "Checkpoint": "checkpoint",
    "sign_checkpoint": "checkpoint",
    "open_checkpoint": "checkpoint",
    "WitnessState": "witness",
    "generate_witness_key": "witness",
    "cosign": "witness",
    "verify_cosignature": "witness",
    "request_cosignature": "witness",
    "handle_add_checkpoint": "witness",
    "Policy": "policy",
    "Witness": "policy",
    "check_quorum": "policy",
    "make_proof_bundle": "verify",
    "verify_bundle": "verify",
}

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "Log",
    "LogCorrupted",
    "LogLocked",
    "Policy",
    "Signer",
    "Verifier",
    "Witness",
    "WitnessState",
    "canonical_json",
    "check_quorum",
    "commit",
    "consistency_proof",
    "cosign",
    "format_vkey",
    "generate_key",
    "generate_witness_key",
    "handle_add_checkpoint",
    "inclusion_proof",
    "leaf_hash",
    "make_proof_bundle",
    "new_salt",
    "open_checkpoint",
    "open_commitment",
    "open_note",
    "parse_vkey",
    "request_cosignature",
    "root_hash",
    "sign_checkpoint",
    "sign_note",
    "verify_bundle",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
]
# (kept in step with _EXPORTS by tests/engines/ledger/test_api.py)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
