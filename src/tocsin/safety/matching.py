"""Field safety's use of the entity-resolution engine (``tocsin.engines.resolve``).

No matching logic lives here: identity fields are checked with the engine's
normalisation, and "who is this?" is the engine's :class:`PersonIndex` over every
stored identity record, with its Fellegi-Sunter scores and explanations. The
index holds record ids; which person a record belongs to (merges move records)
is always read from the database.

The index is kept per process and brought up to date from the database before
each lookup, so every app node sees records written on the others. It reads the
records by ``index_seq``, not by ``id``: on PostgreSQL ids are handed out when a
row is inserted, so a transaction holding id 10 may commit after one holding id
11, and "ids above the last one seen" would skip record 10 for ever.
``index_seq`` comes from a counter row taken by :func:`stamp_records` as the
last write of the transaction and locked until it commits, so the values are
committed in order: once a reader sees value ``n``, every value below ``n`` is
already visible to it.

Calibration: the engine's weights need a population. A force starting out has
few records, and term frequencies and ``u`` probabilities measured on ten
records are meaningless (two Jeans among ten would make "Jean" look common). So
the index also holds a fixed *background population* of synthetic identities
from the engine's generator (ids ``bg:...``, never returned) and uses a model the
engine fitted (EM) on synthetic records with known duplicates. Both are built
once per process, from a fixed seed.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tocsin.core.errors import BadInput
from tocsin.engines.resolve import PersonIndex, dedupe, synthetic_fr
from tocsin.engines.resolve import normalise as rn

SUGGEST_PROBABILITY = 0.9   # engine match probability from which a merge is suggested
SEARCH_PROBABILITY = 0.5
BACKGROUND = "bg:"
_FIELDS = ("id", "given_name", "surname", "date_of_birth", "phone", "address", "id_number")
# Attributes of an identity record besides names, birth date and phone (each with its
# provenance, like the others), in the order ``engine_record`` takes them.
EXTRA_ATTRIBUTES = ("address", "id_number", "birth_name", "usage_name")
RECORD_COLUMNS = ("given_names", "surname", "birth_date", "phone", *EXTRA_ATTRIBUTES)


@lru_cache(maxsize=1)
def _reference() -> tuple[Any, tuple[dict[str, str], ...]]:
    """(model fitted by the engine, background records), from a fixed seed."""
    data = synthetic_fr.generate(3000, seed=2026)
    recs = [{k: v for k, v in r.items() if k in _FIELDS} for r in data.records]
    model = dedupe(recs).summary.model
    return model, tuple({**r, "id": BACKGROUND + r["id"]} for r in recs)


def _bad(err: ValueError) -> BadInput:
    field = getattr(err, "field", None) or "value"
    reason = getattr(err, "reason", str(err))
    return BadInput(f"{field}: {reason}", code=f"safety.record.bad_{field}",
                    details={"field": field, "reason": reason})


def address_key(address: str) -> str | None:
    try:
        return rn.normalise_address(address).text or None
    except ValueError as err:
        raise _bad(err) from None


def normalise(given: str, surname: str, birth_date: str | None, phone: str | None, *,
              address: str | None = None, id_number: str | None = None,
              birth_name: str | None = None, usage_name: str | None = None
              ) -> dict[str, Any]:
    """Check identity fields with the engine; the canonical forms, or ``BadInput``.

    ``birth_name`` (maiden name) and ``usage_name`` (married or usage name) are other
    surnames of the same person; ``address`` is kept as written (checked by the
    engine), ``id_number`` in its canonical form (letters and digits, upper case)."""
    try:
        g = rn.parse_given_names(given)
        sn = rn.parse_surname(surname)
        others = [rn.parse_surname(x) for x in (birth_name, usage_name) if x]
        birth = rn.parse_date(birth_date) if birth_date else None
        tel = rn.normalise_phone(phone) if phone else None
        if address:
            rn.normalise_address(address)
        ident = rn.normalise_id_number(id_number) if id_number else None
    except ValueError as err:
        raise _bad(err) from None
    flags = set(g.flags) | set(sn.flags)
    for o in others:
        flags |= set(o.flags)
    return {"given": g.text, "surname": sn.text, "birth_date": birth.iso() if birth else None,
            "phone": tel, "address": address.strip() if address else None, "id_number": ident,
            "birth_name": birth_name.strip() if birth_name else None,
            "usage_name": usage_name.strip() if usage_name else None,
            "flags": sorted(flags)}


def fingerprint(source: str, source_ref: str | None, norm: dict[str, Any]) -> str:
    """Same source and reference, or the same source saying the very same thing:
    a duplicate submission."""
    if source_ref:
        basis = f"ref|{source}|{source_ref.strip().lower()}"
    else:
        basis = "|".join(["val", source, norm["given"], norm["surname"],
                          norm["birth_date"] or "", norm["phone"] or ""])
        extra = [norm.get(k) or "" for k in EXTRA_ATTRIBUTES]
        if any(extra):  # records saying only the first fields keep their fingerprint
            basis += "|" + "|".join(x.strip().lower() for x in extra)
    return hashlib.sha256(basis.encode()).hexdigest()


def engine_surname(surname: str, birth_name: str | None = None,
                   usage_name: str | None = None) -> str:
    """The surname as the engine reads every surname of a person: ``Martin née Dupont``
    (birth name), ``Dupont épouse Martin`` (usage name), ``alias`` for a third one."""
    if not birth_name and not usage_name:
        return surname

    def core(x: str) -> str:
        return rn.parse_surname(x).core

    main = core(surname)
    text = surname
    seen = {main}
    if birth_name and core(birth_name) not in seen:
        text += f" née {birth_name}"
        seen.add(core(birth_name))
        if usage_name and core(usage_name) not in seen:
            text += f" alias {usage_name}"
    elif usage_name and core(usage_name) not in seen:
        text += f" épouse {usage_name}"
    return text


def engine_record(rec_id: Any, given: str, surname: str, birth_date: str | None,
                  phone: str | None, address: str | None = None, id_number: str | None = None,
                  birth_name: str | None = None, usage_name: str | None = None
                  ) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(rec_id), "given_name": given,
                           "surname": engine_surname(surname, birth_name, usage_name)}
    for name, value in (("date_of_birth", birth_date), ("phone", phone), ("address", address),
                        ("id_number", id_number)):
        if value:
            out[name] = value
    return out


def explanation(exp: Any) -> list[dict[str, Any]]:
    """The engine's explanation as JSON: per field, the level reached and its weight."""
    rows = [{"field": "(prior)", "level": "", "weight": round(exp.prior_weight, 2)}]
    for c in exp.contributions:
        if c.level == "missing":
            continue
        rows.append({"field": c.field, "level": c.level, "weight": round(c.total, 2),
                     "values": [str(c.value_a), str(c.value_b)]})
    rows.append({"field": "(total)", "level": f"probability {exp.probability:.4f}",
                 "weight": round(exp.match_weight, 2)})
    return rows


