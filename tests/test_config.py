"""Loading and validating the TOML config: errors that say where and what, paths, environment."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from digest.config import (
    Config,
    ConfigError,
    DeliveryConfig,
    SourceConfig,
    config_from_dict,
    config_path_from,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"

MINIMAL = """\
[site]
name = "Lanternport Ledger"
"""


def a_config_file(folder: Path, text: str, name: str = "digest.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ=environ or {})
    return raised.value


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line holding ``fragment``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


# -- loading ---------------------------------------------------------------------------------

def test_a_small_file_loads_with_defaults_for_the_rest(tmp_path):
    config = load_config(a_config_file(tmp_path, MINIMAL), environ={})
    assert config.site.name == "Lanternport Ledger"
    assert config.smtp.security == "starttls" and config.smtp.port == 587
    assert {tier: rule.access for tier, rule in config.tiers.items()} == {"free": "teaser",
                                                                          "client": "full"}
    assert config.default_tier == "free"
    assert config.delivery.transport == "file"
    assert config.base_dir == tmp_path.resolve()


def test_values_from_the_file_are_used(tmp_path):
    path = a_config_file(tmp_path, """\
[smtp]
host = "mail.example.com"
port = 465
security = "tls"

[tiers]
reader = "teaser"
member = "full"

[access]
default_tier = "member"

[delivery]
from = "Ledger <digest@example.com>"

[web]
base_url = "https://digest.example.com/"

[[sources]]
name = "one"
url = "https://news.example.com/one.xml"
timeout_seconds = 5

