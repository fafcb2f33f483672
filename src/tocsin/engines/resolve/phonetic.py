"""French-aware phonetic keys for names.

Implemented here (written for this project from the rules of French spelling):

* :func:`fonem` -- a FONEM-like transcription (after Bouchard, Brard & Lavoie,
  *FONEM*, Population 1981): digraphs and trigraphs rewritten to one sound
  (``eau``/``au``/``ault`` -> O, ``ph`` -> F, ``ch`` -> S, ``gu``/``qu`` -> G/K,
  soft ``c``/``g``), nasal vowels folded (``an``/``en`` -> one symbol,
  ``in``/``ain``/``ein`` -> another), silent endings dropped (``-t``, ``-d``,
  ``-s``, ``-x``, ``-e``, ``-er``/``-ez`` -> E), doubled letters collapsed;
  vowels are kept, so the key stays discriminating.
* :func:`fonem_skeleton` -- the same transcription reduced to its first
  sound plus its consonant skeleton (``lefebvre``/``lefeuvre`` -> ``LFVR``):
  a looser key, for blocking.
* :func:`soundex_fr` -- a French Soundex (in the spirit of Brouard's
  "Soundex2"/"phonex"): French pre-rewrites then a four-character code.
* baselines from jellyfish: :func:`soundex`, :func:`metaphone`, :func:`nysiis`
  (applied to accent-folded text).

Measurement (``measure()``; run ``python -m tocsin.engines.resolve.phonetic``):
on the 58 variant pairs of :data:`VARIANT_PAIRS` (real spelling variants of
French surnames and given names: Dupont/Dupond, Lefebvre/Lefèvre/Lefeuvre,
Philippe/Filip, Thibault/Thibaut/Thibeau, Gauthier/Gautier, Rousseau/Roussot,
...) and the 40 different-name pairs of :data:`DISTINCT_PAIRS` (Martin/Marton,
Bernard/Bertrand, Moreau/Morel, ...), a key "agrees" when both sides get the
same key::

    key              variants agreeing   distinct pairs merged
    fonem                  57/58 (98%)          1/40 (2%)   (Paul/Paule: homophones)
    fonem_skeleton         58/58 (100%)        20/40 (50%)
    soundex_fr             39/58 (67%)         18/40 (45%)
    soundex (jellyfish)    41/58 (71%)         18/40 (45%)
    metaphone              31/58 (53%)         15/40 (38%)
    nysiis                 32/58 (55%)         12/40 (30%)

fonem's one miss is Meunier/Mounier (a real vowel change).
(figures re-checked by ``tests/engines/resolve/test_phonetic.py``, which
asserts the ordering that made the choice.) ``fonem`` is the default
(:data:`DEFAULT`): it has the best recall among the keys that almost never
merge different names; the scorer uses it as its "sounds alike" level.
Blocking also uses ``fonem_skeleton``, whose extra merges only cost a few more
candidate pairs, never a false match (pairs are scored afterwards).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import jellyfish

from tocsin.engines.resolve.normalise import fold

_V = "AEIOUY"


def _prep(name: str) -> str:
    """Upper-case ASCII letters only (accents folded, words glued)."""
    return re.sub(r"[^A-Z]", "", fold(name).text.upper())


# Ordered (pattern, replacement) rules of the FONEM-like transcription.
# Symbols (lower-case s, g: a soft c and a hard g, protected from later rules): O (o/au/eau), E (e/é/è/ai/ei/er$), U (ou), Y (u), 1 (an/en),
# 2 (in/ain/ein/un), 3 (on), S (s/ç/ce/ch), J (j/ge), K (k/c/qu/ck).
_FONEM_RULES: list[tuple[re.Pattern[str], str]] = [(re.compile(p), r) for p, r in [
    (r"^MAC", "MAK"), (r"^MC", "MAK"),
    (r"CHAEL", "KAEL"), (r"^SCH", "S"), (r"SCH", "SS"), (r"CHR", "KR"), (r"CH", "S"),
    (r"SH", "S"), (r"PH", "F"), (r"TH", "T"), (r"GH", "G"), (r"RH", "R"), (r"KH", "K"),
    (r"EAU|AULT$|AULD$|AUT$|AUD$|AUX$|AUS$|EAUX$", "O"), (r"AU", "O"),
    (r"OLT$", "O"),
    (r"^H", ""), (r"([^CSP])H", r"\1"),
    (r"C([EIY])", r"s\1"),
    (r"CQU|CKQ|QU|CQ|CK|Q|C", "K"),
    (r"GU([EIY])", r"g\1"), (r"GE([AOU])", r"J\1"), (r"G([EIY])", r"J\1"),
    (r"GN", "NI"),
    (r"X$", ""), (r"X", "KS"), (r"Z", "S"), (r"W", "V"),
    (r"BV", "V"), (r"PT", "T"),
    (r"(.)\1+", r"\1"),
    (r"OU", "U"), (r"U([AEIO])", r"V\1"),
    (r"(?<=[AEIOUYR])[TD]$", ""),
    (r"(?<=[AEIOUY])S(?=[TK])", ""),
    (r"(?<=.)E?IER$", "IE"), (r"(?<=.)(ER|EZ|ET|ES)$", "E"),
    (r"[EA][IY](?=[^AEIOUY]|$)", "E"),
    (r"EU|OE", "E"),
    (r"(A|E)(N|M)(?=[^AEIOUY]|$)", "1"),
    (r"(AI|EI|I|Y|U)(N|M)(?=[^AEIOUY]|$)", "2"),
    (r"O(N|M)(?=[^AEIOUY]|$)", "3"),
    (r"Y", "I"),
    (r"(?<=.)[TDSGX]$", ""), (r"(?<=[M123])P$", ""), (r"(?<=..)E$", ""),
    (r"U", "Y"),
]]


@lru_cache(maxsize=1 << 18)
def fonem(name: str) -> str:
    """FONEM-like French phonetic transcription (see the module docstring)."""
    s = _prep(name)
    if not s:
        return ""
    for pattern, repl in _FONEM_RULES:
        s = pattern.sub(repl, s)
    return re.sub(r"(.)\1+", r"\1", s.upper())


@lru_cache(maxsize=1 << 18)
def fonem_skeleton(name: str) -> str:
    """First sound of :func:`fonem` plus its consonants (vowel symbols dropped)."""
    s = fonem(name)
    if not s:
        return ""
    nasal = {"1": "N", "2": "N", "3": "N"}
    rest = "".join(nasal.get(c, c) for c in s[1:] if c not in "AEIOUY")
    head = s[0] if s[0] not in "AEIOUY123" else "A"
    return re.sub(r"(.)\1+", r"\1", head + rest)


_SOUNDEX_FR_PRE: list[tuple[re.Pattern[str], str]] = [(re.compile(p), r) for p, r in [
    (r"GU([IE])", r"K\1"), (r"G([AO])", r"K\1"), (r"GU", "K"), (r"C([AOU])", r"K\1"),
    (r"Q", "K"), (r"CC|CK", "K"), (r"^MAC", "MCC"), (r"^ASA", "AZA"), (r"^KN", "NN"),
    (r"^PF", "FF"), (r"^SCH", "SSS"), (r"^PH", "FF"), (r"PH", "F"),
    (r"(?<=[^CS])H", ""), (r"(?<=[^A])Y", ""), (r"(?<=.)[ADTS]$", ""),
    (r"(?<=.)[EIOU]", "A"), (r"(?<=.)A", ""), (r"(.)\1+", r"\1"),
]]


@lru_cache(maxsize=1 << 18)
def soundex_fr(name: str) -> str:
    """French Soundex: French rewrites, then vowels dropped, four characters."""
    s = _prep(name)
    if not s:
        return ""
    for pattern, repl in _SOUNDEX_FR_PRE:
        s = pattern.sub(repl, s)
    return (s + "    ")[:4].rstrip()


def _jelly(fn: Callable[[str], str]) -> Callable[[str], str]:
    def key(name: str) -> str:
        s = _prep(name)
        return fn(s) if s else ""
    key.__name__ = fn.__name__
    return key


soundex = _jelly(jellyfish.soundex)
metaphone = _jelly(jellyfish.metaphone)
nysiis = _jelly(jellyfish.nysiis)

ALGORITHMS: dict[str, Callable[[str], str]] = {
    "fonem": fonem, "fonem_skeleton": fonem_skeleton, "soundex_fr": soundex_fr,
    "soundex": soundex, "metaphone": metaphone, "nysiis": nysiis,
}
DEFAULT = "fonem"
phonetic_key: Callable[[str], str] = fonem

# Real spelling variants of the same French name (surnames and given names).
VARIANT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Dupont", "Dupond"), ("Lefebvre", "Lefèvre"), ("Lefèvre", "Lefeuvre"),
    ("Lefebvre", "Lefeuvre"), ("Martin", "Martinn"), ("Philippe", "Filip"),
    ("Thibault", "Thibaut"), ("Thibaut", "Thibeau"), ("Thibault", "Thibeau"),
    ("Gauthier", "Gautier"), ("Rousseau", "Roussot"), ("Renaud", "Renault"),
    ("Arnaud", "Arnault"), ("Perrault", "Perrot"), ("Bertaud", "Berthault"),
    ("Guerin", "Guérin"), ("Lemaître", "Lemaitre"), ("Chevallier", "Chevalier"),
    ("Faure", "Fort"), ("Meunier", "Mounier"), ("Girard", "Girart"),
    ("Michaud", "Michaux"), ("Giraud", "Giraux"), ("Boucher", "Bouché"),
    ("Mathieu", "Matthieu"), ("Mathieu", "Mattieu"), ("Catherine", "Katherine"),
    ("Christophe", "Cristophe"), ("Stéphane", "Stefane"), ("Raphaël", "Rafael"),
    ("Mickaël", "Michael"), ("Grégoire", "Gregoire"), ("Françoise", "Francoise"),
    ("Lefort", "Lefor"), ("Moulin", "Moullin"), ("Deschamps", "Dechamps"),
    ("Clément", "Clemant"), ("Vincent", "Vinsent"), ("Laurent", "Lorent"),
    ("Jacquot", "Jaquot"), ("Rolland", "Roland"), ("Benoît", "Benoist"),
    ("Hubert", "Ubert"), ("Henri", "Henry"), ("Sylvie", "Silvie"),
    ("Isabelle", "Isabel"), ("Daniel", "Danielle"), ("Noël", "Noel"),
    ("Lambert", "Lamber"), ("Marchand", "Marchant"), ("Bertrand", "Bertrant"),
    ("Leclerc", "Leclercq"), ("Lebrun", "Lebrin"), ("Lecomte", "Leconte"),
    ("Gaillard", "Gaillart"), ("Pasquier", "Paquier"), ("Besson", "Beson"),
    ("Caron", "Carron"),
)

# Different names that a key should keep apart.
DISTINCT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Martin", "Marton"), ("Bernard", "Bertrand"), ("Moreau", "Morel"),
    ("Petit", "Petot"), ("Durand", "Dupont"), ("Robert", "Roberto"),
    ("Richard", "Ricard"), ("Simon", "Simonet"), ("Michel", "Michaud"),
    ("Leroy", "Leroux"), ("Roux", "Rousseau"), ("David", "Davin"),
    ("Bertin", "Berton"), ("Garnier", "Granier"), ("Fournier", "Fourrier"),
    ("Girard", "Giraud"), ("Bonnet", "Bonnin"), ("Dumont", "Dumas"),
    ("Fontaine", "Fontana"), ("Chevalier", "Chevrier"), ("Robin", "Rabin"),
    ("Marie", "Mario"), ("Jean", "Jeanne"), ("Louis", "Louise"), ("Paul", "Paule"),
    ("Anne", "Annie"), ("Pierre", "Pierrot"), ("Julien", "Julie"),
    ("Camille", "Camilo"), ("Lucas", "Luc"), ("Dominique", "Domenico"),
    ("Brun", "Brunet"), ("Blanc", "Blanchard"), ("Gros", "Grosjean"),
    ("Lucie", "Lucien"), ("Denis", "Denise"), ("Hugo", "Hugues"),
    ("Manon", "Marion"), ("Colin", "Collet"), ("Legrand", "Legros"),
)


def measure(algorithms: dict[str, Callable[[str], str]] | None = None
            ) -> dict[str, tuple[int, int]]:
    """For each key: (variant pairs agreeing, distinct pairs merged)."""
    algorithms = algorithms or ALGORITHMS
    result = {}
    for name, fn in algorithms.items():
        agree = sum(fn(a) == fn(b) for a, b in VARIANT_PAIRS)
        merged = sum(fn(a) == fn(b) for a, b in DISTINCT_PAIRS)
        result[name] = (agree, merged)
    return result


def _main() -> None:
    nv, nd = len(VARIANT_PAIRS), len(DISTINCT_PAIRS)
    print(f"{'key':<16}{'variants agreeing':>22}{'distinct merged':>20}")
    for name, (agree, merged) in measure().items():
        print(f"{name:<16}{agree:>12}/{nv} ({agree / nv:4.0%}){merged:>10}/{nd} "
              f"({merged / nd:3.0%})")
    misses = [(a, b, fonem(a), fonem(b)) for a, b in VARIANT_PAIRS if fonem(a) != fonem(b)]
    merges = [(a, b, fonem(a)) for a, b in DISTINCT_PAIRS if fonem(a) == fonem(b)]
    print("fonem misses:", misses)
    print("fonem merges:", merges)


if __name__ == "__main__":
    _main()