RECORDS_COUNTER = "identity_records"


def allocate(s: Session, n: int, name: str = RECORDS_COUNTER) -> int:
    """The first of ``n`` consecutive values of counter ``name``, in commit order.

    The counter row stays locked until ``s``'s transaction ends, so whoever takes
    later values commits after this transaction: call it as the last write."""
    from tocsin.safety.models import SafetyCounter as C
    from tocsin.safety.models import SafetyIdentityRecord as R

    bump = update(C).where(C.name == name).values(value=C.value + n)
    if s.execute(bump).rowcount == 0:  # no row yet (a database built without the seed)
        start = s.scalar(select(func.coalesce(func.max(R.index_seq), 0))) or 0
        try:
            with s.begin_nested():
                s.add(C(name=name, value=start))
                s.flush()
        except IntegrityError:  # created meanwhile by another writer
            pass
        s.execute(bump)
    return s.scalar(select(C.value).where(C.name == name)) - n + 1


def stamp_records(s: Session, records: list[Any]) -> None:
    """Give new identity records their ``index_seq``: the last write before commit."""
    if records:
        first = allocate(s, len(records))
        for k, rec in enumerate(records):
            rec.index_seq = first + k


class PersonDirectory:
    """The engine's ``PersonIndex`` over all identity records, caught up on demand
    by ``index_seq`` (see the module docstring)."""

    def __init__(self) -> None:
        self._index: PersonIndex | None = None
        self._last_seq = 0
        self._lock = threading.Lock()

    def _catch_up(self, s: Session) -> None:
        from tocsin.safety.models import SafetyIdentityRecord as R

        rows = s.execute(select(R.index_seq, R.id, *[getattr(R, c) for c in RECORD_COLUMNS])
                         .where(R.index_seq > self._last_seq).order_by(R.index_seq)).all()
        if not rows and self._index is not None:
            return
        batch = [engine_record(*r[1:]) for r in rows]
        if self._index is None:
            model, background = _reference()
            self._index = PersonIndex(list(background) + batch, model=model)
        else:
            self._index.add(batch)
        if rows:
            self._last_seq = rows[-1][0]

    def lookup(self, s: Session, query: dict[str, Any], *, top_k: int = 20,
               min_probability: float = SEARCH_PROBABILITY) -> list[tuple[int, float, list]]:
        """``(record id, probability, explanation)`` of the best matching records."""
        with self._lock:
            self._catch_up(s)
            if self._index is None:
                return []
            q = {k: v for k, v in query.items() if k != "id"}
            hits = self._index.lookup(q, top_k=top_k + 10, min_score=min_probability)
            hits = [h for h in hits if not h.id.startswith(BACKGROUND)][:top_k]
            return [(int(h.id), h.score, explanation(self._index.explain(q, h))) for h in hits]
