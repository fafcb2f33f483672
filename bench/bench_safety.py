"""Field-safety benchmark: a briefing for an address with millions of operations stored.

Generates places, persons and operations with the project's own bulk generator
(``tocsin.safety.demo.generate``, the tables and grid cells the service writes)
into a fresh database, then times ``tocsin.safety.service.briefing_for`` (the
whole thing: access filters, counts, flags, persons, and the recorded read) at
random existing addresses, radius 50 m and 250 m.

The peer, on the same data and machine: the places-in-radius step done the
usual way without a spatial index (a latitude/longitude bounding-box scan), next
to ours (grid cells on an indexed integer column).

    .venv/bin/python bench/bench_safety.py [--operations 10000000] [--queries 300]
        [--database-url postgresql://...] [--data-dir DIR] [--prewarm]

A ``--data-dir`` that already holds generated data is measured as it is (migrated
first, nothing generated, not analysed again: ``--generate-only`` analyses once):
generate ten million operations once, then iterate.
The addresses asked about are the same whether the data was generated or reused.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _common import GcPauses, MemoryLock, prewarm, quantile, settle_heap, storage_read_bytes
from sqlalchemy import func, select, text

from tocsin.core import migrate
from tocsin.core.config import Settings
from tocsin.core.runtime import Runtime
from tocsin.safety import geo, service
from tocsin.safety.demo import HELSINKI, generate
from tocsin.safety.models import SafetyOperation, SafetyPlace


def pct(xs: list[float], p: float) -> float:
    """The ``p`` quantile of times in seconds, in milliseconds."""
    return quantile(xs, p) * 1000


def setup(rt: Runtime) -> None:
    ident = rt.identity
    units = [("NAT", "Nation", "nation", None), ("R1", "Region", "region", "NAT"),
             ("D11", "Helsinki", "department", "R1")]
    units += [(f"B{i}", f"Brigade {i}", "brigade", "D11") for i in range(1, 9)]
    with rt.db.session() as s:
        for code, name, kind, parent in units:
            ident.create_unit(s, code=code, name=name, kind=kind, parent_code=parent)
    ident.create_user(username="bench.dispatcher", display_name="Bench", unit_code="D11",
                      roles=["dispatcher"], password="bench password 123")
    ident.create_user(username="bench.patrol", display_name="Bench P", unit_code="B1",
                      roles=["patrol_officer"], password="bench password 123")


def setup_units(rt: Runtime) -> list[int]:
    """The ids of the eight brigades that own the generated records."""
    from tocsin.core.identity.models import Unit

    with rt.db.read() as s:
        return list(s.scalars(select(Unit.id).where(Unit.code.like("B%"))))


def peer_places(rt: Runtime, lat: float, lon: float, radius: float) -> int:
    south, north, west, east = geo.bbox(lat, lon, radius)
    with rt.db.read() as s:
        rows = s.execute(select(SafetyPlace.id, SafetyPlace.lat, SafetyPlace.lon).where(
            SafetyPlace.lat.between(south, north), SafetyPlace.lon.between(west, east))).all()
    return sum(geo.distance_m(lat, lon, a, b) <= radius for _, a, b in rows)


def ours_places(rt: Runtime, lat: float, lon: float, radius: float) -> int:
    with rt.db.read() as s:
        return len(service._places_near(s, lat, lon, radius, 10_000))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--operations", type=int, default=10_000_000)
    ap.add_argument("--places", type=int, default=0, help="default: operations / 50")
    ap.add_argument("--persons", type=int, default=0, help="default: operations / 50")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--data-dir", default=None,
                    help="reused when it already holds generated data (nothing is generated)")
    ap.add_argument("--generate-only", action="store_true",
                    help="generate into --data-dir and stop (run it outside a benchmark lock)")
    ap.add_argument("--prewarm", action="store_true",
                    help="read the SQLite file once before measuring: the database in the "
                         "OS page cache, as on a server whose memory holds it")
    ap.add_argument("--lock-memory", action="store_true",
                    help="map and lock the SQLite file in memory for the run (mlock): on a "
                         "machine whose kernel pages out memory left untouched (DAMON), "
                         "the database stays in memory as on a server that holds it")
    args = ap.parse_args()
    places = args.places or max(1000, args.operations // 50)
    persons = args.persons or max(1000, args.operations // 50)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tocsin-bench-safety-"))
    rt = Runtime(Settings(data_dir=data_dir, database_url=args.database_url))
    migrate.upgrade(rt.db.engine)
    print(f"database: {rt.db.engine.dialect.name} ({rt.db.url.split('@')[-1]})")
    rng = random.Random(6)
    with rt.db.read() as s:
        # ids are dense (the generator's): the largest is the count, without a scan
        stored = s.scalar(select(func.max(SafetyOperation.id))) or 0
    if stored:  # a data dir generated before: measure it as it is
        with rt.db.read() as s:
            places = s.scalar(select(func.max(SafetyPlace.id)))
        print(f"reusing {data_dir}: {stored:,} operations, {places:,} places")
    else:
        setup(rt)
        t0 = time.perf_counter()
        generate(rt, places=places, operations=args.operations, persons=persons,
                 unit_ids=setup_units(rt), rng=rng, box=HELSINKI,
                 progress=lambda m: print(f"{time.perf_counter() - t0:7.0f}s {m}", flush=True))
        gen_s = time.perf_counter() - t0
        with rt.db.session() as s:  # planner statistics, once: a reused data dir has them
            s.execute(text("ANALYZE"))
    if args.generate_only:
        print(f"generated into {data_dir} in {time.perf_counter() - t0:.0f} s" if not stored
              else f"{data_dir} already holds data")
        rt.stop()
        return
    with rt.db.read() as s:
        n_ops = s.scalar(select(func.max(SafetyOperation.id))) or 0
        pick = random.Random(7)  # the same addresses whether generated now or reused
        sample = s.execute(select(SafetyPlace.lat, SafetyPlace.lon).where(
            SafetyPlace.id.in_([pick.randint(1, places) for _ in range(args.queries)]))).all()
    if not stored:
        print(f"generated {n_ops:,} operations, {places:,} places, {persons:,} persons "
              f"in {gen_s:.0f} s ({n_ops / gen_s:,.0f} operations/s)")
    if args.prewarm and rt.db.engine.dialect.name == "sqlite":
        path, t = Path(rt.db.engine.url.database), time.perf_counter()
        size = prewarm([path])
        print(f"prewarmed: read {size / 1e9:.1f} GB of {path.name} in "
              f"{time.perf_counter() - t:.0f} s (the database in the OS page cache)")
    if args.lock_memory and rt.db.engine.dialect.name == "sqlite":
        t = time.perf_counter()
        locked = MemoryLock([Path(rt.db.engine.url.database)])
        print(f"locked in memory: {locked.locked / 1e9:.1f} GB in "
              f"{time.perf_counter() - t:.0f} s (mlock; kept until the end of the run)")
    # the recorded read timed apart (part of the call's time): the commit and its fsync
    record, record_times = rt.reads.record, []

    def timed_record(*events) -> None:
        t = time.perf_counter()
        record(*events)
        record_times.append(time.perf_counter() - t)

    rt.reads.record = timed_record
    dispatcher = rt.identity.principal_for("bench.dispatcher")
    patrol = rt.identity.principal_for("bench.patrol")
    rows = []
    frozen, pauses, collected = settle_heap(), GcPauses(), []
    for label, principal, radius in (("briefing, dispatcher (sees all), 50 m", dispatcher, 50),
                                     ("briefing, patrol (1 brigade of 8), 50 m", patrol, 50),
                                     ("briefing, dispatcher, 250 m", dispatcher, 250)):
        service.briefing_for(rt, principal, sample[0][0], sample[0][1], radius_m=radius)
        times, cpu, n_ops_seen, cached = [], [], [], []
        record_times.clear()
        for lat, lon in sample:
            io, gc0 = storage_read_bytes(), pauses.total
            t, c = time.perf_counter(), time.thread_time()
            b = service.briefing_for(rt, principal, lat, lon, radius_m=radius)
            times.append(time.perf_counter() - t)
            if pauses.total > gc0:
                collected.append(pauses.total - gc0)
            cpu.append(time.thread_time() - c)
            if storage_read_bytes() == io:  # every page it read was in memory
                cached.append(times[-1])
            n_ops_seen.append(b["operations_stats"]["total"] + b["withheld"]["operations"])
        rows.append((label, statistics.median(times) * 1000, pct(times, 0.99),
                     statistics.median(cpu) * 1000, pct(cpu, 0.99),
                     statistics.median(record_times) * 1000, pct(record_times, 0.99),
                     statistics.mean(n_ops_seen), len(cached), pct(cached, 0.99) if cached else 0))
    print()
    # cpu: this thread's CPU time (Python and SQLite); the rest of the wall time is waiting
    # (page reads, the fsync of the recorded read, other processes on the machine).
    # rec: the recording of the read alone (its commit), included in p50/p99.
    # in memory: the briefings that read nothing from storage (all their pages in the
    # page cache), how many of the queries, and their p99
    print(f"{'briefing_for (whole service call, read recorded)':<48}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'cpu p50':>9}{'cpu p99':>9}{'rec p50':>9}{'rec p99':>9}{'ops in radius':>15}"
          f"{'in memory':>11}{'its p99':>9}")
    for label, p50, p99, c50, c99, r50, r99, seen, n_cached, p99_cached in rows:
        print(f"{label:<48}{p50:>9.2f}{p99:>9.2f}{c50:>9.2f}{c99:>9.2f}{r50:>9.2f}{r99:>9.2f}"
              f"{seen:>15.1f}{n_cached:>7}/{len(sample):<3}{p99_cached:>9.2f}")
    pauses.close()
    print(f"garbage collection: {frozen:,} objects of the setup frozen first (gc.freeze, as the "
          f"server does once started); {len(collected)} briefings paused for a collection, "
          f"{sum(collected) * 1e3:.1f} ms in all, longest {max(collected, default=0) * 1e3:.1f}"
          f" ms; collections by generation {pauses.by_generation}")
    # eight call-takers at once, one process (its GIL): what the recorder's group commits
    # save shows in the reads stored per commit
    import threading

    c0, r0, conc = rt.reads.commits, rt.reads.recorded, []

    def call_taker(chunk: list) -> None:
        for lat, lon in chunk:
            t = time.perf_counter()
            service.briefing_for(rt, dispatcher, lat, lon, radius_m=50)
            conc.append(time.perf_counter() - t)

    threads = [threading.Thread(target=call_taker, args=(sample[i::8],)) for i in range(8)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    commits = rt.reads.commits - c0
    print(f"{'8 dispatchers at once, 50 m (one process)':<48}"
          f"{statistics.median(conc) * 1000:>9.2f}{pct(conc, 0.99):>9.2f}   "
          f"{len(conc) / wall:,.0f} briefings/s, {(rt.reads.recorded - r0) / max(commits, 1):.1f}"
          f" reads stored per commit")
    print()
    print(f"{'places within 50 m (step alone)':<48}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>15}")
    res = {}
    for name, fn in (("grid cells, indexed (ours)", ours_places),
                     ("lat/lon box scan, no spatial index (peer)", peer_places)):
        times = []
        for lat, lon in sample[:100]:
            t = time.perf_counter()
            fn(rt, lat, lon, 50)
            times.append(time.perf_counter() - t)
        res[name] = (statistics.median(times) * 1000, pct(times, 0.99))
    base = res["grid cells, indexed (ours)"][0]
    for name, (p50, p99) in res.items():
        print(f"{name:<48}{p50:>9.2f}{p99:>9.2f}{p50 / base:>14.1f}x")
    assert all(ours_places(rt, a, b, 50) == peer_places(rt, a, b, 50) for a, b in sample[:50])
    print("(both find the same places on 50 sampled queries)")
    print(f"data dir: {data_dir}")
    rt.stop()


if __name__ == "__main__":
    main()
