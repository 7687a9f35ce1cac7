"""An import stopped by SIGTERM says how many rows it stored and the line to resume from.

A CSV import killed at row 46,000 of 600,000 once stored part of the file and printed nothing.
Now SIGTERM stores the rows already read (batches are all-or-nothing), prints the count and
the exact command that resumes, and resuming stores the rest: every row once, nobody twice.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
ROWS = 12_000


def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n[web]\nsecret_key = "s"\n'
                    f'[delivery]\noutbox = "{tmp_path / "outbox"}"\n', encoding="utf-8")
    return path


def subscribers_stored(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("select count(*) from subscription")).scalar()


def digest_process(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_sigterm_mid_import_says_what_was_stored_and_the_resume_command_finishes_it(
        tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    people = tmp_path / "people.csv"
    people.write_text("email,name\n" + "".join(f"reader{n}@example.org,Reader {n}\n"
                                               for n in range(ROWS)), encoding="utf-8")
    engine = sqlalchemy.create_engine(sqlite_url)
    importing = digest_process(config, "subscribers", "import", str(people), "--list", "morning")
    deadline = time.monotonic() + 60
    while subscribers_stored(engine) < 2_000 and importing.poll() is None:
        assert time.monotonic() < deadline, "the import stored nothing in 60 s"
        time.sleep(0.01)
    importing.send_signal(signal.SIGTERM)
    output, _ = importing.communicate(timeout=60)
    assert importing.returncode == 130, output
    stored = subscribers_stored(engine)
    assert 2_000 <= stored < ROWS, "the signal came too late to test anything"
    assert f"interrupted: {stored:,} rows stored (lines 1 to {stored + 1})" in output
    resume = output.split("Resume with: ", 1)[1].splitlines()[0]
    assert resume.endswith(f"--from-line {stored + 2}")

    args = shlex.split(resume)[2:]        # after "digest subscribers" … as printed
    resumed = digest(config, "subscribers", *args)
    assert resumed.exit_code == 0, resumed.output
    assert f"{ROWS - stored} added, 0 updated, 0 unchanged, 0 rejected" in resumed.output
    assert subscribers_stored(engine) == ROWS
    with engine.connect() as connection:
        assert connection.execute(text("select count(distinct email_key) from subscriber")
                                  ).scalar() == ROWS
    engine.dispose()


def test_resuming_still_refuses_an_address_repeated_from_before_the_resume_line(
        tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    digest(config, "lists", "create", "morning", "--name", "Morning")
    people = tmp_path / "people.csv"
    people.write_text("email,name\nana@example.org,Ana\nbad-address,Bad\n"
                      "bo@example.org,Bo\nana@example.org,Ana Again\n", encoding="utf-8")
    result = digest(config, "subscribers", "import", str(people), "--list", "morning",
                    "--from-line", "4")
    assert result.exit_code == 2
    assert "1 added" in result.output                       # Bo; Ana's line 2 is not stored
    assert ":3:" not in result.output                       # before the resume line: not again
    assert "already appears on line 2" in result.output     # but still known
