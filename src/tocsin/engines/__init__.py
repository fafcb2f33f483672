"""Pure, independently benchmarked libraries: data in, data out.

An engine imports nothing from ``tocsin.core`` or a domain module, so it can be
tested, benchmarked and audited on its own.
"""
