"""Text normalisation shared by the index (build side) and the queries.

Everything that is compared goes through :func:`normalize`: NFKD, diacritics
stripped, lowercase, punctuation to spaces.  ``Hämeentie`` and ``Hameentie``,
``Rue de l'Église`` and ``rue de l eglise`` become the same tokens.

Abbreviations are expanded on both sides with :data:`ABBREVIATIONS` (one
abbreviation may stand for several words: ``st`` is *saint* in France and
*street* elsewhere) and the Nordic suffix abbreviations (``Fabianink.`` for
``Fabianinkatu``, ``Mannerheimint.`` for ``Mannerheimintie``, ``Drottningg.``
for ``Drottninggatan``) are expanded before punctuation disappears.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# abbreviation -> the full words it may stand for (first = most likely)
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    # French street types (La Poste / BAN usage)
    "r": ("rue",),
    "av": ("avenue",),
    "ave": ("avenue",),
    "aven": ("avenue",),
    "bd": ("boulevard",),
    "bld": ("boulevard",),
    "blvd": ("boulevard",),
    "boul": ("boulevard",),
    "pl": ("place",),
    "ch": ("chemin",),
    "che": ("chemin",),
    "chem": ("chemin",),
    "rte": ("route",),
    "imp": ("impasse",),
    "all": ("allee",),
    "crs": ("cours",),
    "sq": ("square",),
    "fg": ("faubourg",),
    "fbg": ("faubourg",),
    "pte": ("porte",),
    "prom": ("promenade",),
    "pass": ("passage",),
    "qu": ("quai",),
    "res": ("residence",),
    "lot": ("lotissement",),
    "sen": ("sentier",),
    "mte": ("montee",),
    "hab": ("hameau",),
    "ham": ("hameau",),
    "st": ("saint", "street"),
    "ste": ("sainte",),
    "dr": ("docteur", "drive"),
    "gal": ("general",),
    "gen": ("general",),
    "mal": ("marechal",),
    "pdt": ("president",),
    "prof": ("professeur",),
    "cdt": ("commandant",),
    "lt": ("lieutenant",),
    "n": ("nord",),
    # English
    "rd": ("road",),
    "ln": ("lane",),
    "sqr": ("square",),
    "hwy": ("highway",),
    # Finnish / Swedish stand-alone forms ("Fabianin k.", "Mannerheimin t.")
    "k": ("katu",),
    "t": ("tie",),
    "g": ("gatan",),
    "v": ("vagen",),
}

# Words that may be typed as the second half of a Nordic compound street name
# ("Hameen tie" -> "hameentie"); joining is tried for any adjacent pair anyway.
_NORDIC_SUFFIX = re.compile(r"(?<=[^\W\d_]{3})(k|t|g|v)\.(?=\s|,|$)", re.UNICODE)
_NORDIC_FULL = {"k": "katu", "t": "tie", "g": "gatan", "v": "vägen"}

_SPLIT = re.compile(r"[^\w]+", re.UNICODE)
# "12bis" "12b" "12-14" handled by tokenizer: digits glued to letters are kept
_HN = re.compile(r"^(\d{1,5})(?:\s*([a-z]{1,6}))?$")
HN_SUFFIXES = {"bis", "ter", "quater", "quinquies", "a", "b", "c", "d", "e", "f", "g", "h"}


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """NFKD, strip combining marks, lowercase ("Hämeentie" -> "hameentie")."""
    text = unicodedata.normalize("NFKD", text)
    out = "".join(c for c in text if not unicodedata.combining(c))
    # letters that NFKD does not decompose
    return out.lower().translate(_EXTRA)


_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l",
                        "þ": "th", "ı": "i", "’": "'", "ʼ": "'"})


def expand_nordic(text: str) -> str:
    """"Fabianink. 5" -> "Fabianinkatu 5" (only before punctuation goes)."""
    if "." not in text:
        return text
    return _NORDIC_SUFFIX.sub(lambda m: _NORDIC_FULL[m.group(1).lower()], text)


@lru_cache(maxsize=500_000)
def tokens(text: str) -> tuple[str, ...]:
    """Normalised tokens of a name (index side: names in the data are written
    out, so abbreviations are expanded on the query side only)."""
    out: list[str] = []
    for t in _SPLIT.split(fold(expand_nordic(text))):
        if not t or t == "_":
            continue
        t = t.replace("_", "")
        out.append(t)
    return tuple(out)


def split_query(text: str) -> list[str]:
    """Tokens of a typed query, without abbreviation expansion (the query
    parser keeps the raw form to report what matched)."""
    return [t.replace("_", "") for t in _SPLIT.split(fold(expand_nordic(text))) if t.strip("_")]


def parse_housenumber(text: str) -> tuple[int, str] | None:
    """"12" -> (12, ""), "12bis" -> (12, "bis"), "5 A" -> (5, "a"); else None."""
    m = _HN.match(fold(text).strip().replace(" ", ""))
    if not m:
        return None
    return int(m.group(1)), (m.group(2) or "")


def is_number_token(tok: str) -> bool:
    return tok[:1].isdigit()
