"""Operations benchmark: live positions ingested and fanned out to commanders' screens.

5,000 operation units move; feeder websockets (gateways, as a TAK server or an MDM
relay would be) send their positions in batches; 200 commander websockets are
subscribed to the operation. Measures, over a fixed window:

- ingested updates/s (acknowledged as accepted by the server),
- age at arrival: from a position's timestamp (set by the feeder when it sends) to
  its arrival in a commander's socket ("to screen", before rendering), p50/p99 over
  every position received by a sample of commanders spread across the
  subscription order, and the worst (oldest position) of every frame for all 200,
- what the commanders received: positions/s and frames/s (all 200 together), and
  the p99 gap between two frames of one commander (what it shows is at most about
  that plus the age at arrival old),
- that the database kept every accepted position (stored / accepted, after the run),
- the same with two app nodes sharing Redis (feeders on node A, commanders
  split over A and B),
- the peer: the naive path, one HTTP request per position (what a device
  posting each fix would do), on the same server.

The commanders connect first, then the feeders, then ``WARMUP`` seconds of feeding
before the window. Clients are paced as the browser is (``seen`` after each positions
frame); ``--unpaced`` for a server without pacing. Screens ask for binary positions
frames (as the browser does) and the server does not compress per socket (the default,
``TOCSIN_WS_DEFLATE=false``); ``--compare`` adds, in the same run, one node with the
wire of before: JSON text frames, permessage-deflate per socket.

Delivery is conflated: a commander whose socket is still busy with a frame gets the
next one with the latest position of each unit that moved meanwhile, so a lagging
screen skips intermediate fixes (delivered positions/s is below offered/s x
commanders) and only the positions it does receive have an age at arrival; the
database and the replay keep every fix.

Targets from the issue: >= 10,000 updates/s ingested, p99 < 250 ms, one node and two.

    .venv/bin/python bench/bench_operations.py [--seconds 10] [--units 5000]
        [--commanders 200] [--rate 10000] [--feeders 10] [--no-redis] [--unpaced]
        [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from operator import itemgetter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _common import quantile

PASSWORD = "bench password 1"
# a binary positions frame's rows after its 16-byte header (tocsin.operations.positions)
ROW = np.dtype([("uid", "<u4"), ("lat", "<i4"), ("lon", "<i4"), ("at", "<f8"),
                ("heading", "<f4"), ("speed", "<f4")])
WARMUP = 5.0  # seconds of feeding before the measured window
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


def start_node(data_dir: Path, bus_url: str | None,
               deflate: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PORT=str(port),
               TOCSIN_LOGIN_MAX_FAILURES="100000", TOCSIN_WS_DEFLATE=str(deflate).lower())
    if bus_url:
        env["TOCSIN_BUS_URL"] = bus_url
    with open(data_dir / f"node-{port}.log", "w") as log:  # the child keeps its copy
        proc = subprocess.Popen([sys.executable, "-m", "tocsin", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
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


SEEN = json.dumps({"type": "seen"})


async def _open(ws_url: str, token: str, op_id: int, paced: bool, gateway: bool = False):
    """A websocket on the operation; ``paced`` as the browser client is: it confirms each
    positions frame (``seen``) once it has handled it; a ``gateway`` gets no positions."""
    import websockets

    for attempt in range(5):  # a screen whose connection fails tries again, as the page does
        try:
            ws = await websockets.connect(
                ws_url, max_size=None, open_timeout=60, ping_interval=None,
                compression="deflate")  # offered, as browsers do; the server decides
            await ws.send(json.dumps({"type": "auth", "access_token": token,
                                      "operation_id": op_id, "paced": paced,
                                      "format": os.environ.get("BENCH_OPS_FORMAT",
                                                               "binary"),
                                      "positions": not gateway}))
            ready = json.loads(await ws.recv())
        except (OSError, websockets.WebSocketException) as exc:
            print(f"connection failed ({exc!r}), trying again", file=sys.stderr)
            await asyncio.sleep(1.5 * (attempt + 1))
            continue
        assert ready["type"] == "ready", ready
        return ws
    raise SystemExit("could not connect")


# Commanders (run in their own processes so the load generator does not starve them) ---
def commanders_proc(urls: list[str], tokens: list[str], op_id: int, count: int, offset: int,
                    sample_every: int, seconds: float, window, connected, out,
                    paced: bool) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_commanders(urls, tokens, op_id, count, offset, sample_every, seconds,
                                    window, connected, paced)))


async def _commanders(urls, tokens, op_id, count, offset, sample_every, seconds, window,
                      connected, paced):
    """``count`` commander sockets, each read (and every frame parsed) from the moment it
    is open, as a screen would; once all are open, says so on ``connected`` and records
    from ``window.value`` (set by the main process when every commander of every process
    is connected) for ``seconds``."""
    import websockets

    full: list[float] = []
    worst: list[float] = []
    gaps: list[float] = []
    closed: dict[str, int] = {}
    frames = 0
    updates = 0
    span = [float("inf"), float("inf")]  # the window, in ms
    at = itemgetter(3)

    async def reader(ws, sampled: bool) -> None:
        nonlocal frames, updates
        last = None
        try:
            while True:
                raw = await ws.recv()
                now = time.time() * 1000
                if isinstance(raw, bytes):  # a binary positions frame: decoded as a page does
                    rows = np.frombuffer(raw, ROW, offset=16)
                    assert len(raw) == 16 + rows.size * ROW.itemsize
                    ats = rows["at"]
                else:
                    msg = json.loads(raw)
                    if msg.get("type") != "positions":
                        continue
                    ats = np.fromiter(map(at, msg["u"]), float)
                if span[0] <= now <= span[1]:
                    frames += 1
                    updates += ats.size
                    if sampled:  # the age of every position this commander receives
                        full.extend((now - ats).tolist())
                    if ats.size:
                        worst.append(now - float(ats.min()))
                    if last is not None:
                        gaps.append(now - last)
                    last = now
                if paced:
                    await ws.send(SEEN)  # handled: the next frame may come
        except websockets.ConnectionClosed as exc:
            code = str(exc.rcvd.code if exc.rcvd else "no close frame")
            closed[code] = closed.get(code, 0) + 1

    socks, tasks = [], []
    for i in range(count):
        url = urls[(offset + i) % len(urls)].replace("http", "ws") + "/api/v1/operations/live"
        socks.append(await _open(url, tokens[(offset + i) % len(tokens)], op_id, paced))
        tasks.append(asyncio.create_task(reader(socks[-1], (offset + i) % sample_every == 0)))
    connected.put(count)
    while not window.value:
        await asyncio.sleep(0.05)
    span[:] = [window.value * 1000, (window.value + seconds) * 1000]
    await asyncio.sleep(max(0.0, span[1] / 1000 - time.time()))
    for t in tasks:
        t.cancel()
    with contextlib.suppress(Exception):  # no need to wait for a clean close of each
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in socks),
                                              return_exceptions=True), 5)
    for ws in socks:
        ws.transport.abort()
    return {"full": full, "worst": worst, "gaps": gaps, "frames": frames, "updates": updates,
            "closed": closed}


# Feeders --------------------------------------------------------------------------------
async def feeders(url: str, token: str, op_id: int, unit_ids: list[int], n: int, rate: int,
                  seconds: float, window: dict, paced: bool, connected) -> dict:
    """Connect, call ``connected`` (which sets ``window["start"]``), feed from then
    (warm-up) until ``window["start"]`` plus ``seconds``; counted only within that
    window."""
    ws_url = url.replace("http", "ws") + "/api/v1/operations/live"
    socks = [await _open(ws_url, token, op_id, paced, gateway=True) for _ in range(n)]
    connected()  # sets window["start"]
    per_feeder = [unit_ids[i::n] for i in range(n)]
    interval = 0.05
    per_batch = max(1, int(rate * interval / n))
    stats = {"sent": 0, "accepted": 0, "rejected": 0, "reasons": {}, "accepted_all": 0}
    pos = {u: [LAT + random.uniform(-0.03, 0.03), LON + random.uniform(-0.03, 0.03)]
           for u in unit_ids}

    async def acks(ws) -> None:
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes) or raw.startswith('{"type":"positions"'):  # no use
                if paced:
                    await ws.send(SEEN)
                continue
            msg = json.loads(raw)
            if msg.get("type") == "ack":
                stats["accepted_all"] += msg["accepted"]  # warm-up included: all are stored
                if msg.get("id", 0) >= 0:
                    stats["accepted"] += msg["accepted"]
                    stats["rejected"] += len(msg["rejected"])
                    for r in msg["rejected"][:5]:
                        stats["reasons"][r["reason"]] = stats["reasons"].get(r["reason"], 0) + 1

    async def feed(k: int, ws) -> None:
        units = per_feeder[k]
        j = 0
        nxt = time.time()
        while time.time() < window["start"] + seconds:
            batch = []
            now_ms = int(time.time() * 1000)
            for _ in range(per_batch):
                u = units[j % len(units)]
                j += 1
                p = pos[u]
                p[0] += random.uniform(-1e-4, 1e-4)
                p[1] += random.uniform(-1e-4, 1e-4)
                batch.append({"op_unit_id": u, "lat": p[0], "lon": p[1], "at": now_ms})
            counting = time.time() >= window["start"]
            await ws.send(json.dumps({"type": "positions", "id": 1 if counting else -1,
                                      "items": batch}))
            if counting:
                stats["sent"] += len(batch)
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.time()))

    ackers = [asyncio.create_task(acks(ws)) for ws in socks]
    await asyncio.gather(*(feed(k, ws) for k, ws in enumerate(socks)))
    await asyncio.sleep(2.0)  # last acks (each comes once its positions are stored)
    for t in ackers:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in socks),
                                              return_exceptions=True), 5)
    for ws in socks:
        ws.transport.abort()
    return stats


pct = quantile  # nearest rank, q in 0..1


def stored_positions(data_dir: Path, op_id: int) -> int:
    from sqlalchemy import create_engine, func, select

    from tocsin.core.config import Settings
    from tocsin.operations.models import Position

    engine = create_engine(Settings(data_dir=data_dir).resolved_database_url)
    try:
        with engine.connect() as c:
            return c.scalar(select(func.count()).select_from(Position)
                            .where(Position.operation_id == op_id))
    finally:
        engine.dispose()


def scenario(name: str, urls: list[str], args, op_id: int, unit_ids: list[int],
             data_dir: Path) -> dict:
    tokens = [login(urls[i % len(urls)], f"cmd{i % 4}") for i in range(4)]
    stored_before = stored_positions(data_dir, op_id)  # an earlier scenario's, if any
    out, connected = mp.Queue(), mp.Queue()
    shared_start = mp.Value("d", 0.0)
    procs = []
    groups = 2
    per = args.commanders // groups
    for g in range(groups):
        count = per if g < groups - 1 else args.commanders - per * (groups - 1)
        p = mp.Process(target=commanders_proc, args=(urls, tokens, op_id, count, g * per,
                                                      args.sample_every, args.seconds,
                                                      shared_start, connected, out,
                                                      not args.unpaced),
                       daemon=True)
        p.start()
        procs.append(p)
    feed_token = login(urls[0], "cmd0")
    began = time.time()
    for _ in procs:  # every commander connected, then the feeders start, then measure
        connected.get(True, 600)
    window = {"connect_s": time.time() - began, "start": float("inf")}

    def open_window() -> None:  # called by the feeders once connected
        window["start"] = shared_start.value = time.time() + WARMUP

    async def run_feeders() -> dict:
        return await feeders(urls[0], feed_token, op_id, unit_ids, args.feeders, args.rate,
                             args.seconds, window, not args.unpaced, open_window)

    try:
        fstats = asyncio.run(run_feeders())
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    full = [v for r in results for v in r["full"]]
    worst = [v for r in results for v in r["worst"]]
    gaps = [v for r in results for v in r["gaps"]]
    closed: dict[str, int] = {}
    for r in results:
        for code, n in r["closed"].items():
            closed[code] = closed.get(code, 0) + n
    deadline = time.time() + 60  # the flush runs every second; it may be behind
    while (stored := stored_positions(data_dir, op_id) - stored_before) \
            < fstats["accepted_all"] \
            and time.time() < deadline:
        time.sleep(1)
    return {"name": name, "ingested": fstats["accepted"] / args.seconds,
            "sent": fstats["sent"] / args.seconds, "rejected": fstats["rejected"],
            "reasons": fstats["reasons"],
            "delivered": sum(r["updates"] for r in results) / args.seconds,
            "frames": sum(r["frames"] for r in results) / args.seconds,
            "p50": pct(full, 0.5), "p99": pct(full, 0.99), "worst_p99": pct(worst, 0.99),
            "gap_p99": pct(gaps, 0.99), "samples": len(full), "closed": closed,
            "accepted_all": fstats["accepted_all"], "connect_s": window["connect_s"],
            "stored": stored}


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
    ap.add_argument("--unpaced", action="store_true",
                    help="clients do not confirm positions frames (a server before pacing)")
    ap.add_argument("--compare", action="store_true",
                    help="also one node with JSON text frames and per-socket deflate")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-ops-") as tmp:
        data = Path(tmp) / "one"
        op_id = setup(data, args.units)
        unit_ids = list(range(1, args.units + 1))
        proc, url = start_node(data, None)
        try:
            rows.append(scenario("one node", [url], args, op_id, unit_ids, data))
            naive = asyncio.run(_naive(url, login(url, "cmd1"), op_id, unit_ids,
                                       min(args.seconds, 5)))
        finally:
            proc.terminate()
            proc.wait(20)
        if args.compare:
            os.environ["BENCH_OPS_FORMAT"] = "json"  # read by the commander processes
            proc, url = start_node(data, None, deflate=True)
            try:
                rows.append(scenario("JSON + deflate", [url], args, op_id, unit_ids, data))
            finally:
                proc.terminate()
                proc.wait(20)
                del os.environ["BENCH_OPS_FORMAT"]
        redis = None if args.no_redis else start_redis()
        if redis:
            rproc, bus = redis
            data2 = Path(tmp) / "two"
            op2 = setup(data2, args.units)
            a, url_a = start_node(data2, bus)
            b, url_b = start_node(data2, bus)
            try:
                rows.append(scenario("two nodes + Redis", [url_a, url_b], args, op2, unit_ids,
                                     data2))
            finally:
                for p in (a, b, rproc):
                    p.terminate()
                    p.wait(20)
    print()
    print(f"{args.units} units moving, {args.commanders} commander websockets, "
          f"{args.feeders} feeder websockets offering {args.rate}/s, {args.seconds:.0f} s, "
          f"{os.cpu_count()} cores (server, feeders and commanders on the same machine); "
          f"clients {'unpaced' if args.unpaced else 'paced'}; binary positions frames, no "
          f"per-socket deflate, unless the scenario says otherwise")
    print("age = from the feeder's timestamp to arrival in a commander's socket, for every "
          "position received;")
    print("conflation: a commander still busy with a frame gets the latest position of each "
          "unit in its next one,")
    print("so a lagging screen skips intermediate fixes (delivered < ingested x commanders); "
          "the database keeps every fix.")
    print(f"{'scenario':<18} {'offered/s':>9} {'ingested/s':>10} {'positions/s':>11} "
          f"{'frames/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'worst/frame p99':>15} "
          f"{'gap p99':>8} {'stored':>7} {'target':>7}")
    for r in rows:
        ok = r["ingested"] >= 10000 and r["p99"] < 250
        stored = r["stored"] / max(r["accepted_all"], 1)
        print(f"{r['name']:<18} {r['sent']:>9,.0f} {r['ingested']:>10,.0f} "
              f"{r['delivered']:>11,.0f} {r['frames']:>8,.0f} {r['p50']:>8.1f} "
              f"{r['p99']:>8.1f} {r['worst_p99']:>15.1f} {r['gap_p99']:>8.1f} "
              f"{stored:>7.1%} {'met' if ok else 'MISSED':>7}")
        if r["rejected"]:
            print(f"   rejected {r['rejected']} (sample of reasons: {r['reasons']})")
        if r["stored"] < r["accepted_all"]:
            print(f"   STORED ONLY {r['stored']:,} positions of {r['accepted_all']:,} accepted")
        elif r["stored"] > r["accepted_all"]:
            print(f"   stored {r['stored']:,} positions, {r['stored'] - r['accepted_all']:,} "
                  "more than acknowledged (acks still on their way when the feeders closed)")
        if r["closed"]:
            print(f"   commander sockets closed by the server: {r['closed']}")
        print(f"   {args.commanders} commanders connected in {r['connect_s']:.1f} s, then "
              f"{WARMUP:.0f} s of feeding before the window")
    print(f"{'peer: one HTTP request per position':<38} {naive:>10,.0f} updates/s  "
          f"(batched websocket path: {rows[0]['ingested'] / max(naive, 1):.1f}x; each "
          "answer waits for its position to be stored)")
    before = next((r for r in rows if r["name"] == "JSON + deflate"), None)
    if before:
        print(f"binary, no per-socket deflate vs JSON + deflate: p99 "
              f"{before['p99'] / max(rows[0]['p99'], 1e-9):.1f}x lower, positions delivered "
              f"{rows[0]['delivered'] / max(before['delivered'], 1):.1f}x")


if __name__ == "__main__":
    main()
