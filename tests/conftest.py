"""Shared fixtures: databases (SQLite and PostgreSQL), servers on loopback, configs.

PostgreSQL tests use ``$DIGEST_TEST_POSTGRES_URL`` (default: the CI server at
127.0.0.1:5432, user postgres, database test). Each test session works in a database of its
own, created there and dropped at the end. Where no server answers, PostgreSQL tests skip
with the reason — except under ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))

from support.browser import launch_browser  # noqa: E402
from support.cli import CliRunner  # noqa: E402
from support.http_server import HttpServer  # noqa: E402
from support.outgoing import edition_messages  # noqa: E402
from support.smtp_server import SmtpServer  # noqa: E402

import subscribers.models  # noqa: E402,F401  (registers the tables)
from digest.config import Config, config_from_dict  # noqa: E402
from digest.db import make_engine, upgrade  # noqa: E402
from digest.models import SQLModel  # noqa: E402
from digest.transports.http import make_client  # noqa: E402
from digest.variants import EditionMessages  # noqa: E402

POSTGRES_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The shared feed corpus sits beside the checkout; a clone elsewhere can point at it.
CORPUS = next((path for path in (Path(os.environ.get("DIGEST_FEED_CORPUS", "/nonexistent")),
                                 ROOT.parent / "shared" / "corpus" / "feeds",
                                 Path("/work/shared/corpus/feeds")) if path.is_dir()),
              ROOT.parent / "shared" / "corpus" / "feeds")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_unavailable_reason() -> str | None:
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "no server here"
        return f"no PostgreSQL at {POSTGRES_URL}: {type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server."""
    reason = _postgres_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    name = f"digest_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_migrated(postgres_server_url: str) -> str:
    engine = make_engine(postgres_server_url)
    upgrade(engine)
    engine.dispose()
    return postgres_server_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "digest.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(postgres_migrated: str) -> Iterator[str]:
    engine = make_engine(postgres_migrated)
    _truncate_all(engine)
    engine.dispose()
    yield postgres_migrated


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: each test using it runs on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One HTTP client per test module, built like the production one (building one costs
    more than most tests that use it)."""
    with make_client(timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def factory() -> EditionMessages:
    """The messages of one edition with a free and a paying variant, rendered once per module."""
    return edition_messages()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright (see support/browser.py)."""
    with launch_browser() as browser:
        yield browser


@pytest.fixture
def digest(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Run `digest --config CONFIG ARGS…` in-process as the console script would."""
    return CliRunner(capsys, monkeypatch)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    with HttpServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def make_config(tmp_path: Path, database_url: str, **sections: dict) -> Config:
    """A Config as a test needs it: the given sections over sensible test defaults."""
    raw: dict = {
        "database": {"url": database_url},
        "site": {"name": "Lanternport Ledger", "url": "https://news.example.com",
                 "signin_url": "https://news.example.com/signin"},
        "sources": [],
        "delivery": {"transport": "file", "outbox": str(tmp_path / "outbox"),
                     "from": "Ledger Digest <digest@news.example.com>"},
        "web": {"base_url": "https://digest.example.com", "secret_key": "test-secret"},
    }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **values}
        else:
            raw[name] = values
    return config_from_dict(raw, base_dir=tmp_path, environ={})


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared feed corpus is not at {CORPUS}")
    return CORPUS
