"""Start real Tocsin server processes for multi-node and crash tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


class Node:
    def __init__(self, data_dir: Path, database_url: str, bus_url: str | None = None,
                 extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
        env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_DATABASE_URL=database_url,
                   TOCSIN_PORT=str(self.port), TOCSIN_HOST="127.0.0.1")
        if bus_url:
            env["TOCSIN_BUS_URL"] = bus_url
        env.update(extra_env or {})
        self.log = open(data_dir / f"node-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tocsin", "serve"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: "
                                   f"{Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("node did not become ready")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/live"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
