"""Messenger fixtures: a real server process that matrix-nio clients talk to."""

from __future__ import annotations

import pytest

from tests.servers import Node


@pytest.fixture
def node(force, settings, database_url):
    n = Node(settings.data_dir, database_url,
             extra_env={"TOCSIN_MESSAGING_RATE_PER_SECOND": "50",
                        "TOCSIN_MESSAGING_RATE_BURST": "100"})
    yield n
    n.stop()