[[sources]]
name = "two"
url = "https://news.example.com/two.xml"
""")
    config = load_config(path, environ={})
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == (
        "mail.example.com", 465, "tls")
    assert config.default_tier == "member"
    assert config.delivery.from_ == "Ledger <digest@example.com>"
    assert config.web.base_url == "https://digest.example.com"  # no trailing slash
    assert [(s.name, s.timeout_seconds) for s in config.sources] == [("one", 5), ("two", None)]


def test_the_first_tier_is_the_default_when_none_is_named(tmp_path):
    config = load_config(a_config_file(tmp_path, '[tiers]\nmember = "full"\nguest = "teaser"\n'),
                         environ={})
    assert config.default_tier == "member"


def test_the_config_file_comes_from_the_argument_then_digest_config_then_the_default(
        monkeypatch):
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    assert config_path_from(None) == Path("digest.toml")
    monkeypatch.setenv("DIGEST_CONFIG", "/etc/digest/prod.toml")
    assert config_path_from(None) == Path("/etc/digest/prod.toml")
    assert config_path_from("other.toml") == Path("other.toml")


# -- files that cannot be read ---------------------------------------------------------------

def test_a_missing_file_is_a_config_error_with_a_hint(tmp_path):
    error = config_error(tmp_path / "nowhere.toml")
    assert str(tmp_path / "nowhere.toml") in error.message
    assert "not found" in error.message
    assert "config.example.toml" in (error.hint or "")


def test_bad_toml_is_a_config_error_naming_the_file_and_line(tmp_path):
    path = a_config_file(tmp_path, '[site]\nname = "Ledger"\n\n[smtp]\nhost = mail.example.com\n')
    error = config_error(path)
    assert str(path) in error.message
    assert "not valid TOML" in error.message
    assert "line 5" in error.message
    assert error.hint


def test_a_folder_or_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    folder = tmp_path / "digest.toml"
    folder.mkdir()
    error = config_error(folder)
    assert str(folder) in error.message and error.hint
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[site]\nname = "Gazette de Liège"\n'.encode("latin-1"))
    error = config_error(latin)
    assert str(latin) in error.message and "UTF-8" in error.message


# -- unknown keys ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key", "where", "suggestion"), [
    ('[smtp]\nhost = "a"\n\n\nhots = "mail.example.com"\n', "hots", "[smtp] hots", "host"),
    ('[smpt]\nhost = "mail.example.com"\n', "smpt", "'smpt'", "smtp"),
    ('[delivery]\nform = "Ledger <d@example.com>"\n', "form", "[delivery] form", "from"),
    ('[web]\nsecret = "x"\n', "secret", "[web] secret", "secret_key"),
    ('[[sources]]\nname = "a"\nurl = "https://example.com/a.xml"\n\n'
     '[[sources]]\nname = "b"\nurll = "https://example.com/b.xml"\n', "urll",
     "[[sources]] #2 urll", "url"),
])
def test_an_unknown_key_names_itself_its_section_a_suggestion_and_its_line(
        tmp_path, text, key, where, suggestion):
    path = a_config_file(tmp_path, text)
    error = config_error(path)
    assert f"{path}:{line_of(text, key)}: unknown key {where} (did you mean {suggestion!r}?)" \
        in error.message
    assert "config.example.toml" in (error.hint or "")


def test_an_unknown_key_with_nothing_close_gets_no_suggestion(tmp_path):
    error = config_error(a_config_file(tmp_path, '[smtp]\nzzzzzz = 1\n'))
    assert "unknown key [smtp] zzzzzz" in error.message
    assert "did you mean" not in error.message


def test_base_dir_cannot_be_set_from_the_file(tmp_path):
    # base_dir is where the file is; a key of that name in the file is unknown, not obeyed.
    path = a_config_file(tmp_path, '# paths\n\nbase_dir = "/etc"\n\n[site]\nname = "L"\n')
    assert f"{path}:3: unknown key 'base_dir'" in config_error(path).message


def test_every_problem_in_the_file_is_reported_at_once(tmp_path):
    text = '[smtp]\nhots = "a"\nport = 0\n\n[delivery]\ntransport = "pigeon"\n'
    path = a_config_file(tmp_path, text)
    message = config_error(path).message
    assert f"{path}:2: unknown key [smtp] hots" in message
    assert f"{path}:3: [smtp] port" in message
    assert f"{path}:6: [delivery] transport" in message


# -- bad values ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "where", "detail"), [
    ('[smtp]\nsecurity = "ssl"\n', "[smtp] security", "'none', 'starttls' or 'tls'"),
    ('[tiers]\nfree = "teaser"\npremium = "partial"\n', "[tiers] premium", "'full' or 'teaser'"),
    ('[smtp]\nport = 70000\n', "[smtp] port", "less than 65536"),
    ('[delivery]\ntransport = "pigeon"\n', "[delivery] transport", "'file', 'smtp', 'null', 'postmark'"),
    ('[delivery]\nbatch_size = 0\n', "[delivery] batch_size", "greater than 0"),
    ('[delivery]\nuncertain = "maybe"\n', "[delivery] uncertain", "'hold' or 'resend'"),
    ('[collect]\ntimeout_seconds = "soon"\n', "[collect] timeout_seconds", "number"),
    ('[subscribers]\ncheck_deliverability = "perhaps"\n', "[subscribers] check_deliverability",
     "boolean"),
    ('[web]\nlink_max_age_days = -1\n', "[web] link_max_age_days", "greater than 0"),
    ('smtp = "mail.example.com"\n', "'smtp'", "dictionary"),
])
def test_a_bad_value_names_its_key_and_line(tmp_path, text, where, detail):
    path = a_config_file(tmp_path, text)
    message = config_error(path).message
    key = where.split()[-1].strip("'")
    assert f"{path}:{line_of(text, key)}: {where}: " in message
    assert detail in message


def test_a_bad_value_is_found_in_its_own_section_when_the_key_is_in_several(tmp_path):
    text = ('[collect]\ntimeout_seconds = 20\n\n[smtp]\nhost = "mail.example.com"\n'
            'timeout_seconds = -1\n')
    path = a_config_file(tmp_path, text)
    assert f"{path}:6: [smtp] timeout_seconds" in config_error(path).message


def test_a_bad_value_in_the_nth_source_names_that_source_and_its_line(tmp_path):
    text = ('[[sources]]\nname = "a"\nurl = "https://example.com/a.xml"\nmax_bytes = 10\n\n'
            '[[sources]]\nname = "b"\nurl = "https://example.com/b.xml"\nmax_bytes = "lots"\n')
    path = a_config_file(tmp_path, text)
    assert f"{path}:9: [[sources]] #2 max_bytes" in config_error(path).message


def test_the_default_tier_must_be_a_tier(tmp_path):
    message = config_error(a_config_file(
        tmp_path, '[access]\ndefault_tier = "gold"\n\n[tiers]\nfree = "teaser"\n'
                  'client = "full"\n')).message
    assert "default_tier = 'gold' is not a tier" in message
    assert "known tiers: free, client" in message


def test_there_must_be_at_least_one_tier(tmp_path):
    assert "at least one tier" in config_error(a_config_file(tmp_path, "[tiers]\n")).message


def test_source_names_must_be_unique(tmp_path):
    text = ('[[sources]]\nname = "news"\nurl = "a.xml"\n\n'
            '[[sources]]\nname = "news"\nurl = "b.xml"\n')
    message = config_error(a_config_file(tmp_path, text)).message
    assert "repeated: news" in message


# -- line breaks in values that end up in mail headers ---------------------------------------

@pytest.mark.parametrize(("text", "where"), [
    ('[site]\nname = "Ledger\\nBcc: all@example.com"\n', "[site] name"),
    ('[delivery]\nfrom = "Ledger <d@example.com>\\r\\nBcc: all@example.com"\n',
     "[delivery] from"),
    ('[delivery]\nreply_to = "r@example.com\\rBcc: all@example.com"\n', "[delivery] reply_to"),
    ('[delivery]\nunsubscribe_mailto = "u@example.com\\r\\nBcc: all@example.com"\n',
     "[delivery] unsubscribe_mailto"),
    ('[editions]\nsubject = "{site}\\r\\nBcc: all@example.com"\n', "[editions] subject"),
    ('[smtp]\nlocal_hostname = "me.example.com\\r\\nRSET"\n', "[smtp] local_hostname"),
    ('[site]\nname = """Ledger\nGazette"""\n', "[site] name"),
])
def test_a_value_that_goes_into_a_mail_header_must_be_one_line(tmp_path, text, where):
    # CVE-2024-6923: a line break in a header value could start a header of its own.
    message = config_error(a_config_file(tmp_path, text)).message
    assert f"{where}: " in message
    assert "one line" in message


# -- paths -----------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "digest"
    a_config_file(folder, """\
