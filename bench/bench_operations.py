"""Operations benchmark: live positions ingested and fanned out to commanders' screens.

5,000 operation units move; feeder websockets (gateways, as a TAK server or an MDM
relay would be) send their positions in batches; 200 commander websockets are
subscribed to the operation. Measures, over a fixed window:

- ingested updates/s (acknowledged as accepted by the server),
- latency from an update's timestamp (set by the feeder when it sends) to its
  arrival in a commander's socket ("to screen", before rendering): p50/p99,
  over every update seen by a sample of commanders spread across the
  subscription order, and the worst (oldest update) of every frame for all 200,
- the same with two app nodes sharing Redis (feeders on node A, commanders
  split over A and B),
- the peer: the naive path, one HTTP request per position (what a device
  posting each fix would do), on the same server.

Targets from the issue: >= 10,000 updates/s ingested, p99 < 250 ms, one node and two.

    .venv/bin/python bench/bench_operations.py [--seconds 10] [--units 5000]
        [--commanders 200] [--rate 10000] [--feeders 10] [--no-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "bench password 1"
LAT, LON = 60.17, 24.94


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(data_dir: Path, units: int) -> int:
    """A small force, one operation with a perimeter and ``units`` operation units."""
    from sqlalchemy import insert

    from tocsin.core import migrate
    from tocsin.core.config import Settings
    from tocsin.core.runtime import Runtime
    from tocsin.operations.models import OpUnit
    from tocsin.operations.schemas import OperationIn
    from tocsin.operations.service import get_service

    rt = Runtime(Settings(data_dir=data_dir))
    migrate.upgrade(rt.db.engine)
    with rt.db.session() as s:
        rt.identity.create_unit(s, code="NAT", name="Nation", kind="nation", parent_code=None)
        rt.identity.create_unit(s, code="R1", name="Region", kind="region", parent_code="NAT")
        rt.identity.create_unit(s, code="B1", name="Brigade", kind="brigade", parent_code="R1")
    for i in range(4):
        rt.identity.create_user(username=f"cmd{i}", display_name=f"Commander {i}",
                                unit_code="R1", roles=["commander"], password=PASSWORD)
    p = rt.identity.principal_for("cmd0")
    svc = get_service(rt)
    d = 0.05
    op = svc.create_operation(p, OperationIn(name="Benchmark summit", perimeter={
        "type": "Polygon", "coordinates": [[[LON - d, LAT - d], [LON + d, LAT - d],
                                            [LON + d, LAT + d], [LON - d, LAT + d],
                                            [LON - d, LAT - d]]]}))
    unit_id = rt.identity.principal_for("cmd0").unit_id
    with rt.db.session() as s:
        s.execute(insert(OpUnit), [{"operation_id": op["id"], "callsign": f"U{i:05d}",
                                    "kind": "team", "unit_id": unit_id, "member_user_ids": [],
                                    "status": "available"} for i in range(units)])
    rt.stop()
    return op["id"]


def start_node(data_dir: Path, bus_url: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PORT=str(port),
               TOCSIN_LOGIN_MAX_FAILURES="100000")
    if bus_url:
        env["TOCSIN_BUS_URL"] = bus_url
    proc = subprocess.Popen([sys.executable, "-m", "tocsin", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(data_dir / f"node-{port}.log",
                                                                   "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def login(url: str, username: str) -> str:
    r = httpx.post(url + "/api/v1/auth/login", json={"username": username, "password": PASSWORD},
                   timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


async def _open(ws_url: str, token: str, op_id: int):
    import websockets

    ws = await websockets.connect(ws_url, max_size=None, open_timeout=60, ping_interval=None)
    await ws.send(json.dumps({"type": "auth", "access_token": token, "operation_id": op_id}))
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready", ready
    return ws


# Commanders (run in their own processes so the load generator does not starve them) ---
def commanders_proc(urls: list[str], tokens: list[str], op_id: int, count: int, offset: int,
                    sample_every: int, seconds: float, start_at: float, out) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_commanders(urls, tokens, op_id, count, offset, sample_every, seconds,
                                    start_at)))


async def _commanders(urls, tokens, op_id, count, offset, sample_every, seconds, start_at):
    socks = []
    for i in range(count):
        url = urls[(offset + i) % len(urls)].replace("http", "ws") + "/api/v1/operations/live"
        socks.append(await _open(url, tokens[(offset + i) % len(tokens)], op_id))
    full: list[float] = []
    worst: list[float] = []
    frames = 0
    updates = 0

    async def reader(ws, sampled: bool) -> None:
        nonlocal frames, updates
        while True:
            raw = await ws.recv()
            now = time.time() * 1000
            if now / 1000 < start_at:
                continue
            msg = json.loads(raw)
            if msg.get("type") != "positions":
                continue
            u = msg["u"]
            frames += 1
            updates += len(u)
            if sampled:
                full.extend(now - r[3] for r in u)
            worst.append(now - min(u[0][3], u[-1][3]))

    tasks = [asyncio.create_task(reader(ws, (offset + i) % sample_every == 0))
             for i, ws in enumerate(socks)]
    await asyncio.sleep(max(0.0, start_at - time.time()) + seconds)
    for t in tasks:
        t.cancel()
    for ws in socks:
        await ws.close()
    return {"full": full, "worst": worst, "frames": frames, "updates": updates}


# Feeders --------------------------------------------------------------------------------
async def feeders(url: str, token: str, op_id: int, unit_ids: list[int], n: int, rate: int,
                  seconds: float, start_at: float) -> dict:
    ws_url = url.replace("http", "ws") + "/api/v1/operations/live"
    socks = [await _open(ws_url, token, op_id) for _ in range(n)]
    per_feeder = [unit_ids[i::n] for i in range(n)]
    interval = 0.05
    per_batch = max(1, int(rate * interval / n))
    stats = {"sent": 0, "accepted": 0, "rejected": 0, "reasons": {}}
    pos = {u: [LAT + random.uniform(-0.03, 0.03), LON + random.uniform(-0.03, 0.03)]
           for u in unit_ids}

    async def acks(ws) -> None:
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "ack":
                if msg.get("id", 0) >= 0:
                    stats["accepted"] += msg["accepted"]
                    stats["rejected"] += len(msg["rejected"])
                    for r in msg["rejected"][:5]:
                        stats["reasons"][r["reason"]] = stats["reasons"].get(r["reason"], 0) + 1

    async def feed(k: int, ws) -> None:
        units = per_feeder[k]
        j = 0
        nxt = time.time()
        while time.time() < start_at + seconds:
            batch = []
            now_ms = int(time.time() * 1000)
            for _ in range(per_batch):
                u = units[j % len(units)]
                j += 1
                p = pos[u]
                p[0] += random.uniform(-1e-4, 1e-4)
                p[1] += random.uniform(-1e-4, 1e-4)
                batch.append({"op_unit_id": u, "lat": p[0], "lon": p[1], "at": now_ms})
            counting = time.time() >= start_at
            await ws.send(json.dumps({"type": "positions", "id": 1 if counting else -1,
                                      "items": batch}))
            if counting:
                stats["sent"] += len(batch)
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.time()))

    ackers = [asyncio.create_task(acks(ws)) for ws in socks]
    await asyncio.gather(*(feed(k, ws) for k, ws in enumerate(socks)))
    await asyncio.sleep(1.0)  # last acks
    for t in ackers:
        t.cancel()
    for ws in socks:
        await ws.close()
    return stats


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def scenario(name: str, urls: list[str], args, op_id: int, unit_ids: list[int]) -> dict:
    tokens = [login(urls[i % len(urls)], f"cmd{i % 4}") for i in range(4)]
    start_at = time.time() + 8 + args.commanders * 0.03  # connections first, then measure
    out = mp.Queue()
    procs = []
    groups = 2
    per = args.commanders // groups
    for g in range(groups):
        count = per if g < groups - 1 else args.commanders - per * (groups - 1)
        p = mp.Process(target=commanders_proc, args=(urls, tokens, op_id, count, g * per,
                                                      args.sample_every, args.seconds,
                                                      start_at, out))
        p.start()
        procs.append(p)
    feed_token = login(urls[0], "cmd0")
    fstats = asyncio.run(feeders(urls[0], feed_token, op_id, unit_ids, args.feeders, args.rate,
                                 args.seconds, start_at))
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    full = [v for r in results for v in r["full"]]
    worst = [v for r in results for v in r["worst"]]
    return {"name": name, "ingested": fstats["accepted"] / args.seconds,
            "sent": fstats["sent"] / args.seconds, "rejected": fstats["rejected"],
            "reasons": fstats["reasons"],
            "delivered": sum(r["updates"] for r in results) / args.seconds,
            "p50": pct(full, 0.5), "p99": pct(full, 0.99), "worst_p99": pct(worst, 0.99),
            "samples": len(full)}


async def _naive(url: str, token: str, op_id: int, unit_ids: list[int], seconds: float,
                 concurrency: int = 16) -> float:
    n = 0
    deadline = time.time() + seconds
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as c:
        async def worker(k: int) -> None:
            nonlocal n
            i = k
            while time.time() < deadline:
                u = unit_ids[i % len(unit_ids)]
                i += concurrency
                r = await c.post(f"/api/v1/operations/{op_id}/positions", json={"items": [
                    {"op_unit_id": u, "lat": LAT, "lon": LON}]})
                n += r.status_code == 200
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return n / seconds


def start_redis() -> tuple[subprocess.Popen, str] | None:
    exe = shutil.which("redis-server")
    if not exe:
        return None
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--commanders", type=int, default=200)
    ap.add_argument("--rate", type=int, default=10000, help="updates/s offered by the feeders")
    ap.add_argument("--feeders", type=int, default=10)
    ap.add_argument("--sample-every", type=int, default=20,
                    help="every n-th commander records the latency of every update")
    ap.add_argument("--no-redis", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-ops-") as tmp:
        data = Path(tmp) / "one"
        op_id = setup(data, args.units)
        unit_ids = list(range(1, args.units + 1))
        proc, url = start_node(data, None)
        try:
            rows.append(scenario("one node", [url], args, op_id, unit_ids))
            naive = asyncio.run(_naive(url, login(url, "cmd1"), op_id, unit_ids,
                                       min(args.seconds, 5)))
        finally:
            proc.terminate()
            proc.wait(20)
        redis = None if args.no_redis else start_redis()
        if redis:
            rproc, bus = redis
            data2 = Path(tmp) / "two"
            op2 = setup(data2, args.units)
            a, url_a = start_node(data2, bus)
            b, url_b = start_node(data2, bus)
            try:
                rows.append(scenario("two nodes + Redis", [url_a, url_b], args, op2, unit_ids))
            finally:
                for p in (a, b, rproc):
                    p.terminate()
                    p.wait(20)
    print()
    print(f"{args.units} units moving, {args.commanders} commander websockets, "
          f"{args.feeders} feeder websockets offering {args.rate}/s, {args.seconds:.0f} s, "
          f"{os.cpu_count()} cores (server, feeders and commanders on the same machine)")
    print(f"{'scenario':<20} {'offered/s':>10} {'ingested/s':>11} {'delivered/s':>12} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'worst-of-frame p99':>19} {'target':>8}")
    for r in rows:
        ok = r["ingested"] >= 10000 and r["p99"] < 250
        print(f"{r['name']:<20} {r['sent']:>10,.0f} {r['ingested']:>11,.0f} "
              f"{r['delivered']:>12,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
              f"{r['worst_p99']:>19.1f} {'met' if ok else 'MISSED':>8}")
        if r["rejected"]:
            print(f"   rejected {r['rejected']} (sample of reasons: {r['reasons']})")
    print(f"{'peer: one HTTP request per position':<38} {naive:>10,.0f} updates/s  "
          f"(batched websocket path: {rows[0]['ingested'] / max(naive, 1):.1f}x)")


if __name__ == "__main__":
    main()
