"""Entity resolution: is this the same person?

A pure library (no ``tocsin.core``, no domain module): records in, scored
pairs, clusters and lookups out.

Pipeline: :mod:`.normalise` (names, dates, phones, addresses) ->
:mod:`.records` (columnar table, phonetic keys from :mod:`.phonetic`) ->
:mod:`.blocking` (unioned passes) -> :mod:`.scoring` (Fellegi–Sunter, EM,
term frequencies, explanations) -> :mod:`.cluster` (components with an
average-linkage guard). :class:`PersonIndex` answers "who is this?" against
millions of resolved persons.

>>> pairs = dedupe(records)                 # list[ScoredPair], best first
>>> explain(pairs[0])                       # per-field weights, sum = score
>>> persons = cluster(pairs)                # list[Cluster]
>>> index = PersonIndex(persons_records, model=pairs.summary.model)
>>> index.lookup({"surname": "Dupond", "given_name": "Jean", "date_of_birth": "4/3/81"})

Records are mappings with an ``id`` and any of :data:`FIELDS`.
"""

from tocsin.engines.resolve.blocking import DEFAULT_RULES, BlockingRule, candidate_pairs
from tocsin.engines.resolve.cluster import Cluster, cluster_pairs
from tocsin.engines.resolve.index import Hit, PersonIndex
from tocsin.engines.resolve.normalise import (
    NormalisationError,
    normalise_address,
    normalise_name,
    normalise_phone,
    parse_date,
    parse_given_names,
    parse_surname,
)
from tocsin.engines.resolve.phonetic import fonem, phonetic_key, soundex_fr
from tocsin.engines.resolve.records import FIELDS, Table, prepare
from tocsin.engines.resolve.resolver import (
    PairList,
    Resolver,
    ScoredPair,
    Summary,
    cluster,
    dedupe,
    explain,
    link,
)
from tocsin.engines.resolve.scoring import (
    DEFAULT_COMPARISONS,
    Comparison,
    Explanation,
    FieldContribution,
    Model,
    expected_f1_threshold,
    select_threshold,
    train,
)

__all__ = [
    "DEFAULT_COMPARISONS", "DEFAULT_RULES", "FIELDS", "BlockingRule", "Cluster", "Comparison",
    "Explanation", "FieldContribution", "Hit", "Model", "NormalisationError", "PairList",
    "PersonIndex", "Resolver", "ScoredPair", "Summary", "Table", "candidate_pairs", "cluster",
    "cluster_pairs", "dedupe", "expected_f1_threshold", "explain", "fonem", "link",
    "normalise_address", "normalise_name", "normalise_phone", "parse_date",
    "parse_given_names", "parse_surname", "phonetic_key", "prepare", "select_threshold",
    "soundex_fr", "train",
]
