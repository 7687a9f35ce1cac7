"""End to end on SQLite: plan + enqueue + render + personalise + hand to a null transport, for
100,000 subscribers (time and peak memory) and 1,000,000 (memory must not grow with the list).

Each size runs in a fresh child process so that its peak RSS is its own. Creating the
subscribers is set-up, not measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench.common import Row, peak_rss_mb, print_table, run_child, sample_posts, verdict

CHUNK = 20_000


def populate(engine, subscribers: int, posts: int,  # noqa: ANN001
             tiers: tuple[str, ...] = ("free", "client")) -> None:
    """A list "morning" of ``subscribers`` readers, taking turns at ``tiers``, and ``posts``
    posts of the sample newsroom."""
    from sqlalchemy import insert

    from digest.models import Post
    from subscribers.models import MailingList, Subscriber, Subscription

    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(MailingList), [{"id": 1, "slug": "morning",
                                                  "name": "Morning Briefing", "created_at": now}])
        connection.execute(insert(Post), [{
            "source": "newsroom", "guid": f"g{p.id}", "url": p.url, "title": p.title,
            "author": p.author, "published_at": p.published_at, "categories": p.categories,
            "summary": "", "body_html": p.body_html, "content_hash": str(p.id),
            "first_seen_at": now, "changed_at": now} for p in sample_posts(posts)])
    for start in range(0, subscribers, CHUNK):
        ids = range(start + 1, min(start + CHUNK, subscribers) + 1)
        with engine.begin() as connection:
            connection.execute(insert(Subscriber), [{
                "id": i, "email": f"reader{i}@example.org", "email_key": f"reader{i}@example.org",
                "name": f"Reader {i}", "tier": tiers[i % len(tiers)], "created_at": now,
                "updated_at": now} for i in ids])
            connection.execute(insert(Subscription), [{
                "list_id": 1, "subscriber_id": i, "status": "active", "created_at": now}
                for i in ids])


def child(subscribers: int, posts: int, folder: str) -> dict:
    from digest.app import App
    from digest.config import config_from_dict
    from digest.db import upgrade
    from digest.editions import enqueue, finish_if_done, plan_edition
    from digest.transports.null import NullTransport

    config = config_from_dict({
        "database": {"url": f"sqlite:///{folder}/bench.db"},
        "delivery": {"transport": "null", "batch_size": 500, "concurrency": 1},
        "web": {"secret_key": "bench"}}, base_dir=Path(folder), environ={})
    app = App(config)
    upgrade(app.engine)
    populate(app.engine, subscribers, posts)
    rss_before = peak_rss_mb()

    transport = NullTransport(max_batch=500)
    started = time.perf_counter()
    mailing_list = app.lists.get("morning")
    edition = plan_edition(app.engine, mailing_list, date(2026, 11, 25),
                           settings=config.editions, site_name="Example Newsroom").edition
    enqueued = enqueue(app.engine, edition)
    after_enqueue = time.perf_counter()
    deliverer = app.deliverer(concurrency=1)
    deliverer.transports = lambda: transport
    stats = deliverer.run(edition_ids=[edition.id])
    finish_if_done(app.engine, edition.id)
    elapsed = time.perf_counter() - started
    return {"subscribers": subscribers, "enqueued": enqueued, "sent": stats.sent,
            "accepted": transport.accepted, "seconds": elapsed,
            "enqueue_seconds": after_enqueue - started, "rss_setup_mb": rss_before,
            "rss_peak_mb": peak_rss_mb(), "message_bytes": transport.bytes // max(1, stats.sent)}


def measure(subscribers: int, posts: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        result = run_child(["-m", "bench.e2e", "--child", str(subscribers), "--posts", str(posts),
                            "--folder", folder])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated subscriber counts; the first is the timed one")
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="runs of the first size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.posts, args.folder)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    import statistics
    first = [measure(sizes[0], args.posts) for _ in range(args.runs)]
    seconds = statistics.median(r["seconds"] for r in first)
    rss = statistics.median(r["rss_peak_mb"] for r in first)
    rows = [Row(f"{sizes[0]:,} subscribers: wall time (median of {args.runs})",
                f"{seconds:.1f} s", "≤ 15 s", verdict(seconds <= 15)),
            Row(f"{sizes[0]:,}: of which plan + enqueue",
                f"{statistics.median(r['enqueue_seconds'] for r in first):.1f} s"),
            Row(f"{sizes[0]:,}: per delivery", f"{seconds / sizes[0] * 1e6:.0f} µs"),
            Row(f"{sizes[0]:,}: peak RSS", f"{rss:.0f} MB", "≤ 250 MB", verdict(rss <= 250))]
    for size in sizes[1:]:
        result = measure(size, args.posts)
        growth = result["rss_peak_mb"] / rss - 1
        rows += [Row(f"{size:,} subscribers: wall time", f"{result['seconds']:.1f} s"),
                 Row(f"{size:,}: peak RSS", f"{result['rss_peak_mb']:.0f} MB",
                     "within 20% of the above", verdict(growth <= 0.20))]
        assert result["sent"] == size == result["accepted"], result
    assert all(r["sent"] == sizes[0] == r["accepted"] for r in first), first
    print_table(f"End to end on SQLite, null transport ({args.posts} posts, "
                f"{first[0]['message_bytes'] / 1024:.0f} KB messages)", rows)


if __name__ == "__main__":
    main()
