"""Real `digest` processes on a planned edition: the setup, starting them, the rows after.

Shared by the tests that start workers, kill them, or signal `digest send`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from conftest import ROOT, make_config
from digest.app import App
from digest.editions import enqueue, plan_edition
from digest.models import Delivery
from support.builders import an_entry, stored_posts

ISSUE_DATE = date(2026, 11, 25)


def setup_edition(tmp_path: Path, database_url: str, smtp_port: int, subscribers: int,
                  *, batch_size: int | None = 10, **delivery: object) -> tuple[App, Path]:
    """A list of ``subscribers`` readers with the 2026-11-25 edition planned and enqueued, and
    a digest.toml that sends it by SMTP to ``smtp_port`` (``batch_size=None``: the default)."""
    if batch_size is not None:
        delivery = {"batch_size": batch_size, **delivery}
    sections = {"delivery": {"transport": "smtp", **delivery},
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"}}
    app = App(make_config(tmp_path, database_url, **sections))
    app.lists.create("morning", "Morning Briefing")
    with open(tmp_path / "people.csv", "w", encoding="utf-8") as people:
        people.write("email,name,tier\n")
        people.writelines(f"reader{n}@example.org,Reader {n},{('free', 'client')[n % 2]}\n"
                          for n in range(subscribers))
    assert not app.subscribers.import_csv(tmp_path / "people.csv", list_slug="morning").errors
    stored_posts(app.engine, an_entry(title="Harbour bridge reopens"))
    edition = plan_edition(app.engine, app.lists.get("morning"), ISSUE_DATE,
                           settings=app.config.editions, site_name="Ledger").edition
    enqueue(app.engine, edition)
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[database]
url = "{database_url}"
[delivery]
transport = "smtp"
from = "Ledger Digest <digest@news.example.com>"
{''.join(f'{key} = {value!r}{chr(10)}' for key, value in delivery.items())}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[web]
secret_key = "test-secret"
""".replace("'", '"'), encoding="utf-8")
    return app, config


def digest_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "digest", "--config", str(config), *args]


DIGEST_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def start_digest(config: Path, *args: str) -> subprocess.Popen:
    """`digest ARGS` in a process of its own, as a user would start it."""
    return subprocess.Popen(digest_command(config, *args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=DIGEST_ENV)


def start_worker(config: Path, *args: str) -> subprocess.Popen:
    return start_digest(config, "worker", *args)


def statuses(app: App) -> Counter:
    with Session(app.engine) as session:
        return Counter(dict(session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)).all()))
