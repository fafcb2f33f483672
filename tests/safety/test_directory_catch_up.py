"""The person directory never skips a record committed out of id order.

On PostgreSQL a transaction holding id 10 can commit after one holding id 11; a
directory reading "ids above the last one seen" then skips record 10 for ever. It
reads by ``index_seq``, taken in commit order, instead."""

from __future__ import annotations

import pytest

from tests.conftest import PG_URL
from tocsin.safety import matching, service
from tocsin.safety.models import SafetyIdentityRecord, SafetyPerson
from tocsin.safety.schemas import IdentityRecordIn


def _found(rt, principal, given, surname) -> list[int]:
    return [x["id"] for x in service.search_persons(rt, principal, given, surname,
                                                    "1970-01-01")["results"]]


def _record(s, unit_id, given, surname, rec_id=None) -> SafetyIdentityRecord:
    """What ``add_record`` writes, with the id the database happened to hand out."""
    person = SafetyPerson(id=rec_id, unit_id=unit_id)
    s.add(person)
    s.flush()
    rec = SafetyIdentityRecord(id=rec_id, person_id=person.id, source="test",
                               given_names=given, surname=surname, birth_date="1970-01-01",
                               fingerprint=f"test-{given}-{surname}")
    s.add(rec)
    s.flush()
    return rec


def _add(rt, principal, given, surname) -> int:
    return service.add_record(rt, principal, IdentityRecordIn(
        source="rms", given_names=given, surname=surname, birth_date="1970-01-01"))["person_id"]


def test_a_record_committed_after_a_higher_id_is_still_found(force):
    rt, p = force.runtime, force.principal("patrol1")
    first = _add(rt, p, "Aino", "Virtanen")
    assert _found(rt, p, "Aino", "Virtanen") == [first]  # the directory is built
    with rt.db.session() as s:  # a writer that got id 50 commits first ...
        matching.stamp_records(s, [_record(s, p.unit_id, "Mikko", "Laine", rec_id=50)])
    assert _found(rt, p, "Mikko", "Laine") == [50]  # ... and is read
    with rt.db.session() as s:  # ... then the writer that got id 10 commits
        matching.stamp_records(s, [_record(s, p.unit_id, "Leo", "Nieminen", rec_id=10)])
    assert _found(rt, p, "Leo", "Nieminen") == [10], "a record below the last id was skipped"
    later = _add(rt, p, "Sanna", "Korhonen")
    assert _found(rt, p, "Sanna", "Korhonen") == [later]
    with rt.db.read() as s:
        seqs = dict(s.query(SafetyIdentityRecord.person_id, SafetyIdentityRecord.index_seq))
    assert seqs[10] > seqs[50] > seqs[first] and seqs[later] > seqs[10]  # commit order


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="ids handed out out of commit order need PostgreSQL")
def test_a_slow_transaction_with_a_lower_id_is_not_skipped_on_postgres(force):
    rt, p = force.runtime, force.principal("patrol1")
    _add(rt, p, "Aino", "Virtanen")
    with rt.db.session() as slow:
        rec = _record(slow, p.unit_id, "Leo", "Nieminen")  # id from the sequence, not committed
        quick = _add(rt, p, "Mikko", "Laine")  # a higher id, committed first
        assert quick > rec.person_id
        assert _found(rt, p, "Mikko", "Laine") == [quick]  # the directory reads past rec's id
        matching.stamp_records(slow, [rec])
        slow_person = rec.person_id
    assert _found(rt, p, "Leo", "Nieminen") == [slow_person]


def test_the_counter_row_is_made_if_missing(force):
    rt, p = force.runtime, force.principal("patrol1")
    first = _add(rt, p, "Aino", "Virtanen")
    from tocsin.safety.models import SafetyCounter

    with rt.db.session() as s:
        s.query(SafetyCounter).delete()
    second = _add(rt, p, "Mikko", "Laine")
    with rt.db.read() as s:
        seqs = dict(s.query(SafetyIdentityRecord.person_id, SafetyIdentityRecord.index_seq))
    assert seqs[second] == seqs[first] + 1
    assert _found(rt, p, "Mikko", "Laine") == [second]
