"""Address engine: import (OSM ``.osm.pbf``, CSV address bases), forward
search with autocomplete and typo tolerance, reverse geocoding, and caller
location parsers (AML SMS/HTTPS, PIDF-LO).

Pure library (data in, data out): imports nothing from ``tocsin.core`` or a
domain module.

    records = import_osm_pbf("helsinki.osm.pbf")
    index = AddressIndex.build(records)
    index.save("var/geocode"); index = AddressIndex.load("var/geocode")
    index.search("5 mannerheimintie")[0].label
    index.search("mannerh", autocomplete=True)
    index.reverse(60.1699, 24.9384).address
    loc = parse_location(sms_text)      # CallerLocation or LocationError
"""

from .importers import CSVImportError, import_csv, import_osm_pbf
from .index import AddressIndex, Candidate, IndexFormatError, Match, ReverseResult
from .location import (
    CallerLocation,
    LocationError,
    parse_aml_https,
    parse_aml_sms,
    parse_location,
    parse_pidf_lo,
)
from .normalize import fold, tokens
from .records import Record

__all__ = [
    "AddressIndex", "CSVImportError", "CallerLocation", "Candidate", "IndexFormatError",
    "LocationError", "Match", "Record", "ReverseResult", "fold", "import_csv", "import_osm_pbf",
    "parse_aml_https", "parse_aml_sms", "parse_location", "parse_pidf_lo", "tokens",
]
