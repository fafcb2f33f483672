"""Do two person records name the same person? The entity resolution engine answers.

Candidates come from the blocking key of ``keys.person_block`` (phonetic family
name and birth year, within ``YEAR_TOLERANCE`` years: hits and person watches
alike); each pair is then scored by the Fellegi-Sunter model of
``tocsin.engines.resolve``: names with their phonetics, initials and typos
(``J.P. Dupond`` and ``Jean-Pierre DUPONT``), dates of birth with day/month swaps
and near years. Its match probability is the strength of a hit.

The engine's weights need a population: a force starting out has few persons,
so the model is the one the engine fits (EM) on a fixed synthetic population of
its own generator, once per process.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

from tocsin.engines.resolve import Model, dedupe, prepare, synthetic_fr

THRESHOLD = 0.85  # engine match probability from which two persons are a hit
YEAR_TOLERANCE = 1
_FIELDS = ("id", "given_name", "surname", "date_of_birth")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _fitted() -> Model:
    population = synthetic_fr.generate(3000, seed=2026).records
    return dedupe([{k: r[k] for k in _FIELDS if r.get(k)} for r in population]).summary.model


def model() -> Model:
    with _lock:  # fitted once, by the first caller
        return _fitted()


def birth_years(birth_date: str) -> range:
    """The birth years a person of ``birth_date`` (ISO) is looked for under."""
    year = int(birth_date[:4])
    return range(year - YEAR_TOLERANCE, year + YEAR_TOLERANCE + 1)


def _record(record_id: str, props: dict[str, Any]) -> dict[str, Any]:
    fields = {"given_name": props.get("given_name"), "surname": props.get("family_name"),
              "date_of_birth": props.get("birth_date")}
    return {"id": record_id, **{k: v for k, v in fields.items() if v}}


def person_strengths(person: dict[str, Any], others: list[dict[str, Any]]) -> list[float]:
    """The engine's probability that ``person`` is each of ``others`` (case entity
    properties: ``given_name``, ``family_name``, ``birth_date``), in one scoring pass."""
    if not others:
        return []
    a = prepare([_record("q", person)])
    b = prepare([_record(str(i), o) for i, o in enumerate(others)])
    _weights, probability = model().score(a, b, np.zeros(len(others), dtype=np.int64),
                                          np.arange(len(others), dtype=np.int64))
    return [round(float(p), 3) for p in probability]


def person_strength(a: dict[str, Any], b: dict[str, Any]) -> float:
    return person_strengths(a, [b])[0]
