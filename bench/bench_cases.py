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

    .venv/bin/python bench/bench_cases.py --cases 1000000 --per-case 10 --data-dir DIR \
        --generate-only                 # generate once, outside the benchmark lock
    flock /tmp/tocsin-bench.lock .venv/bin/python bench/bench_cases.py --cases 1000000 \
        --per-case 10 --data-dir DIR    # measure (as often as needed)

A ``--data-dir`` that already holds generated data is measured as it is: the Tocsin
database, the FTS5 peer's file and the PostgreSQL peer's cluster (under DIR/pg, with
the options of scripts/pg-test-server.sh; or --pg-url) are kept between runs. The
inserts of a run stay in the data (200 phones among millions of entities).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _common import (
    FsyncProbe,
    GcPauses,
    MemoryLock,
    prewarm,
    quantile,
    settle_heap,
    storage_read_bytes,
)
from sqlalchemy import select

from tocsin.cases import normalize as N
from tocsin.cases.keys import HIT_KINDS, clean_properties, entity_keys, label_of, text_keys
from tocsin.cases.models import Case
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


# Bulk generation --------------------------------------------------------
# The rows are exactly what CaseService.create_case and add_entity write (same tables,
# same columns, same keys from tocsin.cases.keys), without the service's one-by-one
# transactions: chunks of cases generated by worker processes (each chunk from its own
# seed, so the data does not depend on the number of workers) into spool files that one
# raw sqlite3 connection copies in (INSERT ... SELECT, in C), the secondary indexes of
# randomly ordered columns dropped during the load and rebuilt after it with the
# migration's own DDL, the cross-case hits derived in SQL, load-only PRAGMAs (no journal,
# no sync) on that one connection. Not written: the historical
# events of the generated cases (the audit log of an import), which the measured paths
# never read.
CHUNK = 5000  # cases per generated chunk
# Rebuilt after the load: the indexes whose entries arrive in random order. Those on case_id
# stay: cases arrive in order, so their entries are appended (sorting them took minutes).
LOAD_INDEXES = ("ix_case_keys_lookup", "ix_cases_unit_id", "ix_case_investigators_user_id")
_W: dict = {}


def _worker_init(seed: int, n_cases: int, per_case: int, depts: list, staff: dict,
                 stamp: str, spool: str) -> None:
    _W.update(gen=Generator(random.Random(seed), n_cases), seed=seed, n_cases=n_cases,
              per_case=per_case, depts=depts, staff=staff, stamp=stamp, spool=spool)


SPOOL_DDL = (
    ("CREATE TABLE cases (id, reference, title, summary, unit_id, status, classification, "
     "contact_user_id, created_by, created_at, updated_at)"),
    "CREATE TABLE case_investigators (case_id, user_id, role)",
    ("CREATE TABLE case_entities (id, case_id, type, label, properties, created_by, "
     "created_at, updated_at)"),
    'CREATE TABLE case_keys (kind, "key", unit_id, case_id, dtype, doc_id)',
)


