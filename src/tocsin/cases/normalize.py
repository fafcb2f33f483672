"""Normalised keys of identifiers: what makes two spellings of one thing equal.

Phones, phonetic keys of names and dates of birth come from the entity
resolution engine (``tocsin.engines.resolve``). Plates, VINs, IBANs and words
are this module's own keys.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache

from tocsin.engines.resolve import normalise as _norm
from tocsin.engines.resolve import phonetic as _phon

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_WORD = re.compile(r"[0-9a-z]+")
# Characters OCR and witnesses confuse on plates: folded to one canonical form.
_PLATE_FOLD = str.maketrans({"O": "0", "I": "1", "B": "8"})
MAX_KEY = 128


def fold(text: str) -> str:
    """Lower case, accents stripped (``Léa Müller`` -> ``lea muller``)."""
    if text.isascii():  # nothing to decompose: the common case, at no cost
        return text.lower()
    nfkd = unicodedata.normalize("NFKD", text)
    return "".join(c for c in nfkd if not unicodedata.combining(c)).lower()


def words(text: str, limit: int | None = None) -> list[str]:
    """Distinct search words of a text, in order of first appearance."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(fold(text)):
        if len(w) >= 2 and len(w) <= 64:
            seen.setdefault(w, None)
            if limit is not None and len(seen) >= limit:
                break
    return list(seen)


def phone(raw: str, default_region: str = "FR") -> str | None:
    """E.164 form of a phone number typed in any usual format, or None."""
    try:
        return _norm.normalise_phone(raw, default_region)
    except ValueError:  # NormalisationError
        return None


@lru_cache(maxsize=65536)
def phonetic(word: str) -> str:
    """Phonetic key of one name word (French rules of the engine); names recur, so the
    keys are remembered."""
    return _phon.fonem(word)[:32]


def name_words(name: str) -> list[str]:
    return [w for w in _WORD.findall(fold(name)) if not w.isdigit()]


def birth_date(raw: str | None) -> dt.date | None:
    """A complete date of birth in any usual form (``1981-03-04``, ``04/03/81``,
    ``4 mars 1981``: day first), read by the engine; None when it is not one."""
    if not raw:
        return None
    return _birth_date(raw, dt.date.today())


@lru_cache(maxsize=65536)
def _birth_date(raw: str, today: dt.date) -> dt.date | None:
    # keyed by today too: whether a date is in the future depends on the day it is read
    try:
        d = _norm.parse_date(raw, today=today)
    except ValueError:  # NormalisationError: impossible, in the future, unreadable
        return None
    return dt.date(d.year, d.month, d.day) if d.complete else None


def parse_date(raw: str | None) -> dt.date | None:
    if not raw:
        return None
    s = raw.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def plate(raw: str) -> str:
    """Canonical plate: letters and digits only, OCR-confusable characters folded."""
    return _NON_ALNUM.sub("", raw).upper().translate(_PLATE_FOLD)[:MAX_KEY]


def plate_pattern(raw: str) -> str:
    """A plate query with ``*`` and ``?`` wildcards, folded like ``plate``."""
    out = []
    for c in raw.upper():
        if c in "*?":
            out.append(c)
        elif c.isalnum() and c.isascii():
            out.append(c.translate(_PLATE_FOLD))
    return "".join(out)[:MAX_KEY]


def ident(raw: str) -> str:
    """VINs, IBANs, document and serial numbers: upper-case letters and digits."""
    return _NON_ALNUM.sub("", fold(raw)).upper()[:MAX_KEY]


def email(raw: str) -> str | None:
    s = raw.strip().lower()
    if s.count("@") != 1 or len(s) > MAX_KEY:
        return None
    local, domain = s.split("@")
    if not local or "." not in domain:
        return None
    return s


def address(parts: list[str]) -> str:
    return " ".join(_WORD.findall(fold(" ".join(p for p in parts if p))))[:MAX_KEY]
