"""Failures on the sender's side never burn an edition: the claims go back to pending, the run
stops with a hint, and once the operator fixes it the next `digest send` sends to everyone.

Only a recipient's own refusal fails a delivery for good. Real SMTP sink, real database, the
`digest` command in-process.
"""

from __future__ import annotations

from collections import Counter

import pytest

from support.processes import ISSUE_DATE, setup_edition, statuses

pytestmark = pytest.mark.timeout(120)

SEND = ("send", "--list", "morning", "--date", ISSUE_DATE.isoformat())


def per_recipient(smtp_server) -> Counter:  # noqa: ANN001
    return Counter(r.rcpt_tos[0] for r in smtp_server.received)


def assert_nothing_burnt(app, smtp_server, total: int) -> None:  # noqa: ANN001
    rows = statuses(app)
    assert rows["failed"] == 0 and rows["claimed"] == 0 and rows["uncertain"] == 0
    assert rows["sent"] == len(per_recipient(smtp_server))
    assert rows["sent"] + rows["pending"] == total and rows["pending"] > 0


def assert_rerun_sends_everyone_once(app, smtp_server, digest, config, total: int  # noqa: ANN001
                                     ) -> None:
    result = digest(config, *SEND)
    assert result.exit_code == 0, result.output
    received = per_recipient(smtp_server)
    assert len(received) == total and set(received.values()) == {1}
    assert statuses(app) == Counter({"sent": total})


@pytest.mark.parametrize(("stage", "refusal"), [
    ("MAIL FROM", "553 5.7.1 <digest@news.example.com>: Sender address rejected: not owned"),
    ("RCPT TO", "550 5.1.8 <digest@news.example.com>: Sender address rejected: Domain not "
                "found"),
])
def test_a_server_refusing_our_from_stops_the_run_and_keeps_the_claims(
        tmp_path, database_url, smtp_server, digest, stage, refusal):
    app, config = setup_edition(tmp_path, database_url, smtp_server.port, 80, concurrency=2)
    if stage == "MAIL FROM":
        smtp_server.handler.mail_replies.extend([refusal] * 4)
    else:
        for n in range(80):
            smtp_server.handler.rcpt_replies[f"reader{n}@example.org"] = [refusal]

    result = digest(config, *SEND)

    assert result.exit_code == 1, result.output
    assert "refused our sender <digest@news.example.com>" in result.output
    assert "hint: check [delivery] from" in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) <= 4
    assert_nothing_burnt(app, smtp_server, 80)

    # The operator fixes the sender: the next run sends the whole edition.
    smtp_server.handler.mail_replies.clear()
    smtp_server.handler.rcpt_replies.clear()
    assert_rerun_sends_everyone_once(app, smtp_server, digest, config, 80)


def test_a_recipients_own_refusal_still_fails_only_that_delivery(tmp_path, sqlite_url,
                                                                 smtp_server, digest):
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, 20)
    smtp_server.handler.rcpt_replies["reader3@example.org"] = ["550 5.1.1 User unknown"]
    result = digest(config, *SEND)
    assert result.exit_code == 0, result.output
    assert statuses(app) == Counter({"sent": 19, "failed": 1})


def test_a_template_error_stops_the_run_and_keeps_the_claims(tmp_path, sqlite_url,
                                                              smtp_server, digest):
    app, config = setup_edition(tmp_path, sqlite_url, smtp_server.port, 30)
    overrides = tmp_path / "templates"
    (overrides / "email").mkdir(parents=True)
    broken = overrides / "email" / "digest.txt.j2"
    broken.write_text("Hello {{ subscriber.first_name }}, {{ 1 // 0 }}\n", encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8")
                      + f'[templates]\ndir = "{overrides}"\n', encoding="utf-8")

    result = digest(config, *SEND)

    assert result.exit_code == 1, result.output
    assert "could not build the message" in result.output and "ZeroDivisionError" in result.output
    assert "hint: fix the template" in result.output
    rows = statuses(app)
    assert rows == Counter({"pending": 30}) and not smtp_server.received

    broken.unlink()                                   # the editor puts the template right
    assert_rerun_sends_everyone_once(app, smtp_server, digest, config, 30)
