"""`digest subscribers import` on SQLite against its ceiling, measured in the same run:
``sqlite3.executemany`` of the same CSV rows (read by csv.reader, nothing checked) into a table
of the subscriber table's shape (same columns, same unique key). The import must reach at
least a tenth of that rate, at 100,000 and at 1,000,000 rows, with peak memory flat.

Each measurement runs in a fresh child process so that its peak RSS is its own; baseline and
import alternate, ``--runs`` times at the first size (medians reported), so that a busy moment
on a shared machine weighs on both alike. Writing the CSV file is set-up, not measured. The
import is timed through SubscriberService.import_csv — what the command runs — on a database
migrated by `digest init`'s code.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Row, peak_rss_mb, print_table, run_child, verdict

SHAPE = """CREATE TABLE subscriber (
    id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL UNIQUE, name VARCHAR(200) NOT NULL,
    tier VARCHAR(64) NOT NULL, time_zone VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"""


def write_csv(path: Path, rows: int) -> None:
    tiers = ("free", "client")
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,name,tier\n")
        for n in range(rows):
            handle.write(f"Reader.{n}@Example.org,Reader {n},{tiers[n % 2]}\n")


def baseline(csv_path: str, folder: str) -> dict:
    connection = sqlite3.connect(f"{folder}/baseline.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(SHAPE)
    now = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    with open(csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO subscriber (email, email_key, name, tier, time_zone, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, '', ?, ?)",
            ((email, email.lower(), name, tier, now, now) for email, name, tier in reader))
        connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM subscriber").fetchone()[0]
    return {"seconds": seconds, "rows": stored, "rss_peak_mb": peak_rss_mb()}


def digest_import(csv_path: str, folder: str) -> dict:
    from digest.app import App
    from digest.config import config_from_dict
    from digest.db import upgrade

    config = config_from_dict({"database": {"url": f"sqlite:///{folder}/digest.db"},
                               "web": {"secret_key": "bench"}},
                              base_dir=Path(folder), environ={})
    app = App(config)
    upgrade(app.engine)
    app.lists.create("morning", "Morning")
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    report = app.subscribers.import_csv(csv_path, list_slug="morning")
    seconds = time.perf_counter() - started
    again_started = time.perf_counter()
    again = app.subscribers.import_csv(csv_path, list_slug="morning")
    return {"seconds": seconds, "rows": report.added, "errors": len(report.errors),
            "again_seconds": time.perf_counter() - again_started,
            "again_unchanged": again.unchanged, "rss_setup_mb": rss_before,
            "rss_peak_mb": peak_rss_mb()}


def measure(kind: str, csv_path: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        result = run_child(["-m", "bench.importer", "--child", kind, "--csv", str(csv_path),
                            "--folder", folder])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs at the first size")
    parser.add_argument("--child", choices=("baseline", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = baseline if args.child == "baseline" else digest_import
        print(json.dumps(run(args.csv, args.folder)))
        return

    rows, first_rss = [], None
    for number, size in enumerate(int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="digest-bench-csv-") as folder:
            csv_path = Path(folder) / "people.csv"
            write_csv(csv_path, size)
            runs = [(measure("baseline", csv_path), measure("import", csv_path))
                    for _ in range(args.runs if number == 0 else 1)]
        for ceiling, ours in runs:
            assert ceiling["rows"] == size and ours["rows"] == size and not ours["errors"], \
                (ceiling, ours)
            assert ours["again_unchanged"] == size, ours
        ceiling_s = statistics.median(c["seconds"] for c, _o in runs)
        ours_s = statistics.median(o["seconds"] for _c, o in runs)
        ratio = statistics.median(c["seconds"] / o["seconds"] for c, o in runs)
        rss = max(o["rss_peak_mb"] for _c, o in runs)
        first_rss = first_rss or rss
        growth = rss / first_rss - 1
        of = f" (median of {len(runs)})" if len(runs) > 1 else ""
        rows += [
            Row(f"{size:,} rows: sqlite3.executemany{of}", f"{ceiling_s:.2f} s "
                f"({size / ceiling_s:,.0f} rows/s)"),
            Row(f"{size:,} rows: digest import{of}", f"{ours_s:.2f} s "
                f"({size / ours_s:,.0f} rows/s, {ours_s / size * 1e6:.1f} µs/row)"),
            Row(f"{size:,} rows: import rate / executemany rate{of}", f"{ratio:.1%}",
                "≥ 10%", verdict(ratio >= 0.10)),
            Row(f"{size:,} rows: the same file again (all unchanged)",
                f"{statistics.median(o['again_seconds'] for _c, o in runs):.2f} s"),
            Row(f"{size:,} rows: import peak RSS", f"{rss:.0f} MB",
                "within 20% of the first size", verdict(growth <= 0.20)),
        ]
    print_table("Subscriber import on SQLite against sqlite3.executemany", rows)


if __name__ == "__main__":
    main()
