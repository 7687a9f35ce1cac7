"""What monitoring sees: /healthz asks the database, /metrics counts the delivery rows, and
`worker` / `schedule` answer scrapes on `--metrics-port`. Real uvicorn, real processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, make_config
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlmodel import Session
from support.asgi_server import AsgiServer
from support.builders import an_entry, stored_posts

from digest.app import App
from digest.jobs import send_edition
from digest.models import Delivery, ScheduleRun, SourceState
from digest.timeutil import utcnow
from digest.web.app import create_app


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(series name, sorted labels): value} of a Prometheus text exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_healthz_answers_ok_while_the_database_answers(tmp_path, database_url):
    app = App(make_config(tmp_path, database_url))
    with AsgiServer(create_app(app, webhooks={})) as server:
        answer = httpx.get(f"{server.url}/healthz")
        assert (answer.status_code, answer.text) == (200, "ok")
        assert httpx.post(f"{server.url}/healthz").status_code == 405


def test_healthz_is_503_with_the_reason_when_the_database_is_gone(tmp_path, sqlite_url):
    app = App(make_config(tmp_path, sqlite_url))
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    with AsgiServer(create_app(app, webhooks={})) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        app.engine.dispose()
        for leftover in database.parent.glob(database.name + "*"):
            leftover.unlink()                   # the file, its WAL and shared memory
        answer = httpx.get(f"{server.url}/healthz")
        assert answer.status_code == 503
        assert answer.text.startswith("unavailable: the database is empty")

    # A server that does not answer at all: PostgreSQL on a port nobody listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = App(make_config(tmp_path, f"postgresql+psycopg://digest:hunter22@127.0.0.1:"
                                            f"{port}/nothing?connect_timeout=2"))
    with AsgiServer(create_app(unreachable, webhooks={})) as server:
        answer = httpx.get(f"{server.url}/healthz", timeout=30)
        assert answer.status_code == 503 and "unavailable: " in answer.text
        assert "hunter22" not in answer.text


def test_metrics_after_a_send_match_the_delivery_rows(tmp_path, database_url):
    app = App(make_config(tmp_path, database_url))
    app.lists.create("morning", "Morning Briefing")
    for n in range(5):
        app.subscribers.add(f"reader{n}@example.org", list_slug="morning")
    app.suppressions.add("reader4@example.org", reason="manual")
    stored_posts(app.engine, an_entry(title="Harbour bridge reopens"))
    report = send_edition(app, "morning", date(2026, 11, 25))
    assert report.stats.sent == 4
    list_id = app.lists.get("morning").id
    with Session(app.engine) as session:
        # One delivery due again (a retry whose time came a minute ago); a run; a bad source.
        first = session.scalar(select(func.min(Delivery.id)))
        session.execute(update(Delivery).where(Delivery.id == first).values(
            status="pending", not_before=utcnow() - timedelta(seconds=60)))
        session.add(ScheduleRun(list_id=list_id, issue_date=date(2026, 11, 25), status="done"))
        session.add(SourceState(name="newsroom", failures_in_row=3, last_status="error"))
        session.commit()
        rows = dict(session.execute(select(Delivery.status, func.count())
                                    .group_by(Delivery.status)).all())

    with AsgiServer(create_app(app, webhooks={})) as server:
        answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    assert rows == {"sent": 3, "pending": 1}
    for status, count in rows.items():
        assert found[("digest_deliveries", (("list", "morning"), ("status", status)))] == count
    assert found[("digest_database_up", ())] == 1
    assert found[("digest_due_deliveries", ())] == 1
    assert 55 <= found[("digest_oldest_due_delivery_age_seconds", ())] < 600
    assert found[("digest_send_rate_per_second", ())] == pytest.approx(3 / 300)
    assert found[("digest_schedule_last_run_status",
                  (("list", "morning"), ("status", "done")))] == 1
    assert found[("digest_schedule_last_run_timestamp_seconds", (("list", "morning"),))] \
        == pytest.approx(time.time(), abs=120)
    assert found[("digest_source_failures_in_row", (("source", "newsroom"),))] == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", [["worker", "--forever"], ["schedule"]])
def test_worker_and_scheduler_answer_scrapes_on_a_metrics_port(tmp_path, sqlite_url, command):
    app = App(make_config(tmp_path, sqlite_url))
    app.lists.create("morning", "Morning Briefing")
    config = tmp_path / "digest.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n[web]\nsecret_key = "test-secret"\n'
                      f'[delivery]\noutbox = "{tmp_path / "outbox"}"\n', encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), *command, "--metrics-port",
         str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert samples(answer.text)[("digest_database_up", ())] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


# -- logs --------------------------------------------------------------------------------------

def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("where", ["option", "config"])
def test_log_lines_can_be_json_for_log_shippers(tmp_path, sqlite_url, digest, where):
    config = tmp_path / "digest.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n[web]\nsecret_key = "s3cret-key"\n'
                      + ('[logging]\nformat = "json"\n' if where == "config" else ""),
                      encoding="utf-8")
    digest(config, "lists", "create", "s3cret-key", "--name", "Morning")
    option = ["--log-format", "json"] if where == "option" else []
    result = digest(config, *option, "-v", "send", "--list", "s3cret-key")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stderr)
    skipped = [line for line in lines if line["message"].startswith("send list=")]
    assert skipped and skipped[0]["level"] == "INFO" and skipped[0]["logger"] == "digest.jobs"
    assert "time" in skipped[0]
    assert "s3cret-key" not in result.stderr            # the scrubber works on JSON lines too
    plain = digest(config, "--log-format", "text", "-v", "send", "--list", "s3cret-key")
    assert not json_lines(plain.stderr) and " INFO digest.jobs: send list=" in plain.stderr


def test_an_idle_worker_pass_logs_nothing_at_the_default_level(tmp_path, sqlite_url, caplog):
    from digest.jobs import work

    app = App(make_config(tmp_path, sqlite_url))
    caplog.set_level(logging.INFO, logger="digest")
    work(app)
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []
    caplog.set_level(logging.DEBUG, logger="digest")
    work(app)
    assert any("worker sent=0" in record.getMessage() for record in caplog.records)
