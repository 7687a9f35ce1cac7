"""A config value that reaches a mail header, a link or the database driver is checked at load.

`digest` refuses it before anything is sent (exit 3), with one line naming the key and the fix:
a ``from`` whose encoded word decodes to a line break (a forged Bcc), ``javascript:`` as the
base of every unsubscribe link, an address without angle brackets, a MySQL URL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD = {"from": '"Ledger Digest <digest@news.example.com>"'}


def config_file(tmp_path: Path, database_url: str, *, delivery: dict[str, str] | None = None,
                web: dict[str, str] | None = None, site: dict[str, str] | None = None,
                alerts: str = "", database: str = "", tiers: str = "") -> Path:
    """A config file with these values (written as TOML) over working defaults."""
    def table(name: str, values: dict[str, str]) -> str:
        return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())

    path = tmp_path / "digest.toml"
    path.write_text(
        f'[database]\nurl = {database or repr(database_url)}\n'
        + table("web", {"secret_key": '"s"', **(web or {})})
        + table("delivery", {"outbox": repr(str(tmp_path / "outbox")), **GOOD,
                             **(delivery or {})})
        + (table("site", site) if site else "")
        + (f"[alerts]\nto = {alerts}\n" if alerts else "")
        + (f"[tiers]\n{tiers}\n" if tiers else ""), encoding="utf-8")
    return path


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


BAD_VALUES = [
    ({"delivery": {"from": '"Probe =?UTF-8?Q?=0A?=Bcc: x@evil.example <digest@news.example.com>"'}},
     "[delivery] from", "encoded word"),
    ({"delivery": {"from": '"Ledger Digest digest@news.example.com"'}},
     "[delivery] from", "angle brackets"),
    ({"delivery": {"from": '"a@example.com, b@example.com"'}}, "[delivery] from", "exactly one"),
    ({"delivery": {"from": '"Ledger <digest@localhost>"'}}, "[delivery] from", "not a valid"),
    ({"delivery": {"reply_to": '"=?utf-8?b?QmNjOiB4QGV2aWwuZXhhbXBsZQ==?= <r@example.com>"'}},
     "[delivery] reply_to", "encoded word"),
    ({"delivery": {"unsubscribe_mailto": '"Leave <u@example.com>"'}},
     "[delivery] unsubscribe_mailto", "bare address"),
    ({"alerts": '["ops@example.com", "not an address"]'}, "[alerts] to.1", "valid address"),
    ({"web": {"base_url": '"javascript:alert(1)"'}}, "[web] base_url", "https://"),
    ({"web": {"base_url": '"http://digest.example.com"'}}, "[web] base_url", "https://"),
    ({"web": {"base_url": '"https://digest.example.com/u\\"><script>"'}},
     "[web] base_url", "quotes"),
    ({"site": {"url": '"data:text/html,hi"'}}, "[site] url", "https://"),
    ({"site": {"signin_url": '"//news.example.com/signin"'}}, "[site] signin_url", "https://"),
    ({"web": {"editor_email": '"Desk <desk@news.example.com>"'}}, "[web] editor_email",
     "bare address"),
    ({"tiers": 'free = { access = "teaser", cta_url = "javascript:alert(1)//{url}" }'},
     "[tiers] free.cta_url", "https://"),
    ({"database": '"mysql://root:hunter2@db.example.com/digest"'}, "[database] url",
     "not supported"),
    ({"database": '"not a url"'}, "[database] url", "not a database URL"),
]


@pytest.mark.parametrize(("values", "key", "reason"), BAD_VALUES,
                         ids=[f"{key}:{reason}" for _values, key, reason in BAD_VALUES])
def test_a_bad_value_is_refused_at_load_with_one_line_naming_the_key(
        tmp_path, sqlite_url, digest, values, key, reason):
    result = digest(config_file(tmp_path, sqlite_url, **values), "send", "--list", "morning")
    assert result.exit_code == 3, result.output
    [line] = error_lines(result.output)
    assert f"{key}: " in line and reason in line
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output           # a database URL's password is not echoed
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("values", [
    {"delivery": {"from": '"digest@news.example.com"'}},
    {"delivery": {"from": '"Zoë of the Ledger <digest@news.example.com>"',
                  "reply_to": '"\\"Desk, Ledger\\" <desk@news.example.com>"',
                  "unsubscribe_mailto": '"leave@news.example.com"'}},
    {"web": {"base_url": '"http://localhost:8000"'}},
    {"web": {"base_url": '"http://127.0.0.1:8000/digest"'}},
    {"alerts": '["Ops <ops@example.com>"]'},
    {"web": {"editor_email": '"desk@news.example.com"'},
     "tiers": 'free = { access = "teaser", cta_url = "https://news.example.com/join?next={url}" }'},
], ids=["bare from", "names", "localhost", "loopback", "alerts", "desk and call to action"])
def test_good_values_are_accepted(tmp_path, sqlite_url, digest, values):
    result = digest(config_file(tmp_path, sqlite_url, **values), "lists", "list")
    assert result.exit_code == 0, result.output


def test_postgresql_urls_with_or_without_the_driver_are_accepted(tmp_path, sqlite_url):
    from digest.config_checks import database_url

    for url in ("postgresql://u@h/db", "postgresql+psycopg://u@h:5432/db", "sqlite://",
                "sqlite:////abs/path.db"):
        assert database_url(url) == url
    with pytest.raises(ValueError, match="not supported"):
        database_url("postgresql+psycopg2://u@h/db")


def test_a_fixed_config_sends_the_edition_the_bad_one_refused(tmp_path, sqlite_url, digest):
    good = config_file(tmp_path, sqlite_url)
    assert digest(good, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    assert digest(good, "subscribers", "add", "ana@example.org", "--list", "morning"
                  ).exit_code == 0
    bad = config_file(tmp_path, sqlite_url, delivery={"from": '"Ledger digest@example.com"'})
    assert digest(bad, "send", "--list", "morning").exit_code == 3
    from digest.db import make_engine
    from sqlalchemy import text
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:     # nothing was claimed, failed or planned
        assert connection.execute(text("select count(*) from delivery")).scalar() == 0
    engine.dispose()
