"""The demo operation loads on the small demo force, once."""

from __future__ import annotations

import datetime as dt
import random

from tocsin.core import demo
from tocsin.operations import demo as ops_demo
from tocsin.operations.service import get_service


def test_demo_operation(runtime, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_MODULES", [])
    demo.populate(runtime, size="small", progress=lambda _m: None)
    said = []
    ops_demo.populate_demo(runtime, random.Random(1), said.append)
    ops_demo.populate_demo(runtime, random.Random(1), said.append)
    assert said[-1] == "demo operation already loaded"
    svc = get_service(runtime)
    commander = runtime.identity.principal_for("commander")
    [op] = svc.list_operations(commander)
    detail = svc.get_operation(commander, op["id"])
    assert len(detail["sectors"]) == 3 and len(detail["points"]) == 4
    assert all(u["sector_id"] for u in detail["units"])
    patrol = runtime.identity.principal_for("patrol1")
    assert svc.get_operation(patrol, op["id"])["my_units"]
    replay = svc.replay(commander, op["id"], dt.datetime.now(dt.timezone.utc))
    assert len(replay["positions"]) == len(detail["units"])
    kinds = {e["kind"] for e in svc.journal(commander, op["id"])}
    assert {"decision", "order", "report", "assignment"} <= kinds
