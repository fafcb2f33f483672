from __future__ import annotations

import pytest

from tocsin.engines.resolve.phonetic import (
    ALGORITHMS,
    DEFAULT,
    DISTINCT_PAIRS,
    VARIANT_PAIRS,
    fonem,
    fonem_skeleton,
    measure,
    soundex_fr,
)

GROUPS = [("Dupont", "Dupond"), ("Lefebvre", "Lefèvre"), ("Martin", "Martinn"),
          ("Philippe", "Filip"), ("Thibault", "Thibaut", "Thibeau"), ("Gauthier", "Gautier"),
          ("Rousseau", "Roussot"), ("Guérin", "GUERIN")]


@pytest.mark.parametrize("group", GROUPS)
def test_fonem_agrees_on_variants(group):
    assert len({fonem(x) for x in group}) == 1, [fonem(x) for x in group]


def test_skeleton_catches_lefeuvre():
    assert fonem_skeleton("Lefebvre") == fonem_skeleton("Lefeuvre") == fonem_skeleton("Lefèvre")


@pytest.mark.parametrize("a,b", [("Martin", "Marton"), ("Bernard", "Bertrand"),
                                 ("Moreau", "Morel"), ("Durand", "Dupont"), ("Roux", "Rousseau")])
def test_fonem_keeps_different_names_apart(a, b):
    assert fonem(a) != fonem(b)


def test_empty_and_non_letters():
    assert fonem("") == fonem("123") == soundex_fr("--") == ""


def test_measurement_supports_the_default():
    """The docstring's table: fonem has the best recall among keys that merge
    fewer than 5% of different names, and beats every baseline on recall."""
    result = measure()
    nv, nd = len(VARIANT_PAIRS), len(DISTINCT_PAIRS)
    assert DEFAULT == "fonem"
    agree, merged = result["fonem"]
    assert agree / nv >= 0.95 and merged / nd <= 0.05
    for name in ("soundex", "metaphone", "nysiis", "soundex_fr"):
        assert result[name][0] < agree, name
    precise = {k: v for k, v in result.items() if v[1] / nd <= 0.05}
    assert max(precise, key=lambda k: precise[k][0]) == "fonem"
    assert set(result) == set(ALGORITHMS)
