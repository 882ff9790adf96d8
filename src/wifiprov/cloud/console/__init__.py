"""The web console: server-rendered pages (Jinja2) over the same domain services as the API.

``mount`` adds it to the API's FastAPI app: pages at ``/`` (one module per page group in
``pages/``, found at start), assets at ``/console-static/``. Pages authenticate with a cookie
holding an API session token (``sessions.py``); every state-changing form carries a CSRF token,
checked before the page's code runs (``kit.ConsoleRoute``). How to add a page: docs/console.md.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from wifiprov.cloud.bus import Bus
from wifiprov.cloud.console import pages
from wifiprov.cloud.console.kit import STATIC, STATIC_URL, Services, environment, render
from wifiprov.cloud.db import Database
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher


def mount(
    app: FastAPI, db: Database, bus: Bus, hasher: TokenHasher, settings: CloudSettings
) -> None:
    """Serve the console from ``app``: its pages and its static assets."""
    app.state.console = Services(db, bus, hasher, settings, environment())
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="console-static")
    for router in pages.routers():
        app.include_router(router, include_in_schema=False)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """The console's error page, for addresses no page answers (the API answers JSON)."""
    return render(request, "error.html", status=status, title=title, message=message)
