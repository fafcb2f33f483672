"""Synthetic French identities with realistic corruption and ground truth.

Names come from ``data/names_fr.txt`` (typed for this project: ~1,500 real
French surnames of every region -- Breton, Alsatian, Basque, Corsican,
Occitan, Flemish, overseas -- and of immigrant families, with particles, plus
~750 given names), widened by :func:`surname_vocabulary` with surnames built
the way French surnames are built (diminutive suffixes on given-name roots:
Guillemot, Jacquinot, Perrinet; ``Le`` + occupation or nickname; Breton
``Ker``/``Pen``/``Le`` + root; ``Des``/``Du``/``Dela`` + place word;
double-barrelled X-Y): several thousand surnames in all. Both lists are
drawn with Zipf-like frequencies, so Martin is common and Kerhervé rare.

:func:`generate` makes persons, then duplicate records of some of them with
the errors seen in police files: keyboard typos, phonetic respellings
(Dupont/Dupond, Lefebvre/Lefèvre, Thibault/Thibaut, Philippe/Filip...),
accents and case lost, hyphen/compound variants (Jean-Pierre / Jean Pierre /
Jean, Le Gall / Legall), given names reordered or reduced to initials, day
and month swapped, dates in other formats or partial, married women under
their husband's name (with or without ``née X``), phones in other formats,
street abbreviations, missing fields, moves. Everything is reproducible from
the seed. :func:`index_columns` makes millions of clean persons fast
(vectorised), for :class:`~tocsin.engines.resolve.index.PersonIndex`.
"""

from __future__ import annotations

import datetime as _dt
import random
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

STREET_TYPES = ("rue", "avenue", "boulevard", "place", "chemin", "impasse", "allée", "route",
                "quai", "cours", "square", "passage", "résidence", "faubourg")
STREET_ABBR = {"rue": "r.", "avenue": "av.", "boulevard": "bd", "place": "pl.",
               "chemin": "ch.", "impasse": "imp.", "allée": "all.", "route": "rte",
               "faubourg": "fg", "square": "sq.", "résidence": "rés."}
STREET_NAMES = (
    "de la République", "Victor Hugo", "Jean Jaurès", "du Général de Gaulle", "Pasteur",
    "de la Gare", "Jules Ferry", "de l'Église", "des Écoles", "du Moulin", "de la Mairie",
    "Gambetta", "Carnot", "Voltaire", "Émile Zola", "de la Paix", "du Château",
    "des Lilas", "des Tilleuls", "du Stade", "de Verdun", "de la Liberté", "Foch",
    "Aristide Briand", "Anatole France", "Louis Pasteur", "Jean Moulin", "du 8 Mai 1945",
    "du 11 Novembre", "des Acacias", "des Peupliers", "Saint-Martin", "Sainte-Anne",
    "de Bretagne", "de Paris", "de Lyon", "du Port", "des Pins", "du Marché",
    "Clemenceau", "Jean Monnet", "Pierre Curie", "Marie Curie", "de la Fontaine",
    "des Vignes", "du Lavoir", "de la Croix", "du Calvaire", "des Mimosas", "Mozart",
)
CITIES = (
    ("75011", "Paris"), ("75015", "Paris"), ("75018", "Paris"), ("13001", "Marseille"),
    ("13008", "Marseille"), ("69003", "Lyon"), ("69007", "Lyon"), ("31000", "Toulouse"),
    ("06000", "Nice"), ("44000", "Nantes"), ("67000", "Strasbourg"), ("34000", "Montpellier"),
    ("33000", "Bordeaux"), ("59000", "Lille"), ("35000", "Rennes"), ("51100", "Reims"),
    ("76600", "Le Havre"), ("42000", "Saint-Étienne"), ("83000", "Toulon"),
    ("38000", "Grenoble"), ("21000", "Dijon"), ("49000", "Angers"), ("30000", "Nîmes"),
    ("63000", "Clermont-Ferrand"), ("72000", "Le Mans"), ("13100", "Aix-en-Provence"),
    ("29200", "Brest"), ("37000", "Tours"), ("80000", "Amiens"), ("87000", "Limoges"),
    ("74000", "Annecy"), ("66000", "Perpignan"), ("57000", "Metz"), ("25000", "Besançon"),
    ("45000", "Orléans"), ("68100", "Mulhouse"), ("76000", "Rouen"), ("14000", "Caen"),
    ("54000", "Nancy"), ("64100", "Bayonne"), ("64000", "Pau"), ("20000", "Ajaccio"),
    ("20200", "Bastia"), ("97400", "Saint-Denis"), ("97200", "Fort-de-France"),
    ("29000", "Quimper"), ("56100", "Lorient"), ("22000", "Saint-Brieuc"),
    ("17000", "La Rochelle"), ("86000", "Poitiers"), ("62000", "Arras"),
    ("59100", "Roubaix"), ("59200", "Tourcoing"), ("93200", "Saint-Denis"),
    ("92100", "Boulogne-Billancourt"), ("94000", "Créteil"), ("95000", "Cergy"),
    ("78000", "Versailles"), ("91000", "Évry-Courcouronnes"), ("77000", "Melun"),
    ("84000", "Avignon"), ("26000", "Valence"), ("73000", "Chambéry"), ("65000", "Tarbes"),
    ("81000", "Albi"), ("12000", "Rodez"), ("46000", "Cahors"), ("24000", "Périgueux"),
    ("19100", "Brive-la-Gaillarde"), ("03100", "Montluçon"), ("58000", "Nevers"),
    ("18000", "Bourges"), ("41000", "Blois"), ("28000", "Chartres"), ("27000", "Évreux"),
    ("50100", "Cherbourg-en-Cotentin"), ("53000", "Laval"), ("85000", "La Roche-sur-Yon"),
)

