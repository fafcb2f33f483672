"""The periodic retention purge: a background thread on every app node.

Every ``TOCSIN_MESSAGING_PURGE_INTERVAL`` seconds (default 3600; 0 turns it off)
it runs ``MessagingService.purge_expired`` (nodes take turns through a database
lock on PostgreSQL; a purge with nothing due only reads), then finishes any
interrupted move of media to its conversation's key. The first run comes a
minute after startup at most. ``close`` (called when the runtime stops) wakes the
thread and waits for a purge in progress to finish.
"""

from __future__ import annotations

import logging
import threading

from tocsin.core.runtime import Runtime
from tocsin.messaging.service import MessagingService, PurgeReport, get_service
from tocsin.messaging.storage import get_media

log = logging.getLogger(__name__)
FIRST_RUN_MAX = 60.0


class RetentionWorker:
    def __init__(self, runtime: Runtime, svc: MessagingService):
        self.rt = runtime
        self.svc = svc
        self.interval = svc.config.purge_interval
        self.runs = 0
        self.last: PurgeReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tocsin-retention",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        wait = min(self.interval, FIRST_RUN_MAX)
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                report = self.svc.purge_expired()
                get_media(self.rt).rescope_pending()
            except Exception:  # the next run tries again
                log.exception("retention purge failed")
                continue
            self.runs, self.last = self.runs + 1, report
            if report.events or report.media:
                log.info("%s", report)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def get_retention(runtime: Runtime) -> RetentionWorker:
    svc = get_service(runtime)  # built first: runtime.service is not re-entrant
    return runtime.service("messaging.retention", lambda rt: RetentionWorker(rt, svc))
