"""The ledger as auditors and operators use it: HTTP routes, CLI, a witness process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import free_port
from tests.core.test_cli import run
from tocsin.core.events import EventRecord
from tocsin.engines.ledger import open_checkpoint, verify_bundle, verify_consistency


def latest_event_id(runtime) -> str:
    with runtime.db.read() as s:
        return s.scalars(select(EventRecord.id).order_by(EventRecord.seq.desc())).first()


def test_running_app_seals_events_and_serves_auditors(client, force, runtime):
    auditor = force.headers(client, "auditor")
    event_id = latest_event_id(runtime)  # the auditor's own login
    deadline = time.time() + 15
    while time.time() < deadline:  # the background sealer picks it up
        with runtime.db.read() as s:
            sealed = s.scalar(select(EventRecord.ledger_index).where(EventRecord.id == event_id))
        if sealed is not None:
            break
        time.sleep(0.1)
    assert sealed is not None

    r = client.get(f"/api/v1/ledger/proof/{event_id}", headers=auditor)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert verify_bundle(bundle).startswith("OK") and "opening" not in bundle
    keys = client.get("/api/v1/ledger/keys", headers=auditor).json()
    note = client.get("/api/v1/ledger/checkpoint", headers=auditor)
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    cp, _ = open_checkpoint(note.text, [keys["log_vkey"]], origin=keys["origin"])
    assert cp.size >= bundle["index"] + 1

    opened = client.get(f"/api/v1/ledger/proof/{event_id}?open=true", headers=auditor).json()
    assert "commitment opens to the record" in verify_bundle(opened)

    cons = client.get(f"/api/v1/ledger/consistency?old=1&new={cp.size}", headers=auditor).json()
    assert verify_consistency(1, cp.size, bytes.fromhex(cons["old_root"]),
                              bytes.fromhex(cons["new_root"]),
                              [bytes.fromhex(h) for h in cons["proof"]])
    # proof reads are themselves recorded
    with runtime.db.read() as s:
        kinds = set(s.scalars(select(EventRecord.type).where(
            EventRecord.actor_id == force.users["auditor"])))
    assert {"ledger.proof.read", "ledger.opening.read"} <= kinds


def test_ledger_routes_refuse_and_explain(client, force, runtime):
    auditor = force.headers(client, "auditor")
    patrol = force.headers(client, "patrol1")
    event_id = latest_event_id(runtime)
    assert client.get(f"/api/v1/ledger/proof/{event_id}", headers=patrol).status_code == 403
    assert client.get("/api/v1/ledger/checkpoint", headers=patrol).status_code == 403
    assert client.get("/api/v1/ledger/checkpoint").status_code == 401
    r = client.get("/api/v1/ledger/proof/" + "0" * 32, headers=auditor)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ledger.unknown_event"
    r = client.get("/api/v1/ledger/proof/x';DROP TABLE events;--", headers=auditor)
    assert r.status_code == 404
    r = client.get("/api/v1/ledger/consistency?old=5&new=2", headers=auditor)
    assert r.status_code == 422 and r.json()["error"]["code"] == "ledger.bad_sizes"
    r = client.get("/api/v1/ledger/consistency?old=-1", headers=auditor)
    assert r.status_code == 422


def test_cli_checkpoint_verify_prove_and_tamper(tmp_path):
    data = tmp_path / "var"
    csv = tmp_path / "units.csv"
    csv.write_text("code,name,kind,parent_code\nNAT,Nation,nation,\nR1,Region,region,NAT\n")
    assert run(data, "units", "import", str(csv)).returncode == 0
    r = run(data, "ledger", "checkpoint")
    assert r.returncode == 0, r.stderr
    assert "checkpoint at size" in r.stderr and r.stdout.startswith("tocsin.local/ledger\n")
    r = run(data, "ledger", "verify")
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout + r.stderr

    db = sqlite3.connect(data / "tocsin.sqlite3")
    event_id, = db.execute("SELECT id FROM events ORDER BY seq LIMIT 1").fetchone()
    out = tmp_path / "proof.json"
    r = run(data, "ledger", "prove", event_id, "--open", "--out", str(out))
    assert r.returncode == 0, r.stderr
    check = subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.verify", str(out)],
                           check=False, capture_output=True, text=True)
    assert check.returncode == 0 and "commitment opens" in check.stdout

    # someone with database access rewrites what an event said
    db.execute("UPDATE events SET payload = '{\"code\": \"FORGED\"}' WHERE id = ?", (event_id,))
    db.commit()
    r = run(data, "ledger", "verify")
    assert r.returncode == 1 and f"event {event_id}" in r.stdout and "tampered" in r.stdout
    # erasing it (GDPR) instead makes it verify again, without its content
    r = run(data, "ledger", "erase", event_id, "--reason", "court order 2026-117")
    assert r.returncode == 0 and "erased 1 of 1" in r.stdout
    r = run(data, "ledger", "verify")
    assert r.returncode == 0 and "1 erased" in r.stdout, r.stdout
    r = run(data, "ledger", "erase", event_id)
    assert r.returncode != 0  # --reason is required
    db.close()
    r = run(data, "ledger", "prove", "0" * 32)
    assert r.returncode == 2 and "ledger.unknown_event" in r.stderr


@pytest.fixture
def witness(tmp_path):
    """A real `tocsin witness serve` process, trusting the log of ``tmp_path/var``."""
    data = tmp_path / "var"
    log_vkey = run(data, "ledger", "vkey").stdout.strip()
    wdir = tmp_path / "witness"
    w_vkey = run(data, "witness", "vkey", "--dir", str(wdir), "--name", "unit-b.example/w1"
                 ).stdout.strip()
    assert (wdir / "witness.skey").stat().st_mode & 0o777 == 0o600
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env["TOCSIN_DATA_DIR"] = str(tmp_path / "witness-host")
    proc = subprocess.Popen([sys.executable, "-m", "tocsin", "witness", "serve", "--dir",
                             str(wdir), "--port", str(port), "--log-vkey", log_vkey],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if httpx.get(url + "/add-checkpoint", timeout=0.5).status_code == 405:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    policy = tmp_path / "policy.txt"
    policy.write_text(f"witness w1 {w_vkey} {url}\nquorum w1\n")
    yield data, policy, proc
    proc.terminate()
    proc.wait(10)


def test_witness_cosigns_then_refuses_a_rewritten_history(tmp_path, witness):
    data, policy, proc = witness
    env = {"TOCSIN_LEDGER_POLICY_FILE": str(policy)}
    csv = tmp_path / "units.csv"
    csv.write_text("code,name,kind,parent_code\nNAT,Nation,nation,\nR1,Region,region,NAT\n"
                   "R2,Region 2,region,NAT\n")

    def ledger(*args):
        return run(data, "ledger", *args, env=env)

    assert run(data, "units", "import", str(csv)).returncode == 0
    r = ledger("checkpoint")
    assert r.returncode == 0 and "cosigned by w1" in r.stderr, r.stderr
    db = sqlite3.connect(data / "tocsin.sqlite3")
    event_id, = db.execute("SELECT id FROM events ORDER BY seq LIMIT 1").fetchone()
    bundle = json.loads(ledger("prove", event_id).stdout)
    assert bundle["quorum"] == 1 and "cosigned by 1/1" in verify_bundle(bundle)

    # the operator rewrites history: drops an event and rebuilds the log from scratch
    import shutil

    shutil.rmtree(data / "ledger")
    db.execute("DELETE FROM ledger_entries")
    db.execute("DELETE FROM ledger_checkpoints")
    db.execute("UPDATE events SET ledger_index = NULL")
    db.execute("DELETE FROM ledger_witness_progress")
    db.execute("DELETE FROM events WHERE id = ?", (event_id,))
    db.commit()
    db.close()
    more = tmp_path / "more.csv"  # and goes on, so the rewritten log outgrows the old one
    more.write_text("code,name,kind,parent_code\nR3,Region 3,region,NAT\nR4,Region 4,region,NAT\n")
    assert run(data, "units", "import", str(more)).returncode == 0
    r = ledger("checkpoint")
    assert r.returncode == 0 and "witness quorum NOT met" in r.stderr, r.stderr
    r = ledger("verify")
    assert r.returncode == 0 and "lack their witness quorum" in r.stdout
    proc.terminate()
    out = proc.communicate(timeout=10)[0]
    assert "does not verify" in out and "fork" in out, out  # the witness says so, loudly
