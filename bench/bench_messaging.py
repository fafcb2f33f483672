"""Messenger benchmark: many live websocket devices, busy channels, a force-wide broadcast,
and a Matrix /sync comparison with matrix-synapse (PyPI, SQLite) on the same machine.

Part 1 (Tocsin alone): N websocket devices on one app node (one uvicorn process),
spread over C unit channels; S senders post into random channels for T seconds:
sustained messages/s, deliveries/s, delivery latency p50/p99 (post -> device).
Then one message to the channel of the whole force: time until all N devices have it.

Part 2 (peer): M Matrix clients long-polling /sync in one room of M members, on
Tocsin and on Synapse; one sender posts K messages; per-delivery latency and
throughput, and the ratios. Synapse runs from a separate venv (``--synapse-venv``, default
.venv-synapse, made by ``make bench-setup``) with SQLite; skipped with a reason if it cannot
run.

    .venv/bin/python bench/bench_messaging.py [--clients 10000] [--channels 100]
        [--seconds 10] [--senders 8] [--peer-members 200] [--peer-messages 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _common import quantile

PASSWORD = "bench password 2026"


pct = quantile  # nearest rank, q in 0..1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


# Tocsin set-up ---------------------------------------------------------------------
def tocsin_setup(data_dir: Path, n_users: int, channels: int, peer_members: int) -> dict:
    """Units, users, device sessions and channels written directly (a trusted local tool)."""
    from sqlalchemy import insert

    from tocsin.core import migrate
    from tocsin.core.config import Settings
    from tocsin.core.database import utcnow
    from tocsin.core.identity import passwords, tokens
    from tocsin.core.identity.models import DeviceSession, Unit, User
    from tocsin.core.runtime import Runtime
    from tocsin.messaging.service import get_service

    rt = Runtime(Settings(data_dir=data_dir))
    migrate.upgrade(rt.db.engine)
    units = [{"id": 1, "code": "NAT", "name": "Nation", "kind": "nation", "parent_id": None,
              "path": "/1/"}]
    for i in range(channels):
        uid = i + 2
        units.append({"id": uid, "code": f"B{i}", "name": f"Brigade {i}", "kind": "brigade",
                      "parent_id": 1, "path": f"/1/{uid}/"})
    hashed = passwords.hash_password(PASSWORD)
    users = [{"id": i + 1, "username": f"u{i}", "display_name": f"Officer {i}",
              "unit_id": 2 + i % channels, "roles": ["commander" if i == 0 else "patrol_officer"],
              "password_hash": hashed} for i in range(n_users)]
    now = utcnow()
    import datetime as dt

    sessions, toks = [], []
    for u in users:
        sid = secrets.token_hex(16)
        sessions.append({"id": sid, "user_id": u["id"], "device_name": "bench",
                         "refresh_hash": "x" * 64, "created_at": now, "last_seen_at": now,
                         "expires_at": now + dt.timedelta(days=1)})
        toks.append(tokens.issue_access(rt.token_key, user_id=u["id"], session_id=sid,
                                        ttl=6 * 3600)[0])
    with rt.db.session() as s:
        s.execute(insert(Unit), units)
        for i in range(0, len(users), 5000):
            s.execute(insert(User), users[i:i + 5000])
            s.execute(insert(DeviceSession), sessions[i:i + 5000])
    svc = get_service(rt)
    chans = [svc.room_mx(svc.unit_channel(f"B{i}").id) for i in range(channels)]
    force = svc.room_mx(svc.unit_channel("NAT").id)
    # the /sync comparison room: explicit members, like a Matrix room
    p0 = rt.identity.principal_for("u0")
    room = svc.create_room(p0, kind="group", name="peer room",
                           invite=[u["id"] for u in users[1:peer_members]])
    peer_room = svc.room_mx(room.id)
    for u in users[1:peer_members]:
        svc.join(rt.identity.principal_for(u["username"]), peer_room)
    rt.stop()
    return {"tokens": toks, "channels": chans, "force": force, "peer_room": peer_room,
            "unit_of": [u["unit_id"] - 2 for u in users]}


def start_tocsin(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PORT=str(port),
               TOCSIN_MESSAGING_RATE_PER_SECOND="100000", TOCSIN_MESSAGING_RATE_BURST="100000")
    proc = subprocess.Popen([sys.executable, "-m", "tocsin", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
    return proc


# Part 1: websockets -----------------------------------------------------------------
async def part1(port: int, setup: dict, seconds: float, senders: int) -> dict:
    from websockets.asyncio.client import connect

    toks, chans = setup["tokens"], setup["channels"]
    n = len(toks)
    lat_busy: list[float] = []
    broadcast_at: list[float] = []
    connected = 0
    stop = asyncio.Event()

    async def device(i: int, ready: asyncio.Semaphore) -> None:
        nonlocal connected
        async with ready:
            ws = await connect(f"ws://127.0.0.1:{port}/api/v1/messaging/ws", open_timeout=120,
                               max_queue=None, ping_interval=None)
            await ws.send(json.dumps({"type": "auth", "access_token": toks[i]}))
            hello = json.loads(await ws.recv())
            assert hello["type"] == "ready", hello
            connected += 1
        try:
            async for raw in ws:
                now = time.time()
                if '"m.room.message"' not in raw:
                    continue
                body = json.loads(raw)["event"]["content"].get("body", "")
                kind, _, ts = body.partition("|")
                if kind == "b":
                    lat_busy.append(now - float(ts))
                elif kind == "all":
                    broadcast_at.append(now - float(ts))
        except Exception:
            if not stop.is_set():
                raise
        finally:
            await ws.close()

    sem = asyncio.Semaphore(200)
    t0 = time.time()
    tasks = [asyncio.create_task(device(i, sem)) for i in range(n)]
    while connected < n:
        await asyncio.sleep(0.2)
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
    connect_s = time.time() - t0
    print(f"  {n:,} websocket devices connected in {connect_s:.1f} s", flush=True)
    by_channel: dict[int, list[int]] = {}
    for i, c in enumerate(setup["unit_of"]):
        by_channel.setdefault(c, []).append(i)
    sent = 0
    errors = 0

    async def sender(k: int) -> None:
        nonlocal sent, errors
        rng = random.Random(k)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            j = 0
            while time.time() < deadline:
                ch = rng.randrange(len(chans))
                who = rng.choice(by_channel[ch])
                j += 1
                r = await c.put(f"/_matrix/client/v3/rooms/{chans[ch]}/send/m.room.message/"
                                f"s{k}-{j}", headers={"Authorization": f"Bearer {toks[who]}"},
                                json={"msgtype": "m.text", "body": f"b|{time.time():.6f}"})
                if r.status_code == 200:
                    sent += 1
                else:
                    errors += 1

    deadline = time.time() + seconds
    start = time.time()
    await asyncio.gather(*[sender(k) for k in range(senders)])
    elapsed = time.time() - start
    expected = sent * (n / len(chans))
    settle = time.time() + 30
    while len(lat_busy) < expected * 0.999 and time.time() < settle:
        await asyncio.sleep(0.2)
    busy = {"sent": sent, "errors": errors, "msgs_per_s": sent / elapsed,
            "deliveries": len(lat_busy), "expected": int(expected),
            "deliveries_per_s": len(lat_busy) / elapsed,
            "p50_ms": pct(lat_busy, 0.5) * 1000, "p99_ms": pct(lat_busy, 0.99) * 1000}
    # broadcast to the whole force
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        r = await c.put(f"/_matrix/client/v3/rooms/{setup['force']}/send/m.room.message/all1",
                        headers={"Authorization": f"Bearer {toks[0]}"},
                        json={"msgtype": "m.text", "body": f"all|{time.time():.6f}"})
        assert r.status_code == 200, r.text
    settle = time.time() + 60
    while len(broadcast_at) < n and time.time() < settle:
        await asyncio.sleep(0.05)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"connect_s": connect_s, "busy": busy,
            "broadcast": {"received": len(broadcast_at), "of": n,
                          "all_s": max(broadcast_at) if len(broadcast_at) == n else float("nan"),
                          "p50_ms": pct(broadcast_at, 0.5) * 1000,
                          "p99_ms": pct(broadcast_at, 0.99) * 1000}}


# Part 2: Matrix /sync, Tocsin vs Synapse ---------------------------------------------
async def sync_compare(base: str, tokens: list[str], room: str, sender_token: str,
                       messages: int) -> dict:
    """Each client has its own HTTP connection (as real devices do): one shared httpx pool
    of M connections costs the load generator O(M) per request (httpcore scans its
    pool), which throttled both servers alike and made the sender queue behind the
    long-polls (the 'sends/s 0' of earlier runs)."""
    lat: list[float] = []
    send_lat: list[float] = []
    got = [0] * len(tokens)
    clients = [httpx.AsyncClient(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {t}"}) for t in tokens]
    sender = httpx.AsyncClient(base_url=base, timeout=60,
                               headers={"Authorization": f"Bearer {sender_token}"})
    try:
        sem = asyncio.Semaphore(50)

        async def initial(i: int) -> str:
            async with sem:
                r = await clients[i].get("/_matrix/client/v3/sync", params={"timeout": 0})
                r.raise_for_status()
                return r.json()["next_batch"]

        since = await asyncio.gather(*[initial(i) for i in range(len(tokens))])
        print(f"    {len(tokens)} clients synced; long-polling", flush=True)

        async def loop(i: int) -> None:
            token = since[i]
            while got[i] < messages:
                try:
                    r = await clients[i].get("/_matrix/client/v3/sync",
                                             params={"since": token, "timeout": 30000})
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
                    continue
                now = time.time()
                if r.status_code != 200:
                    await asyncio.sleep(0.1)
                    continue
                body = r.json()
                token = body["next_batch"]
                tl = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
                for ev in tl.get("events", []):
                    b = ev.get("content", {}).get("body", "")
                    if ev.get("type") == "m.room.message" and b.startswith("p|"):
                        lat.append(now - float(b[2:]))
                        got[i] += 1

        loops = [asyncio.create_task(loop(i)) for i in range(len(tokens))]
        await asyncio.sleep(1.0)
        start = time.time()
        for k in range(messages):  # one sender, one message after the other
            t0 = time.time()
            r = await sender.put(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/p{k}",
                                 json={"msgtype": "m.text", "body": f"p|{t0:.6f}"})
            r.raise_for_status()
            send_lat.append(time.time() - t0)
        send_s = time.time() - start
        try:
            await asyncio.wait_for(asyncio.gather(*loops), 120)
        except TimeoutError:
            for t in loops:
                t.cancel()
        total_s = time.time() - start
    finally:
        await asyncio.gather(*[c.aclose() for c in clients], sender.aclose())
    return {"sent_per_s": messages / send_s, "send_p50_ms": pct(send_lat, 0.5) * 1000,
            "deliveries": len(lat), "expected": messages * len(tokens),
            "deliveries_per_s": len(lat) / total_s,
            "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000}


def synapse_run(venv: Path, workdir: Path, members: int, messages: int) -> dict | str:
    py = venv / "bin" / "python"
    if not py.exists():
        return f"no synapse venv at {venv}"
    port = free_port()
    cfg = workdir / "homeserver.yaml"
    r = subprocess.run([str(py), "-m", "synapse.app.homeserver", "--server-name", "bench.local",
                        "--config-path", str(cfg), "--generate-config", "--report-stats=no",
                        "--data-directory", str(workdir)], check=False, cwd=workdir, capture_output=True,
                       text=True)
    if r.returncode != 0:
        return "synapse --generate-config failed: " + r.stderr[-300:]
    secret = secrets.token_hex(16)
    import re

    text = cfg.read_text().replace("port: 8008", f"port: {port}")
    text = re.sub(r"bind_addresses: \[.*\]", "bind_addresses: ['127.0.0.1']", text)
    unlimited = {"per_second": 100000, "burst_count": 100000}
    extra = {
        "registration_shared_secret": secret, "bcrypt_rounds": 4, "enable_metrics": False,
        "rc_message": unlimited, "rc_registration": unlimited,
        "rc_login": {"address": unlimited, "account": unlimited,
                     "failed_attempts": unlimited},
        "rc_joins": {"local": unlimited, "remote": unlimited}, "rc_joins_per_room": unlimited,
        "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
        "trusted_key_servers": [], "suppress_key_server_warning": True,
        "presence": {"enabled": False}}
    # JSON is YAML: one top-level key per line
    text += "\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in extra.items()) + "\n"
    cfg.write_text(text)
    with open(workdir / "synapse.out", "w") as log:
        proc = subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "--config-path",
                                 str(cfg)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        return _synapse_sync(proc, f"http://127.0.0.1:{port}", secret, members, messages)


def _synapse_sync(proc: subprocess.Popen, base: str, secret: str, members: int,
                  messages: int) -> dict | str:
    try:
        wait_http(base + "/_matrix/client/versions", proc, 180)
        tokens = []
        with httpx.Client(base_url=base, timeout=60) as c:
            for i in range(members):
                nonce = c.get("/_synapse/admin/v1/register").json()["nonce"]
                user = f"u{i}"
                mac = hmac.new(secret.encode(), b"\x00".join(
                    [nonce.encode(), user.encode(), PASSWORD.encode(), b"notadmin"]),
                    hashlib.sha1).hexdigest()
                r = c.post("/_synapse/admin/v1/register", json={
                    "nonce": nonce, "username": user, "password": PASSWORD, "mac": mac,
                    "admin": False})
                r.raise_for_status()
                tokens.append(r.json()["access_token"])
            h0 = {"Authorization": f"Bearer {tokens[0]}"}
            room = c.post("/_matrix/client/v3/createRoom", headers=h0,
                          json={"name": "peer room", "preset": "public_chat"}).json()["room_id"]
            for t in tokens[1:]:
                c.post(f"/_matrix/client/v3/join/{room}",
                       headers={"Authorization": f"Bearer {t}"}).raise_for_status()
        return asyncio.run(sync_compare(base, tokens[1:], room, tokens[0], messages))
    except (httpx.HTTPError, OSError, KeyError, ValueError, SystemExit) as exc:
        return f"synapse run failed: {exc!r}"  # the peer is best effort: say why it did not run
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--peer-members", type=int, default=200)
    ap.add_argument("--peer-messages", type=int, default=50)
    ap.add_argument("--synapse-venv", type=Path, default=ROOT / ".venv-synapse")
    ap.add_argument("--no-synapse", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-msg-"))
    try:
        print(f"setting up {args.clients:,} officers in {args.channels} unit channels ...",
              flush=True)
        setup = tocsin_setup(tmp / "tocsin", args.clients, args.channels, args.peer_members)
        port = free_port()
        proc = start_tocsin(tmp / "tocsin", port)
        try:
            p1 = asyncio.run(part1(port, setup, args.seconds, args.senders))
            b, bc = p1["busy"], p1["broadcast"]
            print()
            print(f"Tocsin messenger, one app node (uvicorn, 1 process), SQLite, {os.cpu_count()} "
                  f"cores shared with the load generator")
            print("| scenario | value |\n|---|---|")
            print(f"| websocket devices connected | {args.clients:,} ({p1['connect_s']:.1f} s) |")
            print(f"| busy channels: {args.channels} x {args.clients // args.channels} members, "
                  f"{args.senders} senders, {args.seconds:.0f} s | {b['msgs_per_s']:.0f} msg/s "
                  f"sustained, {b['deliveries_per_s']:,.0f} deliveries/s |")
            print(f"| busy channels: deliveries | {b['deliveries']:,} of {b['expected']:,} "
                  f"expected, {b['errors']} send errors |")
            print(f"| busy channels: delivery latency p50 / p99 | {b['p50_ms']:.0f} ms / "
                  f"{b['p99_ms']:.0f} ms |")
            print(f"| broadcast to all devices | {bc['received']:,} of {bc['of']:,} in "
                  f"{bc['all_s']:.2f} s (p50 {bc['p50_ms']:.0f} ms, p99 {bc['p99_ms']:.0f} ms) "
                  f"target 2 s |")
            print("  /sync comparison on Tocsin ...", flush=True)
            peer_tokens = setup["tokens"][1:args.peer_members]
            t_sync = asyncio.run(sync_compare(f"http://127.0.0.1:{port}", peer_tokens,
                                              setup["peer_room"], setup["tokens"][0],
                                              args.peer_messages))
        finally:
            proc.terminate()
            proc.wait(20)
        s_sync: dict | str = "skipped (--no-synapse)"
        if not args.no_synapse:
            print("  /sync comparison on Synapse ...", flush=True)
            work = tmp / "synapse"
            work.mkdir()
            s_sync = synapse_run(args.synapse_venv, work, args.peer_members, args.peer_messages)
        print()
        print(f"Matrix /sync long-poll, {args.peer_members - 1} clients in one room, "
              f"{args.peer_messages} messages")
        print("| server | sends/s (one sender) | send p50 | deliveries/s | p50 | p99 | "
              "delivered |\n|---|---|---|---|---|---|---|")
        rows = [("Tocsin", t_sync)]
        if isinstance(s_sync, dict):
            rows.append(("Synapse (SQLite)", s_sync))
        for name, r in rows:
            print(f"| {name} | {r['sent_per_s']:.1f} | {r['send_p50_ms']:.0f} ms | "
                  f"{r['deliveries_per_s']:,.0f} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                  f"{r['deliveries']:,}/{r['expected']:,} |")
        if isinstance(s_sync, dict):
            print(f"\nratios Tocsin/Synapse: sends/s x{t_sync['sent_per_s'] / s_sync['sent_per_s']:.2f}"
                  f", deliveries/s x{t_sync['deliveries_per_s'] / s_sync['deliveries_per_s']:.2f}"
                  f", p50 latency x{t_sync['p50_ms'] / s_sync['p50_ms']:.2f}"
                  f", p99 latency x{t_sync['p99_ms'] / s_sync['p99_ms']:.2f}")
        else:
            print(f"\nSynapse peer: {s_sync}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
