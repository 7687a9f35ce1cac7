"""Throughput to SMTP: N subscribers × a ~45 KB digest (every reader on the full-story tier)
through the real delivery path (SQLite queue, render once, personalise, SMTP transport with its
connection pool and PIPELINING) to an aiosmtpd sink in another process, against

* the sink's ceiling: the faster, in each run, of two raw-socket clients that send the very
  bytes the delivery path sends (built beforehand by the same code from the same kind of
  database) over the same number of connections:
  - *pipelined*: MAIL, RCPT, DATA and the message written back to back for every message,
    never waiting for a reply (a reader thread takes them as they come);
  - *RFC 2920*: the pattern the delivery path follows, with nothing else to do: the end of one
    message and the next MAIL, RCPT and DATA in one write, waiting only for the 354;
* a naive smtplib loop: a new connection per message, messages pre-built.

Then the same clients and the delivery path into a real Postfix on 127.0.0.1:2525
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
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench.common import ROOT, Row, print_table, verdict
from bench.e2e import populate

ENVELOPE = (b"MAIL FROM:<digest@news.example.com>\r\n"
            b"RCPT TO:<reader@example.org>\r\nDATA\r\n")
FULL_TIER = ("client",)          # the sample config's full-story tier: messages of ~45 KB


class Sink:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.sink"], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def _ask(self, question: str) -> list[int]:
        self.process.stdin.write(f"{question}\n")
        self.process.stdin.flush()
        return [int(word) for word in self.process.stdout.readline().split()]

    def accepted(self) -> int:
        return self._ask("count")[0]

    def recipients(self) -> tuple[int, int]:
        """Addresses that got mail since the last call, and the most one of them got."""
        distinct, most = self._ask("recipients")
        return distinct, most

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _reply(replies) -> bytes:  # noqa: ANN001
    line = replies.readline()
    while line[3:4] == b"-":
        line = replies.readline()
    return line


def _on_connections(port: int, messages: list[bytes], connections: int,
                    stream: Callable[[socket.socket, object, list[bytes]], None]) -> float:
    """Runs ``stream`` on each connection with its share of the messages; returns seconds
    until the last connection had its last reply."""
    shares = [messages[i::connections] for i in range(connections)]

    def session(share: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            replies = sock.makefile("rb")
            _reply(replies)
            sock.sendall(b"EHLO bench\r\n")
            assert _reply(replies)[:1] == b"2"
            stream(sock, replies, share)
            sock.sendall(b"QUIT\r\n")

    started = time.perf_counter()
    threads = [threading.Thread(target=session, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def pipelined_client(port: int, messages: list[bytes], connections: int) -> float:
    """What the server takes when the client never waits: per connection, MAIL, RCPT, DATA
    and the message (dot-stuffed, with its final dot) written back to back for every message;
    a reader thread consumes the four replies of each (250, 250, 354, 250) and checks them."""
    def stream(sock: socket.socket, replies: object, share: list[bytes]) -> None:
        problems: list[bytes] = []

        def read_replies() -> None:
            for _ in range(4 * len(share)):
                line = _reply(replies)
                if line[:1] not in (b"2", b"3"):
                    problems.append(line)

        reader = threading.Thread(target=read_replies)
        reader.start()
        for body in share:
            sock.sendall(ENVELOPE + body + b".\r\n")
        reader.join()
        assert not problems, problems[:3]

    return _on_connections(port, messages, connections, stream)


def rfc2920_client(port: int, messages: list[bytes], connections: int) -> float:
    """The delivery path's own pattern with no other work: the message's end and the next
    MAIL, RCPT and DATA in one write; waits only for the replies up to the next 354, with
    quick ACKs as the delivery path's client asks for (digest/transports/smtp_client.py)."""
    quickack = getattr(socket, "TCP_QUICKACK", None)

    def stream(sock: socket.socket, replies: object, share: list[bytes]) -> None:
        sock.sendall(ENVELOPE)
        for number, body in enumerate(share):
            if quickack is not None:
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            for expected in (b"2", b"2", b"3"):
                line = _reply(replies)
                assert line[:1] == expected, line
            sock.sendall(body + b".\r\n" + (ENVELOPE if number + 1 < len(share) else b""))
            line = _reply(replies)
            assert line[:1] == b"2", line

    return _on_connections(port, messages, connections, stream)


CLIENTS = {"pipelined": pipelined_client, "RFC 2920": rfc2920_client}


def naive_client(port: int, messages: list[bytes]) -> float:
    started = time.perf_counter()
    for body in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("digest@news.example.com", ["reader@example.org"], body)
    return time.perf_counter() - started


def prepared(folder: str, port: int, subscribers: int, posts: int, connections: int):
    """An App on a fresh SQLite database with an edition enqueued for every subscriber."""
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
    populate(app.engine, subscribers, posts, tiers=FULL_TIER)
    edition = plan_edition(app.engine, app.lists.get("morning"), date(2026, 11, 25),
                           settings=config.editions, site_name="Example Newsroom").edition
    enqueue(app.engine, edition)
    return app, edition


