"""Scale-out on PostgreSQL: 1, 2 and 4 worker processes drain the same deliveries to a null
transport that takes 2 ms per message (a stand-in for a provider's latency). Each worker writes
the delivery ids it handed over; afterwards every row must be sent exactly once and every id
handed over exactly once — zero duplicates, zero lost.

Uses $DIGEST_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/
digest_bench; the database is created if missing and its tables rewritten).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from bench.common import ROOT, Row, print_table, verdict
from bench.e2e import populate

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/digest_bench"


def app_for(url: str):  # noqa: ANN201
    from digest.app import App
    from digest.config import config_from_dict

    return App(config_from_dict({"database": {"url": url},
                                 "delivery": {"transport": "null", "batch_size": 50,
                                              "concurrency": 1},
                                 "web": {"secret_key": "bench"}},
                                base_dir=Path(ROOT), environ={}))


def prepare(url: str, deliveries: int) -> None:
    import sqlalchemy
    from sqlalchemy import text

    from digest.db import upgrade
    from digest.editions import enqueue, plan_edition
    from digest.models import SQLModel

    target = sqlalchemy.engine.make_url(url)
    admin = sqlalchemy.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": target.database}).scalar():
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    app = app_for(url)
    upgrade(app.engine)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with app.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    populate(app.engine, deliveries, 6)
    edition = plan_edition(app.engine, app.lists.get("morning"), date(2026, 11, 25),
                           settings=app.config.editions, site_name="Example Newsroom").edition
    enqueue(app.engine, edition)


def reset(url: str) -> None:
    from sqlalchemy import text

    app = app_for(url)
    with app.engine.begin() as connection:
        connection.execute(text("UPDATE delivery SET status = 'pending', attempts = 0, "
                                "claimed_by = '', claimed_at = NULL, sent_at = NULL, "
                                "provider_message_id = ''"))
        connection.execute(text("UPDATE edition SET status = 'sending', finished_at = NULL"))
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE delivery"))
    app.engine.dispose()


def worker(url: str, latency: float, out: str) -> None:
    from digest.transports.null import NullTransport

    app = app_for(url)
    handed: list[int] = []

    class Recording(NullTransport):
        def send(self, messages):  # noqa: ANN001, ANN202
            handed.extend(m.delivery_id for m in messages)
            return super().send(messages)

    deliverer = app.deliverer(concurrency=1)
    deliverer.transports = lambda: Recording(latency_seconds=latency)
    deliverer.run()
    Path(out).write_text("\n".join(map(str, handed)))


def drain(url: str, workers: int, latency: float, folder: str) -> tuple[float, Counter]:
    outs = [os.path.join(folder, f"worker-{workers}-{n}.txt") for n in range(workers)]
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "bench.scaleout", "--worker", out,
                                   "--url", url, "--latency-ms", str(latency * 1000)],
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
                 for out in outs]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit("a worker failed")
    elapsed = time.perf_counter() - started
    handed: Counter = Counter()
    for out in outs:
        text = Path(out).read_text()
        handed.update(int(line) for line in text.split() if line)
    return elapsed, handed


def check(url: str, handed: Counter, deliveries: int) -> tuple[int, int]:
    """Duplicates (ids handed over twice) and lost (rows not sent) for one drain."""
    from sqlalchemy import text

    app = app_for(url)
    with app.engine.connect() as connection:
        sent = connection.execute(text("SELECT count(*) FROM delivery WHERE status = 'sent'"
                                       )).scalar()
    app.engine.dispose()
    duplicates = sum(count - 1 for count in handed.values() if count > 1)
    lost = deliveries - sent + (deliveries - len(handed))
    return duplicates, lost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("DIGEST_BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    if args.worker:
        worker(args.url, latency, args.worker)
        return

    prepare(args.url, args.deliveries)
    counts = [int(n) for n in args.workers.split(",")]
    times: dict[int, list[float]] = {n: [] for n in counts}
    duplicates = lost = 0
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        for _ in range(args.runs):
            for n in counts:
                reset(args.url)
                elapsed, handed = drain(args.url, n, latency, folder)
                dup, gone = check(args.url, handed, args.deliveries)
                duplicates += dup
                lost += gone
                times[n].append(elapsed)
    medians = {n: statistics.median(v) for n, v in times.items()}
    base = medians[counts[0]]
    rows = []
    for n in counts:
        rate = args.deliveries / medians[n]
        speedup = base / medians[n]
        target = "≥ 1.8× one" if n == 2 else ""
        rows.append(Row(f"{n} worker process{'es' if n > 1 else ''}",
                        f"{medians[n]:.1f} s · {rate:,.0f}/s · {speedup:.2f}×", target,
                        verdict(speedup >= 1.8) if n == 2 else ""))
    rows.append(Row("duplicates across all runs", str(duplicates), "0", verdict(duplicates == 0)))
    rows.append(Row("lost across all runs", str(lost), "0", verdict(lost == 0)))
    print_table(f"Scale-out on PostgreSQL: {args.deliveries:,} deliveries, null transport with "
                f"{args.latency_ms:g} ms per message (medians of {args.runs} runs)", rows)


if __name__ == "__main__":
    main()
