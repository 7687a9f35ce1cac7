"""No configured secret is ever printed: not in an error, a log line or a traceback.

Providers echo credentials back: a 401 body that repeats the ``Authorization`` header showed
``Bearer SG.…`` (SendGrid) and a base64 ``api:key-…`` (Mailgun) on the terminal, and Resend's key
appeared at ``--debug``. The fakes here answer every request with such a body; the command is
run as a user runs it — in-process, and as a real process with ``--debug`` and ``--verbose``.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from support.builders import an_entry, an_rss_feed
from support.fake_api import echo_credentials
from support.fake_mailgun import FakeMailgun
from support.fake_resend import FakeResend
from support.fake_sendgrid import FakeSendgrid
from support.smtp_server import Authenticator, SmtpServer

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"sendgrid": "SG.live+key/with=odd-chars_0123456789",
        "mailgun": "key-0123456789abcdef0123456789abcdef",
        "resend": "re_live_0123456789abcdefABCDEF"}
SECRET_KEY = "web-secret-0123456789"


def forms(secret: str) -> list[str]:
    """Every way the secret could appear in a text."""
    basic = base64.b64encode(f"api:{secret}".encode()).decode()
    return [secret, quote(secret, safe=""), quote_plus(secret), basic, basic.rstrip("="),
            base64.b64encode(secret.encode()).decode().rstrip("=")]


def fake_for(provider: str):
    key = KEYS[provider]
    return {"sendgrid": lambda: FakeSendgrid(api_key=key), "mailgun": lambda: FakeMailgun(
        api_key=key), "resend": lambda: FakeResend(api_key=key)}[provider]()


def a_site(tmp_path: Path, database_url: str, provider: str, fake) -> Path:
    """A config sending through ``provider``'s fake, a list with a reader and a collected post."""
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry(title="Harbour reopens")))
    section = f'api_key = "{KEYS[provider]}"\nbase_url = "{fake.url}"\n'
    if provider == "mailgun":
        section += f'domain = "{fake.domain}"\n'
    path = tmp_path / "digest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n'
                    f'[web]\nsecret_key = "{SECRET_KEY}"\n'
                    f'[delivery]\ntransport = "{provider}"\nmax_attempts = 1\n'
                    f'[{provider}]\n{section}'
                    f'[[sources]]\nname = "news"\nurl = "{feed}"\n', encoding="utf-8")
    return path


def prepare(digest, config: Path) -> None:
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    assert digest(config, "subscribers", "add", "ana@example.org", "--list", "morning"
                  ).exit_code == 0
    assert digest(config, "collect").exit_code == 0


def assert_no_secret_in(text: str, provider: str) -> None:
    for secret in (KEYS[provider], SECRET_KEY):
        for form in forms(secret):
            assert form not in text, f"{form!r} was printed"


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "resend"])
def test_a_provider_echoing_the_key_in_a_401_does_not_get_it_printed(
        provider, tmp_path, sqlite_url, digest):
    with fake_for(provider) as fake:
        config = a_site(tmp_path, sqlite_url, provider, fake)
        prepare(digest, config)
        fake.script(echo_credentials(401, times=50))
        result = digest(config, "-v", "send", "--list", "morning", "--date", "2026-11-25")
    assert len(fake.requests) >= 1                   # the provider was asked, and echoed
    assert result.exit_code != 0 or "failed" in result.output
    assert "401" in result.output
    assert_no_secret_in(result.output, provider)


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "resend"])
def test_not_even_at_debug_in_a_real_process(provider, tmp_path, sqlite_url, digest):
    with fake_for(provider) as fake:
        config = a_site(tmp_path, sqlite_url, provider, fake)
        prepare(digest, config)
        fake.script(echo_credentials(401, times=50))
        done = subprocess.run([sys.executable, "-m", "digest", "--config", str(config),
                               "--debug", "send", "--list", "morning", "--date", "2026-11-25"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert len(fake.requests) >= 1
    assert "401" in output
    assert_no_secret_in(output, provider)


SMTP_PASSWORD = "smtp-pass-0123456789"


def an_smtp_site(tmp_path: Path, database_url: str, server: SmtpServer) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry(title="Harbour reopens")))
    path = tmp_path / "digest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n'
                    f'[web]\nsecret_key = "{SECRET_KEY}"\n'
                    f'[delivery]\ntransport = "smtp"\nmax_attempts = 1\n'
                    f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
                    f'username = "digest"\npassword = "{SMTP_PASSWORD}"\n'
                    f'[[sources]]\nname = "news"\nurl = "{feed}"\n', encoding="utf-8")
    return path


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_smtp_server_echoing_the_login_does_not_get_it_printed(tmp_path, sqlite_url, digest,
                                                                  debug):
    plain = base64.b64encode(f"\0digest\0{SMTP_PASSWORD}".encode()).decode()
    with SmtpServer(authenticator=Authenticator("digest", SMTP_PASSWORD)) as server:
        config = an_smtp_site(tmp_path, sqlite_url, server)
        prepare(digest, config)
        # A server that quotes the session's credentials when it refuses mail.
        server.handler.mail_replies = [f"530 5.7.0 refused: AUTH PLAIN {plain} "
                                       f"(password {SMTP_PASSWORD})"] * 5
        done = subprocess.run([sys.executable, "-m", "digest", "--config", str(config),
                               *(["--debug"] if debug else []), "send", "--list", "morning",
                               "--date", "2026-11-25"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert "530 5.7.0 refused" in output and done.returncode != 0
    assert ("Traceback" in output) == debug
    for form in (SMTP_PASSWORD, plain, SECRET_KEY):
        assert form not in output


def test_the_scrubber_knows_every_configured_secret(tmp_path):
    """Each secret of the config (every SecretStr, found by walking the model, so that a
    secret added later is covered too) and the database URL's password."""
    from pydantic import SecretStr

    from digest.app import App
    from digest.config import Config
    from conftest import make_config

    sections: dict[str, dict[str, str]] = {}
    for name, field in Config.model_fields.items():
        model = field.annotation
        for key, inner in getattr(model, "model_fields", {}).items():
            if inner.annotation is SecretStr:
                sections.setdefault(name, {})[key] = f"{name}-{key}-s3cret".replace("_", "-")
    # A password hash must look like one to be accepted.
    sections["web"]["editor_password_hash"] = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA"
    assert len(sections) >= 6             # web, smtp and every email API
    secrets = [value for section in sections.values() for value in section.values()]
    config = make_config(tmp_path, "postgresql+psycopg://digest:db-pass-s3cret@db.example/d",
                         **{name: ({"username": "digest", **values} if name == "smtp"
                                   else values) for name, values in sections.items()})
    scrubber = App(config).scrubber
    for secret in [*secrets, "db-pass-s3cret"]:
        for form in forms(secret):
            assert form not in scrubber.text(f"echo {form} echo"), form
