"""The FastAPI application: core routes plus every domain module's router."""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from tocsin import __version__
from tocsin.core.config import Settings
from tocsin.core.http import BodyLimit, install_error_handlers
from tocsin.core.runtime import Runtime

# Each entry is a module with a ``router``; a domain module adds its own line.
ROUTER_MODULES = [
    "tocsin.core.identity.api",
    "tocsin.core.livefeed",
    "tocsin.safety.api",
    "tocsin.messaging.api",
    "tocsin.cases.api",
    "tocsin.dispatch.api",
    "tocsin.geo.basemap_api",
    "tocsin.geo.api",
    "tocsin.operations.api",
    "tocsin.ledger.api",
]
# Path prefixes that accept bodies larger than the default limit (uploads).
BODY_LIMIT_OVERRIDES: dict[str, int] = {}
BODY_LIMIT_OVERRIDES["/api/v1/operations/photos/"] = 11 * 1024 * 1024  # field report photos
BODY_LIMIT_OVERRIDES.update(dict.fromkeys(["/_matrix/media/", "/api/v1/messaging/uploads"], 1 << 31))
BODY_LIMIT_OVERRIDES["/api/v1/cases-upload/"] = 21 * 1024 * 1024  # case attachments
# Modules with ``on_startup(runtime)``, e.g. to subscribe listeners to the bus.
STARTUP_HOOKS: list[str] = []
STARTUP_HOOKS.append("tocsin.operations.startup")
STARTUP_HOOKS.append("tocsin.messaging.hub")
STARTUP_HOOKS.append("tocsin.dispatch.demo")
STARTUP_HOOKS.append("tocsin.ledger.service")
STARTUP_HOOKS.append("tocsin.safety.listeners")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        from tocsin.core.livefeed import get_feed

        get_feed(runtime)
        for name in STARTUP_HOOKS:
            importlib.import_module(name).on_startup(runtime)
        # What start-up loaded (map index, road graph, caches) lives as long as the
        # process: keep it out of the collector so full passes stay short.
        gc.freeze()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="Tocsin", version=__version__, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)
    app.state.runtime = runtime
    install_error_handlers(app)
    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    from tocsin.web.pages import mount_static
    from tocsin.web.pages import router as pages_router

    mount_static(app)
    app.include_router(pages_router)  # last: its /{page} route must not shadow the API
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes,
                       overrides=BODY_LIMIT_OVERRIDES)

    @app.get("/api/v1/health", tags=["meta"])
    def health() -> dict:
        with runtime.db.read() as s:
            s.connection().exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__}

    return app