# Phonetic respellings (pattern -> replacement) applied to names.
PHONETIC_SWAPS = (
    ("ault", "aut"), ("aut", "ault"), ("eau", "ot"), ("aud", "ault"), ("aux", "ault"),
    ("ph", "f"), ("f", "ph"), ("th", "t"), ("ll", "l"), ("l", "ll"), ("nn", "n"),
    ("n", "nn"), ("mm", "m"), ("tt", "t"), ("ss", "s"), ("rr", "r"), ("pp", "p"),
    ("ey", "ay"), ("ai", "ei"), ("y", "i"), ("i", "y"), ("qu", "k"), ("c", "k"),
    ("k", "c"), ("bvre", "vre"), ("èvre", "euvre"), ("èvre", "ebvre"), ("ç", "s"),
    ("ier", "iez"), ("ez", "et"), ("ck", "k"), ("gu", "g"), ("oy", "oi"), ("ois", "oy"),
)
PHONETIC_ENDINGS = (("ont", "ond"), ("ond", "ont"), ("and", "ant"), ("ant", "and"),
                    ("ard", "art"), ("art", "ard"), ("aud", "aut"), ("ot", "eau"),
                    ("eau", "ot"), ("et", "ez"), ("in", "inn"), ("ert", "er"), ("e", ""),
                    ("s", ""), ("x", ""), ("t", "d"), ("d", "t"))
KEYBOARD = {c: n for c, n in zip("azertyuiopqsdfghjklmwxcvbn",
                                 "zaerztyuiopqsdfghjklmwxcvbnaq")}

_ROOTS = ("Guill", "Jacqu", "Perr", "Colin", "Mich", "Bern", "Thibaud", "Girard", "Huguen",
          "Jeann", "Pierr", "Mart", "Rob", "Rich", "Lamb", "Gaud", "Bertr", "Renaud", "Gauth",
          "Estienn", "Guyot", "Mathi", "Nicol", "Laur", "Vincen", "Hub", "Arnoul", "Gilb",
          "Benoî", "Gérard", "Coll", "Thom", "Simon", "Philipp", "Denis", "Bouch", "Mor",
          "Garn", "Chev", "Fourn", "Bonn", "Rouss", "Lef", "Merc", "Charp", "Bourg", "Masson",
          "Brun", "Blanch", "Mail", "Moul", "Chauv", "Fauch", "Roug", "Vigne", "Pasc")
_SUFFIXES = ("ot", "et", "in", "eau", "on", "ard", "aud", "ier", "elin", "inot", "enet",
             "illon", "ault", "ery", "ey", "ès", "at", "oux", "y", "and")
