"""The dispatch demo: Helsinki units with crews, a history, and a living call stream."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from tocsin.core import demo
from tocsin.dispatch.demo import CallStream, populate_demo
from tocsin.dispatch.models import Call, DispatchUnit, Incident


def test_demo_fills_helsinki_and_the_stream_dispatches(runtime, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_MODULES", [])  # only the force here
    demo.populate(runtime, size="small", progress=lambda _m: None)
    populate_demo(runtime, random.Random(1), lambda _m: None)
    populate_demo(runtime, random.Random(1), lambda _m: None)  # twice changes nothing
    from tocsin.dispatch.service import get_service

    svc = get_service(runtime)
    patrol1 = runtime.identity.principal_for("patrol1")
    mine = svc.my_units(patrol1)
    assert len(mine) == 1 and mine[0].lat is not None
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).select_from(DispatchUnit)) == 20
        assert s.scalar(select(func.count()).select_from(Incident)
                        .where(Incident.status == "closed")) == 60
    stream = CallStream(runtime, seed=3, dispatch_after_s=0, clear_after_s=0)
    stream.calltaker = runtime.identity.principal_for("calltaker")
    stream.dispatcher = runtime.identity.principal_for("dispatcher")
    for _ in range(40):
        stream.tick()
    with runtime.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Call)) > 0
        assert s.scalar(select(func.count()).select_from(Incident)
                        .where(Incident.dispatched_at.is_not(None))) > 0
        closed_live = s.scalar(select(func.count()).select_from(Incident).where(
            Incident.status == "closed", Incident.on_scene_at.is_not(None)))
    assert closed_live > 0  # units drove there, arrived, and cleared
    assert (runtime.settings.data_dir / "dispatch" / "demo_stream").is_file()
