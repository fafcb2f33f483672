"""Shared fixtures: a fresh platform per test on SQLite (or on PostgreSQL when
``TOCSIN_TEST_DATABASE_URL`` names a server), a small unit tree with users,
and real Redis servers for multi-node tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tocsin.core import migrate
from tocsin.core.config import Settings
from tocsin.core.runtime import Runtime

# One browser for the whole session, shared by every end-to-end module.
pytest_plugins = ["tests.browser"]

PASSWORD = "correct horse battery"
PG_URL = os.environ.get("TOCSIN_TEST_DATABASE_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A brand-new empty database for one test."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'tocsin.sqlite3'}"
        return
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=database_url,
                    login_max_failures=3, login_window_seconds=60)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    migrate.upgrade(rt.db.engine)
    yield rt
    rt.stop()


@pytest.fixture
def app(runtime: Runtime):
    from tocsin.app import create_app

    return create_app(runtime=runtime)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@dataclass
class Force:
    """A small force: NAT > R1 (D11 > C111 > B1111, B1112), R2 > D21."""

    runtime: Runtime
    users: dict[str, int]

    def login(self, client: TestClient, username: str, **extra) -> dict:
        r = client.post("/api/v1/auth/login",
                        json={"username": username, "password": PASSWORD, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def headers(self, client: TestClient, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(client, username)['access_token']}"}

    def principal(self, username: str):
        return self.runtime.identity.principal_for(username)


UNITS = [("NAT", "Nation", "nation", None), ("R1", "Region One", "region", "NAT"),
         ("D11", "Department 11", "department", "R1"), ("C111", "Company 111", "company", "D11"),
         ("B1111", "Brigade 1111", "brigade", "C111"), ("B1112", "Brigade 1112", "brigade", "C111"),
         ("R2", "Region Two", "region", "NAT"), ("D21", "Department 21", "department", "R2")]
USERS = [("admin", "NAT", ["administrator"]), ("auditor", "NAT", ["auditor"]),
         ("radmin", "R1", ["administrator"]), ("commander1", "R1", ["commander"]),
         ("calltaker", "D11", ["call_taker"]), ("dispatcher", "D11", ["dispatcher"]),
         ("patrol1", "B1111", ["patrol_officer"]), ("patrol2", "B1112", ["patrol_officer"]),
         ("inv1", "D11", ["investigator"]), ("inv2", "D21", ["investigator"]),
         ("analyst", "NAT", ["analyst"])]


@pytest.fixture
def force(runtime: Runtime) -> Force:
    ident = runtime.identity
    with runtime.db.session() as s:
        for code, name, kind, parent in UNITS:
            ident.create_unit(s, code=code, name=name, kind=kind, parent_code=parent)
    ids = {}
    for username, unit, roles in USERS:
        ids[username] = ident.create_user(username=username, display_name=username.title(),
                                          unit_code=unit, roles=roles, password=PASSWORD).id
    return Force(runtime, ids)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A real redis-server on a free loopback port (installed by the project's setup)."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; `make test` installs it")
        pytest.skip("redis-server not installed (run `make test`)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(5)