_LE_WORDS = ("Boulanger", "Charpentier", "Meunier", "Forestier", "Tonnelier", "Pelletier",
             "Berger", "Breton", "Normand", "Picard", "Flamand", "Bourguignon", "Gascon",
             "Grand", "Petit", "Blond", "Roux", "Brun", "Noir", "Sage", "Bon", "Fort",
             "Hardy", "Jeune", "Vieux", "Clerc", "Moine", "Prieur", "Maître", "Marchand",
             "Fèvre", "Mercier", "Tellier", "Potier", "Vacher", "Bouvier", "Chevrier",
             "Gall", "Bihan", "Bras", "Goff", "Guen", "Floch", "Moal", "Cam", "Du", "Corre")
_KER = ("ven", "gall", "guen", "bras", "morvan", "doue", "lann", "mar", "rien", "hervé",
        "lo", "nevez", "gonan", "goat", "vella", "drel", "bihan", "jean", "azan", "ouredan")
_PLACES = ("champs", "prés", "bois", "chênes", "fontaines", "moulins", "roches", "vignes",
           "pont", "puy", "val", "mont", "bosc", "marais", "lande", "haye", "croix", "rue")


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _sections() -> dict[str, list[str]]:
    text = resources.files("tocsin.engines.resolve").joinpath("data/names_fr.txt").read_text(
        encoding="utf-8")
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            out.setdefault(current, [])
            continue
        out[current].extend(w.replace("_", " ") for w in line.split())
    return out


