"""The ledger wired to the platform: every event sealed, proofs, tampering named, erasure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, update

from tocsin.core.events import DomainEvent, EventRecord, emit
from tocsin.engines.ledger import open_checkpoint, verify_bundle
from tocsin.engines.ledger.verify import Failure
from tocsin.ledger.audit import AuditFailure, audit
from tocsin.ledger.models import LedgerCheckpoint, LedgerEntry
from tocsin.ledger.service import get_service


def add_events(rt, n: int, unit_id: int | None = None) -> list[str]:
    ids = []
    with rt.db.session() as s:
        for i in range(n):
            e = emit(s, DomainEvent(type="test.thing.happened", unit_id=unit_id,
                                    record_kind="thing", record_id=str(i),
                                    payload={"n": i, "name": "Jean-Pierre Dupont"}))
            ids.append(e.id)
    return ids


@pytest.fixture
def ledger(runtime):
    return get_service(runtime)


def test_every_event_is_sealed_and_checkpointed(runtime, force, ledger):
    ids = add_events(runtime, 25)
    sealed = ledger.seal()
    with runtime.db.read() as s:
        total = len(list(s.scalars(select(EventRecord.seq))))
        indexes = list(s.scalars(select(EventRecord.ledger_index)))
    assert sealed == total >= 25  # the force's own creation events are sealed too
    assert sorted(indexes) == list(range(total))
    cp = ledger.checkpoint()
    parsed, _ = open_checkpoint(cp.note, [ledger.vkey], origin=runtime.settings.ledger_origin)
    assert parsed.size == total
    assert ledger.seal() == 0  # nothing left
    assert ledger.checkpoint().id == cp.id  # nothing changed: no new checkpoint
    report = audit(ledger)
    assert report.leaves == total and report.checkpoints == 1 and report.pending == 0
    # the log holds no personal data: only commitments
    raw = (runtime.settings.ledger_dir / "tree.bin").read_bytes()
    assert b"Dupont" not in raw and ids[0].encode() not in raw


def test_proof_bundle_checks_offline(runtime, force, ledger, tmp_path):
    ids = add_events(runtime, 10)
    bundle = ledger.proof_bundle(None, ids[3])  # seals and checkpoints on demand
    assert verify_bundle(bundle).startswith("OK")
    assert "opening" not in bundle
    opened = ledger.proof_bundle(None, ids[3], opening=True)
    assert "commitment opens to the record" in verify_bundle(opened)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(opened))
    out = subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.verify", str(path)],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stdout
    # a bundle whose record was altered fails, naming the opening
    opened["opening"]["record"] = opened["opening"]["record"][:-4] + "AAA="
    with pytest.raises(Failure, match="commitment opening"):
        verify_bundle(opened)


def test_tampered_event_content_is_named(runtime, force, ledger):
    ids = add_events(runtime, 5)
    ledger.seal()
    ledger.checkpoint()
    with runtime.db.session() as s:
        s.execute(update(EventRecord).where(EventRecord.id == ids[2])
                  .values(payload={"n": 2, "name": "someone else"}))
    with pytest.raises(AuditFailure, match=f"event {ids[2]}.*tampered"):
        audit(ledger)


def test_deleted_entry_and_deleted_event_are_named(runtime, force, ledger):
    ids = add_events(runtime, 5)
    ledger.seal()
    with runtime.db.session() as s:
        index = s.scalar(select(LedgerEntry.index).where(LedgerEntry.event_id == ids[1]))
        s.execute(delete(EventRecord).where(EventRecord.id == ids[1]))
    with pytest.raises(AuditFailure, match=f"leaf {index} .*event row was deleted"):
        audit(ledger)
    with runtime.db.session() as s:
        s.execute(delete(LedgerEntry).where(LedgerEntry.index == index))
    with pytest.raises(AuditFailure, match=f"leaf {index}: its database entry is missing"):
        audit(ledger)


def test_tampered_commitment_is_named(runtime, force, ledger):
    ids = add_events(runtime, 3)
    ledger.seal()
    with runtime.db.session() as s:
        s.execute(update(LedgerEntry).where(LedgerEntry.event_id == ids[0])
                  .values(commitment=b"\x11" * 32))
    with pytest.raises(AuditFailure, match="not the leaf the log holds"):
        audit(ledger)


def test_swapped_or_forged_checkpoint_is_named(runtime, force, ledger):
    from tocsin.engines.ledger import Checkpoint, Signer, sign_checkpoint

    add_events(runtime, 4)
    ledger.seal()
    cp = ledger.checkpoint()
    # a checkpoint signed by another key with the same name (a forged signature)
    rogue = Signer.generate(runtime.settings.ledger_origin)
    forged = sign_checkpoint(Checkpoint(ledger.origin, cp.size, cp.root_hash), rogue)
    with runtime.db.session() as s:
        s.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.id == cp.id)
                  .values(note=forged))
    with pytest.raises(AuditFailure, match=f"checkpoint #{cp.id} .*not validly signed"):
        audit(ledger)
    # a validly signed checkpoint of another history swapped in
    other = sign_checkpoint(Checkpoint(ledger.origin, cp.size, b"\x22" * 32), ledger.signer)
    with runtime.db.session() as s:
        s.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.id == cp.id)
                  .values(note=other, root_hash=b"\x22" * 32))
    with pytest.raises(AuditFailure, match="not the log's root"):
        audit(ledger)


def test_erased_events_still_verify_but_cannot_be_opened(runtime, force, ledger):
    from tocsin.core.errors import Conflict

    ids = add_events(runtime, 6)
    ledger.seal()
    ledger.checkpoint()
    assert ledger.erase(ids[:2], reason="retention expired") == 2
    with runtime.db.read() as s:
        rec = s.scalars(select(EventRecord).where(EventRecord.id == ids[0])).one()
    assert rec.payload is None and rec.salt is None and rec.erased_at is not None
    report = audit(ledger)
    assert report.erased == 2
    assert verify_bundle(ledger.proof_bundle(None, ids[0])).startswith("OK")
    with pytest.raises(Conflict) as err:
        ledger.proof_bundle(None, ids[0], opening=True)
    assert err.value.code == "ledger.erased"
    with pytest.raises(Exception, match="say why"):
        ledger.erase(ids[2:3], reason="  ")


def test_crash_between_database_and_log_is_repaired(runtime, force, ledger, monkeypatch):
    from tocsin.engines.ledger import Log

    add_events(runtime, 8)
    real = Log.append_batch
    calls = {"n": 0}

    def crash_once(self, entries):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("simulated crash after the database commit")
        return real(self, entries)

    monkeypatch.setattr(Log, "append_batch", crash_once)
    with pytest.raises(OSError):
        ledger.seal()
    with runtime.db.read() as s:
        assigned = len(list(s.scalars(select(LedgerEntry.index))))
    assert assigned > 0 and ledger.writer().size == 0  # database ahead of the log
    assert audit(ledger).awaiting_append == assigned  # not a fault: the append is due
    add_events(runtime, 2)
    ledger.seal()  # re-appends the assigned leaves first, then seals the new events
    with runtime.db.read() as s:
        total = len(list(s.scalars(select(EventRecord.seq))))
    assert ledger.writer().size == total
    ledger.checkpoint()
    assert audit(ledger).leaves == total


def test_log_ahead_of_database_refuses_to_seal(runtime, force, ledger):
    add_events(runtime, 3)
    ledger.seal()
    with runtime.db.session() as s:  # a database restored from an older backup
        s.execute(delete(LedgerEntry))
        s.execute(update(EventRecord).values(ledger_index=None))
    with pytest.raises(RuntimeError, match="restored from an older copy"):
        ledger.seal()
    with pytest.raises(AuditFailure, match="leaf 0: in the log but missing"):
        audit(ledger)


def test_consistency_between_checkpoints(runtime, force, ledger):
    from tocsin.engines.ledger import verify_consistency

    add_events(runtime, 5)
    ledger.seal()
    first = ledger.checkpoint()
    add_events(runtime, 7)
    ledger.seal()
    second = ledger.checkpoint()
    assert second.size == first.size + 7
    out = ledger.consistency(force.principal("auditor"), first.size, second.size)
    proof = [bytes.fromhex(h) for h in out["proof"]]
    assert verify_consistency(first.size, second.size, first.root_hash, second.root_hash, proof)
    assert audit(ledger).checkpoints == 2


def test_truncated_log_is_named_by_its_checkpoint(runtime, force, ledger):
    import shutil

    from tocsin.engines.ledger import Log

    add_events(runtime, 6)
    ledger.seal()
    cp = ledger.checkpoint()
    ledger.close()
    with runtime.db.read() as s:  # rebuild a shorter log from the first leaves
        first = list(s.scalars(select(LedgerEntry.commitment).order_by(LedgerEntry.index)
                               .limit(cp.size - 3)))
    shutil.rmtree(runtime.settings.ledger_dir)
    with Log(runtime.settings.ledger_dir) as short:
        short.append_batch(first)
    with pytest.raises(AuditFailure, match=f"checkpoint #{cp.id} .*beyond the end of the log"):
        audit(ledger)
