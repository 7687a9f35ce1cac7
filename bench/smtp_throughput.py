"""Throughput to SMTP: N subscribers × a ~40 KB digest through the real delivery path (SQLite
queue, render once, personalise, SMTP transport with its connection pool and PIPELINING) to an
aiosmtpd sink in another process, against

* the sink's own ceiling, measured in the same run by a fully pipelined raw-socket client:
  pre-built messages, MAIL, RCPT, DATA and the message written back to back on each of the
  same number of connections without waiting for any reply (a reader thread takes them), and
* a naive smtplib loop: a new connection per message, messages pre-built (rendering with
  premailer per subscriber, as a naive tool would, would be slower still).

Then the same pipelined client and the delivery path into a real Postfix on 127.0.0.1:2525
(``bench/postfix.py`` installs and configures it where it can, and says why where it cannot).
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from bench.common import ROOT, Row, print_table, verdict
from bench.e2e import populate
from digest.transports.smtp import _wire_format


class Sink:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.sink"], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def accepted(self) -> int:
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def raw_client(port: int, messages: list[bytes], connections: int) -> float:
    """The ceiling: what the server takes when the client never waits. Per connection, MAIL,
    RCPT, DATA and the pre-built message (dot-stuffed, with its final dot) are written back to
    back for every message, without reading a reply in between; a reader thread consumes the
    four replies of each message (250, 250, 354, 250) as they come and checks them. Returns
    seconds until the last message's final 250."""
    shares = [messages[i::connections] for i in range(connections)]
    envelope = (b"MAIL FROM:<digest@news.example.com>\r\n"
                b"RCPT TO:<reader@example.org>\r\nDATA\r\n")

    def stream(share: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b"EHLO bench\r\n")
            while replies.readline()[3:4] != b" ":
                pass
            problems: list[bytes] = []

            def read_replies() -> None:
                for _ in range(4 * len(share)):
                    line = replies.readline()
                    while line[3:4] == b"-":
                        line = replies.readline()
                    if line[:1] not in (b"2", b"3"):
                        problems.append(line)

            reader = threading.Thread(target=read_replies)
            reader.start()
            for body in share:
                sock.sendall(envelope + body + b".\r\n")
            reader.join()
            sock.sendall(b"QUIT\r\n")
            assert not problems, problems[:3]

    started = time.perf_counter()
    threads = [threading.Thread(target=stream, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def naive_client(port: int, messages: list[bytes]) -> float:
    started = time.perf_counter()
    for body in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("digest@news.example.com", ["reader@example.org"], body)
    return time.perf_counter() - started


def ours(port: int, subscribers: int, posts: int, connections: int, folder: str
         ) -> tuple[float, int]:
    """The real delivery path; returns seconds and messages sent."""
    from digest.app import App
    from digest.config import config_from_dict
    from digest.db import upgrade
    from digest.editions import enqueue, plan_edition

    config = config_from_dict({
        "database": {"url": f"sqlite:///{folder}/bench.db"},
        "delivery": {"transport": "smtp", "batch_size": 100, "concurrency": connections},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
        "web": {"secret_key": "bench"}}, base_dir=Path(folder), environ={})
    app = App(config)
    upgrade(app.engine)
    populate(app.engine, subscribers, posts)
    edition = plan_edition(app.engine, app.lists.get("morning"), date(2026, 11, 25),
                           settings=config.editions, site_name="Example Newsroom").edition
    enqueue(app.engine, edition)
    started = time.perf_counter()
    stats = app.deliverer().run(edition_ids=[edition.id])
    return time.perf_counter() - started, stats.sent


def build_messages(subscribers: int, posts: int) -> list[bytes]:
    from bench.personalise import recipients, setup

    _renderer, _views, builder = setup(posts)
    return [_wire_format(builder.build(person).raw) for person in recipients(subscribers)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true",
                        help="leave out the naive smtplib loop (a connection per message)")
    parser.add_argument("--no-postfix", action="store_true",
                        help="leave out the Postfix case (installed and configured otherwise)")
    args = parser.parse_args(argv)

    prebuilt = build_messages(args.subscribers, args.posts)
    size = statistics.mean(len(m) for m in prebuilt[:100])
    raw_rates, naive_rates, our_rates = [], [], []
    sink = Sink()
    try:
        for _ in range(args.runs):
            before = sink.accepted()
            raw_rates.append(args.subscribers / raw_client(sink.port, prebuilt,
                                                           args.connections))
            assert sink.accepted() - before == args.subscribers
            with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
                before = sink.accepted()
                seconds, sent = ours(sink.port, args.subscribers, args.posts,
                                        args.connections, folder)
                assert sent == args.subscribers == sink.accepted() - before
                our_rates.append(sent / seconds)
            if not args.skip_naive:
                before = sink.accepted()
                naive_rates.append(args.subscribers / naive_client(sink.port, prebuilt))
                assert sink.accepted() - before == args.subscribers
    finally:
        sink.close()
    postfix_rows = [] if args.no_postfix else postfix_case(prebuilt, args)
    raw, mine = statistics.median(raw_rates), statistics.median(our_rates)
    naive = statistics.median(naive_rates) if naive_rates else float("nan")
    print_table(
        f"Throughput to SMTP: {args.subscribers:,} subscribers × {size / 1024:.0f} KB to an "
        f"aiosmtpd sink (medians of {args.runs} runs)",
        [Row(f"sink ceiling (pipelined raw client × {args.connections}, pre-built)",
             f"{raw:,.0f} msg/s"),
         Row(f"digest: SQLite queue + SMTP pool of {args.connections}", f"{mine:,.0f} msg/s",
             "≥ 90% of ceiling", verdict(mine >= 0.9 * raw)),
         Row("  as a share of the ceiling", f"{mine / raw:.0%}"),
         Row("naive smtplib loop (new connection each)", f"{naive:,.0f} msg/s"),
         Row("  digest ÷ naive", f"{mine / naive:.2f}×", "≥ 1.5×", verdict(mine >= 1.5 * naive)),
         *postfix_rows])


def postfix_case(prebuilt: list[bytes], args: argparse.Namespace) -> list[Row]:
    """The same two clients into a real Postfix on 127.0.0.1:2525 (queue, fsync, discard)."""
    from bench.postfix import PORT, ensure_postfix

    problem = ensure_postfix()
    if problem is not None:
        return [Row("Postfix on 127.0.0.1:2525", f"not measured: {problem}")]
    raw_rates, our_rates = [], []
    for _ in range(args.runs):
        raw_rates.append(args.subscribers / raw_client(PORT, prebuilt, args.connections))
        with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
            seconds, sent = ours(PORT, args.subscribers, args.posts, args.connections, folder)
            assert sent == args.subscribers
            our_rates.append(sent / seconds)
    raw, mine = statistics.median(raw_rates), statistics.median(our_rates)
    return [Row(f"Postfix ceiling (pipelined raw client × {args.connections})",
                f"{raw:,.0f} msg/s"),
            Row(f"digest into Postfix, SMTP pool of {args.connections}", f"{mine:,.0f} msg/s",
                "≥ 70% of ceiling", verdict(mine >= 0.7 * raw)),
            Row("  as a share of the Postfix ceiling", f"{mine / raw:.0%}")]


if __name__ == "__main__":
    main()