def _dedup(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        k = _strip_accents(n).lower()
        if k not in seen:
            seen.add(k)
            out.append(n)
    return out


@lru_cache(maxsize=1)
def surname_vocabulary() -> tuple[str, ...]:
    """Real surnames first (by rough frequency), then derived ones."""
    sec = _sections()
    real = _dedup(sec["surnames"] + sec["regional"])
    derived = [r + s for r in _ROOTS for s in _SUFFIXES]
    derived += ["Le " + w for w in _LE_WORDS]
    derived += ["Ker" + w for w in _KER] + ["Pen" + w for w in _KER[:10]]
    derived += ["Des" + p if p[0] not in "aeiouy" else "D'" + p.capitalize()
                for p in _PLACES]
    derived += ["Du " + p.capitalize() for p in _PLACES[:10]]
    derived += ["Dela" + p for p in _PLACES[:8]]
    rng = random.Random(7)
    common = real[:300]
    derived += [f"{rng.choice(common)}-{rng.choice(common)}" for _ in range(300)]
    return tuple(_dedup(real + derived))


@lru_cache(maxsize=1)
def given_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(male, female) given names."""
    sec = _sections()
    return tuple(_dedup(sec["given_m"])), tuple(_dedup(sec["given_f"]))


def _zipf(n: int, s: float = 1.0, q: float = 0.0) -> np.ndarray:
    """Zipf–Mandelbrot weights ``1 / (rank + q) ** s``."""
    w = 1.0 / (np.arange(1, n + 1) + q) ** s
    return w / w.sum()


SURNAME_Q = 30.0  # Martin ~0.7% of people, as in France (~0.4%), not 6%
GIVEN_Q = 5.0


@dataclass
class SyntheticSet:
    """Records and their ground truth: ``person`` maps each record id to its person."""

    records: list[dict[str, str]]
    person: dict[str, int]

    def true_pairs(self) -> set[frozenset[str]]:
        by_person: dict[int, list[str]] = {}
        for rid, p in self.person.items():
            by_person.setdefault(p, []).append(rid)
        out = set()
        for ids in by_person.values():
            for i in range(len(ids)):
                for j in range(i + 1, len(ids)):
                    out.add(frozenset((ids[i], ids[j])))
        return out


class _Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.surnames = surname_vocabulary()
        self.male, self.female = given_vocabulary()
        self.sw = _zipf(len(self.surnames), 1.0, SURNAME_Q).tolist()
        self.mw = _zipf(len(self.male), 0.9, GIVEN_Q).tolist()
        self.fw = _zipf(len(self.female), 0.9, GIVEN_Q).tolist()

    def surname(self) -> str:
        return self.rng.choices(self.surnames, self.sw)[0]

    def given(self, sex: str) -> str:
        names, w = (self.male, self.mw) if sex == "M" else (self.female, self.fw)
        first = self.rng.choices(names, w)[0]
        if self.rng.random() < 0.12 and "-" not in first:
            second = self.rng.choices(names, w)[0]
            if second != first and "-" not in second:
                return f"{first}-{second}" if self.rng.random() < 0.6 else f"{first} {second}"
        return first

    def person(self) -> dict[str, str]:
        r = self.rng
        sex = r.choice("MF")
        birth = _dt.date(1930, 1, 1) + _dt.timedelta(days=r.randrange(0, 365 * 78))
        postcode, city = r.choice(CITIES)
        street = f"{r.randint(1, 180)}{r.choice(['', '', '', '', ' bis', ' ter'])} " \
                 f"{r.choice(STREET_TYPES)} {r.choice(STREET_NAMES)}"
        phone = f"0{r.choice('67') if r.random() < 0.7 else r.choice('12345')}" + \
                "".join(str(r.randrange(10)) for _ in range(8))
        return {"sex": sex, "given_name": self.given(sex), "surname": self.surname(),
                "birth": birth.isoformat(), "address": street, "postcode": postcode,
                "city": city, "phone": phone,
                "id_number": f"{r.randrange(10**11, 10**12)}" if r.random() < 0.6 else ""}

    # ---------------------------------------------------------------- corruption

    def typo(self, s: str) -> str:
        r = self.rng
        if len(s) < 3:
            return s
        i = r.randrange(1, len(s))
        op = r.random()
        if op < 0.3:
            return s[:i] + s[i + 1:]
        if op < 0.55:
            return s[:i] + KEYBOARD.get(s[i].lower(), s[i]) + s[i + 1:]
        if op < 0.8 and i < len(s) - 1:
            return s[:i] + s[i + 1] + s[i] + s[i + 2:]
        return s[:i] + s[i] + s[i:]

    def phonetic(self, s: str) -> str:
        r = self.rng
        low = s.lower()
        options = [(a, b) for a, b in PHONETIC_SWAPS if a in low[1:]]
        ends = [(a, b) for a, b in PHONETIC_ENDINGS if low.endswith(a) and len(low) > 4]
        if ends and (not options or r.random() < 0.4):
            a, b = r.choice(ends)
            out = low[: len(low) - len(a)] + b
        elif options:
            a, b = r.choice(options)
            k = low.index(a, 1)
            out = low[:k] + b + low[k + len(a):]
        else:
            return self.typo(s)
        return out.capitalize() if s[:1].isupper() else out

    def name_variant(self, s: str) -> str:
        r = self.rng
        x = r.random()
        if x < 0.35:
            s = self.phonetic(s)
        elif x < 0.65:
            s = self.typo(s)
        elif x < 0.8:
            s = _strip_accents(s)
        elif "-" in s:
            s = s.replace("-", " ") if r.random() < 0.5 else s.split("-")[0]
        elif " " in s:
            s = s.replace(" ", "") if r.random() < 0.5 else s.replace(" ", "-")
        else:
            s = self.typo(s)
        return s.upper() if r.random() < 0.25 else s

    def given_variant(self, g: str) -> str:
        r = self.rng
        parts = g.replace("-", " ").split()
        x = r.random()
        if len(parts) > 1 and x < 0.3:
            return r.choice([parts[0], " ".join(reversed(parts)), g.replace("-", " ")])
        if x < 0.38:
            return ".".join(p[0].upper() for p in parts) + "."
        return self.name_variant(g)

    def date_text(self, iso: str, *, corrupt: bool) -> str:
        r = self.rng
        y, m, d = (int(x) for x in iso.split("-"))
        if corrupt:
            x = r.random()
            if x < 0.35 and d <= 12 and d != m:
                m, d = d, m
            elif x < 0.6:
                d = min(28, max(1, d + r.choice([-1, 1, 10, -10])))
            elif x < 0.75:
                return str(y) if r.random() < 0.5 else f"{m:02d}/{y}"
            elif x < 0.9:
                y += r.choice([-1, 1, 10, -10])
            else:
                return ""
        fmt = r.random()
        if fmt < 0.4:
            return f"{d:02d}/{m:02d}/{y}"
        if fmt < 0.6:
            return f"{y}-{m:02d}-{d:02d}"
        if fmt < 0.75:
            return f"{d}.{m}.{y}"
        if fmt < 0.9:
            return f"{d:02d}/{m:02d}/{y % 100:02d}"
        return f"{y}{m:02d}{d:02d}"

    def phone_text(self, p: str, *, corrupt: bool) -> str:
        r = self.rng
        if corrupt:
            if r.random() < 0.5:
                return ""
            p = self.typo(p)
        x = r.random()
        if x < 0.3:
            return " ".join(p[i:i + 2] for i in range(0, len(p), 2))
        if x < 0.5:
            return "+33" + p[1:]
        if x < 0.6:
            return "+33 (0)" + p[1:]
        if x < 0.7:
            return "0033" + p[1:]
        if x < 0.8:
            return ".".join(p[i:i + 2] for i in range(0, len(p), 2))
        return p

    def address_text(self, a: str, *, corrupt: bool) -> str:
        r = self.rng
        words = a.split()
        words = [STREET_ABBR.get(w, w) if r.random() < 0.4 else w for w in words]
        out = " ".join(words)
        if corrupt:
            out = self.typo(out) if r.random() < 0.6 else _strip_accents(out).upper()
        return out

    def render(self, p: dict[str, str], *, duplicate: bool, spouse: str | None) -> dict:
        r = self.rng
        errors = 1 + (r.random() < 0.5) + (r.random() < 0.25) if duplicate else 0
        fields = ["given_name", "surname", "date_of_birth", "address", "phone", "id_number",
                  "city"]
        bad = set(r.sample(fields, errors)) if errors else set()
        rec: dict[str, str] = {}
        surname = p["surname"]
        if spouse is not None:
            rec["surname"] = r.choice([spouse, f"{spouse} née {surname}",
                                       f"{surname} épouse {spouse}", spouse])
        else:
            rec["surname"] = self.name_variant(surname) if "surname" in bad else surname
        rec["given_name"] = self.given_variant(p["given_name"]) if "given_name" in bad \
            else p["given_name"]
        rec["date_of_birth"] = self.date_text(p["birth"], corrupt="date_of_birth" in bad)
        moved = duplicate and r.random() < 0.15
        if moved:
            other = self.person()
            rec["address"], rec["postcode"], rec["city"] = (other["address"], other["postcode"],
                                                            other["city"])
        else:
            rec["address"] = self.address_text(p["address"], corrupt="address" in bad)
            rec["postcode"] = p["postcode"]
            rec["city"] = p["city"].upper() if "city" in bad else p["city"]
        rec["phone"] = self.phone_text(p["phone"], corrupt="phone" in bad)
        if moved and r.random() < 0.5:
            rec["phone"] = ""
        rec["id_number"] = "" if "id_number" in bad else p["id_number"]
        for f in ("address", "phone", "postcode", "city", "id_number"):
            if r.random() < 0.1:
                rec[f] = ""
        if r.random() < 0.02:
            rec["date_of_birth"] = ""
        return rec


def generate(persons: int = 2000, *, duplicate_rate: float = 0.5, max_duplicates: int = 3,
             seed: int = 0) -> SyntheticSet:
    """``persons`` people; a share ``duplicate_rate`` of them get 1..max_duplicates
    corrupted duplicate records. Ids are ``fr-<person>-<k>`` (k=0 original)."""
    g = _Gen(seed)
    records: list[dict[str, str]] = []
    person: dict[str, int] = {}
    for pid in range(persons):
        p = g.person()
        married = p["sex"] == "F" and g.rng.random() < 0.4
        spouse_name = g.surname() if married else None
        count = 1 + (g.rng.randint(1, max_duplicates) if g.rng.random() < duplicate_rate else 0)
        for k in range(count):
            spouse = spouse_name if married and g.rng.random() < 0.35 else None
            rec = g.render(p, duplicate=k > 0, spouse=spouse)
            rid = f"fr-{pid}-{k}"
            records.append({"id": rid, **rec})
            person[rid] = pid
    order = list(range(len(records)))
    g.rng.shuffle(order)
    return SyntheticSet([records[i] for i in order], person)


def split_for_linking(data: SyntheticSet, seed: int = 0
                      ) -> tuple[list[dict[str, str]], list[dict[str, str]], set[tuple[str, str]]]:
    """Two sources from one set: A gets each person's first record, B one other
    record of persons that have one; returns (A, B, true (a, b) pairs)."""
    rng = random.Random(seed)
    by_person: dict[int, list[dict[str, str]]] = {}
    for rec in data.records:
        by_person.setdefault(data.person[rec["id"]], []).append(rec)
    a, b, truth = [], [], set()
    for pid in sorted(by_person):
        recs = sorted(by_person[pid], key=lambda r: r["id"])
        a.append(recs[0])
        if len(recs) > 1:
            other = rng.choice(recs[1:])
            b.append(other)
            truth.add((recs[0]["id"], other["id"]))
    return a, b, truth


_COMMUNE_HEAD = ("Saint-", "Sainte-", "Villeneuve-", "Le ", "La ", "Mont", "Beau", "Château",
                 "Bourg-", "Fontaine-", "Les ", "Neuville-", "Pont-", "Val-", "")
_COMMUNE_TAIL = ("", "", "", "-sur-Loire", "-sur-Mer", "-les-Bains", "-en-Bresse", "-le-Vieux",
                 "-sur-Seine", "-la-Forêt", "-du-Lac", "-d'Armor", "-en-Vexin")


@lru_cache(maxsize=1)
def communes_list(count: int = 6000, seed: int = 11) -> tuple[tuple[str, str], ...]:
    """The big cities of :data:`CITIES` plus ``count`` made-up communes with
    plausible French names and postcodes (department + 3 digits)."""
    rng = random.Random(seed)
    roots = [s for s in surname_vocabulary()[:800] if " " not in s and "-" not in s]
    out = list(CITIES)
    seen = {c for c in CITIES}
    while len(out) < count:
        dep = rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20])
        name = rng.choice(_COMMUNE_HEAD) + rng.choice(roots) + rng.choice(_COMMUNE_TAIL)
        entry = (f"{dep}{rng.randrange(0, 1000):03d}", name)
        if entry not in seen:
            seen.add(entry)
            out.append(entry)
    return tuple(out)


def index_columns(n: int, seed: int = 0) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` clean persons as columns (vectorised; millions per minute)."""
    rng = np.random.default_rng(seed)
    surnames = np.array(surname_vocabulary(), dtype=object)
    male, female = given_vocabulary()
    given = np.array(male + female, dtype=object)
    gw = np.r_[_zipf(len(male), 0.9, GIVEN_Q), _zipf(len(female), 0.9, GIVEN_Q)] / 2
    sur = surnames[rng.choice(len(surnames), n, p=_zipf(len(surnames), 1.0, SURNAME_Q))]
    giv = given[rng.choice(len(given), n, p=gw)]
    days = rng.integers(0, 365 * 78, n)
    base = _dt.date(1930, 1, 1).toordinal()
    date_strings = np.array([_dt.date.fromordinal(base + d).strftime("%d/%m/%Y")
                             for d in range(365 * 78)], dtype=object)
    dob = date_strings[days]
    communes = communes_list()
    cities = rng.choice(len(communes), n, p=_zipf(len(communes), 0.8, 10.0))
    postcode = np.array([c[0] for c in communes], dtype=object)[cities]
    city = np.array([c[1] for c in communes], dtype=object)[cities]
    streets = np.array([f"{t} {s}" for t in STREET_TYPES for s in STREET_NAMES], dtype=object)
    numbers = rng.integers(1, 200, n)
    street = streets[rng.integers(0, len(streets), n)]
    address = [f"{k} {s}" for k, s in zip(numbers.tolist(), street.tolist())]
    phone_n = rng.integers(600000000, 800000000, n)
    phone = [f"0{x}" for x in phone_n.tolist()]
    idn = rng.integers(10**11, 10**12, n)
    ids = [f"p{i}" for i in range(n)]
    return ids, {"given_name": giv.tolist(), "surname": sur.tolist(), "date_of_birth":
                 dob.tolist(), "address": address, "postcode": postcode.tolist(),
                 "city": city.tolist(), "phone": phone, "id_number": [str(x) for x in idn]}
