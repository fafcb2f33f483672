"""``tocsin ledger verify``: re-check the whole stored history, name the first fault.

Checks, in order (each streams, so a log of millions of leaves fits in memory):

1. the log files: every stored node hashes its children (``Log.check``);
2. every leaf: the database row that assigns it exists, its commitment is the
   leaf the log holds, the event row still points at it, and, unless erased,
   the stored event still opens the commitment (content not tampered);
3. leaf counts: no leaf in the log that the database lost, or the reverse;
4. every checkpoint: signed by the log key, its root is the log's root at its
   size, consistent with the checkpoint before it, witness cosignatures valid
   and the quorum the database claims really met.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from tocsin.core.events import EventRecord
from tocsin.engines.ledger import LogCorrupted, leaf_hash, open_checkpoint, open_commitment
from tocsin.engines.ledger.merkle import verify_consistency
from tocsin.engines.ledger.note import NoteError
from tocsin.engines.ledger.policy import evaluate_quorum
from tocsin.ledger.models import LedgerCheckpoint, LedgerEntry
from tocsin.ledger.service import LedgerService, canonical_record

CHUNK = 5_000


class AuditFailure(Exception):
    """The first thing that does not match, named."""


@dataclass
class AuditReport:
    leaves: int = 0
    checkpoints: int = 0
    erased: int = 0
    pending: int = 0
    awaiting_append: int = 0
    quorum_missing: list[int] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"OK: {self.leaves} leaves, {self.checkpoints} checkpoints verified; "
                f"{self.erased} erased entries still verify; {self.pending} events not yet sealed")
        if self.awaiting_append:
            text += f"; {self.awaiting_append} leaves assigned, awaiting their append"
        if self.quorum_missing:
            text += (f"; {len(self.quorum_missing)} checkpoints lack their witness quorum "
                     f"(sizes {', '.join(map(str, self.quorum_missing[:5]))})")
        return text


def audit(ledger: LedgerService) -> AuditReport:
    """Raise :class:`AuditFailure` at the first mismatch; return counts otherwise.

    Safe while the server seals: checkpoints are read before the log is opened,
    so every one of them lies within the log we check, and leaves the database
    assigned after that moment are counted as awaiting their append.
    """
    report = AuditReport()
    with ledger.db.read() as s:
        checkpoints = list(s.scalars(select(LedgerCheckpoint).order_by(LedgerCheckpoint.id)))
    view = ledger.reader()
    try:
        size = view.size if view else 0
        if view is not None:
            try:
                view.check()
            except LogCorrupted as exc:
                raise AuditFailure(f"log files: {exc}") from None
        _check_leaves(ledger, view, size, report)
        _check_checkpoints(ledger, view, size, checkpoints, report)
    finally:
        ledger.release(view)
    with ledger.db.read() as s:
        report.pending = s.scalar(select(func.count()).select_from(EventRecord).where(
            EventRecord.ledger_index.is_(None))) or 0
        report.awaiting_append = s.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.index >= size)) or 0
    return report


def _check_leaves(ledger: LedgerService, view, size: int, report: AuditReport) -> None:
    expected = 0
    with ledger.db.read() as s:
        while expected < size:
            rows = s.execute(
                select(LedgerEntry, EventRecord)
                .join(EventRecord, EventRecord.id == LedgerEntry.event_id, isouter=True)
                .where(LedgerEntry.index >= expected, LedgerEntry.index < size)
                .order_by(LedgerEntry.index).limit(CHUNK)
            ).all()
            if not rows:
                break
            for entry, rec in rows:
                i = entry.index
                if i != expected:
                    raise AuditFailure(f"leaf {expected}: its database entry is missing "
                                       f"(deleted row; the next entry is leaf {i})")
                name = f"leaf {i} (event {entry.event_id})"
                if view.leaf_hash(i) != leaf_hash(entry.commitment):
                    raise AuditFailure(f"{name}: the commitment in the database is not the "
                                       f"leaf the log holds (tampered entry)")
                if rec is None:
                    raise AuditFailure(f"{name}: the event row was deleted")
                if rec.ledger_index != i:
                    raise AuditFailure(f"{name}: the event row says leaf {rec.ledger_index}")
                if rec.salt is None or rec.erased_at is not None:
                    report.erased += 1
                elif not open_commitment(entry.commitment, rec.salt, canonical_record(rec)):
                    raise AuditFailure(f"{name}: the stored event no longer matches what the "
                                       f"log committed (content or salt tampered)")
                expected = i + 1
    if expected < size:
        raise AuditFailure(f"leaf {expected}: in the log but missing from the database "
                           f"({size - expected} leaves unaccounted for)")
    report.leaves = size


def _check_checkpoints(ledger: LedgerService, view, size: int, rows: list[LedgerCheckpoint],
                       report: AuditReport) -> None:
    prev: LedgerCheckpoint | None = None
    for row in rows:
        name = f"checkpoint #{row.id} (size {row.size})"
        try:
            cp, _ = open_checkpoint(row.note, [ledger.vkey], origin=ledger.origin)
        except NoteError as exc:
            raise AuditFailure(f"{name}: not validly signed by the log key: {exc}") from None
        if cp.size != row.size or cp.root_hash != row.root_hash:
            raise AuditFailure(f"{name}: the signed note says size {cp.size}, not the row's")
        if cp.size > size:
            raise AuditFailure(f"{name}: beyond the end of the log ({size} leaves): "
                               f"history was truncated")
        if view is None or view.root(cp.size) != cp.root_hash:
            raise AuditFailure(f"{name}: its root is not the log's root at that size "
                               f"(history rewritten)")
        if prev is not None:
            if cp.size < prev.size:
                raise AuditFailure(f"{name}: rewinds from size {prev.size}")
            proof = view.consistency_proof(prev.size, cp.size)
            if not verify_consistency(prev.size, cp.size, prev.root_hash, cp.root_hash, proof):
                raise AuditFailure(f"{name}: not consistent with checkpoint #{prev.id}")
        if ledger.policy.witnesses:
            result = evaluate_quorum(row.note, ledger.policy)
            if "does not verify" in result.reason:
                raise AuditFailure(f"{name}: {result.reason}")
            claimed = set(row.cosigned_by.split())
            if claimed - result.cosigned_by:
                raise AuditFailure(f"{name}: claims cosignatures of "
                                   f"{sorted(claimed - result.cosigned_by)} it does not carry")
            if row.quorum_met and not result.ok:
                raise AuditFailure(f"{name}: marked as quorum met, but {result.reason}")
            if not result.ok:
                report.quorum_missing.append(row.size)
        prev = row
    report.checkpoints = len(rows)
