"""The plain records importers produce and :class:`AddressIndex` consumes."""

from __future__ import annotations

from typing import NamedTuple

ADDRESS = "address"
STREET = "street"
PLACE = "place"
POI = "poi"
KINDS = (ADDRESS, STREET, PLACE, POI)


class Record(NamedTuple):
    """One thing to index.

    * ``address``: ``housenumber`` + ``street`` (+ ``postcode``, ``city``) at
      ``lat``/``lon``; ``name`` set when the address point is also named.
    * ``street``: ``name`` (+ ``names`` in other languages), ``city``,
      ``segments`` = ((lat1, lon1, lat2, lon2), ...) and a representative
      point ``lat``/``lon``.  Records with the same name and city are merged.
    * ``place``: a named suburb, district, village, city...
    * ``poi``: a named station, police station, hospital, shop...
    """

    kind: str
    lat: float
    lon: float
    housenumber: str = ""
    street: str = ""
    postcode: str = ""
    city: str = ""
    name: str = ""
    names: tuple[str, ...] = ()
    segments: tuple[tuple[float, float, float, float], ...] = ()
    category: str = ""
    ref: str = ""
