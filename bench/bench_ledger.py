"""Benchmark: the ledger Log against pymerkle's SqliteTree on the same leaves.

Both logs grow together through the requested sizes, fed the *same* batches of
32-byte leaves (SHA-256 of a counter, like Tocsin's commitments):

* durable appends/s, batched (``--batch``, default 10,000 per call): ours
  ``Log.append_batch`` (level files + fdatasync + HEAD commit); pymerkle
  ``SqliteTree.append_entries`` (one SQLite transaction per batch, SQLite's
  default rollback journal with ``synchronous=FULL``, i.e. durable on commit);
* inclusion proof time at each size (random leaves, proof against the tree of
  that size): the first query (cold caches) and the median of the following;
* consistency proof time at each size (random old size to the current size).

The two roots are compared at every size (both implement RFC 6962/9162
hashing, so they must be equal), and our proofs are verified.

pymerkle is only run while its projected time for the next size stays within
``--peer-budget`` seconds (projection: measured append time and first-proof
time scaled linearly with the leaf count); beyond that its cells read
``n/a (too slow: projected ...)``.

Run:  .venv/bin/python bench/bench_ledger.py [--sizes 1e4,1e6,1e7] [--batch 10000]
      [--queries 2000] [--peer-queries 50] [--peer-budget 300] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tocsin.engines.ledger import merkle
from tocsin.engines.ledger.log import Log

try:
    from pymerkle import SqliteTree
except ImportError:  # pragma: no cover - reported in the table
    SqliteTree = None


def leaves(start: int, stop: int) -> list[bytes]:
    return [hashlib.sha256(b"tocsin bench leaf %d" % i).digest() for i in range(start, stop)]


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}/s"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def timed_queries(fn, args_list: list[tuple], budget_s: float | None = None) -> tuple[float, float, int]:
    """(first call, median of the others, number of calls)."""
    times = []
    t_start = time.perf_counter()
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - t_start > budget_s and len(times) >= 5:
            break
    rest = times[1:] or times
    return times[0], statistics.median(rest), len(times)


def parse_sizes(text: str) -> list[int]:
    return sorted({int(float(s)) for s in text.split(",") if s.strip()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1e4,1e6,1e7"),
                    help="comma-separated tree sizes, e.g. 1e4,1e6,1e7")
    ap.add_argument("--batch", type=int, default=10_000, help="leaves per durable append")
    ap.add_argument("--queries", type=int, default=2000, help="proof queries per size (ours)")
    ap.add_argument("--peer-queries", type=int, default=50,
                    help="proof queries per size for pymerkle (also capped at ~20 s)")
    ap.add_argument("--peer-budget", type=float, default=300.0,
                    help="skip pymerkle at a size whose projected time exceeds this (s)")
    ap.add_argument("--no-peer", action="store_true", help="run ours only")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the logs")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-", dir=args.dir))
    ours = Log(work / "ours")
    peer = None
    peer_reason = None
    if args.no_peer:
        peer_reason = "n/a (--no-peer)"
    elif SqliteTree is None:
        peer_reason = "n/a (pymerkle not installed)"
    else:
        peer = SqliteTree(str(work / "pymerkle.sqlite3"))

    rows: list[tuple[int, str, str, str, str]] = []
    size = 0
    peer_size = 0
    peer_cost: dict[str, float] = {}  # seconds per leaf, for projections
    print(f"# bench_ledger: sizes {args.sizes}, batch {args.batch}, in {work}", flush=True)
    try:
        for target in args.sizes:
            # ---------------------------------------------------------- appends
            run_peer = peer is not None
            if run_peer and peer_cost:
                growth = target - peer_size
                projected = (growth * peer_cost["append"]
                             + target * (peer_cost["incl_first"] + peer_cost["cons_first"]))
                if projected > args.peer_budget:
                    run_peer = False
                    peer_reason = f"n/a (too slow: projected {fmt_duration(projected)})"
                    peer.close()
                    peer = None
            t_ours = t_peer = 0.0
            start = size
            while size < target:
                chunk = leaves(size, min(size + args.batch, target))
                t0 = time.perf_counter()
                ours.append_batch(chunk)
                t_ours += time.perf_counter() - t0
                if run_peer:
                    t0 = time.perf_counter()
                    peer.append_entries(chunk)
                    t_peer += time.perf_counter() - t0
                size += len(chunk)
            grown = size - start
            ours_rate = grown / t_ours if t_ours else None
            peer_rate = grown / t_peer if run_peer and t_peer else None
            if run_peer:
                peer_size = size
                peer_cost["append"] = t_peer / grown
            print(f"  size {size:,}: appended {grown:,} leaves (ours {t_ours:.1f} s"
                  + (f", pymerkle {t_peer:.1f} s)" if run_peer else ")"), flush=True)

            # ------------------------------------------------------ correctness
            root = ours.root()
            if size <= 1_000_000:
                assert root == merkle.root_hash(leaves(0, size)), "our root is wrong"
            if run_peer:
                assert peer.get_root(size) == root, "pymerkle and ours disagree on the root"

            # --------------------------------------------------------- proofs
            idx = [(rng.randrange(size), size) for _ in range(args.queries)]
            olds = [(rng.randrange(1, size), size) for _ in range(args.queries)]
            for i, s in idx[:20]:
                leaf = leaves(i, i + 1)[0]
                assert merkle.verify_inclusion(leaf, i, s, ours.inclusion_proof(i, s), root)
            for o, s in olds[:20]:
                assert merkle.verify_consistency(o, s, ours.root(o), root,
                                                 ours.consistency_proof(o, s))
            ours.close()
            ours = Log(work / "ours")  # proofs from a freshly opened log
            oi_first, oi_med, _ = timed_queries(ours.inclusion_proof, idx)
            oc_first, oc_med, _ = timed_queries(ours.consistency_proof, olds)
            if run_peer:
                pidx = [(i + 1, s) for i, s in idx[: args.peer_queries]]  # 1-based
                pi_first, pi_med, _ = timed_queries(peer.prove_inclusion, pidx, 20)
                pc_first, pc_med, _ = timed_queries(peer.prove_consistency,
                                                       olds[: args.peer_queries], 20)
                peer_cost["incl_first"] = pi_first / size
                peer_cost["cons_first"] = pc_first / size
            else:
                pi_first = pi_med = pc_first = pc_med = None

            def ratio(o: float | None, p: float | None, higher_is_better: bool) -> str:
                if o is None or p is None or o == 0 or p == 0:
                    return "-"
                r = o / p if higher_is_better else p / o
                return f"{r:,.1f}x"

            na = peer_reason or "-"
            rows += [
                (size, "durable appends/s (batched)", fmt_rate(ours_rate),
                 fmt_rate(peer_rate) if run_peer else na, ratio(ours_rate, peer_rate, True)),
                (size, "inclusion proof, first", fmt_time(oi_first),
                 fmt_time(pi_first) if run_peer else na, ratio(oi_first, pi_first, False)),
                (size, "inclusion proof, median", fmt_time(oi_med),
                 fmt_time(pi_med) if run_peer else na, ratio(oi_med, pi_med, False)),
                (size, "consistency proof, first", fmt_time(oc_first),
                 fmt_time(pc_first) if run_peer else na, ratio(oc_first, pc_first, False)),
                (size, "consistency proof, median", fmt_time(oc_med),
                 fmt_time(pc_med) if run_peer else na, ratio(oc_med, pc_med, False)),
            ]
            print(f"  size {size:,}: proofs timed", flush=True)
    finally:
        ours.close()
        if peer is not None:
            peer.close()
        shutil.rmtree(work, ignore_errors=True)

    widths = [12, 28, 14, 34, 9]
    header = ("leaves", "metric", "tocsin Log", "pymerkle SqliteTree", "ratio")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print()
    print(line)
    print("-" * len(line))
    for size_, metric, o, p, r in rows:
        cells = (f"{size_:,}", metric, o, p, r)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    print()
    print(f"ratio = how many times better ours is (rate: ours/peer, time: peer/ours); "
          f"batch {args.batch:,}; proof times: first query, then median of up to "
          f"{args.queries} (ours) / {args.peer_queries} (pymerkle) random queries.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
