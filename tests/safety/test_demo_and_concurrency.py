"""The demo stories reach a briefing; concurrent merges of the same persons lose nothing."""

from __future__ import annotations

import random
import threading

from sqlalchemy import func, select

from tocsin.core import demo
from tocsin.core.errors import Conflict
from tocsin.safety import service
from tocsin.safety.demo import STORIES, populate_demo
from tocsin.safety.models import SafetyIdentityRecord, SafetyOperation
from tocsin.safety.schemas import IdentityRecordIn, MergeIn


def test_demo_addresses_brief_the_dog_and_the_violent_man(runtime):
    demo.populate(runtime, size="small", progress=lambda _m: None)
    populate_demo(runtime, random.Random(1), lambda _m: None)
    populate_demo(runtime, random.Random(1), lambda _m: None)  # loading twice changes nothing
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).select_from(SafetyOperation)) == 3006
    patrol2 = runtime.identity.principal_for("patrol2")
    dispatcher = runtime.identity.principal_for("dispatcher")
    for addr, lat, lon, story in STORIES[:2]:
        b = service.briefing_for(runtime, dispatcher, lat, lon, radius_m=30)
        cats = {f["category"] for f in b["flags"]}
        assert {"dog": "dangerous_dog", "violent": "violent_towards_police"}[story] in cats
        assert all(f["state"] == "active" for f in b["flags"])
        assert b["operations"][0]["address"] == addr
        # a patrol of the sister brigade still gets the warnings, not the files
        other = service.briefing_for(runtime, patrol2, lat, lon, radius_m=30)
        assert cats <= {f["category"] for f in other["flags"]} | {"protection_order"}
        assert other["withheld"]["total"] > 0


def test_concurrent_merges_of_the_same_pair_one_wins_nothing_lost(runtime, force):
    p = force.principal("patrol1")
    ids = [service.add_record(runtime, p, IdentityRecordIn(
        source=f"src{i}", given_names="Ville", surname="Saarinen",
        birth_date="1970-01-01"))["person_id"] for i in range(3)]
    results: list[object] = []

    def merge(target, source):
        try:
            results.append(service.merge(runtime, p, MergeIn(
                target_id=target, source_id=source, reason="concurrent")))
        except Conflict as err:
            results.append(err.code)

    threads = [threading.Thread(target=merge, args=(ids[0], ids[1])),
               threading.Thread(target=merge, args=(ids[2], ids[1])),
               threading.Thread(target=merge, args=(ids[1], ids[0]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if isinstance(r, dict)]
    assert len(done) >= 1
    assert all(r == "safety.person.merged" for r in results if not isinstance(r, dict))
    with runtime.db.read() as s:
        owners = dict(s.execute(select(SafetyIdentityRecord.id, SafetyIdentityRecord.person_id)).all())
    assert len(owners) == 3  # no record lost
    canon = {}
    with runtime.db.read() as s:
        canon = service.canonical_ids(s, list(owners.values()))
    assert set(canon.values()) <= set(ids)
    for r in reversed(done):  # every merge undoes, last first
        service.unmerge(runtime, p, r["merge"]["id"])
    with runtime.db.read() as s:
        back = dict(s.execute(select(SafetyIdentityRecord.id, SafetyIdentityRecord.person_id)).all())
    assert sorted(back.values()) == sorted(ids)
