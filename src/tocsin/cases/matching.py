"""Do two person records name the same person? A strength in [0, 1].

The scoring belongs to the entity resolution engine (``tocsin.engines.resolve``,
Fellegi-Sunter); this adapter calls it when present and otherwise falls back to
a small name/date similarity so the module works before the engine lands.
"""

from __future__ import annotations

from typing import Any

from tocsin.cases import normalize as N

THRESHOLD = 0.85


def _engine_scorer():
    engine = N._engine
    return getattr(engine, "person_match_probability", None) if engine is not None else None


def person_strength(a: dict[str, Any], b: dict[str, Any]) -> float:
    scorer = _engine_scorer()
    if scorer is not None:
        return float(scorer(a, b))
    from rapidfuzz.distance import JaroWinkler

    fam = JaroWinkler.similarity(N.fold(a.get("family_name", "")), N.fold(b.get("family_name", "")))
    ga, gb = N.fold(a.get("given_name", "")), N.fold(b.get("given_name", ""))
    giv = JaroWinkler.similarity(ga, gb) if ga and gb else 0.8
    da, db = a.get("birth_date"), b.get("birth_date")
    if da and db:
        if da == db:
            dob = 1.0
        elif da[:4] == db[:4] and da[5:7] == db[8:10] and da[8:10] == db[5:7]:
            dob = 0.85  # day and month swapped
        elif da[5:] == db[5:] and abs(int(da[:4]) - int(db[:4])) == 1:
            dob = 0.75
        else:
            dob = 0.2
    else:
        dob = 0.5
    return round(0.45 * fam + 0.25 * giv + 0.30 * dob, 3)