def _chunk(index: int) -> tuple[int, int, str]:
    """Generate cases [index*CHUNK+1, ...] into a spool file of their own (cases,
    investigators, entities, keys); the loader copies it in and deletes it."""
    import json
    import sqlite3

    gen, per_case, depts, staff, stamp = (_W["gen"], _W["per_case"], _W["depts"],
                                          _W["staff"], _W["stamp"])
    rng = random.Random(f"{_W['seed']}-{index}")
    gen.rng = rng
    first = index * CHUNK + 1
    last = min(_W["n_cases"], first + CHUNK - 1)
    cases, members, entities, keys = [], [], [], []
    entity_id = (first - 1) * per_case
    year = stamp[:4]
    dumps = json.dumps
    for cid in range(first, last + 1):
        unit_id, _path, code = rng.choice(depts)
        title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {code}"
        officers = staff.get(unit_id)
        lead = rng.choice(officers) if officers else None
        status = rng.choice(["open", "open", "closed"])
        cases.append((cid, f"{code}-{year}-{cid:06d}", title, "", unit_id, status,
                      "restricted", lead, lead, stamp, stamp))
        if lead is not None:
            members.append((cid, lead, "lead"))
        keys += [(k, v, unit_id, cid, "case", cid) for k, v in text_keys([title, ""])]
        for _ in range(per_case):
            etype, raw = gen.entity()
            props = clean_properties(etype, raw)
            entity_id += 1
            entities.append((entity_id, cid, etype, label_of(etype, props)[:300], dumps(props),
                             lead, stamp, stamp))
            keys += [(k, v, unit_id, cid, etype, entity_id) for k, v in entity_keys(etype, props)]
    path = f"{_W['spool']}/chunk-{index:06d}.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    for ddl in SPOOL_DDL:
        con.execute(ddl)
    con.executemany("INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?)", cases)
    con.executemany("INSERT INTO case_investigators VALUES (?,?,?)", members)
    con.executemany("INSERT INTO case_entities VALUES (?,?,?,?,?,?,?,?)", entities)
    con.executemany("INSERT INTO case_keys VALUES (?,?,?,?,?,?)", keys)
    con.execute("COMMIT")
    con.close()
    return len(entities), len(keys), path


def store_hits(con, stamp: str) -> int:
    """The hits the service would have stored while the generated entities were added one
    by one: every pair of entities of different cases sharing an identifying key (both
    sides, the strongest kind of the pair). Person hits (scored by the resolution engine)
    are not derived here."""
    strength = " ".join(f"WHEN '{k}' THEN {v}" for k, v in HIT_KINDS.items())
    kinds = ",".join(f"'{k}'" for k in HIT_KINDS)
    con.execute("BEGIN")
    n = con.execute(
        "INSERT INTO case_hits (case_id, entity_id, other_case_id, other_entity_id, kind, "
        "strength, created_at) "
        f"SELECT a.case_id, a.doc_id, b.case_id, b.doc_id, a.kind, max(CASE a.kind {strength} "
        "END), ? FROM case_keys a JOIN case_keys b ON b.kind = a.kind AND b.key = a.key "
        f"AND b.case_id != a.case_id WHERE a.kind IN ({kinds}) AND a.dtype != 'case' "
        "GROUP BY a.doc_id, b.doc_id", (stamp,)).rowcount
    con.execute("COMMIT")
    return n


def sqlite_path(rt: Runtime) -> str:
    return rt.db.url.split("///", 1)[-1]


