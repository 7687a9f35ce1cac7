"""Two real `digest schedule` processes on one database: each list runs once, each subscriber
gets one message — on PostgreSQL and on one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.app import App
from conftest import ROOT, make_config
from support.builders import an_entry, an_rss_feed

pytestmark = pytest.mark.timeout(120)


def a_scheduled_newsroom(tmp_path: Path, database_url: str, smtp_port: int, send_at: str
                         ) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry(title="Harbour bridge reopens")))
    app = App(make_config(tmp_path, database_url))
    app.lists.create("morning", "Morning Briefing", send_time=send_at,
                                time_zone="UTC", days="daily")
    for n in range(12):
        app.subscribers.add(f"reader{n}@example.org", list_slug="morning",
                            tier=("free", "client")[n % 2])
    app.engine.dispose()
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[database]
url = "{database_url}"
[[sources]]
name = "ledger"
url = "{feed}"
[delivery]
transport = "smtp"
from = "Ledger Digest <digest@news.example.com>"
concurrency = 2
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[schedule]
tick_seconds = 60
[web]
secret_key = "test-secret"
""", encoding="utf-8")
    return config


def start_scheduler(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "-v",
                             "schedule"], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(condition, seconds: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("when", ["missed two minutes ago", "due in a few seconds"])
def test_two_schedulers_send_each_subscriber_one_message(tmp_path, database_url, smtp_server,
                                                         when):
    now = datetime.now(UTC)
    if when == "due in a few seconds":
        send_at = (now + timedelta(seconds=6)).strftime("%H:%M:%S")
    else:
        send_at = (now - timedelta(minutes=2)).strftime("%H:%M")
    config = a_scheduled_newsroom(tmp_path, database_url, smtp_server.port, send_at)
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    processes = [start_scheduler(config, log) for log in logs]
    try:
        assert wait_for(lambda: len(smtp_server.received) >= 12, 40), \
            "\n".join(log.read_text() for log in logs)
        time.sleep(1.5)        # would a second run still come? give it the chance
    finally:
        stop(processes)
    received = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert len(received) == 12 and set(received.values()) == {1}
    text = "".join(log.read_text() for log in logs)
    runs = [line for line in text.splitlines() if "digest.runs: schedule list=morning" in line]
    assert sum("status=done" in line for line in runs) == 1, text
