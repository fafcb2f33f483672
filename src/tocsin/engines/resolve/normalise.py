"""Normalisation of identity fields: names, dates of birth, phones, addresses.

Every function takes the raw text as typed by an officer or found in a file
and returns a canonical form, or raises :class:`NormalisationError` (a
``ValueError``) naming the field, the value and the reason.

Names
    Accents and case are folded (``Lefèvre`` -> ``lefevre``), hyphens and
    apostrophes split words (``Jean-Pierre`` -> ``jean pierre``), particles
    (``de``, ``du``, ``de la``, ``d'``, ``van``, ``von``...) are kept in the
    written form but dropped from the *core* used for matching, birth and
    usage names are split out (``Martin née Dupont``, ``Dupont épouse
    Martin``, ``ép.``, ``veuve``, ``dit``), initials are recognised
    (``J.P.`` -> ``j p``), Cyrillic and Greek are transliterated, any other
    script is kept and *flagged*. More than :data:`MAX_GIVEN_NAMES` given
    names or :data:`MAX_NAME_CHARS` characters is refused.

Dates of birth
    ``1981-03-04``, ``04/03/81``, ``4.3.1981``, ``19810304``, ``04031981``,
    ``4 mars 1981``, partial ``1981``, ``03/1981``, ``1981-03``. Day first (the
    French order); when the day-first reading is impossible but the month-first
    one is valid it is taken and flagged ``swapped``; whenever both readings
    are possible the other one is kept in ``alternatives`` so that matching
    can recognise a day/month swap. Impossible dates (31/02, month 13 both
    ways, in the future, before 1880) raise.

Phones
    E.164 with a default country (France): ``06 12 34 56 78``,
    ``0033 6 12 34 56 78``, ``+33 (0)6 12 34 56 78`` -> ``+33612345678``.

Addresses
    Lower case, accents folded, abbreviations expanded (``av`` -> ``avenue``,
    ``bd`` -> ``boulevard``, ``r`` -> ``rue``...), house number and its
    ``bis``/``ter`` suffix split out.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
import unicodedata
from dataclasses import dataclass, field

MAX_GIVEN_NAMES = 12
MAX_NAME_CHARS = 200
MIN_BIRTH_YEAR = 1880


class NormalisationError(ValueError):
    """A value that cannot be normalised; ``field`` and ``reason`` say why."""

    def __init__(self, field_name: str, value: object, reason: str):
        shown = str(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"{field_name}: {reason} (got {shown!r})")
        self.field = field_name
        self.value = value
        self.reason = reason


# --------------------------------------------------------------------------- text folding

_SPECIAL = {
    "ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o",
    "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "ı": "i",
    "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'",
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-",
}

# Cyrillic (Russian/Ukrainian/Bulgarian/Serbian, ICAO-like) and Greek (ELOT-like),
# lower case only: the text is lower-cased before it is looked up.
_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "ё": "e",
    "є": "ie", "ж": "zh", "з": "z", "и": "i", "і": "i", "ї": "i", "й": "i", "ј": "j",
    "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o", "п": "p",
    "р": "r", "с": "s", "т": "t", "ћ": "c", "ђ": "dj", "у": "u", "ў": "u", "ф": "f",
    "х": "kh", "ц": "ts", "ч": "ch", "џ": "dz", "ш": "sh", "щ": "shch", "ъ": "ie",
    "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th",
    "ι": "i", "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p",
    "ρ": "r", "σ": "s", "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps",
    "ω": "o",
}


_GREEK_DIGRAPHS = (("ου", "ou"), ("αυ", "av"), ("ευ", "ev"), ("γγ", "ng"), ("γκ", "gk"),
                   ("μπ", "mp"), ("ντ", "nt"))


@dataclass(frozen=True)
class Folded:
    """Folded text and the scripts met that could not be transliterated."""

    text: str
    transliterated: bool = False
    untransliterated: tuple[str, ...] = ()


def fold(value: str) -> Folded:
    """Lower-case ASCII-ish text: accents removed, Cyrillic/Greek transliterated.

    Letters of any other script (Arabic, Han, ...) are kept as they are and
    their script is reported in ``untransliterated``.
    """
    out: list[str] = []
    translit = False
    unknown: set[str] = set()
    text = unicodedata.normalize("NFKD", value.lower())
    for digraph, latin in _GREEK_DIGRAPHS:
        if digraph in text:
            text = text.replace(digraph, latin)
            translit = True
    for ch in text:
        if unicodedata.combining(ch):
            continue
        if ch.isascii():
            out.append(ch)
            continue
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
            continue
        if ch in _TRANSLIT:
            out.append(_TRANSLIT[ch])
            translit = True
            continue
        cat = unicodedata.category(ch)
        if cat.startswith("L"):
            out.append(ch)
            unknown.add(unicodedata.name(ch, "UNKNOWN").split(" ")[0])
        elif cat.startswith("Z"):
            out.append(" ")
        # other symbols and punctuation outside ASCII: dropped
    return Folded("".join(out), translit, tuple(sorted(unknown)))


def _words(text: str) -> list[str]:
    """Split folded text into words on anything that is not a letter or digit."""
    return [w for w in re.split(r"[^0-9a-z\w]+|_", text) if w]


# --------------------------------------------------------------------------- names

PARTICLES = frozenset({
    "de", "du", "des", "d", "van", "von", "der", "den", "ten", "ter", "zu", "di", "da",
    "del", "della", "dos", "das", "do", "y", "af", "av",
})
# Words that follow "de"/"van"/"von" and are part of the particle there (de la, van der).
_PARTICLE_TAIL = frozenset({"la", "l", "le", "der", "den", "het", "te", "los", "las"})
_NAME_ABBREV = {"st": "saint", "ste": "sainte", "sts": "saints"}
# Markers introducing another surname of the same person.
_BIRTH_MARKERS = frozenset({"nee", "ne", "nata", "geb", "geborene", "born"})
_USAGE_MARKERS = frozenset({"epouse", "ep", "epse", "ux", "veuve", "vve", "vv", "wife"})
_ALIAS_MARKERS = frozenset({"dit", "dite", "alias", "aka"})
_TITLES = frozenset({"m", "mr", "mme", "mlle", "mrs", "ms", "monsieur", "madame",
                     "mademoiselle", "dr", "docteur", "me", "pr"})


def _check_length(field_name: str, value: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        raise NormalisationError(
            field_name, value, f"name longer than {MAX_NAME_CHARS} characters ({len(value)})")


def _name_words(field_name: str, value: str) -> tuple[list[str], Folded]:
    _check_length(field_name, value)
    folded = fold(value)
    words = [_NAME_ABBREV.get(w, w) for w in _words(folded.text)]
    return words, folded


def _core(words: list[str]) -> str:
    """The matching form of a surname: particles dropped, words glued.

    ``de la Fontaine`` -> ``fontaine``, ``Le Gall`` -> ``legall``,
    ``Van der Berg`` -> ``berg``. A name made only of particles keeps them.
    """
    kept: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in PARTICLES and i + 1 < len(words):
            i += 1
            while i + 1 < len(words) and words[i] in _PARTICLE_TAIL:
                i += 1
            continue
        kept.append(w)
        i += 1
    return "".join(kept or words)


@dataclass(frozen=True)
class Surname:
    """A parsed surname.

    ``text``: the written name, folded (``de la fontaine``); ``core``: the
    matching form (``fontaine``); ``birth``/``usage``: birth (maiden) and
    usage (married) surnames when the value names both; ``alternatives``: the
    cores of every surname of the person, the main one first.
    """

    text: str
    core: str
    birth: str | None = None
    usage: str | None = None
    aliases: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


def parse_surname(value: str) -> Surname:
    """Parse a surname, with its birth/usage/alias parts when present."""
    words, folded = _name_words("surname", value)
    words = [w for w in words if w not in _TITLES or len(words) == 1]
    if not words:
        raise NormalisationError("surname", value, "no letters in the surname")
    parts: dict[str, list[str]] = {"main": []}
    kinds: list[str] = []
    current = "main"
    for w in words:
        if w in _BIRTH_MARKERS:
            current = "birth"
        elif w in _USAGE_MARKERS:
            current = "usage"
        elif w in _ALIAS_MARKERS:
            current = f"alias{len(kinds)}"
        else:
            if current not in parts:
                parts[current] = []
                kinds.append(current)
            parts[current].append(w)
    main = parts["main"] or next((parts[k] for k in kinds if parts[k]), [])
    if not main:
        raise NormalisationError("surname", value, "no surname before or after the marker")
    birth = usage = None
    if "birth" in parts:  # "Martin née Dupont": written name is the usage name
        birth = " ".join(parts["birth"])
        usage = " ".join(parts["main"]) if parts["main"] else None
    if "usage" in parts:  # "Dupont épouse Martin": written name is the birth name
        usage = " ".join(parts["usage"])
        if parts["main"]:
            birth = " ".join(parts["main"])
    aliases = tuple(" ".join(parts[k]) for k in kinds if k.startswith("alias"))
    cores = [_core(main)]
    for other in (birth, usage, *aliases):
        if other:
            c = _core(other.split())
            if c not in cores:
                cores.append(c)
    flags = _script_flags(folded)
    return Surname(" ".join(main), cores[0], birth, usage, aliases, tuple(cores), flags)


def _script_flags(folded: Folded) -> tuple[str, ...]:
    flags = []
    if folded.transliterated:
        flags.append("transliterated")
    flags.extend(f"script:{s.lower()}" for s in folded.untransliterated)
    return tuple(flags)


@dataclass(frozen=True)
class GivenNames:
    """Parsed given names: ``tokens`` in written order, ``first`` the first one,
    ``initials`` true when every token is a single letter (``J.P.``)."""

    tokens: tuple[str, ...]
    flags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def first(self) -> str:
        return self.tokens[0]

    @property
    def initials(self) -> bool:
        return all(len(t) == 1 for t in self.tokens)

    @property
    def sorted_key(self) -> str:
        """Order-insensitive form: ``marie anne`` and ``anne marie`` agree."""
        return " ".join(sorted(self.tokens))


def parse_given_names(value: str) -> GivenNames:
    """Parse given names: ``Jean-Pierre`` -> (jean, pierre); ``J.-P.`` -> (j, p)."""
    _check_length("given_name", value)
    raw = value.strip()
    # "JP" typed in capitals (two consonants, no vowel) is two initials; "Jo" is a name.
    if re.fullmatch(r"[B-DF-HJ-NP-TV-XZ]{2}", raw):
        raw = ".".join(raw)
    words, folded = _name_words("given_name", raw)
    words = [w for w in words if w not in _TITLES or len(words) == 1]
    if not words:
        raise NormalisationError("given_name", value, "no letters in the given name")
    if len(words) > MAX_GIVEN_NAMES:
        raise NormalisationError(
            "given_name", value,
            f"{len(words)} given names, more than the limit of {MAX_GIVEN_NAMES}")
    return GivenNames(tuple(words), _script_flags(folded))


def normalise_name(value: str) -> str:
    """Folded, word-split form of any name: ``Jean-Pierre LEFÈVRE`` -> ``jean pierre lefevre``."""
    words, _ = _name_words("name", value)
    return " ".join(words)


# --------------------------------------------------------------------------- dates

_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "january": 1, "fevrier": 2, "fevr": 2, "fev": 2,
    "feb": 2, "february": 2, "mars": 3, "mar": 3, "march": 3, "avril": 4, "avr": 4,
    "apr": 4, "april": 4, "mai": 5, "may": 5, "juin": 6, "jun": 6, "june": 6,
    "juillet": 7, "juil": 7, "jul": 7, "july": 7, "aout": 8, "aug": 8, "august": 8,
    "septembre": 9, "sept": 9, "sep": 9, "september": 9, "octobre": 10, "oct": 10,
    "october": 10, "novembre": 11, "nov": 11, "november": 11, "decembre": 12, "dec": 12,
    "december": 12,
}


@dataclass(frozen=True)
class PartialDate:
    """A date of birth, possibly partial (``month``/``day`` None).

    ``alternatives``: other readings of the same text (a day/month swap) as
    ``(year, month, day)`` tuples; ``flags``: ``swapped`` when the day-first
    reading was impossible and the month-first one was taken.
    """

    year: int
    month: int | None = None
    day: int | None = None
    alternatives: tuple[tuple[int, int, int], ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.day is not None

    def iso(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def compact(self) -> str:
        """``YYYYMMDD`` with ``00`` for unknown parts."""
        return f"{self.year:04d}{self.month or 0:02d}{self.day or 0:02d}"


def _valid(y: int, m: int, d: int) -> bool:
    return 1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1] if 1 <= y <= 9999 else False


def _year2(yy: int, today: _dt.date) -> int:
    return 2000 + yy if 2000 + yy <= today.year else 1900 + yy


def parse_date(value: str, *, today: _dt.date | None = None) -> PartialDate:
    """Parse a date of birth (see the module docstring for the formats)."""
    today = today or _dt.date.today()
    s = str(value).strip().lower()
    if not s:
        raise NormalisationError("date_of_birth", value, "empty date")
    s = fold(s).text
    s = re.sub(r"(\d)(er|st|nd|rd|th)\b", r"\1", s)
    m = re.fullmatch(r"(\d{1,2})\s+([a-z]+)\.?,?\s+(\d{2}|\d{4})", s) or \
        re.fullmatch(r"([a-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})", s)
    if m and m.group(2).isalpha():
        mon = _MONTHS.get(m.group(2))
        if mon is None:
            raise NormalisationError("date_of_birth", value, f"unknown month {m.group(2)!r}")
        yy = int(m.group(3))
        year = _year2(yy, today) if len(m.group(3)) == 2 else yy
        return _finish(value, year, mon, int(m.group(1)), today, dayfirst_only=True)
    if m:
        mon = _MONTHS.get(m.group(1))
        if mon is None:
            raise NormalisationError("date_of_birth", value, f"unknown month {m.group(1)!r}")
        return _finish(value, int(m.group(3)), mon, int(m.group(2)), today, dayfirst_only=True)
    m = re.fullmatch(r"([a-z]+)\.?\s+(\d{4})", s)
    if m:
        mon = _MONTHS.get(m.group(1))
        if mon is None:
            raise NormalisationError("date_of_birth", value, f"unknown month {m.group(1)!r}")
        return _finish(value, int(m.group(2)), mon, None, today)
    if re.fullmatch(r"\d{8}", s):
        y, mo, d = int(s[:4]), int(s[4:6]), int(s[6:])
        if MIN_BIRTH_YEAR <= y <= today.year and (_valid(y, mo, d) or _valid(y, d, mo)):
            return _finish(value, y, mo, d, today, monthfirst=True)
        return _finish(value, int(s[4:]), int(s[2:4]), int(s[:2]), today)
    if re.fullmatch(r"\d{6}", s):
        return _finish(value, _year2(int(s[4:]), today), int(s[2:4]), int(s[:2]), today)
    if re.fullmatch(r"\d{4}", s):
        return _finish(value, int(s), None, None, today)
    m = re.fullmatch(r"(\d{4})\s*[-/. ]\s*(\d{1,2})\s*[-/. ]\s*(\d{1,2})(?:[t ].*)?", s)
    if m:
        return _finish(value, int(m.group(1)), int(m.group(2)), int(m.group(3)), today,
                       monthfirst=True)
    m = re.fullmatch(r"(\d{1,2})\s*[-/. ]\s*(\d{1,2})\s*[-/. ]\s*(\d{2}|\d{4})", s)
    if m:
        yy = int(m.group(3))
        year = _year2(yy, today) if len(m.group(3)) == 2 else yy
        return _finish(value, year, int(m.group(2)), int(m.group(1)), today)
    m = re.fullmatch(r"(\d{1,2})\s*[-/. ]\s*(\d{4})", s)
    if m:
        return _finish(value, int(m.group(2)), int(m.group(1)), None, today)
    m = re.fullmatch(r"(\d{4})\s*[-/.]\s*(\d{1,2})", s)
    if m:
        return _finish(value, int(m.group(1)), int(m.group(2)), None, today)
    raise NormalisationError("date_of_birth", value, "unrecognised date format")


def _finish(value: str, y: int, mo: int | None, d: int | None, today: _dt.date,
            *, monthfirst: bool = False, dayfirst_only: bool = False) -> PartialDate:
    """Validate a reading (year, month, day); try the day/month swap."""
    if not MIN_BIRTH_YEAR <= y <= today.year:
        raise NormalisationError("date_of_birth", value,
                                 f"year {y} outside {MIN_BIRTH_YEAR}..{today.year}")
    if mo is None:
        return PartialDate(y)
    if d is None:
        if not 1 <= mo <= 12:
            raise NormalisationError("date_of_birth", value, f"month {mo} does not exist")
        if (y, mo) > (today.year, today.month):
            raise NormalisationError("date_of_birth", value, "date in the future")
        return PartialDate(y, mo)
    readings = [(y, mo, d)]
    if not dayfirst_only and mo != d:
        readings.append((y, d, mo))
    valid = [r for r in readings if _valid(*r) and _dt.date(*r) <= today]
    if not valid:
        if any(_valid(*r) for r in readings):
            raise NormalisationError("date_of_birth", value, "date in the future")
        raise NormalisationError("date_of_birth", value, "impossible date")
    first = valid[0]
    flags = () if first == readings[0] else ("swapped",)
    return PartialDate(first[0], first[1], first[2], tuple(valid[1:]), flags)


# --------------------------------------------------------------------------- phones

# calling code, national significant number lengths, trunk prefix dropped
_COUNTRIES = {
    "FR": ("33", (9,), "0"), "BE": ("32", (8, 9), "0"), "CH": ("41", (9,), "0"),
    "LU": ("352", (6, 7, 8, 9, 10, 11), ""), "MC": ("377", (8, 9), ""),
    "DE": ("49", tuple(range(6, 14)), "0"), "GB": ("44", (9, 10), "0"),
    "ES": ("34", (9,), ""), "IT": ("39", tuple(range(6, 12)), ""), "PT": ("351", (9,), ""),
    "NL": ("31", (9,), "0"), "US": ("1", (10,), "1"), "CA": ("1", (10,), "1"),
}
_NSN_LENGTH = {cc: lens for cc, lens, _ in _COUNTRIES.values()}


def normalise_phone(value: str, default_country: str = "FR") -> str:
    """E.164 form (``+33612345678``); national numbers use ``default_country``."""
    s = str(value).strip()
    if not s:
        raise NormalisationError("phone", value, "empty phone number")
    if s.isascii() and s.isdigit():  # the common case, digits only: no rewriting to do
        plus, digits = False, s
    else:
        if re.search(r"[a-zA-Z]", re.sub(r"(?i)\b(ext|poste|x)\b.*$", "", s)):
            raise NormalisationError("phone", value, "letters in a phone number")
        s = re.sub(r"(?i)\s*(ext|poste|x)\b.*$", "", s)
        s = re.sub(r"\(\s*0\s*\)", "", s)  # +33 (0)6 ...
        plus = s.lstrip().startswith("+")
        digits = re.sub(r"\D", "", s)
    if plus:
        intl = digits
    elif digits.startswith("00"):
        intl = digits[2:]
    else:
        country = _COUNTRIES.get(default_country.upper())
        if country is None:
            raise NormalisationError("phone", value, f"unknown default country {default_country}")
        cc, lens, trunk = country
        nsn = digits[len(trunk):] if trunk and digits.startswith(trunk) else digits
        if len(nsn) not in lens:
            raise NormalisationError(
                "phone", value,
                f"a {default_country} number has {'/'.join(map(str, lens))} digits "
                f"after the trunk prefix, not {len(nsn)}")
        return f"+{cc}{nsn}"
    for cc, lens in sorted(_NSN_LENGTH.items(), key=lambda kv: -len(kv[0])):
        if intl.startswith(cc):
            nsn = intl[len(cc):]
            if cc in ("33", "32", "41", "49", "44", "31") and nsn.startswith("0"):
                nsn = nsn[1:]  # +33 06 ... written with the trunk zero
            if len(nsn) not in lens:
                raise NormalisationError(
                    "phone", value, f"+{cc} numbers have {'/'.join(map(str, lens))} "
                    f"digits after the country code, not {len(nsn)}")
            return f"+{cc}{nsn}"
    if not 7 <= len(intl) <= 15:
        raise NormalisationError("phone", value, "an international number has 7 to 15 digits")
    return f"+{intl}"


# --------------------------------------------------------------------------- addresses

_STREET_ABBREV = {
    "av": "avenue", "ave": "avenue", "avn": "avenue", "bd": "boulevard", "bld": "boulevard",
    "blvd": "boulevard", "boul": "boulevard", "bvd": "boulevard", "r": "rue", "ch": "chemin",
    "che": "chemin", "chem": "chemin", "pl": "place", "imp": "impasse", "all": "allee",
    "al": "allee", "rte": "route", "rt": "route", "fg": "faubourg", "fbg": "faubourg",
    "sq": "square", "qu": "quai", "qua": "quai", "crs": "cours", "pass": "passage",
    "pas": "passage", "res": "residence", "resid": "residence", "lot": "lotissement",
    "lotiss": "lotissement", "ham": "hameau", "hle": "halle", "prom": "promenade",
    "st": "saint", "ste": "sainte", "gal": "general", "gen": "general", "mal": "marechal",
    "pdt": "president", "cdt": "commandant", "lt": "lieutenant", "esp": "esplanade",
    "rpt": "rond point", "zi": "zone industrielle", "za": "zone artisanale", "bt": "batiment",
    "bat": "batiment", "appt": "appartement", "apt": "appartement", "esc": "escalier",
    "rd": "road", "cres": "crescent", "cct": "circuit", "pde": "parade", "hwy": "highway",
}
_NUMBER_SUFFIX = {"b": "bis", "bis": "bis", "t": "ter", "ter": "ter", "q": "quater",
                  "quater": "quater"}


@dataclass(frozen=True)
class Address:
    """A normalised address: ``text`` (full form), ``number`` and ``suffix``
    of the house when found, ``street`` (the rest)."""

    text: str
    number: str = ""
    suffix: str = ""
    street: str = ""
    flags: tuple[str, ...] = field(default=())


def normalise_address(value: str) -> Address:
    """``12 bis, Av. du Gal de Gaulle`` -> ``12 bis avenue du general de gaulle``."""
    if len(str(value)) > 500:
        raise NormalisationError("address", value, "address longer than 500 characters")
    folded = fold(str(value))
    text = re.sub(r"(\d+)\s*(bis|ter|quater|[btq])\b", r"\1 \2", folded.text)
    words = [w for w in re.split(r"[^0-9a-z\w]+|_", text) if w]
    if not words:
        raise NormalisationError("address", value, "empty address")
    out: list[str] = []
    number = suffix = ""
    i = 0
    if words[0].isdigit():
        number = str(int(words[0]))
        i = 1
        if i < len(words) and words[i] in _NUMBER_SUFFIX and i + 1 < len(words):
            suffix = _NUMBER_SUFFIX[words[i]]
            i += 1
        i += 1 if i < len(words) and words[i] in ("," ,) else 0
    for w in words[i:]:
        out.extend(_STREET_ABBREV.get(w, w).split())
    street = " ".join(out)
    head = " ".join(x for x in (number, suffix) if x)
    full = f"{head} {street}".strip()
    return Address(full, number, suffix, street, _script_flags(folded))


def normalise_postcode(value: str) -> str:
    """Upper-case alphanumerics; a 4-digit French code gets its leading zero back
    only if ``value`` looks numeric and French (kept as is otherwise)."""
    s = str(value)
    s = (s if s.isascii() and s.isalnum() else re.sub(r"[^0-9A-Za-z]", "", s)).upper()
    if not s:
        raise NormalisationError("postcode", value, "empty postcode")
    if len(s) > 10:
        raise NormalisationError("postcode", value, "postcode longer than 10 characters")
    return s


def normalise_city(value: str) -> str:
    """``St-Étienne CEDEX 2`` -> ``saint etienne``."""
    folded = fold(str(value))
    words = [_NAME_ABBREV.get(w, w) for w in _words(folded.text)]
    while words and (words[-1].isdigit() or words[-1] == "cedex"):
        words.pop()
    if not words:
        raise NormalisationError("city", value, "no letters in the city")
    return " ".join(words)


def normalise_id_number(value: str) -> str:
    """Upper-case letters and digits only."""
    s = str(value)
    s = (s if s.isascii() and s.isalnum() else re.sub(r"[^0-9A-Za-z]", "", s)).upper()
    if not s:
        raise NormalisationError("id_number", value, "empty identity number")
    if len(s) > 40:
        raise NormalisationError("id_number", value, "identity number longer than 40 characters")
    return s