[database]
url = "sqlite:///data/digest.db"

[delivery]
outbox = "mail/outbox"

[templates]
dir = "my-templates"

[[sources]]
name = "local"
url = "feeds/local.xml"

[[sources]]
name = "remote"
url = "HTTPS://news.example.com/feed.xml"
""")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../../etc/digest/digest.toml"), environ={})
    base = folder.resolve()
    assert config.database_url == f"sqlite:///{base / 'data' / 'digest.db'}"
    assert config.outbox_dir == base / "mail" / "outbox"
    assert config.resolve_path(config.templates.dir) == base / "my-templates"
    local, remote = config.sources
    assert config.source_location(local) == str(base / "feeds" / "local.xml")
    assert config.source_location(remote) == "HTTPS://news.example.com/feed.xml"


def test_absolute_paths_and_other_databases_are_left_as_they_are(tmp_path):
    outbox = tmp_path / "absolute" / "outbox"
    feed = tmp_path / "absolute" / "feed.xml"
    db = tmp_path / "absolute" / "digest.db"
    for url, expected in [
        (f"sqlite:///{db}", f"sqlite:///{db}"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://digest@db.example.com:5432/digest",
         "postgresql+psycopg://digest@db.example.com:5432/digest"),
    ]:
        config = load_config(a_config_file(tmp_path / "conf", f"""\
[database]
url = "{url}"

[delivery]
outbox = "{outbox}"

[[sources]]
name = "local"
url = "{feed}"
"""), environ={})
        assert config.database_url == expected
        assert config.outbox_dir == outbox
        assert config.source_location(config.sources[0]) == str(feed)


def test_the_default_database_and_outbox_are_beside_the_config_file(tmp_path):
    config = load_config(a_config_file(tmp_path, MINIMAL), environ={})
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'digest.db'}"
    assert config.outbox_dir == tmp_path.resolve() / "outbox"


# -- the environment -------------------------------------------------------------------------

def test_secrets_and_the_database_may_come_from_the_environment(tmp_path):
    path = a_config_file(tmp_path, """\
[database]
url = "sqlite:///digest.db"

[smtp]
password = "from-the-file"

