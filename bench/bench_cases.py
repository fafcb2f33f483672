"""Investigations benchmark: nationwide search and cross-case hit detection.

Generates ``--cases`` case files of ``--per-case`` entities (persons, phones,
vehicles, e-mails, addresses, events) with the project's own code (entity
validation and key derivation of ``tocsin.cases.keys``) on the full demo force,
loads them into Tocsin's schema on SQLite, and measures, for investigators of
random departments (each query filtered by access):

* search through ``CaseService.search`` (the product path: access filter in SQL,
  facets, and the audit event committed to disk) -- full text words, fielded
  phone, plate with wildcards, name by sound + birth date;
* cross-case hit detection on insert: ``CaseService.add_entity`` of a phone
  already in another region's case (insert, index, hit detection, events,
  commit), and the hit lookup alone.

Peers on the same data, same machine, same access filter (units of the
caller's subtree): SQLite FTS5 (unicode61 words + trigram for plates) and
PostgreSQL full-text (tsvector/GIN) + pg_trgm. Prints p50/p99 and ratios.

    .venv/bin/python bench/bench_cases.py --cases 100000 --per-case 10 [--pg-url URL]
    (with no --pg-url it starts a throwaway server with scripts/pg-test-server.sh)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import insert, select, text

from tocsin.cases import normalize as N
from tocsin.cases.keys import clean_properties, entity_keys, label_of, text_keys
from tocsin.cases.models import Case, CaseKey, Entity
from tocsin.cases.search import Criteria
from tocsin.cases.service import get_service
from tocsin.core import demo, migrate
from tocsin.core.access import Principal
from tocsin.core.config import Settings
from tocsin.core.identity.models import Unit
from tocsin.core.runtime import Runtime

WORDS = ["cambriolage", "vol", "stupefiants", "cannabis", "cocaine", "heroine", "fraude", "escroquerie", "recel", "agression", "braquage", "bijouterie", "entrepot", "hangar", "livraison", "rendezvous", "parking", "gare", "port", "aeroport", "frontiere", "camion", "fourgon", "scooter", "moto", "pharmacie", "banque", "tabac", "casino", "chantier", "garage", "atelier", "quai", "marche", "station", "hotel", "bar", "restaurant"]
SYLL = ["ba", "be", "bi", "bo", "bu", "da", "de", "di", "do", "du", "fa", "fe", "fi", "fo", "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo", "mu", "na", "ne", "ni", "no", "nu", "ra", "re", "ri", "ro", "ru", "sa", "se", "si", "so", "su", "ta", "te", "ti", "to", "tu", "va", "ve", "vi", "vo", "vu", "cha", "che", "chi", "cho", "lou", "mar", "ber", "ger", "mon", "tal", "ric", "van", "gal"]
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def surname(rng: random.Random) -> str:
    return "".join(rng.choice(SYLL) for _ in range(rng.randint(2, 3))).capitalize()


class Generator:
    """Entities of one case, shaped like investigators' data; some identifiers recur."""

    def __init__(self, rng: random.Random, n_cases: int):
        self.rng = rng
        self.phones = [f"06{rng.randrange(10**8):08d}" for _ in range(max(1000, n_cases // 3))]
        self.plates = [self.plate() for _ in range(max(1000, n_cases // 3))]
        self.surnames = [surname(rng) for _ in range(20000)]

    def plate(self) -> str:
        r = self.rng
        return (f"{r.choice(LETTERS)}{r.choice(LETTERS)}-{r.randrange(1000):03d}-"
                f"{r.choice(LETTERS)}{r.choice(LETTERS)}")

    def entity(self) -> tuple[str, dict]:
        r = self.rng
        kind = r.choices(["person", "phone", "vehicle", "email", "address", "event"],
                         [35, 25, 15, 8, 10, 7])[0]
        if kind == "person":
            return kind, {"given_name": r.choice(demo.GIVEN),
                          "family_name": r.choice(self.surnames),
                          "birth_date": f"{r.randint(1950, 2006)}-{r.randint(1, 12):02d}-"
                                        f"{r.randint(1, 28):02d}",
                          "notes": " ".join(r.sample(WORDS, 2))}
        if kind == "phone":  # one in three recurs somewhere else in the country
            num = r.choice(self.phones) if r.random() < 0.3 else f"07{r.randrange(10**8):08d}"
            return kind, {"number": num}
        if kind == "vehicle":
            plate = r.choice(self.plates) if r.random() < 0.3 else self.plate()
            return kind, {"plate": plate, "make": r.choice(["Peugeot", "Renault", "Citroen",
                                                            "BMW", "Audi", "Dacia"])}
        if kind == "email":
            return kind, {"address": f"{r.choice(self.surnames).lower()}{r.randrange(999)}"
                                     f"@example.org"}
        if kind == "address":
            return kind, {"street": f"{r.randint(1, 200)} rue {r.choice(self.surnames)}",
                          "postcode": f"{r.randrange(1000, 96000):05d}",
                          "city": r.choice(self.surnames)}
        return kind, {"title": " ".join(r.sample(WORDS, 3)),
                      "date": f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"}


def load(rt: Runtime, n_cases: int, per_case: int, seed: int, progress) -> dict:
    """Bulk-load cases; entity rows and index keys come from the project's key code."""
    rng = random.Random(seed)
    gen = Generator(rng, n_cases)
    with rt.db.read() as s:
        depts = [u for u in s.execute(select(Unit.id, Unit.path, Unit.code)
                                      .where(Unit.kind.in_(["department", "company"])))]
    batch_cases = 5000
    entity_id = 0
    t0 = time.perf_counter()
    eng = rt.db.engine
    texts = []  # (entity id, case id, unit id, label+text, plate) for the peers
    for start in range(0, n_cases, batch_cases):
        cases, entities, keys = [], [], []
        for cid in range(start + 1, min(n_cases, start + batch_cases) + 1):
            unit = rng.choice(depts)
            title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {unit[2]}"
            cases.append({"id": cid, "reference": f"B-{cid:07d}", "title": title, "summary": "",
                          "unit_id": unit[0], "status": rng.choice(["open", "open", "closed"]),
                          "classification": "restricted"})
            keys += [{"kind": k, "key": v, "unit_id": unit[0], "case_id": cid, "dtype": "case",
                      "doc_id": cid} for k, v in text_keys([title])]
            for _ in range(per_case):
                etype, raw = gen.entity()
                props = clean_properties(etype, raw)
                entity_id += 1
                label = label_of(etype, props)
                entities.append({"id": entity_id, "case_id": cid, "type": etype, "label": label,
                                 "properties": props})
                for k, v in entity_keys(etype, props):
                    keys.append({"kind": k, "key": v, "unit_id": unit[0], "case_id": cid,
                                 "dtype": etype, "doc_id": entity_id})
                body = " ".join([label] + [str(v) for v in props.values()])
                texts.append((entity_id, cid, unit[0], body,
                              N.plate(props["plate"]) if props.get("plate") else None,
                              props.get("e164")))
        with eng.begin() as c:
            c.execute(insert(Case), cases)
            c.execute(insert(Entity), entities)
            c.execute(insert(CaseKey), keys)
        done = min(n_cases, start + batch_cases)
        progress(f"  loaded {done:,} cases, {entity_id:,} entities "
                 f"({time.perf_counter() - t0:.0f} s)")
    with eng.begin() as c:
        c.exec_driver_sql("ANALYZE")
    return {"gen": gen, "texts": texts, "entities": entity_id, "depts": depts,
            "load_s": time.perf_counter() - t0}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000


def investigators(rt: Runtime, depts, n: int, rng) -> list[Principal]:
    with rt.db.read() as s:
        paths = dict(s.execute(select(Unit.id, Unit.path)).all())
    out = []
    for i in range(n):
        unit = rng.choice(depts)
        out.append(Principal(user_id=1, username=f"bench{i}", unit_id=unit[0],
                             unit_path=paths[unit[0]], roles=frozenset({"investigator"})))
    return out


def queries(gen: Generator, rng: random.Random, n: int) -> list[tuple[str, dict]]:
    out = []
    for i in range(n):
        kind = ["word", "phone", "plate", "name"][i % 4]
        if kind == "word":
            out.append((kind, {"q": f"{rng.choice(WORDS)} {rng.choice(WORDS)}"}))
        elif kind == "phone":
            out.append((kind, {"phone": rng.choice(gen.phones)}))
        elif kind == "plate":
            p = N.plate(rng.choice(gen.plates))
            out.append((kind, {"plate": p[:4] + "*"}))
        else:
            out.append((kind, {"name": rng.choice(gen.surnames),
                               "birth_date": f"{rng.randint(1950, 2006)}-06-15",
                               "dob_tolerance_days": 365}))
    return out


# Peers -------------------------------------------------------------------
def fts5_build(path: Path, data: dict, progress) -> object:
    import sqlite3

    con = sqlite3.connect(path, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE ent(id INTEGER PRIMARY KEY, case_id INT, unit_id INT, plate TEXT,"
                " phone TEXT)")
    con.execute("CREATE VIRTUAL TABLE ent_fts USING fts5(body, content='', "
                "tokenize='unicode61 remove_diacritics 2')")
    con.execute("CREATE VIRTUAL TABLE plate_fts USING fts5(plate, content='', "
                "tokenize='trigram')")
    t0 = time.perf_counter()
    rows = data["texts"]
    for i in range(0, len(rows), 50000):
        chunk = rows[i:i + 50000]
        con.executemany("INSERT INTO ent VALUES (?,?,?,?,?)",
                        [(r[0], r[1], r[2], r[4], r[5]) for r in chunk])
        con.executemany("INSERT INTO ent_fts(rowid, body) VALUES (?,?)",
                        [(r[0], r[3]) for r in chunk])
        con.executemany("INSERT INTO plate_fts(rowid, plate) VALUES (?,?)",
                        [(r[0], r[4]) for r in chunk if r[4]])
        con.commit()
    con.execute("CREATE INDEX ent_unit ON ent(unit_id)")
    con.commit()
    progress(f"  FTS5 peer built in {time.perf_counter() - t0:.0f} s")
    return con


def fts5_search(con, units: list[int], kind: str, crit: dict) -> int:
    unit_list = ",".join(map(str, units))
    if kind == "word":
        q = " AND ".join(f'"{w}"' for w in crit["q"].split())
        sql = (f"SELECT e.id FROM ent_fts f JOIN ent e ON e.id=f.rowid WHERE ent_fts MATCH ? "
               f"AND e.unit_id IN ({unit_list}) LIMIT 50")
        arg = q
    elif kind == "phone":
        sql = (f"SELECT e.id FROM ent_fts f JOIN ent e ON e.id=f.rowid WHERE ent_fts MATCH ? "
               f"AND e.unit_id IN ({unit_list}) LIMIT 50")
        arg = '"' + N.phone(crit["phone"]).lstrip("+") + '"'
    elif kind == "plate":
        sql = (f"SELECT e.id FROM plate_fts f JOIN ent e ON e.id=f.rowid WHERE f.plate LIKE ? "
               f"AND e.unit_id IN ({unit_list}) LIMIT 50")
        arg = crit["plate"].replace("*", "%")
    else:  # no phonetics in FTS5: exact surname word, the birth year as a word
        sql = (f"SELECT e.id FROM ent_fts f JOIN ent e ON e.id=f.rowid WHERE ent_fts MATCH ? "
               f"AND e.unit_id IN ({unit_list}) LIMIT 50")
        arg = f'"{crit["name"]}"'
    rows = con.execute(sql, (arg,)).fetchall()
    # a facet by unit, as the product computes
    con.execute(f"SELECT e.unit_id, count(*) FROM ent e WHERE e.id IN "
                f"({','.join(str(r[0]) for r in rows) or 'NULL'}) GROUP BY 1").fetchall()
    return len(rows)


def fts5_hit(con, phone: str, case_id: int) -> int:
    return len(con.execute("SELECT e.case_id FROM ent_fts f JOIN ent e ON e.id=f.rowid WHERE "
                           "ent_fts MATCH ? AND e.case_id != ? LIMIT 200",
                           ('"' + phone.lstrip("+") + '"', case_id)).fetchall())


def pg_build(url: str, data: dict, progress):
    import psycopg

    con = psycopg.connect(url, autocommit=True)
    con.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    con.execute("DROP TABLE IF EXISTS ent")
    con.execute("CREATE TABLE ent(id bigint PRIMARY KEY, case_id int, unit_id int, body text, "
                "plate text, phone text)")
    t0 = time.perf_counter()
    with con.cursor().copy("COPY ent FROM STDIN") as cp:
        for r in data["texts"]:
            cp.write_row((r[0], r[1], r[2], r[3], r[4], r[5]))
    con.execute("ALTER TABLE ent ADD COLUMN tsv tsvector")
    con.execute("UPDATE ent SET tsv = to_tsvector('simple', body)")
    con.execute("CREATE INDEX ent_tsv ON ent USING gin(tsv)")
    con.execute("CREATE INDEX ent_plate ON ent USING gin(plate gin_trgm_ops)")
    con.execute("CREATE INDEX ent_body_trgm ON ent USING gin(body gin_trgm_ops)")
    con.execute("CREATE INDEX ent_unit ON ent(unit_id)")
    con.execute("ANALYZE ent")
    progress(f"  PostgreSQL peer built in {time.perf_counter() - t0:.0f} s")
    return con


def pg_search(con, units: list[int], kind: str, crit: dict) -> int:
    if kind in ("word", "phone"):
        words = crit["q"].split() if kind == "word" else [N.phone(crit["phone"])]
        rows = con.execute("SELECT id FROM ent WHERE tsv @@ plainto_tsquery('simple', %s) "
                           "AND unit_id = ANY(%s) LIMIT 50", (" ".join(words), units)).fetchall()
    elif kind == "plate":
        rows = con.execute("SELECT id FROM ent WHERE plate LIKE %s AND unit_id = ANY(%s) "
                           "LIMIT 50", (crit["plate"].replace("*", "%"), units)).fetchall()
    else:  # trigram similarity of the name as the fuzzy match
        rows = con.execute("SELECT id FROM ent WHERE body %% %s AND unit_id = ANY(%s) LIMIT 50",
                           (crit["name"], units)).fetchall()
    con.execute("SELECT unit_id, count(*) FROM ent WHERE id = ANY(%s) GROUP BY 1",
                ([r[0] for r in rows],)).fetchall()
    return len(rows)


def pg_hit(con, phone: str, case_id: int) -> int:
    return len(con.execute("SELECT case_id FROM ent WHERE tsv @@ plainto_tsquery('simple', %s) "
                           "AND case_id <> %s LIMIT 200", (phone, case_id)).fetchall())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--per-case", type=int, default=10)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--inserts", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    progress = lambda m: print(m, flush=True)
    work = Path(args.dir or tempfile.mkdtemp(prefix="tocsin-bench-cases-"))
    work.mkdir(parents=True, exist_ok=True)
    rt = Runtime(Settings(data_dir=work / "var"))
    migrate.upgrade(rt.db.engine)
    saved, demo.DEMO_MODULES[:] = list(demo.DEMO_MODULES), []
    demo.populate(rt, size="full", progress=progress)
    demo.DEMO_MODULES[:] = saved
    progress(f"generating {args.cases:,} cases x {args.per_case} entities ...")
    data = load(rt, args.cases, args.per_case, args.seed, progress)
    n_keys = None
    with rt.db.read() as s:
        n_keys = s.scalar(text("SELECT count(*) FROM case_keys"))
    progress(f"loaded {args.cases:,} cases, {data['entities']:,} entities, {n_keys:,} index keys "
             f"in {data['load_s']:.0f} s")
    rng = random.Random(args.seed + 1)
    people = investigators(rt, data["depts"], 50, rng)
    with rt.db.read() as s:
        paths = dict(s.execute(select(Unit.id, Unit.path)).all())
    units_of = {}
    for p in people:
        units_of[p.username] = [u for u, path in paths.items() if path.startswith(p.unit_path)]
    qs = queries(data["gen"], rng, args.queries)
    svc = get_service(rt)
    results: dict[str, dict[str, list[float]]] = {}

    def timed(system: str, kind: str, fn, *args) -> None:
        t0 = time.perf_counter()
        fn(*args)
        results.setdefault(system, {}).setdefault(kind, []).append(time.perf_counter() - t0)

    progress("searching: Tocsin (SQLite, case_keys, audited) ...")
    from tocsin.cases import search as search_mod

    def query_only(p: Principal, crit: dict) -> None:
        with rt.db.read() as s:
            search_mod.run(s, p, Criteria(**crit))

    for i, (kind, crit) in enumerate(qs):
        p = people[i % len(people)]
        timed("tocsin", kind, svc.search, p, Criteria(**crit))
        timed("tocsin", kind + " (query)", query_only, p, crit)
    # hit detection on insert: phones already present in other cases
    with rt.db.read() as s:
        own = list(s.execute(select(Case.id, Case.unit_id).limit(args.inserts * 3)))
    progress("inserting entities with hit detection ...")
    from tocsin.cases import hits as hits_mod

    hit_counts = []
    for i in range(args.inserts):
        case_id, unit_id = own[i]
        p = Principal(user_id=1, username="bench", unit_id=unit_id, unit_path=paths[unit_id],
                      roles=frozenset({"investigator"}))
        phone = rng.choice(data["gen"].phones)
        props = clean_properties("phone", {"number": phone})
        keys = entity_keys("phone", props)
        with rt.db.read() as s:
            t0 = time.perf_counter()
            found = hits_mod.find_matches(s, case_id, "phone", props, keys)
            results.setdefault("tocsin", {}).setdefault("hit lookup", []).append(
                time.perf_counter() - t0)
        hit_counts.append(len(found))
        timed("tocsin", "insert+hits", svc.add_entity, p, case_id, "phone", {"number": phone})
    peers = []
    con = fts5_build(work / "fts5.sqlite3", data, progress)
    peers.append(("sqlite-fts5", con, fts5_search, fts5_hit))
    pg_dir = None
    if not args.no_pg:
        url = args.pg_url
        if url is None:
            pg_dir = Path(f"/tmp/tocsin-bench-pg-{os.getpid()}")  # postgres must reach it
            url = subprocess.run(["bash", str(ROOT / "scripts/pg-test-server.sh"), "start",
                                  str(pg_dir), "55493"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        peers.append(("pg-fts+trgm", pg_build(url, data, progress), pg_search, pg_hit))
    try:
        for name, con, search_fn, hit_fn in peers:
            progress(f"searching: {name} ...")
            for i, (kind, crit) in enumerate(qs):
                p = people[i % len(people)]
                units = units_of[p.username]
                timed(name, kind, search_fn, con, units, kind, crit)
            for i in range(args.inserts):
                phone = N.phone(rng.choice(data["gen"].phones))
                timed(name, "hit lookup", hit_fn, con, phone, own[i][0])
    finally:
        if pg_dir is not None:
            subprocess.run(["bash", str(ROOT / "scripts/pg-test-server.sh"), "stop",
                            str(pg_dir)], check=False)
    print()
    print(f"data: {args.cases:,} cases, {data['entities']:,} entities, {n_keys:,} index keys; "
          f"{len(qs)} searches by investigators of 50 random departments/companies; "
          f"{args.inserts} inserts of phones already known elsewhere "
          f"(mean {statistics.mean(hit_counts):.1f} matches)")
    systems = ["tocsin"] + [p[0] for p in peers]
    kinds = ["word", "word (query)", "phone", "phone (query)", "plate", "plate (query)", "name",
             "name (query)", "hit lookup", "insert+hits"]
    head = f"{'operation':<15}" + "".join(f"{s + ' p50':>16}{s + ' p99':>16}" for s in systems)
    head += "".join(f"{'p99 ' + s + '/tocsin':>24}" for s in systems[1:])
    print(head)
    for kind in kinds:
        row = f"{kind:<15}"
        for s in systems:
            xs = results.get(s, {}).get(kind)
            row += f"{pct(xs, .5):>14.2f}ms{pct(xs, .99):>14.2f}ms" if xs else f"{'-':>16}{'-':>16}"
        base = results["tocsin"].get(kind)
        for s in systems[1:]:
            xs = results.get(s, {}).get(kind.replace(" (query)", ""))
            row += f"{pct(xs, .99) / pct(base, .99):>23.2f}x" if xs and base else f"{'-':>24}"
        print(row)
    alls = [x for k in ("word", "phone", "plate", "name") for x in results["tocsin"][k]]
    qonly = [x for k in ("word", "phone", "plate", "name") for x in results["tocsin"][k + " (query)"]]
    print(f"\nTocsin search p99 over all kinds: {pct(alls, .99):.1f} ms with the audit commit, "
          f"{pct(qonly, .99):.1f} ms for the access-filtered query (target < 50 ms); "
          f"hit detection on insert p99: lookup {pct(results['tocsin']['hit lookup'], .99):.1f} ms,"
          f" whole insert {pct(results['tocsin']['insert+hits'], .99):.1f} ms (target < 20 ms)")
    print("notes: peers do no phonetics (FTS5: exact surname word; PostgreSQL: trigram "
          "similarity), no audit event and no facets beyond a unit count; Tocsin's search time "
          "includes committing its audit event (SQLite synchronous=FULL).")
    rt.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
