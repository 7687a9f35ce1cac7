"""`digest send` stopped from outside: SIGTERM, Ctrl-C through a terminal, twice, and kill -9.

Real processes against an aiosmtpd sink that holds each message 20 ms. Each test counts what
every recipient got at the server and the rows left behind: nothing doubled, nothing left
claimed by a process that exited, and after kill -9 at most the claim groups in flight (4
threads × 10) held back.
"""

from __future__ import annotations

import os
import pty
import signal
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select
from sqlmodel import Session

from digest.models import Delivery
from subscribers.models import Subscriber
from support.processes import (DIGEST_ENV, ISSUE_DATE, digest_command, setup_edition,
                               start_digest, statuses)

pytestmark = pytest.mark.timeout(240)

SEND = ("send", "--list", "morning", "--date", ISSUE_DATE.isoformat())


def wait_until_received(smtp_server, count: int, seconds: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while len(smtp_server.received) < count:
        assert time.monotonic() < deadline, f"only {len(smtp_server.received)} arrived"
        time.sleep(0.01)


def per_recipient(smtp_server) -> Counter:  # noqa: ANN001
    return Counter(r.rcpt_tos[0] for r in smtp_server.received)


def sent_addresses(app) -> set[str]:  # noqa: ANN001
    with Session(app.engine) as session:
        return set(session.scalars(select(Subscriber.email).join(
            Delivery, Delivery.subscriber_id == Subscriber.id).where(Delivery.status == "sent")))


def run_digest(config, *args: str) -> tuple[int, str]:  # noqa: ANN001
    """A whole `digest` command in a process of its own: exit code, stdout + stderr."""
    process = start_digest(config, *args)
    out, err = process.communicate(timeout=120)
    return process.returncode, out + err


def assert_stopped_cleanly(app, smtp_server, total: int) -> None:  # noqa: ANN001
    """What reached the server is exactly what is recorded sent; the rest is pending."""
    received = per_recipient(smtp_server)
    rows = statuses(app)
    assert set(received.values()) <= {1}, "someone got the edition twice"
    assert rows["claimed"] == 0, "claims left behind by a process that exited"
    assert rows["sent"] == len(received) and rows["sent"] + rows["pending"] == total
    assert 0 < rows["sent"] < total


class PtyProcess:
    """A process whose controlling terminal is a pseudo-terminal: ^C there is SIGINT."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:                                   # the child
            os.chdir(DIGEST_ENV["PYTHONPATH"])
            os.execve(argv[0], argv, DIGEST_ENV)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def press_ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(timeout=5)
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"still running after {seconds} s: {bytes(self.output)!r}")

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["send", "run"])
def test_sigterm_finishes_the_messages_on_the_wire_and_returns_the_rest(tmp_path, sqlite_url,
                                                                         smtp_server, command):
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, 300, batch_size=None)
    smtp_server.handler.data_delay = 0.02
    sender = start_digest(config, command, *SEND[1:])
    wait_until_received(smtp_server, 60)
    stopped_at = time.monotonic()
    sender.send_signal(signal.SIGTERM)
    _out, err = sender.communicate(timeout=30)
    assert time.monotonic() - stopped_at < 30
    assert sender.returncode == 143, err
    assert "Stopped by SIGTERM" in err and "left pending" in err
    assert_stopped_cleanly(app, smtp_server, 300)

    # The next send finishes the edition: everyone has it once.
    smtp_server.handler.data_delay = 0
    rerun = start_digest(config, *SEND)
    _out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    received = per_recipient(smtp_server)
    assert len(received) == 300 and set(received.values()) == {1}
    assert statuses(app) == Counter({"sent": 300})


def test_ctrl_c_in_a_terminal_stops_like_sigterm(tmp_path, sqlite_url, smtp_server):
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, 300, batch_size=None)
    smtp_server.handler.data_delay = 0.02
    sender = PtyProcess(digest_command(config, *SEND))
    wait_until_received(smtp_server, 60)
    sender.press_ctrl_c()
    assert sender.wait(30) == 130, sender.text
    assert "Stopped by SIGINT" in sender.text
    assert_stopped_cleanly(app, smtp_server, 300)


def test_a_second_ctrl_c_stops_at_once_and_the_next_send_notices_its_claims(
        tmp_path, sqlite_url, smtp_server):
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, 300, batch_size=None)
    smtp_server.handler.data_delay = 0.5          # a slow server: the first ^C would wait
    sender = PtyProcess(digest_command(config, *SEND))
    wait_until_received(smtp_server, 8)
    sender.press_ctrl_c()
    time.sleep(0.2)
    sender.press_ctrl_c()
    stopped_at = time.monotonic()
    assert sender.wait(10) == 130, sender.text
    assert time.monotonic() - stopped_at < 2          # did not wait for the 0.5 s replies
    assert "SIGINT again: stopping now" in sender.text
    left = statuses(app)["claimed"]
    assert left > 0

    # Noticed at once, not after claim_timeout_seconds (15 minutes by default).
    code, output = run_digest(config, "status")
    assert code == 0, output
    assert f"{left} deliveries are claimed by a process that stopped" in output
    assert 'uncertain = "hold"' in output
    smtp_server.handler.data_delay = 0
    code, output = run_digest(config, *SEND)
    assert code == 0, output
    assert (f"{left} deliveries were claimed by a process that stopped mid-send: marked "
            f'uncertain and held, never resent ([delivery] uncertain = "hold"') in output
    rows = statuses(app)
    assert rows["uncertain"] == left and rows["sent"] + left == 300 and not rows["claimed"]
    assert set(per_recipient(smtp_server).values()) == {1}


def test_kill_9_at_default_settings_leaves_at_most_the_claim_groups_in_doubt(
        tmp_path, sqlite_url, smtp_server):
    total = 6000
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, total, batch_size=None)
    smtp_server.handler.data_delay = 0.02
    sender = start_digest(config, *SEND)
    wait_until_received(smtp_server, 600, seconds=120)
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=10)

    smtp_server.handler.data_delay = 0
    code, output = run_digest(config, *SEND)
    assert code == 0, output
    assert "deliveries were claimed by a process that stopped" in output
    received = per_recipient(smtp_server)
    rows = statuses(app)
    assert set(received.values()) == {1}, "someone got the edition twice"
    assert rows["sent"] + rows["uncertain"] == total and not rows["claimed"]
    never_sent = total - len(received)
    assert never_sent <= 60, f"{never_sent} held back without reaching the server"
    assert rows["uncertain"] <= 40
    assert sent_addresses(app) <= set(received)