def load(rt: Runtime, n_cases: int, per_case: int, seed: int, workers: int, progress) -> dict:
    """Generate and bulk-load ``n_cases`` cases of ``per_case`` entities (see above)."""
    import multiprocessing as mp
    import sqlite3

    from tocsin.core.database import utcnow
    from tocsin.core.identity.models import User

    with rt.db.read() as s:
        depts = [tuple(u) for u in s.execute(select(Unit.id, Unit.path, Unit.code)
                                             .where(Unit.kind.in_(["department", "company"]))
                                             .order_by(Unit.id))]
        staff: dict[int, list[int]] = {}
        for uid, unit_id, roles in s.execute(select(User.id, User.unit_id, User.roles)
                                             .order_by(User.id)):
            if "investigator" in (roles or ()):
                staff.setdefault(unit_id, []).append(uid)
    # the service's DateTime on SQLite: naive UTC text
    stamp = utcnow().replace(tzinfo=None).isoformat(" ", "microseconds")
    path = sqlite_path(rt)
    rt.db.engine.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    ddl = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND name IN "
                           f"({','.join('?' * len(LOAD_INDEXES))})", LOAD_INDEXES).fetchall())
    assert set(ddl) == set(LOAD_INDEXES), ddl
    con.execute("PRAGMA journal_mode=OFF")  # a throwaway database being generated
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    con.execute("PRAGMA foreign_keys=OFF")
    for name in LOAD_INDEXES:
        con.execute(f"DROP INDEX {name}")
    t0 = time.perf_counter()
    n_chunks = (n_cases + CHUNK - 1) // CHUNK
    n_entities = n_keys = 0
    ctx = mp.get_context("fork")
    spool = Path(path).parent / "spool"
    spool.mkdir(exist_ok=True)
    copy = {"cases": "id, reference, title, summary, unit_id, status, classification, "
                     "contact_user_id, created_by, created_at, updated_at",
            "case_investigators": "case_id, user_id, role",
            "case_entities": "id, case_id, type, label, properties, created_by, created_at, "
                             "updated_at",
            "case_keys": 'kind, "key", unit_id, case_id, dtype, doc_id'}
    with ctx.Pool(workers, _worker_init, (seed, n_cases, per_case, depts, staff, stamp,
                                          str(spool))) as pool:
        for i, (n_ent, n_k, chunk_path) in enumerate(
                pool.imap(_chunk, range(n_chunks), chunksize=1)):
            con.execute("ATTACH ? AS chunk", (chunk_path,))
            con.execute("BEGIN")
            for table, cols in copy.items():  # in C, in the order generated
                con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM "
                            f"chunk.{table} ORDER BY rowid")
            con.execute("COMMIT")
            con.execute("DETACH chunk")
            os.unlink(chunk_path)
            n_entities += n_ent
            n_keys += n_k
            if i % 20 == 19 or i == n_chunks - 1:
                el = time.perf_counter() - t0
                progress(f"  {min(n_cases, (i + 1) * CHUNK):,} cases, {n_entities:,} entities, "
                         f"{n_keys:,} keys ({el:.0f} s, {n_entities / el:,.0f} entities/s)")
    spool.rmdir()
    rows_s = time.perf_counter() - t0
    con.execute("PRAGMA threads=4")
    for name in LOAD_INDEXES:
        t1 = time.perf_counter()
        con.execute(ddl[name])
        progress(f"  index {name} built in {time.perf_counter() - t1:.0f} s")
    t1 = time.perf_counter()
    n_hits = store_hits(con, stamp)
    progress(f"  {n_hits:,} cross-case hits stored in {time.perf_counter() - t1:.0f} s")
    t1 = time.perf_counter()
    con.execute("PRAGMA analysis_limit=2000")
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    progress(f"  ANALYZE in {time.perf_counter() - t1:.0f} s")
    return {"entities": n_entities, "keys": n_keys, "rows_s": rows_s, "hits": n_hits,
            "load_s": time.perf_counter() - t0}


def pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile of times in seconds, in milliseconds."""
    return quantile(xs, q) * 1000


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
def peer_rows(rt: Runtime, batch: int = 100_000):
    """(entity id, case id, unit id, label + property values, plate, e164) of every stored
    entity, read back from Tocsin's tables: the peers index the very same data."""
    import json
    import sqlite3

    con = sqlite3.connect(f"file:{sqlite_path(rt)}?mode=ro", uri=True)
    last = 0
    while True:
        rows = con.execute("SELECT e.id, e.case_id, c.unit_id, e.label, e.properties FROM "
                           "case_entities e JOIN cases c ON c.id = e.case_id WHERE e.id > ? "
                           "ORDER BY e.id LIMIT ?", (last, batch)).fetchall()
        if not rows:
            break
        out = []
        for eid, cid, unit_id, label, raw in rows:
            props = json.loads(raw)
            out.append((eid, cid, unit_id, " ".join([label] + [str(v) for v in props.values()]),
                        N.plate(props["plate"]) if props.get("plate") else None,
                        props.get("e164")))
        yield out
        last = rows[-1][0]
    con.close()


