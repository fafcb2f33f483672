"""Serves the web client: one HTML file per page, shared static assets, Leaflet.

Pages carry no inline script, so the Content-Security-Policy can forbid it:
a stored cross-site-scripting payload in a name or a message cannot run.
Leaflet comes from the ``xstatic-leaflet`` package: nothing from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from tocsin.core.errors import NotFound

HERE = Path(__file__).resolve().parent
PAGES_DIR = HERE / "pages"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
       "worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> FileResponse:
    return FileResponse(PAGES_DIR / "index.html", headers=HEADERS)


@router.get("/login")
def login_page() -> RedirectResponse:
    return RedirectResponse("/")


@router.get("/{page}")
def page(page: str) -> FileResponse:
    """``/dispatch`` serves ``pages/dispatch.html``; only names of files that exist."""
    if not page.replace("-", "").isalnum():
        raise NotFound("no such page", code="page.not_found")
    path = PAGES_DIR / f"{page}.html"
    if not path.is_file():
        raise NotFound("no such page", code="page.not_found")
    return FileResponse(path, headers=HEADERS)


def mount_static(app: FastAPI) -> None:
    import xstatic.pkg.leaflet as leaflet

    app.mount("/static/vendor/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
