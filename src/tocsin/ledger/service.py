"""The ledger: every domain event sealed in a verifiable Merkle log.

The ``events`` table is the outbox: ``core.events.emit`` stores each event with a
fresh salt in the same transaction as the change it records. The sealer turns
events not yet in the log into leaves, in two steps whose order makes a crash
harmless:

1. one database transaction gives each pending event the next leaf index and
   stores its salted commitment (``ledger_entries``, ``events.ledger_index``);
2. the commitments are appended to the log directory (``engines.ledger.Log``,
   durable when it returns).

A crash between the two leaves the database ahead of the log; the next seal
appends what is missing from ``ledger_entries``. The log is never ahead.

Only the process holding the log's lock writes (on one machine, the first app
node to start; the others stay readers). The bus listener only wakes the sealer:
events stored by another node are found in the table all the same.

Checkpoints are signed with the log key and sent to the witnesses of the
policy (``TOCSIN_LEDGER_POLICY_FILE``, c2sp tlog-policy) for cosigning.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from tocsin.core import access, secrets
from tocsin.core.access import Principal, Resource
from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import BadInput, Conflict, NotFound
from tocsin.core.events import DomainEvent, EventRecord, emit
from tocsin.core.runtime import Runtime
from tocsin.engines.ledger import (
    Checkpoint,
    Log,
    LogLocked,
    Policy,
    Signer,
    canonical_json,
    commit,
    make_proof_bundle,
    request_cosignature,
    sign_checkpoint,
)
from tocsin.engines.ledger.note import add_signature_lines
from tocsin.engines.ledger.policy import PolicyError
from tocsin.engines.ledger.witness import Conflict as WitnessConflict
from tocsin.engines.ledger.witness import WitnessError
from tocsin.ledger.models import LedgerCheckpoint, LedgerEntry, WitnessProgress

log = logging.getLogger(__name__)

access.register_kind("ledger", read=["auditor"], write=[], scope="force")
# Opening a commitment reveals the event itself: only within the auditor's subtree.
access.register_kind("ledger_opening", read=["auditor"], write=[])

SEAL_BATCH = 10_000


def canonical_record(rec: EventRecord) -> bytes:
    """The bytes a leaf commits to: the event as stored, canonical JSON."""
    return canonical_json({
        "id": rec.id, "type": rec.type, "occurred_at": as_utc(rec.occurred_at).isoformat(),
        "actor_id": rec.actor_id, "unit_id": rec.unit_id, "record_kind": rec.record_kind,
        "record_id": rec.record_id, "payload": rec.payload or {},
    })


def load_policy(path) -> Policy:
    """The witness policy file, or no witnesses (quorum none) when unset."""
    if path is None:
        return Policy()
    try:
        return Policy.parse(open(path, encoding="utf-8").read())
    except OSError as exc:
        raise BadInput(f"ledger policy file {path}: {exc.strerror}",
                       code="ledger.policy_unreadable") from None
    except PolicyError as exc:
        raise BadInput(f"ledger policy file {path}: {exc}", code="ledger.bad_policy") from None


@dataclass(frozen=True)
class CheckpointView:
    id: int
    size: int
    root_hash: bytes
    note: str
    cosigned_by: tuple[str, ...]
    quorum_met: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, row: LedgerCheckpoint) -> CheckpointView:
        return cls(row.id, row.size, row.root_hash, row.note,
                   tuple(row.cosigned_by.split()), row.quorum_met, as_utc(row.created_at))


class LedgerService:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.db = rt.db
        settings = rt.settings
        self.origin = settings.ledger_origin
        self.dir = settings.ledger_dir
        skey = secrets.load_or_create_text(settings.resolved_keys_dir, "ledger.skey",
                                           lambda: Signer.generate(self.origin).skey)
        self.signer = Signer.from_skey(skey)
        if self.signer.name != self.origin:
            raise BadInput(f"the ledger key is for {self.signer.name!r}, not the configured "
                           f"origin {self.origin!r}", code="ledger.origin_mismatch")
        self.policy = load_policy(settings.ledger_policy_file)
        self.writer_enabled = settings.ledger_writer
        self.interval = settings.ledger_checkpoint_seconds
        self._writer: Log | None = None
        self._lock = threading.RLock()  # one seal or checkpoint at a time in this process
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = 0.0

    # ------------------------------------------------------------ the log files

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def writer(self) -> Log | None:
        """The log opened for writing, if this process is (or becomes) the writer."""
        if self._writer is None and self.writer_enabled:
            try:
                self._writer = Log(self.dir)
            except LogLocked:
                return None
        return self._writer

    def reader(self) -> Log | None:
        """A view of the log at its latest commit (None before the first seal)."""
        if self._writer is not None:
            return self._writer
        if not (self.dir / "HEAD").exists():
            return None
        return Log(self.dir, readonly=True)

    def release(self, view: Log | None) -> None:
        if view is not None and view is not self._writer:
            view.close()

    # ---------------------------------------------------------------- sealing

    def seal(self, limit: int = SEAL_BATCH) -> int:
        """Append every pending event to the log; returns how many were sealed."""
        with self._lock:
            log_ = self.writer()
            if log_ is None:
                return 0
            self._catch_up(log_)
            sealed = 0
            while True:
                batch = self._assign(limit)
                if not batch:
                    return sealed
                first = log_.append_batch(batch)
                if first + len(batch) != log_.size:
                    raise RuntimeError("ledger log and database disagree on the leaf count")
                sealed += len(batch)
                if len(batch) < limit:
                    return sealed

    def _db_size(self, s: Session) -> int:
        top = s.scalar(select(func.max(LedgerEntry.index)))
        return 0 if top is None else top + 1

    def _catch_up(self, log_: Log) -> None:
        """Append leaves the database assigned before a crash kept them from the log."""
        with self.db.read() as s:
            db_size = self._db_size(s)
            if log_.size > db_size:
                raise RuntimeError(
                    f"the ledger log holds {log_.size} leaves but the database knows "
                    f"{db_size}: the database was restored from an older copy or rows deleted")
            while log_.size < db_size:
                rows = list(s.scalars(
                    select(LedgerEntry.commitment).where(LedgerEntry.index >= log_.size)
                    .order_by(LedgerEntry.index).limit(SEAL_BATCH)))
                log.warning("ledger: re-appending %d leaves assigned before a crash", len(rows))
                log_.append_batch(rows)

    def _assign(self, limit: int) -> list[bytes]:
        """Step 1: give pending events their leaf indexes, in one transaction."""
        with self.db.session() as s:
            rows = list(s.scalars(select(EventRecord).where(EventRecord.ledger_index.is_(None))
                                  .order_by(EventRecord.seq).limit(limit)))
            if not rows:
                return []
            nxt = self._db_size(s)
            entries, commitments, updates = [], [], []
            for i, rec in enumerate(rows):
                if rec.salt is None:  # erased before it was sealed: commit to its id only
                    c = commit(b"\0" * 32, canonical_json({"id": rec.id, "erased": True}))
                else:
                    c = commit(rec.salt, canonical_record(rec))
                entries.append({"index": nxt + i, "event_id": rec.id, "commitment": c})
                updates.append({"b_seq": rec.seq, "b_index": nxt + i})
                commitments.append(c)
            s.execute(LedgerEntry.__table__.insert(), entries)
            events = EventRecord.__table__
            s.connection().execute(update(events).where(events.c.seq == bindparam("b_seq"))
                                   .values(ledger_index=bindparam("b_index")), updates)
            return commitments

    # ------------------------------------------------------------ checkpoints

    def latest_checkpoint(self) -> CheckpointView | None:
        with self.db.read() as s:
            row = s.scalars(select(LedgerCheckpoint).order_by(LedgerCheckpoint.id.desc())
                            .limit(1)).first()
            return CheckpointView.of(row) if row else None

    def checkpoints(self) -> list[CheckpointView]:
        with self.db.read() as s:
            return [CheckpointView.of(r) for r in
                    s.scalars(select(LedgerCheckpoint).order_by(LedgerCheckpoint.id))]

    def checkpoint(self, force: bool = False) -> CheckpointView | None:
        """Sign the current tree head and gather cosignatures (writer only).

        Returns the new checkpoint, or the latest one when nothing changed and
        ``force`` is not set; None when this process is not the writer.
        """
        with self._lock:
            log_ = self.writer()
            if log_ is None:
                return None
            latest = self.latest_checkpoint()
            if latest and latest.size == log_.size and not force and \
                    (latest.quorum_met or not self.policy.witnesses):
                return latest
            cp = Checkpoint(self.origin, log_.size, log_.root())
            note = sign_checkpoint(cp, self.signer)
            lines, cosigned = self._cosign(log_, cp, note)
            if lines:
                note = add_signature_lines(note, lines)
            met = self.policy.satisfied_by(cosigned)
            with self.db.session() as s:
                row = LedgerCheckpoint(size=cp.size, root_hash=cp.root_hash, note=note,
                                       cosigned_by=" ".join(sorted(cosigned)), quorum_met=met,
                                       created_at=utcnow())
                s.add(row)
                s.flush()
                view = CheckpointView.of(row)
            self._last_checkpoint = time.monotonic()
            if not met:
                log.warning("ledger: checkpoint %d lacks its witness quorum (cosigned by %s)",
                            cp.size, sorted(cosigned) or "none")
            return view

    def _cosign(self, log_: Log, cp: Checkpoint, note: str) -> tuple[list[str], set[str]]:
        """Ask each policy witness with a URL to cosign; a refusal is logged and kept."""
        lines: list[str] = []
        cosigned: set[str] = set()
        for w in self.policy.witnesses.values():
            if not w.url:
                continue
            with self.db.read() as s:
                progress = s.get(WitnessProgress, w.name)
                old = progress.size if progress else 0
            error = None
            for _attempt in range(2):
                try:
                    if old > cp.size:
                        raise WitnessConflict(f"witness is at {old}, beyond {cp.size}", old)
                    proof = log_.consistency_proof(old, cp.size) if old else []
                    got = request_cosignature(w.url, old, proof, note, witness_vkey=w.vkey,
                                              timeout=10)
                    lines.append(got)
                    cosigned.add(w.name)
                    old, error = cp.size, None
                    break
                except WitnessConflict as exc:
                    error = f"409: witness holds size {exc.latest_size}"
                    if exc.latest_size > cp.size or exc.latest_size == old:
                        break
                    old = exc.latest_size  # it knows a later state of ours: prove from there
                except (WitnessError, OSError, ValueError) as exc:
                    error = str(exc)[:380]
                    break
            if error:
                log.warning("ledger: witness %s refused checkpoint %d: %s", w.name, cp.size,
                            error)
            with self.db.session() as s:
                row = s.get(WitnessProgress, w.name) or WitnessProgress(witness=w.name, size=0)
                if w.name in cosigned:
                    row.size = cp.size
                row.last_error = error
                row.updated_at = utcnow()
                s.add(row)
        return lines, cosigned

    def witness_status(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            progress = {p.witness: p for p in s.scalars(select(WitnessProgress))}
        out = []
        for w in self.policy.witnesses.values():
            p = progress.get(w.name)
            out.append({"name": w.name, "vkey": w.vkey, "url": w.url,
                        "cosigned_size": p.size if p else 0,
                        "last_error": p.last_error if p else None})
        return out

    # ----------------------------------------------------------------- proofs

    def _covering_checkpoint(self, index: int) -> CheckpointView:
        latest = self.latest_checkpoint()
        if latest is None or latest.size <= index:
            if self.writer() is not None:
                self.seal()
                latest = self.checkpoint()
            if latest is None or latest.size <= index:
                raise Conflict("the event is in the log but not yet in a signed checkpoint; "
                               f"retry in {int(self.interval) + 1} s",
                               code="ledger.not_checkpointed")
        return latest

    def proof_bundle(self, principal: Principal | None, event_id: str, *,
                     opening: bool = False, _sealed: bool = False) -> dict[str, Any]:
        """An inclusion proof of one event a third party can check offline.

        ``principal`` None is the operator at the console (``tocsin ledger prove``).
        With ``opening`` the bundle carries the salt and the record: the event
        itself, so it is a sensitive read, allowed only within the auditor's subtree.
        """
        if principal is not None:
            access.require(principal, "read", Resource("ledger", None))
        with self.db.read() as s:
            entry = s.scalars(select(LedgerEntry).where(LedgerEntry.event_id == event_id)).first()
            rec = s.scalars(select(EventRecord).where(EventRecord.id == event_id)).first()
        if entry is None:
            if rec is None:
                raise NotFound("no such event in the ledger", code="ledger.unknown_event")
            if not _sealed and self.writer() is not None:
                self.seal()
                return self.proof_bundle(principal, event_id, opening=opening, _sealed=True)
            raise Conflict("the event is not sealed in the log yet; retry in a few seconds",
                           code="ledger.pending")
        cp = self._covering_checkpoint(entry.index)
        salt = record = None
        if opening:
            if rec is None or rec.salt is None:
                raise Conflict("this event was erased: its commitment can no longer be opened",
                               code="ledger.erased")
            if principal is not None:
                access.require(principal, "read", Resource(
                    "ledger_opening", self.rt.units.path(rec.unit_id)))
            salt, record = rec.salt, canonical_record(rec)
        view = self.reader()
        try:
            proof = view.inclusion_proof(entry.index, cp.size)
        finally:
            self.release(view)
        if principal is not None:
            with self.db.session() as s:
                emit(s, DomainEvent(
                    type="ledger.proof.read" if not opening else "ledger.opening.read",
                    actor_id=principal.user_id, unit_id=rec.unit_id if rec else None,
                    record_kind="event", record_id=event_id, audience=[],
                    payload={"index": entry.index}))
        witnesses = [{"name": w.name, "vkey": w.vkey} for w in self.policy.witnesses.values()]
        quorum = self._quorum_count()
        return make_proof_bundle(entry.commitment, entry.index, cp.size, proof, cp.note,
                                 self.vkey, witnesses or None,
                                 quorum if witnesses else None, salt, record)

    def _quorum_count(self) -> int:
        """The policy's quorum as "k of the listed witnesses" for the offline verifier."""
        name = self.policy.quorum
        if name == "none":
            return 0
        if name in self.policy.witnesses:
            return 1
        group = self.policy.groups[name]
        nested = any(m in self.policy.groups for m in group.members)
        return len(self.policy.witnesses) if nested else group.threshold

    def inclusion_proofs(self, event_ids: list[str]) -> dict[str, Any]:
        """Proof bundles for many events (court exports); pending ones are listed."""
        bundles, pending = {}, []
        for event_id in event_ids:
            try:
                bundles[event_id] = self.proof_bundle(None, event_id)
            except Conflict:
                pending.append(event_id)
            except NotFound:
                pending.append(event_id)
        return {"status": "ok" if not pending else "partial", "log_vkey": self.vkey,
                "verifier": "python -m tocsin.engines.ledger.verify BUNDLE.json",
                "bundles": bundles, "pending": pending}

    def consistency(self, principal: Principal, old: int, new: int | None) -> dict[str, Any]:
        access.require(principal, "read", Resource("ledger", None))
        view = self.reader()
        try:
            size = view.size if view else 0
            new = size if new is None else new
            if not 0 <= old <= new <= size:
                raise BadInput(f"sizes must satisfy 0 <= old <= new <= {size}",
                               code="ledger.bad_sizes")
            if view is None:
                return {"old_size": 0, "new_size": 0, "proof": []}
            proof = view.consistency_proof(old, new)
            return {"old_size": old, "new_size": new, "old_root": view.root(old).hex(),
                    "new_root": view.root(new).hex(), "proof": [p.hex() for p in proof]}
        finally:
            self.release(view)

    def require_auditor(self, principal: Principal) -> None:
        access.require(principal, "read", Resource("ledger", None))

    # ---------------------------------------------------------------- erasure

    def erase(self, event_ids: list[str], reason: str, actor_id: int | None = None) -> int:
        """Erase events' content and salt (GDPR, court order); the log still verifies."""
        from tocsin.core.events import erase

        if not reason.strip():
            raise BadInput("say why the events are erased", code="ledger.erase_reason")
        with self.db.session() as s:
            n = erase(s, event_ids)
            emit(s, DomainEvent(type="ledger.events.erased", actor_id=actor_id, audience=[],
                                payload={"count": n, "reason": reason[:200]}))
        return n

    # ---------------------------------------------------------- the background

    def on_event(self, _event: DomainEvent) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None or not self.writer_enabled:
            return
        self.rt.bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name="tocsin-ledger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=min(self.interval, 2.0))
            if self._stopping.is_set():
                break
            self._wake.clear()
            try:
                if self.seal():
                    self._stopping.wait(0.05)  # let a burst gather into one batch
                if time.monotonic() - self._last_checkpoint >= self.interval:
                    latest = self.latest_checkpoint()
                    writer = self._writer
                    retry = latest is not None and not latest.quorum_met and \
                        bool(self.policy.witnesses)
                    if writer is not None and (latest is None or latest.size < writer.size
                                               or retry):
                        self.checkpoint()
                    else:
                        self._last_checkpoint = time.monotonic()
            except Exception:
                log.exception("ledger: sealing failed; retrying")
                self._stopping.wait(1.0)

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def get_service(runtime: Runtime) -> LedgerService:
    return runtime.service("ledger", LedgerService)


def on_startup(runtime: Runtime) -> None:
    get_service(runtime).start()