def fts5_build(path: Path, rt: Runtime, progress) -> object:
    import sqlite3

    if path.exists():
        con = sqlite3.connect(path, check_same_thread=False)
        if con.execute("SELECT name FROM sqlite_master WHERE name='ent_unit'").fetchone():
            progress(f"  FTS5 peer reused ({path})")
            return con
        con.close()
        path.unlink()
    con = sqlite3.connect(path, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE ent(id INTEGER PRIMARY KEY, case_id INT, unit_id INT, plate TEXT,"
                " phone TEXT)")
    con.execute("CREATE VIRTUAL TABLE ent_fts USING fts5(body, content='', "
                "tokenize='unicode61 remove_diacritics 2')")
    con.execute("CREATE VIRTUAL TABLE plate_fts USING fts5(plate, content='', "
                "tokenize='trigram')")
    t0 = time.perf_counter()
    for chunk in peer_rows(rt):
        con.executemany("INSERT INTO ent VALUES (?,?,?,?,?)",
                        [(r[0], r[1], r[2], r[4], r[5]) for r in chunk])
        con.executemany("INSERT INTO ent_fts(rowid, body) VALUES (?,?)",
                        [(r[0], r[3]) for r in chunk])
        con.executemany("INSERT INTO plate_fts(rowid, plate) VALUES (?,?)",
                        [(r[0], r[4]) for r in chunk if r[4]])
        con.commit()
    con.execute("CREATE INDEX ent_unit ON ent(unit_id)")
    con.execute("PRAGMA synchronous=FULL")
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


PG_PORT = 55494


def _pg_bin() -> tuple[Path, list[str]]:
    binary = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda x: int(x.parent.name))
    return binary, (["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else [])


def pg_server(pg_dir: Path) -> str:
    """A PostgreSQL server on ``pg_dir`` (kept, so a reused data dir keeps its peer):
    the options of scripts/pg-test-server.sh."""
    binary, as_pg = _pg_bin()
    if not (pg_dir / "data").exists():
        pg_dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(pg_dir, "postgres")
        subprocess.run([*as_pg, str(binary / "initdb"), "-D", str(pg_dir / "data"), "-U",
                        "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"], check=True,
                       capture_output=True)
    subprocess.run([*as_pg, str(binary / "pg_ctl"), "-D", str(pg_dir / "data"), "-l",
                    str(pg_dir / "server.log"), "-w", "-o",
                    (f"-p {PG_PORT} -k {pg_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                     "-c max_connections=50 -c shared_buffers=2GB "
                     "-c maintenance_work_mem=2GB -c work_mem=64MB"), "start"],
                   check=True, capture_output=True)
    return f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"


def pg_stop(pg_dir: Path) -> None:
    binary, as_pg = _pg_bin()
    subprocess.run([*as_pg, str(binary / "pg_ctl"), "-D", str(pg_dir / "data"), "-m", "fast",
                    "stop"], check=False, capture_output=True)


def pg_build(url: str, rt: Runtime, n_entities: int, progress):
    import psycopg

    con = psycopg.connect(url, autocommit=True)
    done = con.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'ent_unit'").fetchone()[0]
    if done and con.execute("SELECT count(*) FROM ent").fetchone()[0] >= n_entities:
        progress("  PostgreSQL peer reused")
        return con
    con.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    con.execute("DROP TABLE IF EXISTS ent")
    con.execute("CREATE UNLOGGED TABLE ent(id bigint PRIMARY KEY, case_id int, unit_id int, "
                "body text, plate text, phone text, "
                "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)")
    t0 = time.perf_counter()
    with con.cursor().copy("COPY ent (id, case_id, unit_id, body, plate, phone) FROM STDIN"
                           ) as cp:
        for chunk in peer_rows(rt):
            for r in chunk:
                cp.write_row(r)
    progress(f"  PostgreSQL peer rows copied in {time.perf_counter() - t0:.0f} s")
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
    ap.add_argument("--warmup", type=int, default=100, help="untimed searches per system")
    ap.add_argument("--no-prewarm", dest="prewarm", action="store_false",
                    help="do not read the systems' files into the page cache first")
    ap.add_argument("--lock-memory", action="store_true",
                    help="also map and lock every system's files in memory for the run "
                         "(mlock): on a machine whose kernel pages out memory left "
                         "untouched (DAMON), the data stays in memory as on a server "
                         "that holds it")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-peers", action="store_true",
                    help="Tocsin alone (to compare two of its versions; the ratios need peers)")
    ap.add_argument("--workers", type=int, default=2, help="generator processes")
    ap.add_argument("--data-dir", "--dir", dest="data_dir", default=None,
                    help="reused when it already holds generated data (nothing is generated)")
    ap.add_argument("--generate-only", action="store_true",
                    help="generate the data and the peers' indexes into --data-dir and stop "
                         "(loading only: run it outside the benchmark lock)")
    args = ap.parse_args()
    progress = lambda m: print(m, flush=True)
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="tocsin-bench-cases-"))
    work.mkdir(parents=True, exist_ok=True)
    meta_file = work / "bench-cases.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if meta is not None:
        if (meta["cases"], meta["per_case"], meta["seed"]) != (args.cases, args.per_case,
                                                               args.seed):
            sys.exit(f"{work} holds {meta['cases']:,} cases x {meta['per_case']} (seed "
                     f"{meta['seed']}): pass those, or another --data-dir")
        rt = Runtime(Settings(data_dir=work / "var"))
        progress(f"reusing {work}: {meta['cases']:,} cases, {meta['entities']:,} entities, "
                 f"{meta['keys']:,} index keys (loaded in {meta['load_s']:.0f} s)")
        if "hits" not in meta:  # generated before the loader stored the generated hits
            import sqlite3

            t0 = time.perf_counter()
            with rt.db.read() as s:
                stamp = s.scalar(select(Case.created_at).where(Case.id == 1))
            rt.db.engine.dispose()
            con = sqlite3.connect(sqlite_path(rt), isolation_level=None)
            meta["hits"] = store_hits(con, stamp.isoformat(" ", "microseconds"))
            con.execute("ANALYZE case_hits")
            con.close()
            meta["load_s"] += time.perf_counter() - t0
            meta_file.write_text(json.dumps(meta))
            progress(f"  {meta['hits']:,} cross-case hits stored in "
                     f"{time.perf_counter() - t0:.0f} s")
    else:
        if (work / "var").exists() and any((work / "var").glob("*.sqlite3")):
            sys.exit(f"{work} holds an unfinished generation: remove it first")
        rt = Runtime(Settings(data_dir=work / "var"))
        migrate.upgrade(rt.db.engine)
        saved, demo.DEMO_MODULES[:] = list(demo.DEMO_MODULES), []
        demo.populate(rt, size="full", progress=progress)
        demo.DEMO_MODULES[:] = saved
        progress(f"generating {args.cases:,} cases x {args.per_case} entities "
                 f"({args.workers} generator processes) ...")
        data = load(rt, args.cases, args.per_case, args.seed, args.workers, progress)
        meta = {"cases": args.cases, "per_case": args.per_case, "seed": args.seed,
                "entities": data["entities"], "keys": data["keys"], "hits": data["hits"],
                "load_s": data["load_s"],
                "rows_s": data["rows_s"]}
        progress(f"loaded {args.cases:,} cases, {data['entities']:,} entities, "
                 f"{data['keys']:,} index keys in {data['load_s']:.0f} s "
                 f"(rows {data['rows_s']:.0f} s, then indexes and ANALYZE)")
        rt = Runtime(Settings(data_dir=work / "var"))
        t0 = time.perf_counter()
        fts5_build(work / "fts5.sqlite3", rt, progress).close()
        if not args.no_pg and args.pg_url is None:
            try:
                pg_build(pg_server(work / "pg"), rt, meta["entities"], progress).close()
            finally:
                pg_stop(work / "pg")
        meta["peers_s"] = time.perf_counter() - t0
        meta_file.write_text(json.dumps(meta))
    if args.generate_only:
        progress(f"data in {work}")
        rt.stop()
        return
    n_keys = meta["keys"]
    with rt.db.read() as s:
        depts = [tuple(u) for u in s.execute(select(Unit.id, Unit.path, Unit.code)
                                             .where(Unit.kind.in_(["department", "company"]))
                                             .order_by(Unit.id))]
    # the generator's pools (phones, plates, surnames) come from the seed alone
    data = {"gen": Generator(random.Random(args.seed), args.cases),
            "entities": meta["entities"], "depts": depts}
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

    in_memory: dict[str, list[float]] = {}  # Tocsin's calls that read nothing from storage
    collected: list[float] = []  # garbage collection inside Tocsin's timed calls
    cpu: dict[str, list[float]] = {}  # CPU time of Tocsin's calls (this thread's)
    frozen = settle_heap()
    pauses = GcPauses()

    def timed(system: str, kind: str, fn, *args) -> None:
        io, gc0, c0, t0 = (storage_read_bytes(), pauses.total, time.thread_time(),
                           time.perf_counter())
        fn(*args)
        took = time.perf_counter() - t0
        results.setdefault(system, {}).setdefault(kind, []).append(took)
        if system == "tocsin":
            cpu.setdefault(kind, []).append(time.thread_time() - c0)
            if storage_read_bytes() == io:
                in_memory.setdefault(kind, []).append(took)
            if pauses.total > gc0:
                collected.append(pauses.total - gc0)

    progress("searching: Tocsin (SQLite, case_keys, audited) ...")
    from tocsin.cases import search as search_mod

    def query_only(p: Principal, crit: dict) -> None:
        with rt.db.read() as s:
            search_mod.run(s, p, Criteria(**crit))

    peer_files = [] if args.no_peers else [work / "fts5.sqlite3"] + (
        [work / "pg" / "data"] if not args.no_pg and args.pg_url is None else [])
    files = [f for f in [Path(sqlite_path(rt)), *peer_files] if f.exists()]
    if args.prewarm:
        t0 = time.perf_counter()
        n = prewarm(files)
        progress(f"  page cache: {n / 2**30:.1f} GiB of Tocsin's and the peers' files read "
                 f"in {time.perf_counter() - t0:.0f} s")
    if args.lock_memory:
        t0 = time.perf_counter()
        locked = MemoryLock(files)
        progress(f"  locked in memory: {locked.locked / 2**30:.1f} GiB in "
                 f"{time.perf_counter() - t0:.0f} s (mlock, until the end of the run)")
    # the same untimed warm-up for every system: other queries, pages read from disk once
    warm = queries(data["gen"], random.Random(args.seed + 2), args.warmup)
    for i, (_kind, crit) in enumerate(warm):
        query_only(people[i % len(people)], crit)
    record = rt.reads.record  # the audit commit of a search, timed apart (part of its time)

    def timed_record(*events) -> None:
        timed("tocsin", "audit record", record, *events)

    rt.reads.record = timed_record
    disk = FsyncProbe(Path(sqlite_path(rt)).parent)
    for i, (kind, crit) in enumerate(qs):
        p = people[i % len(people)]
        timed("tocsin", kind, svc.search, p, Criteria(**crit))
        disk.probe()
        timed("tocsin", kind + " (query)", query_only, p, crit)
    rt.reads.record = record
    # hit detection on insert: phones already present in other cases
    with rt.db.read() as s:
        own = list(s.execute(select(Case.id, Case.unit_id).limit(args.inserts * 3)))
    progress("inserting entities with hit detection ...")
    from tocsin.cases import hits as hits_mod

    hit_counts, commit_started = [], {}
    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session as OrmSession

    def before_commit(session) -> None:  # the insert's commit (flush and fsync), timed apart
        commit_started[id(session)] = time.perf_counter()

    def after_commit(session) -> None:
        if id(session) in commit_started:
            results.setdefault("tocsin", {}).setdefault("insert commit", []).append(
                time.perf_counter() - commit_started.pop(id(session)))

    sa_event.listen(OrmSession, "before_commit", before_commit)
    sa_event.listen(OrmSession, "after_commit", after_commit)
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
        disk.probe()
    sa_event.remove(OrmSession, "before_commit", before_commit)
    sa_event.remove(OrmSession, "after_commit", after_commit)
    peers = []
    if not args.no_peers:
        con = fts5_build(work / "fts5.sqlite3", rt, progress)
        peers.append(("sqlite-fts5", con, fts5_search, fts5_hit))
    pg_dir = None
    if not args.no_pg and not args.no_peers:
        url = args.pg_url
        if url is None:
            pg_dir = work / "pg"
            url = pg_server(pg_dir)
        peers.append(("pg-fts+trgm", pg_build(url, rt, meta["entities"], progress), pg_search,
                      pg_hit))
    try:
        for name, con, search_fn, hit_fn in peers:
            progress(f"searching: {name} ...")
            for i, (kind, crit) in enumerate(warm):
                search_fn(con, units_of[people[i % len(people)].username], kind, crit)
            for i, (kind, crit) in enumerate(qs):
                p = people[i % len(people)]
                units = units_of[p.username]
                timed(name, kind, search_fn, con, units, kind, crit)
            for i in range(args.inserts):
                phone = N.phone(rng.choice(data["gen"].phones))
                timed(name, "hit lookup", hit_fn, con, phone, own[i][0])
    finally:
        if pg_dir is not None:
            pg_stop(pg_dir)
    print()
    print(f"data: {args.cases:,} cases, {data['entities']:,} entities, {n_keys:,} index keys, "
          f"{meta.get('hits', 0):,} stored hits "
          f"(generated and loaded in {meta['load_s']:.0f} s, peers built in "
          f"{meta.get('peers_s', 0):.0f} s); "
          f"{len(qs)} searches by investigators of 50 random departments/companies; "
          f"{args.inserts} inserts of phones already known elsewhere "
          f"(mean {statistics.mean(hit_counts):.1f} matches)")
    systems = ["tocsin"] + [p[0] for p in peers]
    kinds = ["word", "word (query)", "phone", "phone (query)", "plate", "plate (query)", "name",
             "name (query)", "audit record", "hit lookup", "insert+hits", "insert commit"]
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
    mem_search = [x for k in ("word", "phone", "plate", "name") for x in in_memory.get(k, [])]
    mem_insert = in_memory.get("insert+hits", [])
    pauses.close()
    disk.close()
    print(f"the disk alone: a bare 4 KiB fdatasync beside the database after each audited "
          f"search and each insert, p50 {pct(disk.times, .5):.2f} / p90 "
          f"{pct(disk.times, .9):.2f} / p99 {pct(disk.times, .99):.2f} / max "
          f"{max(disk.times) * 1e3:.1f} ms ({len(disk.times)} flushes): the floor under "
          f"every durable commit")
    cpu_search = [x for k in ("word", "phone", "plate", "name") for x in cpu.get(k, [])]
    print(f"CPU time (the calling thread): search p50 {pct(cpu_search, .5):.1f} / p99 "
          f"{pct(cpu_search, .99):.1f} ms, insert+hits p50 {pct(cpu['insert+hits'], .5):.1f} / "
          f"p99 {pct(cpu['insert+hits'], .99):.1f} ms (the rest of the wall time is waiting)")
    print(f"garbage collection: {frozen:,} objects of the setup frozen first (gc.freeze, as "
          f"the server does once started); {len(collected)} timed Tocsin calls paused for a "
          f"collection, {sum(collected) * 1e3:.1f} ms in all, longest "
          f"{max(collected, default=0) * 1e3:.1f} ms; collections by generation "
          f"{pauses.by_generation}")
    print(f"page-cache misses: {len(mem_search)} of {len(alls)} searches and {len(mem_insert)} "
          f"of {len(results['tocsin']['insert+hits'])} inserts read nothing from storage; "
          f"their p99: search {pct(mem_search, .99):.1f} ms, insert+hits "
          f"{pct(mem_insert, .99):.1f} ms (the others waited for pages read from disk)")
    print("rows: '(query)' is the access-filtered query alone (part of the row above); "
          "'audit record' the commit of a search's audit event alone (part of every search "
          "row); 'insert commit' the flush and commit of an insert alone (part of insert+hits)")
    print("notes: peers do no phonetics (FTS5: exact surname word; PostgreSQL: trigram "
          "similarity), no audit event and no facets beyond a unit count; Tocsin's search time "
          "includes committing its audit event (SQLite synchronous=FULL).")
    rt.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
