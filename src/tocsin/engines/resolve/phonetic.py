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

Measurement (:func:`comparison`; run ``python -m tocsin.engines.resolve.phonetic``,
also printed by ``bench/bench_resolve.py``): a key "agrees" on a pair when both
names get the same key, and "merges" two different names when it gives them the
same key. Two lists: the project's (:data:`VARIANT_PAIRS`, 58 real spelling
variants of French surnames and given names: Dupont/Dupond, Lefebvre/Lefèvre/
Lefeuvre, Philippe/Filip, Thibault/Thibaut/Thibeau...; :data:`DISTINCT_PAIRS`, 40
different names: Martin/Marton, Bernard/Bertrand...), which were at hand when
fonem's rules were written and so favour it, and a held-out pair of lists written
only to compare the peers (:data:`HELD_OUT_VARIANT_PAIRS`, 53 variants such as
Besnard/Bénard, Lemoine/Lemoyne, Cédric/Sédric; :data:`HELD_OUT_DISTINCT_PAIRS`,
36 different names). The peers are the French keys published on PyPI
(:func:`peer_algorithms`, installed by the ``bench`` extra), given the names folded
as the engine holds them::

    key              project: variants  merged   held-out: variants  merged
    fonem *                 57/58 (98%)  1/40 (2%)          50/53 (94%)  0/36 (0%)
    fonem_skeleton *        58/58 (100%) 20/40 (50%)        50/53 (94%) 10/36 (28%)
    soundex_fr *            39/58 (67%)  18/40 (45%)        37/53 (70%) 12/36 (33%)
    soundex (jellyfish)     41/58 (71%)  18/40 (45%)        37/53 (70%)  9/36 (25%)
    metaphone               31/58 (53%)  15/40 (38%)        32/53 (60%)  7/36 (19%)
    nysiis                  32/58 (55%)  12/40 (30%)        32/53 (60%)  8/36 (22%)
    phonetic-fr 1.0.3       45/58 (78%)   3/40 (8%)         49/53 (92%)  1/36 (3%)
    phonex 0.0.2            35/58 (60%)   1/40 (2%)         36/53 (68%)  0/36 (0%)
    dprj 0.1.0              42/58 (72%)  17/40 (42%)        40/53 (75%)  9/36 (25%)
    abydos FONEM            40/58 (69%)   0/40 (0%)         42/53 (79%)  0/36 (0%)
    abydos Phonex           46/58 (79%)  18/40 (45%)        44/53 (83%) 12/36 (33%)
    abydos Henry (early)    50/58 (86%)  23/40 (57%)        43/53 (81%) 19/36 (53%)
    Beider-Morse (French)   50/58 (86%)   6/40 (15%)        45/53 (85%)  3/36 (8%)
    addok-fr 1.1.0          40/58 (69%)   2/40 (5%)         41/53 (77%)  0/36 (0%)

``fonem`` stays the default (:data:`DEFAULT`): the best recall among the keys
that almost never merge different names, on both lists. On the held-out list
``phonetic-fr`` comes close (one variant fewer, one merge more); the others are
either far behind on variants or merge many different names. fonem's misses:
Meunier/Mounier (a real vowel change), Dupuis/Dupuy, Besnard/Bénard (a silent
``s``), Ghislaine/Guislaine (``gh`` read as a soft ``g``); its merge: Paul/Paule
(homophones). ``tests/engines/resolve/test_phonetic.py`` re-checks the ordering
that made the choice (against the peers installed). The scorer uses fonem as its
"sounds alike" level; blocking also uses ``fonem_skeleton``, whose extra merges
only cost a few more candidate pairs, never a false match (pairs are scored
afterwards).
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


