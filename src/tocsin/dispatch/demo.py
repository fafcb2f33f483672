"""Demo: Helsinki units and a living dispatch floor.

``populate_demo`` puts patrol cars, motorbikes, foot patrols, a dog unit and a
tactical team of the Helsinki department (D0101) on the streets, with the demo
logins patrol1 and patrol2 as crews, and a month of past incidents so that the
surroundings panel has history. ``on_startup`` then runs a background stream
of realistic calls, dispatches and arrivals, when the server was started by
``tocsin demo`` (a marker left in the data dir) or with ``TOCSIN_DEMO_STREAM=1``;
``TOCSIN_DEMO_STREAM=0`` turns it off.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
from collections.abc import Callable

from sqlalchemy import func, select

from tocsin.core.database import as_utc, utcnow
from tocsin.core.errors import TocsinError
from tocsin.core.identity.models import Unit, User
from tocsin.core.runtime import Runtime
from tocsin.dispatch.models import DispatchUnit, Incident
from tocsin.dispatch.schemas import CallIn, IncidentIn, Point, UnitIn
from tocsin.dispatch.service import get_service

log = logging.getLogger(__name__)

KINDS = ["patrol_car"] * 10 + ["motorbike"] * 3 + ["foot"] * 4 + ["dog", "tactical", "traffic"]
NARRATIVES = {
    "burglary": ["Someone is breaking into the flat next door, I hear glass",
                 "Two men climbing into the shop through the back window"],
    "assault": ["A man is being kicked on the ground outside the bar",
                "Fight with a bottle in the tram stop, one bleeding"],
    "domestic": ["Screaming from the flat upstairs, a woman calling for help"],
    "traffic_accident": ["Car hit a cyclist at the crossing, cyclist not moving",
                         "Two cars collided, one is on its side"],
    "theft": ["My bag was snatched by a teenager on a scooter",
              "Bike stolen from the rack ten minutes ago, thief still visible"],
    "disturbance": ["Group shouting and throwing bottles in the park",
                    "Loud party, people fighting on the balcony"],
    "alarm": ["Intrusion alarm from a jewellery shop, no keyholder reachable"],
    "suspicious": ["A man checking car doors one by one along the street"],
    "missing_person": ["My father with dementia left home an hour ago"],
    "armed_person": ["A man waving a knife at people outside the station"],
}
WEIGHTS = {"burglary": 3, "assault": 3, "domestic": 2, "traffic_accident": 3, "theft": 5,
           "disturbance": 5, "alarm": 3, "suspicious": 3, "missing_person": 1,
           "armed_person": 1}


def _marker(runtime: Runtime):
    return runtime.settings.data_dir / "dispatch" / "demo_stream"


def _random_place(svc, rng: random.Random) -> tuple[float, float]:
    g = svc.graph()
    node = int(rng.choice(g.snappable))
    return float(g.lat[node]), float(g.lon[node])


def populate_demo(runtime: Runtime, rng: random.Random, progress: Callable[[str], None]) -> None:
    svc = get_service(runtime)
    with runtime.db.read() as s:
        if s.scalar(select(func.count()).select_from(DispatchUnit)):
            progress("dispatch demo already loaded")
            return
        brigades = list(s.scalars(select(Unit.code).where(Unit.code.like("B0101%"))
                                  .order_by(Unit.code)))
        if not brigades:
            progress("dispatch demo skipped: no Helsinki brigades (B0101..)")
            return
        officers = {code: list(s.scalars(select(User.username).join(Unit)
                                         .where(Unit.code == code,
                                                User.username.like(code.lower() + ".%"))
                                         .order_by(User.username)))
                    for code in brigades}
    progress(f"dispatch: {len(KINDS)} units on the streets of Helsinki ...")
    crews = {"B010101-01": ["patrol1"], "B010101-02": ["patrol2"]}
    for i, kind in enumerate(KINDS):
        brigade = brigades[i % len(brigades)]
        crew = []
        if brigade in crews and crews[brigade]:
            crew = crews.pop(brigade)
        elif kind != "foot":
            crew = officers.get(brigade, [])[2 * (i // len(brigades)): 2 * (i // len(brigades)) + 2]
        lat, lon = _random_place(svc, rng)
        prefix = {"patrol_car": "P", "motorbike": "M", "foot": "F", "dog": "K9-",
                  "tactical": "T", "traffic": "TR"}[kind]
        svc.create_unit(None, UnitIn(call_sign=f"HKI-{prefix}{i + 1:02d}", kind=kind,
                                     unit_code=brigade, crew=crew,
                                     position=Point(lat=lat, lon=lon)))
    # A month of past incidents, so that places have a history.
    calltaker = runtime.identity.principal_for("calltaker")
    types = list(WEIGHTS)
    progress("dispatch: a month of past incidents ...")
    for _ in range(60):
        code = rng.choices(types, weights=[WEIGHTS[t] for t in types])[0]
        lat, lon = _random_place(svc, rng)
        inc = svc.create_incident(calltaker, IncidentIn(
            type_code=code, location=Point(lat=lat, lon=lon),
            summary=rng.choice(NARRATIVES[code])))
        svc.set_status(calltaker, inc.id, "closed", rng.choice(
            ["resolved on scene", "report filed", "no offence found", "arrest made"]))
        back = dt.timedelta(days=rng.uniform(1, 30))
        with runtime.db.session() as s:
            row = s.get(Incident, inc.id)
            row.created_at -= back
            row.closed_at = row.created_at + dt.timedelta(minutes=rng.randint(20, 120))
    _marker(runtime).parent.mkdir(parents=True, exist_ok=True)
    _marker(runtime).write_text("the demo call stream runs when this server starts\n")
    progress("dispatch demo loaded (a live stream of calls starts with the server)")


class CallStream:
    """A living dispatch floor: calls come in, units are sent, drive, arrive, clear."""

    def __init__(self, runtime: Runtime, seed: int | None = None, period_s: float = 5.0,
                 dispatch_after_s: float = 15.0, clear_after_s: float = 60.0):
        self.runtime = runtime
        self.dispatch_after_s, self.clear_after_s = dispatch_after_s, clear_after_s
        self.svc = get_service(runtime)
        self.rng = random.Random(seed)
        self.period = period_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dispatch-demo", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self.calltaker = self.runtime.identity.principal_for("calltaker")
            self.dispatcher = self.runtime.identity.principal_for("dispatcher")
        except TocsinError:
            log.warning("demo stream: no demo logins; not started")
            return
        while not self.stop_event.wait(self.period):
            try:
                self.tick()
            except TocsinError as exc:  # a refused step is part of life on the floor
                log.info("demo stream: %s", exc.message)
            except Exception:
                log.exception("demo stream tick failed")

    def tick(self) -> None:
        rng, svc, now = self.rng, self.svc, utcnow()
        if rng.random() < 0.25:
            code = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
            lat, lon = _random_place(svc, rng)
            call, dups = svc.create_call(self.calltaker, CallIn(
                caller_number=f"+358 40 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                location=Point(lat=lat, lon=lon), narrative=rng.choice(NARRATIVES[code])))
            dups = [d for d in dups if d["status"] != "closed"]
            if dups:
                svc.link_call(self.calltaker, call.id, dups[0]["incident_id"])
            elif rng.random() < 0.8:
                svc.create_incident(self.calltaker, IncidentIn(call_id=call.id, type_code=code))
        for inc in svc.list_incidents(self.dispatcher):
            age = (now - as_utc(inc.created_at)).total_seconds()
            if inc.status == "new" and age >= self.dispatch_after_s:
                _, rec = svc.recommend(self.dispatcher, inc.id, limit=5)
                chosen = [r.unit_id for r in rec.ranked if r.suggested]
                if chosen:
                    svc.assign(self.dispatcher, inc.id, chosen)
            elif inc.status == "on_scene" and inc.on_scene_at and \
                    (now - as_utc(inc.on_scene_at)).total_seconds() >= self.clear_after_s:
                svc.set_status(self.dispatcher, inc.id, "closed", "resolved on scene")
        for unit in svc.list_units(self.dispatcher):
            if unit.status == "dispatched":
                svc.set_unit_status(self.dispatcher, unit.id, "en_route")
            elif unit.status == "en_route":
                self._drive(unit)

    def _drive(self, unit) -> None:
        d = self.svc.assignment_for_unit(self.dispatcher, unit.id)
        a = d and d["assignment"]
        if not a or not a.route:
            self.svc.set_unit_status(self.dispatcher, unit.id, "on_scene")
            return
        route = a.route
        # the nearest route point to where the unit is, then a few points on
        here = min(range(len(route)), key=lambda i: (route[i][0] - unit.lat) ** 2
                   + (route[i][1] - unit.lon) ** 2)
        nxt = min(here + 4, len(route) - 1)
        lat, lon = route[nxt]
        self.svc.update_position(self.dispatcher, unit.id, lat, lon)
        if nxt == len(route) - 1:
            self.svc.set_unit_status(self.dispatcher, unit.id, "on_scene")


def on_startup(runtime: Runtime) -> None:
    flag = os.environ.get("TOCSIN_DEMO_STREAM")
    if flag == "0" or (flag != "1" and not _marker(runtime).is_file()):
        return
    stream = runtime.service("dispatch.demo_stream", CallStream)
    if not stream.thread.is_alive():
        stream.start()
        log.info("dispatch demo stream started")


__all__ = ["populate_demo", "on_startup", "CallStream"]
