"""Every read of case data is an event: lists and hits as well as opened records."""

from __future__ import annotations

from tests.cases.helpers import add, new_case


def test_lists_and_hits_are_audited(client, force):
    h1, h2 = force.headers(client, "inv1"), force.headers(client, "inv2")
    c1 = new_case(client, h1, "Burglaries")
    add(client, h1, c1, "phone", number="0612345678")
    assert client.post("/api/v1/cases/watches", json={"kind": "phone", "value": "0612345678"},
                       headers=h2).status_code == 201
    c2 = new_case(client, h2, "Drugs")
    hit = add(client, h2, c2, "phone", number="+33612345678")["hits"][0]
    client.post("/api/v1/cases/access-requests", json={"hit_id": hit["id"], "reason": "why"},
                headers=h2)
    reads = {"cases": "/api/v1/cases", "hits": "/api/v1/cases/hits",
             "watch_alerts": "/api/v1/cases/watch-alerts",
             "access_requests": "/api/v1/cases/access-requests",
             "case_hits": f"/api/v1/cases/{c2}/hits"}
    bodies = {}
    for name, path in reads.items():
        r = client.get(path, headers=h2)
        assert r.status_code == 200, (path, r.text)
        bodies[name] = r.json()
    trail = client.get("/api/v1/cases/audit?username=inv2",
                       headers=force.headers(client, "auditor")).json()
    events = {(e["type"], (e["details"] or {}).get("what")): e for e in trail}
    listed = events[("cases.audit.listed", "cases")]["details"]
    assert listed["case_ids"] == [c["id"] for c in bodies["cases"]] and c2 in listed["case_ids"]
    assert events[("cases.audit.listed", "hits")]["details"]["hit_ids"] == [
        h["id"] for h in bodies["hits"]] == [hit["id"]]
    assert events[("cases.audit.listed", "watch_alerts")]["details"]["alert_ids"] == [
        a["id"] for a in bodies["watch_alerts"]]
    assert events[("cases.audit.listed", "access_requests")]["details"]["request_ids"] == [
        r["id"] for r in bodies["access_requests"]["mine"]]
    opened = events[("cases.audit.opened", "hits")]
    assert opened["record_id"] == str(c2) and opened["actor"] == "inv2"
    # a refused read changes nothing and records no read
    assert client.get(f"/api/v1/cases/{c1}/hits", headers=h2).status_code == 404
    again = client.get(f"/api/v1/cases/audit?case_id={c1}",
                       headers=force.headers(client, "auditor")).json()
    assert not any(e["type"] == "cases.audit.opened" and e["actor"] == "inv2" for e in again)


def test_a_search_reads_without_the_write_lock_and_answers_once_audited(client, force):
    import threading
    import time

    from tocsin.cases.search import Criteria
    from tocsin.cases.service import get_service

    rt = force.runtime
    h1 = force.headers(client, "inv1")
    c1 = new_case(client, h1, "Burglaries")
    add(client, h1, c1, "phone", number="0612345678")
    answers: list = []
    conn = rt.db.engine.connect()
    tx = conn.begin()  # another writer holds the write lock (BEGIN IMMEDIATE on SQLite)
    if not rt.db.is_sqlite:
        conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
    else:
        conn.exec_driver_sql("SELECT 1")
    try:
        t = threading.Thread(target=lambda: answers.append(get_service(rt).search(
            force.principal("inv1"), Criteria(phone="06 12 34 56 78"))))
        t.start()
        deadline = time.monotonic() + 10
        while not rt.reads.writing:  # the search has read; its audit waits for the lock
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.01)
        time.sleep(0.2)
        assert answers == []  # nothing is answered before the audit is stored
    finally:
        tx.rollback()
        conn.close()
    t.join(10)
    assert answers and answers[0]["total"] == 1
    trail = client.get("/api/v1/cases/audit?username=inv1",
                       headers=force.headers(client, "auditor")).json()
    assert any(e["type"] == "cases.audit.searched" for e in trail)


def test_a_search_whose_audit_cannot_be_stored_shows_nothing(client, force):
    from sqlalchemy import text

    h1 = force.headers(client, "inv1")
    c1 = new_case(client, h1, "Burglaries")
    add(client, h1, c1, "phone", number="0612345678")
    with force.runtime.db.session() as s:
        s.execute(text("ALTER TABLE events RENAME TO events_away"))
    try:
        r = client.post("/api/v1/cases/search", json={"phone": "0612345678"}, headers=h1)
    finally:
        with force.runtime.db.session() as s:
            s.execute(text("ALTER TABLE events_away RENAME TO events"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "audit.not_recorded"
    assert "0612345678" not in r.text and "Burglaries" not in r.text
