"""Dispatch fixtures: the small test force plus vehicles in central Helsinki."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tocsin.dispatch.schemas import Point, UnitIn
from tocsin.dispatch.service import get_service

# Places in the bundled Helsinki extract.
STATION = (60.1699, 24.9384)        # Kaivokatu, by the railway station
SENATE_SQUARE = (60.1695, 24.9522)  # east edge of the extract
ESPLANADI = (60.1675, 24.9460)
PARIS = (48.8566, 2.3522)


@pytest.fixture
def dispatch(force):
    """The service, with four units: two patrol cars, a dog unit, a foot patrol."""
    svc = get_service(force.runtime)
    units = {}
    for call_sign, kind, brigade, crew, pos in [
        ("HKI-11", "patrol_car", "B1111", ["patrol1"], (60.1712, 24.9410)),
        ("HKI-12", "patrol_car", "B1112", ["patrol2"], (60.1668, 24.9507)),
        ("HKI-K9", "dog", "B1111", [], (60.1760, 24.9380)),
        ("HKI-F1", "foot", "B1112", [], (60.1690, 24.9440)),
    ]:
        u = svc.create_unit(None, UnitIn(call_sign=call_sign, kind=kind, unit_code=brigade,
                                         crew=crew, position=Point(lat=pos[0], lon=pos[1])))
        units[call_sign] = u.id
    svc.test_units = units
    return svc


def at_once(*acts: Callable[[], Any]) -> list[Any]:
    """Run the callables at the same moment, one thread each: what each returned, or
    the ``Conflict`` it raised."""
    from tocsin.core.errors import Conflict

    barrier = threading.Barrier(len(acts))
    results: list[Any] = [None] * len(acts)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = acts[i]()
        except Conflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(acts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def auth(force, client, username):
    return force.headers(client, username)
