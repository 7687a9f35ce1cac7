"""Several `digest worker` processes on one edition; a worker killed with SIGKILL mid-batch.

Real processes, a real SMTP server on loopback, PostgreSQL (and SQLite where it applies).
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from sqlalchemy import select
from sqlmodel import Session

from digest.models import Delivery
from support.processes import setup_edition, start_worker, statuses

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_send_each_subscriber_exactly_once(tmp_path, postgres_url,
                                                              smtp_server, workers):
    app, config = setup_edition(tmp_path, postgres_url, smtp_server.port, 240)
    smtp_server.handler.data_delay = 0.002
    processes = [start_worker(config, "--concurrency", "2") for _ in range(workers)]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    received = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert len(received) == 240 and set(received.values()) == {1}
    assert statuses(app) == Counter({"sent": 240})
    with Session(app.engine) as session:
        workers_seen = {w.split("/")[0] for w in session.scalars(select(Delivery.claimed_by))}
    assert len(workers_seen) > 1          # the work really was shared


@pytest.mark.parametrize("policy", ["hold", "resend"])
def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_only_the_uncertain(
        tmp_path, database_url, smtp_server, policy):
    app, config = setup_edition(tmp_path, database_url, smtp_server.port, 60,
                                claim_timeout_seconds=1, uncertain=policy, concurrency=1)
    smtp_server.handler.data_delay = 0.05            # slow enough to be caught mid-batch
    victim = start_worker(config)
    deadline = time.monotonic() + 60
    while len(smtp_server.received) < 15 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    in_flight = statuses(app)["claimed"]
    assert in_flight > 0, "the worker was not killed mid-batch"

    time.sleep(1.2)                                  # its claims are now older than the timeout
    smtp_server.handler.data_delay = 0
    survivor = start_worker(config)
    _out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err

    final = statuses(app)
    received = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    with Session(app.engine) as session:
        rows = dict(session.execute(select(Delivery.id, Delivery.status)).all())
    assert sum(final.values()) == 60 and not final["pending"] and not final["claimed"]
    assert all(count <= 2 for count in received.values())
    doubled = [address for address, count in received.items() if count == 2]
    if policy == "hold":
        # Held, never resent: nobody gets two; the held ones are reported as uncertain.
        assert final["uncertain"] == in_flight and not doubled
        assert final["sent"] + final["uncertain"] == 60
        assert len(received) >= final["sent"]
    else:
        # Resent: everyone gets it; only those in flight when the worker died may get two.
        assert final == Counter({"sent": 60}) and len(received) == 60
        assert len(doubled) <= in_flight
    assert len(rows) == 60
