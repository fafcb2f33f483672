"""A synthetic national address base in the style of France's BAN, for
benchmarks and tests at scale: communes with French-looking names and
postcodes, streets with real street types and the usual names (people,
dates, "de la Gare", "des Tilleuls", "route de <neighbouring commune>"),
house numbers odd on one side and even on the other, some ``bis``/``ter``.

Deterministic for a given seed.  ``generate(5_000_000)`` yields five
million :class:`Record` in about 20 s; ``write_csv`` writes the
``id,housenumber,street,postcode,city,lat,lon`` file :func:`import_csv`
reads.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Iterator

from .records import ADDRESS, Record

_ROOTS = ("Mont", "Ville", "Beau", "Château", "Roche", "Fontaine", "Bois", "Champ", "Val",
          "Pont", "Fleur", "Mar", "Ber", "Lan", "Cor", "Mais", "Saint-Ger", "Vaux", "Bel",
          "Font", "Cha", "Bour", "Mor", "Sau", "Ver", "Bon", "Cler", "Gre", "Lor", "Mou",
          "Pré", "Ro", "Sar", "Tour", "Vil", "Aub", "Bré", "Cham", "Dam", "Éper", "Fer",
          "Gar", "Haut", "Jon", "Lou", "Mé", "Neu", "Or", "Pey", "Quin", "Riv", "Sain",
          "Thor", "Ur", "Vau", "Aix", "Arc", "Bay", "Cas", "Dom", "Es", "Fla", "Gig", "Hon",
          "Is", "Jou", "Lis", "Mag", "Nan", "Oy", "Plo", "Quer", "Rem", "Ség", "Tré", "Vé")
_MIDS = ("", "", "", "e", "i", "o", "a", "en", "er", "on", "ar", "is", "ou", "ier", "el")
_ENDS = ("ville", "court", "ac", "y", "euil", "ières", "ay", "ans", "ois", "ange", "champ",
         "mont", "bourg", "lieu", "val", "aux", "et", "in", "on", "ès", "ieux", "ignac",
         "ecourt", "eville", "ouse", "ault", "ède", "igny", "oy", "as")
_QUALIF = ("", "", "", "", "", "", "-sur-Loire", "-sur-Mer", "-en-Bresse", "-les-Bains",
           "-le-Château", "-sur-Seine", "-la-Forêt", "-du-Lac", "-sous-Bois", "-le-Grand",
           "-le-Petit", "-en-Vexin", "-sur-Marne", "-d'Azergues", "-de-Provence")
_SAINTS = ("Martin", "Pierre", "Jean", "Laurent", "Germain", "Étienne", "Denis", "Julien",
           "André", "Georges", "Michel", "Hilaire", "Rémy", "Sauveur", "Aubin", "Cyr")

_TYPES = (("Rue", 40), ("Avenue", 7), ("Chemin", 12), ("Impasse", 8), ("Allée", 5),
          ("Place", 3), ("Boulevard", 3), ("Route", 6), ("Lotissement", 2), ("Cours", 1),
          ("Quai", 1), ("Square", 1), ("Passage", 1), ("Sentier", 1), ("Montée", 1),
          ("Faubourg", 1), ("Résidence", 2), ("Hameau", 1), ("Rond-Point", 1), ("Voie", 1))
_PEOPLE = ("Victor Hugo", "Jean Jaurès", "du Général de Gaulle", "Pasteur", "Jean Moulin",
           "Gambetta", "du Maréchal Foch", "Jules Ferry", "Émile Zola", "Anatole France",
           "Georges Clemenceau", "Charles de Gaulle", "Louis Pasteur", "Paul Bert",
           "Voltaire", "Jean-Jacques Rousseau", "Aristide Briand", "Alsace-Lorraine",
           "Albert Camus", "Jules Verne", "Marcel Pagnol", "Pierre Curie", "Marie Curie",
           "Jacques Prévert", "Frédéric Mistral", "Édouard Herriot", "Léon Blum",
           "du Docteur Schweitzer", "Henri Barbusse", "Lamartine", "Molière", "Racine",
           "Saint-Exupéry", "Guy Môquet", "Gabriel Péri", "Pierre Brossolette",
           "du Président Wilson", "Carnot", "Danton", "Mirabeau", "Condorcet", "Hoche",
           "Kléber", "de la Liberté", "de la République", "de la Paix", "de l'Europe",
           "du 8 Mai 1945", "du 11 Novembre 1918", "du 19 Mars 1962", "du 14 Juillet")
_THINGS = ("de la Gare", "de l'Église", "du Moulin", "des Écoles", "de la Mairie",
           "du Château", "des Lilas", "des Tilleuls", "des Acacias", "du Stade",
           "de la Fontaine", "du Lavoir", "des Vignes", "des Prés", "du Parc", "des Roses",
           "des Jardins", "du Marché", "de la Poste", "du Cimetière", "des Peupliers",
           "des Chênes", "du Bourg", "de la Croix", "des Sources", "du Pont", "de la Forêt",
           "des Mésanges", "des Alouettes", "du Four", "de la Chapelle", "des Noyers",
           "du Puits", "de la Vallée", "des Cerisiers", "du Calvaire", "des Marronniers",
           "de la Prairie", "des Fleurs", "du Verger", "des Champs", "de la Côte",
           "du Lac", "de la Rivière", "des Bruyères", "du Soleil", "de la Plaine")
_FIRST = ("Pierre", "Jean", "Louis", "Henri", "Jacques", "Paul", "René", "André", "Marcel",
          "Lucien", "Émile", "Joseph", "Marie", "Jeanne", "Louise", "Hélène", "Suzanne",
          "Simone", "Françoise", "Yvonne", "Camille", "Gustave", "Eugène", "Félix", "Léon")
_LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
         "Leroy", "Moreau", "Simon", "Laurent", "Lefèbvre", "Michel", "Garcia", "David",
         "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefèvre",
         "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand",
         "Garnier", "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel",
         "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier", "Dumont", "Lopez",
         "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gérard", "Nguyen", "Boyer",
         "Denis", "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël")


def _commune_name(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.12:
        return f"Saint-{rng.choice(_SAINTS)}{rng.choice(_QUALIF) or '-' + rng.choice(_ROOTS) + rng.choice(_ENDS)}"
    base = rng.choice(_ROOTS) + rng.choice(_MIDS) + rng.choice(_ENDS)
    base = base.replace("--", "-")
    base = base[0].upper() + base[1:]
    if r < 0.22:
        base = rng.choice(("Le ", "La ", "Les ")) + base
    return base + (rng.choice(_QUALIF) if rng.random() < 0.35 else "")


def _street_name(rng: random.Random, types: list[str], weights: list[int],
                 neighbours: list[str]) -> str:
    t = rng.choices(types, weights)[0]
    r = rng.random()
    if t == "Route" and neighbours and r < 0.7:
        n = rng.choice(neighbours)
        art = "d'" if n[0] in "AEIOUÉÈaeiouy" else "de "
        if n.startswith("Le "):
            return f"Route du {n[3:]}"
        if n.startswith("Les "):
            return f"Route des {n[4:]}"
        return f"{t} {art}{n}"
    if r < 0.35:
        p = rng.choice(_PEOPLE)
    elif r < 0.75:
        p = rng.choice(_THINGS)
    else:
        p = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return f"{t} {p}"


def generate(n_addresses: int, seed: int = 0) -> Iterator[Record]:
    """Yield exactly ``n_addresses`` address records."""
    rng = random.Random(seed)
    types = [t for t, _ in _TYPES]
    weights = [w for _, w in _TYPES]
    mean_per_street = 11
    n_streets = max(1, n_addresses // mean_per_street)
    n_communes = max(1, n_streets // 40)
    communes: list[tuple[str, str, float, float, float]] = []
    used: set[str] = set()
    depts = [f"{d:02d}" for d in range(1, 96) if d != 20]
    while len(communes) < n_communes:
        name = _commune_name(rng)
        if name in used:
            continue
        used.add(name)
        dept = rng.choice(depts)
        pc = f"{dept}{rng.randrange(0, 1000, 10):03d}"
        lat = rng.uniform(43.0, 50.5)
        lon = rng.uniform(-1.5, 7.0)
        size = min(60.0, rng.paretovariate(1.3))  # a few big towns, many villages
        communes.append((name, pc, lat, lon, size))
    total_size = sum(c[4] for c in communes)
    produced = 0
    aid = 0
    names_of: dict[int, set[str]] = {}
    ci = -1
    while produced < n_addresses:
        ci = (ci + 1) % len(communes)
        city, pc, clat, clon, size = communes[ci]
        k = max(1, round(n_streets * size / total_size))
        neighbours = [communes[(ci + d) % len(communes)][0] for d in (1, 2, 3)]
        names = names_of.setdefault(ci, set())
        spread = 0.004 + 0.003 * math.sqrt(size)
        big = size > 8
        for _ in range(k):
            if produced >= n_addresses:
                break
            name = _street_name(rng, types, weights, neighbours)
            if name in names:
                continue
            names.add(name)
            count = min(150, max(1, int(rng.expovariate(1 / mean_per_street)) + 1))
            slat = clat + rng.gauss(0, spread)
            slon = clon + rng.gauss(0, spread * 1.4)
            ang = rng.uniform(0, math.pi)
            step = rng.uniform(6, 14)  # metres between consecutive numbers on a side
            dy = math.cos(ang) * step / 111_320
            dx = math.sin(ang) * step / (111_320 * math.cos(math.radians(slat)))
            oy, ox = -dx * 0.8, dy * 0.8  # the other side of the street
            street_pc = pc if not big else f"{pc[:2]}{rng.randrange(0, 1000, 10):03d}"
            for i in range(count):
                if produced >= n_addresses:
                    break
                num = i + 1
                half = i // 2
                lat = slat + dy * half + (oy if num % 2 == 0 else 0.0)
                lon = slon + dx * half + (ox if num % 2 == 0 else 0.0)
                aid += 1
                produced += 1
                yield Record(ADDRESS, round(lat, 6), round(lon, 6), str(num), name,
                             street_pc, city, ref=str(aid))
                if rng.random() < 0.03 and produced < n_addresses:
                    aid += 1
                    produced += 1
                    yield Record(ADDRESS, round(lat + dy * 0.3, 6), round(lon + dx * 0.3, 6),
                                 f"{num} bis", name, street_pc, city, ref=str(aid))


def write_csv(path: str | os.PathLike[str], n_addresses: int, seed: int = 0) -> int:
    """Write the synthetic base as ``id,housenumber,street,postcode,city,lat,lon``;
    returns the number of rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("id", "housenumber", "street", "postcode", "city", "lat", "lon"))
        for r in generate(n_addresses, seed):
            w.writerow((r.ref, r.housenumber, r.street, r.postcode, r.city, r.lat, r.lon))
            n += 1
    return n
