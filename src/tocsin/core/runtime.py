"""The running platform: settings, database, bus and shared services, built once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select

from tocsin.core import secrets
from tocsin.core.config import Settings, get_settings
from tocsin.core.database import Database
from tocsin.core.events import DomainEvent, LocalBus, make_bus
from tocsin.core.identity.models import Unit
from tocsin.core.identity.service import IdentityService
from tocsin.core.recorded_reads import ReadRecorder

T = TypeVar("T")


class UnitDirectory:
    """In-memory map of unit id -> path, kept fresh by unit events on the bus."""

    def __init__(self, db: Database):
        self.db = db
        self._paths: dict[int, str] | None = None
        self._lock = threading.Lock()

    def path(self, unit_id: int | None) -> str | None:
        if unit_id is None:
            return None
        paths = self._load()
        found = paths.get(unit_id)
        if found is None:  # created since we loaded, perhaps on another node
            with self.db.read() as s:
                found = s.scalar(select(Unit.path).where(Unit.id == unit_id))
            if found is not None:
                paths[unit_id] = found
        return found

    def _load(self) -> dict[int, str]:
        with self._lock:
            if self._paths is None:
                with self.db.read() as s:
                    self._paths = {i: p for i, p in s.execute(select(Unit.id, Unit.path))}
            return self._paths

    def on_event(self, event: DomainEvent) -> None:
        if event.type.startswith("identity.unit."):
            with self._lock:
                self._paths = None


class Runtime:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.settings.ensure_dirs()
        self.db = Database(self.settings.resolved_database_url)
        self.bus: LocalBus = make_bus(self.settings.bus_url)
        self.token_key = secrets.load_or_create(self.settings.resolved_keys_dir, "token.key")
        self.identity = IdentityService(
            self.db, token_key=self.token_key, access_ttl=self.settings.access_token_ttl,
            refresh_ttl=self.settings.refresh_token_ttl,
            max_failures=self.settings.login_max_failures,
            window_seconds=self.settings.login_window_seconds,
        )
        self.units = UnitDirectory(self.db)
        self.bus.subscribe(self.units.on_event)
        self.db.after_commit_hooks.append(lambda _s, events: self.bus.publish(events))
        self.reads = ReadRecorder(self.db)  # sensitive reads, recorded in group commits
        self._services: dict[str, Any] = {}
        # Re-entrant: a service's factory may ask for the services it stands on.
        self._services_lock = threading.RLock()
        self._started = False

    def service(self, name: str, factory: Callable[["Runtime"], T]) -> T:
        """The one instance of a domain service, built on first use."""
        with self._services_lock:
            if name not in self._services:
                self._services[name] = factory(self)
            return self._services[name]

    def start(self) -> None:
        if not self._started:
            self.bus.start()
            self._started = True

    def stop(self) -> None:
        self.reads.close()
        if self._started:
            self.bus.stop()
            self._started = False
        for svc in self._services.values():
            close = getattr(svc, "close", None)
            if callable(close):
                close()
        self.db.dispose()
