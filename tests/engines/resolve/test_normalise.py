from __future__ import annotations

import datetime as dt

import pytest

from tocsin.engines.resolve.normalise import (
    MAX_GIVEN_NAMES,
    NormalisationError,
    fold,
    normalise_address,
    normalise_city,
    normalise_name,
    normalise_phone,
    parse_date,
    parse_given_names,
    parse_surname,
)

TODAY = dt.date(2026, 1, 15)


def test_accents_case_hyphens():
    assert normalise_name("Jean-Pierre LEFÈVRE") == "jean pierre lefevre"
    assert parse_given_names("Jean-Pierre").tokens == ("jean", "pierre")
    assert parse_given_names("Éloïse").text == "eloise"
    assert parse_surname("Œuvrard").core == "oeuvrard"


def test_particles_and_compounds():
    s = parse_surname("de la Fontaine")
    assert (s.text, s.core) == ("de la fontaine", "fontaine")
    assert parse_surname("Van der Berg").core == "berg"
    assert parse_surname("D'Alembert").core == "alembert"
    assert parse_surname("Le Gall").core == parse_surname("LEGALL").core == "legall"
    assert parse_surname("St-Exupéry").text == "saint exupery"


def test_birth_and_usage_names():
    s = parse_surname("Martin née Dupont")
    assert (s.core, s.birth, s.usage) == ("martin", "dupont", "martin")
    assert s.alternatives == ("martin", "dupont")
    s = parse_surname("DUPONT épouse MARTIN")
    assert (s.core, s.birth, s.usage) == ("dupont", "dupont", "martin")
    s = parse_surname("Durand ép. Petit")
    assert s.usage == "petit"
    assert parse_surname("Bernard dit Nanard").alternatives == ("bernard", "nanard")


def test_given_name_order_and_initials():
    assert parse_given_names("Marie Anne").sorted_key == parse_given_names("Anne-Marie").sorted_key
    g = parse_given_names("J.-P.")
    assert g.tokens == ("j", "p") and g.initials
    assert parse_given_names("JP").initials
    assert not parse_given_names("EVA").initials
    assert not parse_given_names("Jean").initials


def test_too_many_given_names_is_a_clear_error():
    names = " ".join(f"prenom{k}" for k in range(500))[:190]
    with pytest.raises(NormalisationError) as exc:
        parse_given_names(names)
    assert "given names" in str(exc.value) and str(MAX_GIVEN_NAMES) in str(exc.value)
    with pytest.raises(NormalisationError, match="longer than"):
        parse_given_names(" ".join(["jean"] * 500))
    with pytest.raises(NormalisationError):
        parse_given_names("  ... ")


def test_mixed_scripts():
    s = parse_surname("Иванов")
    assert s.core == "ivanov" and "transliterated" in s.flags
    assert parse_surname("Παπαδόπουλος").core == "papadopoulos"
    s = parse_surname("محمد")
    assert "script:arabic" in s.flags
    assert fold("Ahmed 李").untransliterated == ("CJK",)


@pytest.mark.parametrize("text", ["1981-03-04", "04/03/81", "4.3.1981", "19810304",
                                  "04031981", "4 mars 1981", "04-03-1981", "4/3/1981",
                                  "1981/03/04"])
def test_date_formats(text):
    d = parse_date(text, today=TODAY)
    assert (d.year, d.month, d.day) == (1981, 3, 4)
    assert (1981, 4, 3) in d.alternatives or text == "4 mars 1981"


def test_partial_and_swapped_dates():
    assert parse_date("1981", today=TODAY).iso() == "1981"
    assert parse_date("03/1981", today=TODAY).iso() == "1981-03"
    assert parse_date("1981-03", today=TODAY).iso() == "1981-03"
    d = parse_date("05/13/1981", today=TODAY)  # US order: only the swap is possible
    assert d.iso() == "1981-05-13" and d.flags == ("swapped",)
    assert parse_date("25/12/1981", today=TODAY).alternatives == ()
    assert parse_date("01/01/24", today=TODAY).year == 2024
    assert parse_date("01/01/45", today=TODAY).year == 1945


@pytest.mark.parametrize("text", ["31/02/1981", "13/13/1981", "2099-01-01", "00/00/0000",
                                  "1850", "abc", "", "32.1.1990", "29/02/1981"])
def test_impossible_dates_raise(text):
    with pytest.raises(NormalisationError):
        parse_date(text, today=TODAY)


@pytest.mark.parametrize("text", ["06 12 34 56 78", "0612345678", "06.12.34.56.78",
                                  "+33 6 12 34 56 78", "+33 (0)6 12 34 56 78",
                                  "0033 6 12 34 56 78", "+33612345678", "612345678"])
def test_french_phones(text):
    assert normalise_phone(text) == "+33612345678"


def test_other_phones_and_errors():
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("0032 2 555 12 34") == "+3225551234"
    assert normalise_phone("02 555 12 34", default_country="BE") == "+3225551234"
    for bad in ("06 12 34", "call me", "", "+33 6 12 34 56 78 99"):
        with pytest.raises(NormalisationError):
            normalise_phone(bad)


def test_addresses():
    a = normalise_address("12 bis, Av. du Gal de Gaulle")
    assert a.text == "12 bis avenue du general de gaulle"
    assert (a.number, a.suffix) == ("12", "bis")
    assert normalise_address("3 r. St-Jacques").text == "3 rue saint jacques"
    assert normalise_address("12B BD Voltaire").text == "12 bis boulevard voltaire"
    assert normalise_address("Lieu-dit Kerhuel").number == ""
    assert normalise_city("St-Étienne CEDEX 2") == "saint etienne"
    with pytest.raises(NormalisationError):
        normalise_address(" , ")
