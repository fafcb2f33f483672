"""The ``tocsin`` command line: clear messages, non-zero exit on bad input."""

from __future__ import annotations

import os
import subprocess
import sys


def run(data_dir, *args, stdin: str | None = None, env: dict[str, str] | None = None):
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env["TOCSIN_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "tocsin", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


def test_units_import_users_create_list_revoke(tmp_path):
    csv = tmp_path / "units.csv"
    # children before parents: the import orders them itself
    csv.write_text("code,name,kind,parent_code\n"
                   "B1,Brigade 1,brigade,C1\nNAT,Nation,nation,\nR1,Region,region,NAT\n"
                   "D1,Dept,department,R1\nC1,Company,company,D1\n")
    r = run(tmp_path, "units", "import", str(csv))
    assert r.returncode == 0, r.stderr
    assert "imported 5 unit(s)" in r.stdout
    r = run(tmp_path, "users", "create", "jdoe", "--name", "Jane Doe", "--unit", "B1",
            "--role", "patrol-officer", "--password-stdin", stdin="a long password 9\n")
    assert r.returncode == 0, r.stderr
    assert "a long password" not in r.stdout + r.stderr
    r = run(tmp_path, "users", "list")
    assert "jdoe" in r.stdout and "patrol_officer" in r.stdout
    r = run(tmp_path, "users", "revoke-sessions", "jdoe")
    assert r.returncode == 0 and "revoked 0 session(s)" in r.stdout
    key = tmp_path / "keys" / "token.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600


def test_bad_input_exits_non_zero_and_changes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,kind,parent_code\nNAT,Nation,nation,\nX,X,region,MISSING\n")
    r = run(tmp_path, "units", "import", str(bad))
    assert r.returncode == 2 and "unknown parent 'MISSING'" in r.stderr
    r = run(tmp_path, "units", "import", str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "no such file" in r.stderr
    cycle = tmp_path / "cycle.csv"
    cycle.write_text("code,name,kind,parent_code\nA,A,region,B\nB,B,region,A\n")
    r = run(tmp_path, "units", "import", str(cycle))
    assert r.returncode == 2 and "cycle" in r.stderr
    r = run(tmp_path, "users", "list")
    assert r.stdout.strip() == ""
    r = run(tmp_path, "users", "create", "Bad Name", "--name", "x", "--unit", "NAT",
            "--role", "patrol_officer", "--password-stdin", stdin="a long password 9\n")
    assert r.returncode == 2 and "username" in r.stderr
    r = run(tmp_path, "users", "create", "ok", "--name", "x", "--unit", "NAT",
            "--role", "king", "--password-stdin", stdin="a long password 9\n")
    assert r.returncode == 2 and "roles" in r.stderr
    r = run(tmp_path, "users", "revoke-sessions", "ghost")
    assert r.returncode == 2 and "not found" in r.stderr


def test_demo_loads_a_force_once(tmp_path):
    r = run(tmp_path, "demo", "--size", "small", "--no-serve")
    assert r.returncode == 0, r.stderr
    assert "creating the demo force" in r.stdout
    r = run(tmp_path, "demo", "--size", "small", "--no-serve")
    assert "already loaded" in r.stdout
    r = run(tmp_path, "users", "list", "--unit", "D0101", "--limit", "1000")
    assert "calltaker" in r.stdout and "dispatcher" in r.stdout
    # and the demo then serves, its live call stream running (start-up hooks included)
    from tests.servers import Node

    node = Node(tmp_path, f"sqlite:///{tmp_path / 'tocsin.sqlite3'}")
    try:
        import httpx

        login = httpx.post(node.url + "/api/v1/auth/login", timeout=30,
                           json={"username": "calltaker", "password": "tocsin-demo-2026"})
        assert login.status_code == 200, login.text
    finally:
        node.stop()
