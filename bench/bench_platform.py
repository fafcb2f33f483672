"""Platform benchmark: logins/s and authorised reads/s under concurrency, demo force loaded.

Starts a real server (uvicorn, one process) on a fresh data directory with the
full demo force (about 4,400 units, 53,000 officers), then drives it over
loopback with concurrent clients for a fixed time per scenario. As a reference
it also measures an unauthenticated health check on the same server, so the
cost of authentication + session check + access decision is visible as a ratio.

    .venv/bin/python bench/bench_platform.py [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "tocsin-demo-2026"


def start_server(data_dir: Path, port: int, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PORT=str(port),
               TOCSIN_LOGIN_MAX_FAILURES="1000000")
    subprocess.run([sys.executable, "-m", "tocsin", "demo", "--no-serve"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "tocsin.app:create_app",
                             "--port", str(port), "--workers", str(workers), "--log-level",
                             "warning"], env=env)
    deadline = time.time() + 120  # first start: map index, demo hooks, ledger catch-up
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


async def drive(name: str, make_request, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ok = await make_request(i, n)
            latencies.append(time.perf_counter() - t0)
            errors += not ok
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"name": name, "ops": len(latencies) / elapsed, "errors": errors,
            "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")}


async def main_async(args) -> None:
    base = f"http://127.0.0.1:{args.port}"
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as c:
        # demo officers: usernames <unit code>.<n>; brigade B010101-01 has patrol officers
        users = (await c.post("/api/v1/auth/login", json={"username": "admin",
                                                          "password": PASSWORD})).json()
        admin_h = {"Authorization": f"Bearer {users['access_token']}"}
        officers = [u["username"] for u in (await c.get(
            "/api/v1/users", params={"unit": "D0101", "limit": 400}, headers=admin_h)).json()]
        # tokens for readers: a regional commander and department staff
        readers = []
        for name in ["commander", "dispatcher", "calltaker", "analyst"] * (args.concurrency // 4 + 1):
            r = await c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            readers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        user_ids = [u["id"] for u in (await c.get("/api/v1/users", params={"unit": "R01",
                                                  "limit": 1000}, headers=admin_h)).json()]
        radmin = (await c.post("/api/v1/auth/login", json={"username": "admin",
                                                            "password": PASSWORD})).json()
        radmin_h = {"Authorization": f"Bearer {radmin['access_token']}"}

        async def health(i, n):
            return (await c.get("/api/v1/health")).status_code == 200

        async def login(i, n):
            u = officers[(i * 7919 + n) % len(officers)]
            r = await c.post("/api/v1/auth/login", json={"username": u, "password": PASSWORD,
                                                         "device_name": "bench"})
            return r.status_code == 200

        async def whoami(i, n):
            return (await c.get("/api/v1/auth/whoami", headers=readers[i])).status_code == 200

        async def read_user(i, n):
            uid = user_ids[(i * 31 + n) % len(user_ids)]
            return (await c.get(f"/api/v1/users/{uid}", headers=radmin_h)).status_code == 200

        async def list_users(i, n):
            r = await c.get("/api/v1/users", params={"unit": "D0101", "limit": 50},
                            headers=radmin_h)
            return r.status_code == 200

        rows = []
        for name, fn in [("health (no auth, reference)", health),
                         ("login (Argon2id + session)", login),
                         ("authorised read: whoami", whoami),
                         ("authorised read: user record (audited)", read_user),
                         ("authorised list: 50 users in subtree", list_users)]:
            rows.append(await drive(name, fn, args.seconds, args.concurrency))
    ref = rows[0]["ops"]
    print(f"\nPlatform benchmark: demo force, {args.concurrency} concurrent clients, "
          f"{args.seconds:.0f} s per scenario, {args.workers} server worker(s), 2 cores\n")
    print("| scenario | ops/s | p50 ms | p99 ms | errors | vs health |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['ops']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['errors']} | {r['ops'] / ref:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(Path(tmp), args.port, args.workers)
        try:
            asyncio.run(main_async(args))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