def ours(port: int, subscribers: int, posts: int, connections: int) -> tuple[float, int]:
    """The real delivery path; returns seconds and messages sent."""
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        app, edition = prepared(folder, port, subscribers, posts, connections)
        deliverer = app.deliverer()
        started = time.perf_counter()
        stats = deliverer.run(edition_ids=[edition.id])
        return time.perf_counter() - started, stats.sent


def build_messages(subscribers: int, posts: int) -> list[bytes]:
    """The bytes the delivery path sends (DATA's form, without the final dot), built by the
    same code from the same kind of database, for the raw clients."""
    from digest.transports.smtp import _data

    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        app, edition = prepared(folder, 25, subscribers, posts, 1)
        deliverer = app.deliverer(concurrency=1)
        messages: list[bytes] = []
        while claimed := deliverer.queue.claim(500, edition_ids=[edition.id]):
            messages += [_data(deliverer.make_message(item)) for item in claimed]
        return messages


def ceiling(port: int, messages: list[bytes], connections: int,
            rates: dict[str, list[float]]) -> None:
    for name, client in CLIENTS.items():
        rates.setdefault(name, []).append(len(messages) / client(port, messages, connections))


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
    size = statistics.mean(len(m) for m in prebuilt)
    raw_rates: dict[str, list[float]] = {}
    naive_rates, our_rates = [], []
    sink = Sink()
    try:
        for _ in range(args.runs):
            before = sink.accepted()
            ceiling(sink.port, prebuilt, args.connections, raw_rates)
            assert sink.accepted() - before == len(CLIENTS) * args.subscribers
            sink.recipients()
            seconds, sent = ours(sink.port, args.subscribers, args.posts, args.connections)
            # Every reader got it, once.
            assert sent == args.subscribers, sent
            assert sink.recipients() == (args.subscribers, 1)
            our_rates.append(sent / seconds)
            if not args.skip_naive:
                before = sink.accepted()
                naive_rates.append(args.subscribers / naive_client(sink.port, prebuilt))
                assert sink.accepted() - before == args.subscribers
    finally:
        sink.close()
    postfix_rows = [] if args.no_postfix else postfix_case(prebuilt, args)
    raw, rows = ceiling_rows("sink", raw_rates, args.connections)
    mine = statistics.median(our_rates)
    naive = statistics.median(naive_rates) if naive_rates else float("nan")
    print_table(
        f"Throughput to SMTP: {args.subscribers:,} subscribers × {size / 1024:.0f} KB to an "
        f"aiosmtpd sink (medians of {args.runs} runs)",
        [*rows,
         Row(f"digest: SQLite queue + SMTP pool of {args.connections}", f"{mine:,.0f} msg/s",
             "≥ 90% of ceiling", verdict(mine >= 0.9 * raw)),
         Row("  as a share of the ceiling", f"{mine / raw:.2f}"),
         *([] if args.skip_naive else [
             Row("naive smtplib loop (new connection each)", f"{naive:,.0f} msg/s"),
             Row("  digest ÷ naive", f"{mine / naive:.2f}×", "≥ 1.5×",
                 verdict(mine >= 1.5 * naive))]),
         *postfix_rows])


def ceiling_rows(server: str, rates: dict[str, list[float]], connections: int
                 ) -> tuple[float, list[Row]]:
    """The ceiling (the faster raw client, run by run) and a row for each client."""
    per_run = [max(run) for run in zip(*rates.values(), strict=True)]
    top = statistics.median(per_run)
    rows = [Row(f"{server} ceiling: the faster raw client × {connections}, per run",
                f"{top:,.0f} msg/s")]
    rows += [Row(f"  {name} raw client", f"{statistics.median(values):,.0f} msg/s")
             for name, values in rates.items()]
    return top, rows


def postfix_case(prebuilt: list[bytes], args: argparse.Namespace) -> list[Row]:
    """The same clients into a real Postfix on 127.0.0.1:2525 (queue, fsync, discard)."""
    from bench.postfix import PORT, discarded_since, ensure_postfix, log_offset

    problem = ensure_postfix()
    if problem is not None:
        return [Row("Postfix on 127.0.0.1:2525", f"not measured: {problem}")]
    raw_rates: dict[str, list[float]] = {}
    our_rates = []
    for _ in range(args.runs):
        ceiling(PORT, prebuilt, args.connections, raw_rates)
        offset = log_offset()
        seconds, sent = ours(PORT, args.subscribers, args.posts, args.connections)
        assert sent == args.subscribers, sent
        counts = discarded_since(offset, args.subscribers)
        readers = {address: n for address, n in counts.items() if address != "reader@example.org"}
        # Every reader got it, once (as Postfix's own log tells).
        assert len(readers) == args.subscribers and max(readers.values()) == 1, len(readers)
        our_rates.append(sent / seconds)
    raw, rows = ceiling_rows("Postfix", raw_rates, args.connections)
    mine = statistics.median(our_rates)
    return [*rows,
            Row(f"digest into Postfix, SMTP pool of {args.connections}", f"{mine:,.0f} msg/s",
                "≥ 70% of ceiling", verdict(mine >= 0.7 * raw)),
            Row("  as a share of the Postfix ceiling", f"{mine / raw:.2f}")]


if __name__ == "__main__":
    main()
