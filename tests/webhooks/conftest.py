"""Fixtures of the webhook tests: one uvicorn server and one client for the package, the site
with every provider configured (on SQLite and PostgreSQL, or SQLite only), each provider's driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from support.asgi_server import AsgiServer
from webhooks.calls import PROVIDERS, Driver
from webhooks.drivers import DRIVERS
from webhooks.site import Site, serve_site


@pytest.fixture(scope="package")
def server() -> Iterator[AsgiServer]:
    with AsgiServer() as server:
        yield server


@pytest.fixture(scope="package")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def site(server: AsgiServer, client: httpx.Client, tmp_path: Path, database_url: str,
         engine: Engine) -> Iterator[Site]:
    """The app with every provider configured, on SQLite and on PostgreSQL."""
    yield from serve_site(server, client, tmp_path, database_url, engine)


@pytest.fixture
def sqlite_site(server: AsgiServer, client: httpx.Client, tmp_path: Path, sqlite_url: str,
                sqlite_engine: Engine) -> Iterator[Site]:
    """The same on SQLite only, for checks where the database plays no part (verification,
    parsing) — PostgreSQL's per-test set-up would double their time for nothing."""
    yield from serve_site(server, client, tmp_path, sqlite_url, sqlite_engine)


@pytest.fixture(params=PROVIDERS)
def driver(request: pytest.FixtureRequest) -> Driver:
    return DRIVERS[request.param]
