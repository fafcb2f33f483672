"""The available units, kept in memory for the recommendation.

Ranking 5,000 units must not read and decode 5,000 rows per request. This index
holds every *available* dispatch unit as parallel numpy arrays (id, position,
snapped road node, kind factor, capabilities, owning unit), ordered by id, so a
recommendation costs one road search and a few vectorised steps.

The database stays the source of truth; the index only remembers which rows it
must read again:

* every change of a unit is a ``dispatch.unit.*`` event; the bus brings them
  from every node (``mark``), and this node's own commits mark their units at
  once (before the bus echo comes back over Redis);
* the next request reads the marked units again by id, in one query, and
  applies what it finds (a unit no longer available, or gone, leaves);
* the whole index is read again after ``RESYNC_S`` seconds, and when the road
  graph changes its units are snapped again, so a bus message lost between
  nodes (Redis pub/sub keeps none) is repaired within that bound.

Ids are marked before their rows are read (the mark is taken, then the read
starts), so a change committed during a read is read again next time: nothing is
lost to a race. Each refresh publishes a new immutable ``Snapshot``; requests
rank on the one they took, without a lock.

Access is not cached here: the service filters a snapshot per request with
``core.access`` (one decision per owning unit).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Text, select, type_coerce

from tocsin.core.database import Database
from tocsin.dispatch.models import DispatchUnit
from tocsin.dispatch.recommend import Candidates, kind_factor, object_array, snap_positions

RESYNC_S = 60.0  # the whole index is read again at least this often
_BATCH = 500  # ids per IN (...) query


def capabilities(raw, decoded: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A unit's capabilities from its column read as JSON text (``type_coerce(...,
    Text)``), each distinct text decoded once (``decoded`` remembers them)."""
    if not isinstance(raw, str):  # PostgreSQL's driver decodes JSON itself
        return tuple(raw or ())
    found = decoded.get(raw)
    if found is None:
        found = decoded[raw] = tuple(json.loads(raw))
    return found


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The available units at one moment, snapped to ``graph``; never changed."""

    graph: object
    units: Candidates  # ordered by id
    owner: np.ndarray  # owning unit id of each unit
    owners: np.ndarray  # the distinct owning units, sorted
    owner_pos: np.ndarray  # index into ``owners`` of each unit

    def __len__(self) -> int:
        return len(self.units.ids)


class AvailableUnits:
    """Event-maintained index of the available dispatch units (see the module doc)."""

    def __init__(self, db: Database, resync_s: float = RESYNC_S):
        self.db = db
        self.resync_s = resync_s
        self._lock = threading.Lock()  # one refresh at a time
        self._marks_lock = threading.Lock()
        self._marked: set[int] = set()
        self._everything = True  # read the whole index at the next request
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._capset_ids: dict[tuple[str, ...], int] = {}
        self.reads = {"full": 0, "units": 0}  # how many reads of each kind (for tests, stats)

    # ----------------------------------------------------------------- marks
    def mark(self, unit_ids: Iterable[int]) -> None:
        """These units changed: read them again before the next ranking."""
        with self._marks_lock:
            self._marked.update(unit_ids)

    def invalidate(self) -> None:
        """Read everything again before the next ranking."""
        with self._marks_lock:
            self._everything = True

    def _take_marks(self) -> tuple[bool, set[int]]:
        with self._marks_lock:
            everything, marked = self._everything, self._marked
            self._everything, self._marked = False, set()
        return everything, marked

    # -------------------------------------------------------------- snapshot
    def snapshot(self, graph) -> Snapshot:
        """The current units, with every change marked so far applied."""
        snap = self._snapshot
        if (snap is not None and snap.graph is graph and not self._marked
                and not self._everything and time.monotonic() - self._read_at < self.resync_s):
            return snap
        with self._lock:
            if time.monotonic() - self._read_at >= self.resync_s:
                self.invalidate()
            everything, marked = self._take_marks()
            snap = self._snapshot
            try:
                if everything or snap is None:
                    self._read_at = time.monotonic()
                    snap = self._build(graph, self._read(None))
                    self.reads["full"] += 1
                else:
                    if snap.graph is not graph:  # a new map: snap every unit again
                        snap = self._resnap(snap, graph)
                    if marked:
                        snap = self._apply(snap, graph, marked)
                        self.reads["units"] += 1
            except BaseException:
                self.invalidate()  # nothing half-applied: start afresh next time
                raise
            self._snapshot = snap
            return snap

    def _read(self, ids: set[int] | None) -> list[tuple]:
        """(id, call_sign, kind, capabilities, owner, lat, lon) of the available units,
        all of them or among ``ids``. Capabilities come as JSON text and are decoded
        once per distinct value."""
        cols = (DispatchUnit.id, DispatchUnit.call_sign, DispatchUnit.kind,
                type_coerce(DispatchUnit.capabilities, Text), DispatchUnit.unit_id,
                DispatchUnit.lat, DispatchUnit.lon)
        base = select(*cols).where(DispatchUnit.status == "available")
        rows: list = []
        with self.db.read() as s:
            if ids is None:
                rows = s.execute(base).all()
            else:
                wanted = sorted(ids)
                for i in range(0, len(wanted), _BATCH):
                    rows += s.execute(base.where(
                        DispatchUnit.id.in_(wanted[i:i + _BATCH]))).all()
        decoded: dict[str, tuple[str, ...]] = {}
        return [(r[0], r[1], r[2], capabilities(r[3], decoded), r[4], r[5], r[6])
                for r in rows]

    def _capset(self, caps: tuple[str, ...]) -> int:
        found = self._capset_ids.get(caps)
        if found is None:
            found = self._capset_ids[caps] = len(self._capset_ids)
        return found

    def _build(self, graph, rows: list[tuple]) -> Snapshot:
        rows = sorted(rows, key=lambda r: r[0])
        n = len(rows)
        lat = np.fromiter((np.nan if r[5] is None or r[6] is None else r[5] for r in rows),
                          dtype=np.float64, count=n)
        lon = np.fromiter((np.nan if r[5] is None or r[6] is None else r[6] for r in rows),
                          dtype=np.float64, count=n)
        node, snap = snap_positions(graph, lat, lon)
        capset = np.fromiter((self._capset(r[3]) for r in rows), dtype=np.intp, count=n)
        units = Candidates(
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=n), lat, lon, node, snap,
            np.fromiter((kind_factor(r[2]) for r in rows), dtype=np.float64, count=n),
            capset, tuple(self._capset_ids), object_array([r[1] for r in rows]),
            object_array([r[2] for r in rows]))
        return self._freeze(graph, units,
                            np.fromiter((r[4] for r in rows), dtype=np.int64, count=n))

    def _freeze(self, graph, units: Candidates, owner: np.ndarray) -> Snapshot:
        owners, owner_pos = np.unique(owner, return_inverse=True)
        owner_pos = owner_pos.astype(np.intp, copy=False).reshape(-1)
        for a in (*units[:7], units.call_sign, units.kind, owner, owners, owner_pos):
            a.flags.writeable = False
        return Snapshot(graph, units, owner, owners, owner_pos)

    def _resnap(self, snap: Snapshot, graph) -> Snapshot:
        node, dist = snap_positions(graph, snap.units.lat, snap.units.lon)
        return self._freeze(graph, snap.units._replace(node=node, snap_m=dist), snap.owner)

    def _apply(self, snap: Snapshot, graph, marked: set[int]) -> Snapshot:
        """Read the ``marked`` units again; those no longer available (or gone) leave."""
        fresh = self._build(graph, self._read(marked))
        old = snap.units
        keep = np.flatnonzero(~np.isin(old.ids, np.fromiter(marked, dtype=np.int64,
                                                               count=len(marked))))
        new = fresh.units
        if not len(new.ids):  # only departures
            return self._freeze(graph, old.take(keep), snap.owner[keep])
        ids = np.concatenate([old.ids[keep], new.ids])
        order = np.argsort(ids, kind="stable")

        def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a[keep], b])[order]

        units = Candidates(*(join(a, b) for a, b in zip(old[:7], new[:7])),
                           tuple(self._capset_ids), join(old.call_sign, new.call_sign),
                           join(old.kind, new.kind))
        return self._freeze(graph, units, join(snap.owner, fresh.owner))