# Held out: real variants and different names written for the comparison of the
# peers, never used to write or tune a rule of the keys above (the lists above were
# at hand while fonem's rules were written, so they favour it).
HELD_OUT_VARIANT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Dubois", "Duboys"), ("Lemoine", "Lemoyne"), ("Rousseau", "Rousseaux"),
    ("Moreau", "Moreaux"), ("Bonnet", "Bonet"), ("Perrin", "Perin"), ("Barbier", "Barbié"),
    ("Mercier", "Mercié"), ("Roussel", "Rousselle"), ("Brunet", "Brunnet"),
    ("Renard", "Renart"), ("Picard", "Piccard"), ("Gérard", "Gerard"), ("Lacroix", "La Croix"),
    ("Dupuis", "Dupuy"), ("Fournier", "Fournié"), ("Mallet", "Malet"), ("Leroy", "Le Roy"),
    ("Leroi", "Leroy"), ("Aubert", "Auber"), ("Thomas", "Tomas"), ("Mathis", "Matis"),
    ("Rivière", "Riviere"), ("Bouvier", "Bouvié"), ("Michaud", "Michault"),
    ("Arnaud", "Arnaut"), ("Charpentier", "Charpantier"), ("Besnard", "Bénard"),
    ("Lesueur", "Le Sueur"), ("Deschamps", "Des Champs"), ("Hébert", "Ebert"),
    ("Thierry", "Thiery"), ("Géraldine", "Jéraldine"), ("Jérôme", "Gérôme"),
    ("Sébastien", "Sebastien"), ("Cédric", "Sédric"), ("Christelle", "Cristelle"),
    ("Nathalie", "Natalie"), ("Sylvain", "Silvain"), ("Frédéric", "Frédérick"),
    ("Éric", "Erik"), ("Yann", "Yan"), ("Anaïs", "Anais"), ("Thibaud", "Tibaud"),
    ("Ghislaine", "Guislaine"), ("Jacqueline", "Jaqueline"), ("Josiane", "Josianne"),
    ("Laëtitia", "Laetitia"), ("Maxence", "Maxance"), ("Baptiste", "Batiste"),
    ("Hervé", "Herve"), ("Vincent", "Vinçent"), ("Cousin", "Cousins"),
)
HELD_OUT_DISTINCT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Dubois", "Dubos"), ("Perrin", "Perret"), ("Bonnet", "Bonnard"), ("Renard", "Renaud"),
    ("Marchand", "Marchal"), ("Gauthier", "Gautron"), ("Thomas", "Thomé"),
    ("Mathis", "Mathias"), ("Aubert", "Aubry"), ("Picard", "Pichard"),
    ("Mercier", "Meunier"), ("Barbier", "Barbet"), ("Moulin", "Moulis"),
    ("Rivière", "Rivet"), ("Charles", "Charlot"), ("Claude", "Claudine"),
    ("Yves", "Yvette"), ("Éric", "Erica"), ("Sylvain", "Sylvie"), ("Cédric", "Cédrine"),
    ("Nathalie", "Natacha"), ("Jérôme", "Jérémie"), ("Christelle", "Christine"),
    ("Hervé", "Herbert"), ("Maxence", "Maxime"), ("Josiane", "Josette"),
    ("Baptiste", "Bastien"), ("Thierry", "Thiébaut"), ("Cousin", "Cousinet"),
    ("Lambert", "Lamberti"), ("Roussel", "Rousset"), ("Brunet", "Brunel"),
    ("Mallet", "Maillet"), ("Dupuis", "Dupin"), ("Hébert", "Hubert"),
    ("Besnard", "Bernard"),
)

Key = Callable[[str], object]


def _folded(fn: Key) -> Key:
    """A peer's key on the name as the engine holds it (accents folded, lower case)."""
    def key(name: str) -> object:
        s = fold(name).text
        return fn(s) if s.strip() else ""
    return key


