"""The runtime's shared services."""

from __future__ import annotations

import threading


def test_a_service_factory_may_ask_for_another_service(runtime):
    """A service built on first use may itself need one (the demo stream needs dispatch)."""
    def inner(rt):
        return "inner"

    def outer(rt):
        return ("outer", rt.service("test.inner", inner))

    done = []
    t = threading.Thread(target=lambda: done.append(runtime.service("test.outer", outer)))
    t.start()
    t.join(10)
    assert done == [("outer", "inner")]  # no deadlock
    assert runtime.service("test.outer", outer) is done[0]
