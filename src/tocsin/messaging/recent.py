"""Recent events in memory, to answer Matrix /sync without the database.

The hub reads the one global stream in order (events, and read receipts by their
own sequence); ``Recent`` keeps the last few thousand of each as the clients will
see them, serialised once. A long-polling client whose token falls inside that
window, and whose joined rooms are known and unchanged since, is answered from
here: the events of its rooms after its token, the receipts after its receipt
position, typing from the hub. Clients with the same token and the same rooms
(everyone in a busy room) share one serialised answer.

The joined rooms of a user come from her last database sync, with the stream
position they were read at. They stay valid while no event after that position
and after her token changed her membership: an ``m.room.member`` event about her,
or a new channel whose audience covers her unit. Anything else falls back to the
database (``MessagingService.sync``): first syncs, ``full_state``, an old token, a
membership change (invites, joins, leaves and new rooms are shaped there), a user
moved to another unit.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

from tocsin.core.access import Principal
from tocsin.messaging.service import SyncToken

KEEP = 5000  # events kept (and as many receipts)
ANSWERS = 1000  # shared serialised answers kept


@dataclass
class Recent:
    """One stream entry as clients see it (``event``: without its room, as in /sync)."""

    stream: int
    room_id: str
    event: dict[str, Any]
    session_id: str | None = None
    txn_id: str | None = None

    def for_session(self, session_id: str | None) -> dict[str, Any]:
        if self.txn_id and session_id and session_id == self.session_id:
            return {**self.event, "unsigned": {**self.event["unsigned"],
                                               "transaction_id": self.txn_id}}
        return self.event


@dataclass(frozen=True)
class Receipt:
    seq: int
    room_id: str
    event_id: str
    receipt_type: str
    mxid: str
    ts: int


@dataclass
class Joined:
    unit_path: str
    rooms: frozenset[str]
    at: int  # stream position they were read at


@dataclass
class Answer:
    body: bytes
    news: bool
    delivered: dict[str, int] = field(default_factory=dict)  # room -> last stream sent


class RecentStream:
    def __init__(self, origin: int, receipt_origin: int, room_mx):
        self.room_mx = room_mx
        self.origin = origin  # membership changes are known from here on
        self.floor = origin  # every event after this, up to ``cursor``, is kept
        self.cursor = origin
        self.items: list[Recent] = []
        self.streams: list[int] = []
        self.by_event: dict[str, Recent] = {}
        self.receipt_floor = receipt_origin
        self.receipt_cursor = receipt_origin
        self.receipts: list[Receipt] = []
        self.seqs: list[int] = []
        self.touched: dict[int, int] = {}  # user -> stream of the last change to her rooms
        self.audiences: list[tuple[int, tuple[str, ...]]] = []  # (stream, unit paths)
        self.joined: dict[int, Joined] = {}
        self._answers: dict[tuple, bytes] = {}
        self.answered = 0  # answers given from memory
        self.declined: dict[str, int] = {}  # why the database had to answer

    def _decline(self, why: str) -> None:
        self.declined[why] = self.declined.get(why, 0) + 1

    # Filling (event loop, in stream order) ------------------------------
    def add(self, item: Recent, *, member_of: int | None = None,
            audience: tuple[str, ...] = ()) -> None:
        """An event read from the stream; ``member_of``: the user whose membership it
        changes; ``audience``: the unit paths of a channel it creates."""
        self.items.append(item)
        self.streams.append(item.stream)
        self.by_event[item.event["event_id"]] = item
        self.cursor = max(self.cursor, item.stream)
        if member_of is not None:
            self.touched[member_of] = item.stream
        if audience:
            self.audiences.append((item.stream, audience))
            del self.audiences[:-KEEP]
        if len(self.items) > 2 * KEEP:
            gone = self.items[:-KEEP]
            for old in gone:
                self.by_event.pop(old.event["event_id"], None)
            self.floor = gone[-1].stream
            del self.items[:-KEEP]
            del self.streams[:-KEEP]

    def advance(self, stream: int) -> None:
        """Every event up to ``stream`` has been read (some need no keeping)."""
        self.cursor = max(self.cursor, stream)

    def redact(self, event_id: str, event: dict[str, Any]) -> None:
        """A kept event was redacted: clients reading it from now on see it redacted."""
        found = self.by_event.get(event_id)
        if found is not None:
            found.event = event

    def add_receipt(self, r: Receipt) -> None:
        self.receipts.append(r)
        self.seqs.append(r.seq)
        self.receipt_cursor = max(self.receipt_cursor, r.seq)
        if len(self.receipts) > 2 * KEEP:
            self.receipt_floor = self.receipts[-KEEP - 1].seq
            del self.receipts[:-KEEP]
            del self.seqs[:-KEEP]

    def advance_receipts(self, seq: int) -> None:
        self.receipt_cursor = max(self.receipt_cursor, seq)

    def reset(self) -> None:
        """Forget the kept events (a retention purge deleted some): the database answers
        until the window fills again."""
        self.floor = self.cursor
        self.items, self.streams, self.by_event = [], [], {}
        self._answers.clear()

    def remember(self, principal: Principal, rooms: list[str], at: int) -> None:
        """The joined rooms a database sync found for this user at stream ``at``."""
        current = self.joined.get(principal.user_id)
        if current is None or current.at <= at:
            self.joined[principal.user_id] = Joined(principal.unit_path, frozenset(rooms), at)

    def forget(self, user_id: int) -> None:
        self.joined.pop(user_id, None)

    # Answering -----------------------------------------------------------
    def answer(self, principal: Principal, token: SyncToken, limit: int,
               typing: dict[str, list[str]], typing_version: int) -> Answer | None:
        """The /sync answer for ``token`` from memory, or None when the database must
        answer. ``typing``: room -> user ids typing, for the rooms changed since the
        token's typing version."""
        since, rsince = token.stream, token.receipt
        if since < self.floor or rsince < self.receipt_floor:
            return self._decline("old token")
        joined = self.joined.get(principal.user_id)
        if joined is None or joined.unit_path != principal.unit_path or \
                joined.at < self.origin:
            return self._decline("rooms unknown")
        known = min(since, joined.at)
        if self.touched.get(principal.user_id, 0) > known:
            return self._decline("membership changed")  # invites, leaves, new rooms
        for stream, paths in reversed(self.audiences):
            if stream <= known:
                break
            if any(principal.unit_path.startswith(p) for p in paths):
                return self._decline("new channel")  # for her unit
        rooms = joined.rooms
        timeline: dict[str, list[Recent]] = {}
        own = False
        for item in self.items[bisect.bisect_right(self.streams, since):]:
            if item.room_id in rooms:
                timeline.setdefault(item.room_id, []).append(item)
                own = own or (item.txn_id is not None and item.session_id is not None
                              and item.session_id == principal.session_id)
        receipts: dict[str, dict] = {}
        for r in self.receipts[bisect.bisect_right(self.seqs, rsince):][:2000]:
            if r.room_id in rooms:
                receipts.setdefault(r.room_id, {}).setdefault(r.event_id, {}).setdefault(
                    r.receipt_type, {})[r.mxid] = {"ts": r.ts}
        typing = {r: ids for r, ids in typing.items() if r in rooms}
        nxt = str(SyncToken(max(since, self.cursor), max(rsince, self.receipt_cursor),
                            typing_version))
        delivered = {r: items[-1].stream for r, items in timeline.items()}
        news = bool(timeline or receipts or typing)
        key = None
        if news and not typing and not own:  # the same for everyone with these rooms
            key = (since, rsince, limit, nxt, tuple(sorted(set(timeline) | set(receipts))))
            body = self._answers.get(key)
            if body is not None:
                self.answered += 1
                return Answer(body, True, delivered)
        joins = {}
        for rid in sorted(set(timeline) | set(receipts) | set(typing)):
            items = timeline.get(rid, [])
            limited = len(items) > limit
            items = items[-limit:]
            ephemeral = []
            if rid in receipts:
                ephemeral.append({"type": "m.receipt", "content": receipts[rid]})
            if rid in typing:
                ephemeral.append({"type": "m.typing", "content": {"user_ids": typing[rid]}})
            joins[self.room_mx(rid)] = {
                "state": {"events": []},
                "timeline": {"events": [i.for_session(principal.session_id) for i in items],
                             "limited": limited,
                             "prev_batch": f"t{items[0].stream}" if items else f"t{since + 1}"},
                "ephemeral": {"events": ephemeral}, "account_data": {"events": []},
                "unread_notifications": {}}
        body = json.dumps(empty_sync(nxt, joins)).encode()
        if key is not None:
            if len(self._answers) >= ANSWERS:
                self._answers.clear()
            self._answers[key] = body
        self.answered += 1
        return Answer(body, news, delivered)


def empty_sync(next_batch: str, joins: dict | None = None) -> dict[str, Any]:
    return {"next_batch": next_batch, "rooms": {"join": joins or {}, "invite": {}, "leave": {}},
            "presence": {"events": []}, "account_data": {"events": []},
            "to_device": {"events": []}, "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {}}