def peer_algorithms() -> dict[str, Key]:
    """French phonetic keys published on PyPI, for the comparison only (the ``bench``
    extra installs them; none is a runtime dependency): each one that is installed.

    * ``phonetic-fr``: Édouard Bergé's "phonétique française" (Soundex FR), ported;
    * ``phonex``: Frédéric Brouard's Phonex (a number);
    * ``dprj``: a double-metaphone-like French speller;
    * ``abydos``: its FONEM (Bouchard, Brard & Lavoie), Phonex, Henry code (early)
      and Beider-Morse with French rules (a set of spellings: agreeing = sharing one);
    * ``addok-fr``: the French phonemicisation of the addok geocoder (a plugin: it is
      measured when importable, but not in the ``bench`` extra, since installing it
      changes the addok peer of the geocoding benchmark).
    """
    import importlib
    import warnings

    def load(module: str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return importlib.import_module(module)
        except Exception:  # noqa: BLE001 (absent, or broken on this Python: not compared)
            return None

    out: dict[str, Key] = {}
    if (m := load("phonetic_fr")) is not None:
        out["phonetic-fr"] = _folded(m.phonetic)
    if (m := load("phonex")) is not None:
        out["phonex"] = _folded(m.phonex)
    if (m := load("dprj")) is not None:
        out["dprj"] = _folded(m.say)
    if (m := load("abydos.phonetic")) is not None:
        bmpm = m.BeiderMorse(language_arg="french", name_mode="gen", match_mode="approx")
        out["abydos FONEM"] = _folded(m.FONEM().encode)
        out["abydos Phonex"] = _folded(m.Phonex().encode)
        out["abydos Henry"] = _folded(m.HenryEarly().encode)
        out["Beider-Morse fr"] = _folded(lambda s: frozenset(bmpm.encode(s).split()))
    if (m := load("addok_fr.utils")) is not None:
        out["addok-fr"] = _folded(m._phonemicize_string)
    return out


def _agree(a: object, b: object) -> bool:
    if isinstance(a, frozenset):  # a set of possible spellings: agree on one of them
        return bool(a & b)  # type: ignore[operator]
    return a == b


def measure(algorithms: dict[str, Key] | None = None, *,
            variant_pairs: tuple[tuple[str, str], ...] = VARIANT_PAIRS,
            distinct_pairs: tuple[tuple[str, str], ...] = DISTINCT_PAIRS
            ) -> dict[str, tuple[int, int]]:
    """For each key: (variant pairs agreeing, distinct pairs merged)."""
    algorithms = algorithms or ALGORITHMS
    result = {}
    for name, fn in algorithms.items():
        agree = sum(_agree(fn(a), fn(b)) for a, b in variant_pairs)
        merged = sum(_agree(fn(a), fn(b)) for a, b in distinct_pairs)
        result[name] = (agree, merged)
    return result


def comparison(peers: bool = True) -> list[dict[str, object]]:
    """Every key (ours, jellyfish's, the installed PyPI peers) on the project's variant
    lists and on the held-out ones, with the time per key; ours first."""
    import time

    algorithms: dict[str, Key] = dict(ALGORITHMS)
    if peers:
        algorithms.update(peer_algorithms())
    names = [n for pair in VARIANT_PAIRS + DISTINCT_PAIRS + HELD_OUT_VARIANT_PAIRS
             + HELD_OUT_DISTINCT_PAIRS for n in pair]
    rows = []
    project = measure(algorithms)
    held = measure(algorithms, variant_pairs=HELD_OUT_VARIANT_PAIRS,
                   distinct_pairs=HELD_OUT_DISTINCT_PAIRS)
    for k, (name, fn) in enumerate(algorithms.items()):
        tail = "q" + chr(ord("a") + k % 26)  # names no key has seen yet: past any cache
        t0 = time.perf_counter()
        for n in names:
            fn(n + tail)
        us = (time.perf_counter() - t0) / len(names) * 1e6
        rows.append({"key": name, "ours": name in ALGORITHMS and name not in _JELLYFISH,
                     "project": project[name], "held_out": held[name], "us_per_key": us})
    return rows


_JELLYFISH = frozenset({"soundex", "metaphone", "nysiis"})


def comparison_lines(rows: list[dict[str, object]] | None = None) -> list[str]:
    """The comparison as a table (``python -m tocsin.engines.resolve.phonetic``, and
    the resolve benchmark): agreeing variants and merged different names, per list."""
    rows = comparison() if rows is None else rows
    nv, nd = len(VARIANT_PAIRS), len(DISTINCT_PAIRS)
    hv, hd = len(HELD_OUT_VARIANT_PAIRS), len(HELD_OUT_DISTINCT_PAIRS)
    header = (f"{'phonetic key':<18}{'project variants':>18}{'merged':>10}"
              f"{'held-out variants':>19}{'merged':>10}{'all variants':>14}{'merged':>9}"
              f"{'us/key':>8}")
    out = [header]
    for r in rows:
        (a, m), (ha, hm) = r["project"], r["held_out"]
        out.append(f"{r['key'] + (' *' if r['ours'] else ''):<18}"
                   f"{a:>8}/{nv} ({a / nv:4.0%}){m:>4}/{nd} ({m / nd:3.0%})"
                   f"{ha:>9}/{hv} ({ha / hv:4.0%}){hm:>4}/{hd} ({hm / hd:3.0%})"
                   f"{(a + ha) / (nv + hv):>13.0%}{(m + hm) / (nd + hd):>9.0%}"
                   f"{r['us_per_key']:>8.1f}")
    out.append("* this project's keys; merged = different names given the same key. "
               "Peers absent here are not installed (pip install -e .[bench]).")
    return out


def _main() -> None:
    for line in comparison_lines():
        print(line)
    misses = [(a, b, fonem(a), fonem(b)) for a, b in VARIANT_PAIRS + HELD_OUT_VARIANT_PAIRS
              if fonem(a) != fonem(b)]
    merges = [(a, b, fonem(a)) for a, b in DISTINCT_PAIRS + HELD_OUT_DISTINCT_PAIRS
              if fonem(a) == fonem(b)]
    print("fonem misses:", misses)
    print("fonem merges:", merges)


if __name__ == "__main__":
    _main()