[web]
secret_key = "from-the-file"
""")
    config = load_config(path, environ={
        "DIGEST_SECRET_KEY": "env-secret", "DIGEST_SMTP_PASSWORD": "env-password",
        "DIGEST_DATABASE_URL": "postgresql+psycopg://digest@db.example.com/digest"})
    assert config.web.secret_key.get_secret_value() == "env-secret"
    assert config.smtp.password.get_secret_value() == "env-password"
    assert config.database_url == "postgresql+psycopg://digest@db.example.com/digest"


def test_the_environment_fills_sections_the_file_does_not_have(tmp_path):
    config = load_config(a_config_file(tmp_path, MINIMAL),
                         environ={"DIGEST_SECRET_KEY": "env-secret",
                                  "DIGEST_SMTP_PASSWORD": "env-password"})
    assert config.web.secret_key.get_secret_value() == "env-secret"
    assert config.smtp.password.get_secret_value() == "env-password"
    assert config.web.base_url == "https://digest.news.example.com"  # the rest: defaults


def test_an_empty_environment_variable_does_not_override(tmp_path):
    path = a_config_file(tmp_path, '[web]\nsecret_key = "from-the-file"\n')
    config = load_config(path, environ={"DIGEST_SECRET_KEY": ""})
    assert config.web.secret_key.get_secret_value() == "from-the-file"


def test_the_process_environment_is_used_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", "process-secret")
    monkeypatch.delenv("DIGEST_DATABASE_URL", raising=False)
    config = load_config(a_config_file(tmp_path, MINIMAL))
    assert config.web.secret_key.get_secret_value() == "process-secret"


def test_a_config_built_from_a_dict_reports_bad_values_without_a_file(tmp_path):
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"smtp": {"password": 5}}, base_dir=tmp_path, environ={})
    assert raised.value.message.startswith("invalid config: <config>: [smtp] password: ")


# -- config.example.toml ---------------------------------------------------------------------

def test_the_example_config_loads(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # its paths resolve against its own folder, not the cwd
    config = load_config(EXAMPLE, environ={})
    assert config.default_tier == "free"
    assert config.database_url == f"sqlite:///{ROOT / 'digest.db'}"
    assert config.source_location(config.sources[0]) == str(ROOT / "samples" / "feed.xml")
    assert Path(config.source_location(config.sources[0])).is_file()


def _sections_of(text: str) -> dict[str, str]:
    """The text of each [section] (or [[section]]) of a TOML file, comments included."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^\s*\[\[?\s*([\w.-]+)\s*\]\]?", line)
        if header:
            current = header.group(1)
            sections.setdefault(current, [])
        else:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def _documented_keys() -> list[tuple[str, str]]:
    """(section, key) for every field of every section model the Config knows."""
    keys = []
    for section, field in Config.model_fields.items():
        if section == "base_dir":
            continue
        model = field.annotation
        if typing.get_origin(model) is list:
            model = typing.get_args(model)[0]
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, inner in model.model_fields.items():
                keys.append((section, inner.alias or name))
        else:
            keys.append(("", section))  # a table of free-form keys, such as [tiers]
    return keys


def test_the_walk_over_the_config_models_finds_every_section_and_aliases():
    keys = _documented_keys()
    assert ("delivery", "from") in keys and ("delivery", "from_") not in keys
    assert ("sources", "max_bytes") in keys and ("", "tiers") in keys
    assert {section for section, _ in keys} >= {"database", "site", "sources", "collect",
                                                 "access", "subscribers", "editions",
                                                 "delivery", "smtp", "web", "templates"}
    assert DeliveryConfig.model_fields["from_"].alias == "from"
    assert "timeout_seconds" in SourceConfig.model_fields


@pytest.mark.parametrize(("section", "key"), _documented_keys())
def test_the_example_config_documents_every_key(section, key):
    sections = _sections_of(EXAMPLE.read_text(encoding="utf-8"))
    if section == "":
        assert key in sections, f"config.example.toml has no [{key}] section"
        return
    assert section in sections, f"config.example.toml has no [{section}] section"
    # The key, set or shown in a comment, within its own section.
    pattern = rf"^\s*#?\s*{re.escape(key)}\s*="
    assert re.search(pattern, sections[section], re.MULTILINE), (
        f"config.example.toml does not document [{section}] {key}")


def test_a_tier_may_be_a_table_with_its_own_call_to_action(tmp_path):
    config = load_config(a_config_file(tmp_path, (
        '[tiers]\nclient = "full"\nfree = { access = "teaser", cta = "Subscribe to read", '
        'cta_url = "https://news.example.com/subscribe?next={url}" }\n')), environ={})
    assert config.tiers["client"].access == "full" and config.tiers["client"].cta == ""
    assert (config.tiers["free"].access, config.tiers["free"].cta) == ("teaser",
                                                                       "Subscribe to read")
    assert config.tiers["free"].cta_url.endswith("?next={url}")


def test_site_language_must_be_known_and_lists_may_have_their_own_greeting(tmp_path):
    config = load_config(a_config_file(tmp_path, (
        '[site]\nlanguage = "fr"\n\n[lists.evening]\ngreeting = "Bonsoir"\n')), environ={})
    assert config.site.language == "fr"
    assert config.lists["evening"].greeting == "Bonsoir"
    from digest.app import App

    assert App(config).renderer().greetings == {"evening": "Bonsoir"}

    message = config_error(a_config_file(tmp_path, '[site]\nlanguage = "klingon-xx"\n')).message
    assert "[site] language" in message and "unknown language 'klingon-xx'" in message
