"""The desk's promises under attack, over real HTTP: no password → no desk; no session, a
forged cookie or a POST without its CSRF token changes nothing; logins are rate-limited; a
hashed password (argon2 or scrypt) works and the plain one never needs to be in the file."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import httpx
import pytest
from conftest import make_config
from support.asgi_server import AsgiServer
from support.desk import EDITOR_PASSWORD, readers, stories

from digest.app import App
from digest.config import config_from_dict
from digest.errors import ConfigError
from digest.jobs import send_edition
from digest.web.app import create_app
from digest.web.editor.auth import LOGIN_ATTEMPTS, hash_password, verify_hash


def an_app(tmp_path, sqlite_url, **web) -> App:
    app = App(make_config(tmp_path, sqlite_url, web=web))
    app.lists.create("morning", "Morning Briefing", approval=True)
    readers(app)
    stories(app)
    return app


@pytest.fixture
def site(tmp_path, sqlite_url) -> Iterator[tuple[App, AsgiServer, int]]:
    app = an_app(tmp_path, sqlite_url, editor_password=EDITOR_PASSWORD)
    edition_id = send_edition(app, "morning", date.today()).edition_id
    with AsgiServer(create_app(app, webhooks={})) as server:
        yield app, server, edition_id


@contextmanager
def signed_in(server: AsgiServer, password: str = EDITOR_PASSWORD) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/editor/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        response = client.post("/editor/login", data={"password": password, "csrf": token})
        assert response.status_code == 303, response.text
        yield client


def status_of(app: App, edition_id: int) -> str:
    from digest.approval import get_edition
    from sqlmodel import Session
    with Session(app.engine) as session:
        return get_edition(session, edition_id).status


def test_without_a_password_the_desk_does_not_exist(tmp_path, sqlite_url):
    app = an_app(tmp_path, sqlite_url)
    with AsgiServer(create_app(app, webhooks={})) as server:
        for path in ("/editor/login", "/editor/lists", "/editor/lists/morning/preview.html"):
            assert httpx.get(server.url + path).status_code == 404
        assert httpx.post(server.url + "/editor/login",
                          data={"password": ""}).status_code == 404


def test_pages_without_a_session_or_with_a_forged_cookie_go_to_the_login(site):
    app, server, edition_id = site
    forged = {"digest_editor": "eyJzaWQiOiJ4In0.forged.signature"}
    for cookies in ({}, forged):
        with httpx.Client(base_url=server.url, cookies=cookies) as client:
            for path in ("/editor/lists", f"/editor/editions/{edition_id}",
                         "/editor/lists/morning/preview.html?tier=free"):
                response = client.get(path)
                assert (response.status_code, response.headers["location"]) == (
                    303, "/editor/login")
            approve = client.post(f"/editor/editions/{edition_id}/approve", data={"csrf": "x"})
            assert approve.status_code == 303
    assert status_of(app, edition_id) == "awaiting"


def test_a_cookie_signed_with_another_key_is_refused(site, tmp_path, sqlite_url):
    from digest.web.editor.auth import Password, Sessions
    app, server, edition_id = site
    other, _ = Sessions("another-key", Password(EDITOR_PASSWORD, "")).new()
    with httpx.Client(base_url=server.url, cookies={"digest_editor": other}) as client:
        assert client.get("/editor/lists").status_code == 303


def test_a_post_without_the_csrf_token_changes_nothing(site):
    app, server, edition_id = site
    with signed_in(server) as client:
        for data in ({}, {"csrf": "0" * 64}):
            for action in ("approve", "cancel"):
                response = client.post(f"/editor/editions/{edition_id}/{action}", data=data)
                assert response.status_code == 403
        assert client.post(f"/editor/editions/{edition_id}/subject",
                           data={"subject": "Hijacked"}).status_code == 403
        # The right token from a page of another site: refused as well.
        token = re.search(r'name="csrf" value="([^"]+)"',
                          client.get(f"/editor/editions/{edition_id}").text).group(1)
        assert client.post(f"/editor/editions/{edition_id}/subject",
                           data={"subject": "Hijacked", "csrf": token},
                           headers={"Origin": "https://evil.example"}).status_code == 403
        page = client.get(f"/editor/editions/{edition_id}")
        assert page.status_code == 200 and "Hijacked" not in page.text
    assert status_of(app, edition_id) == "awaiting"


def test_a_login_without_its_form_token_is_refused(site):
    _app, server, _edition_id = site
    response = httpx.post(server.url + "/editor/login", data={"password": EDITOR_PASSWORD})
    assert response.status_code == 403 and "digest_editor=" not in response.headers.get(
        "set-cookie", "")


def test_failed_logins_are_limited(site):
    _app, server, _edition_id = site
    with httpx.Client(base_url=server.url) as client:
        token = re.search(r'name="csrf" value="([^"]+)"',
                          client.get("/editor/login").text).group(1)
        for _ in range(LOGIN_ATTEMPTS):
            wrong = client.post("/editor/login", data={"password": "guess", "csrf": token})
            assert wrong.status_code == 401
        limited = client.post("/editor/login", data={"password": EDITOR_PASSWORD,
                                                     "csrf": token})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_logging_out_ends_the_session(site):
    _app, server, _edition_id = site
    with signed_in(server) as client:
        page = client.get("/editor/lists")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert client.post("/editor/logout", data={"csrf": token}).status_code == 303
        assert client.get("/editor/lists").status_code == 303


def test_the_preview_is_raw_html_behind_a_tight_policy(site):
    _app, server, _edition_id = site
    with signed_in(server) as client:
        response = client.get("/editor/lists/morning/preview.html?tier=free")
        assert response.status_code == 200 and response.text.startswith("<!DOCTYPE html>")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        unknown = client.get("/editor/lists/morning/preview.html?tier=gold")
        assert unknown.status_code == 400 and "unknown tier" in unknown.text


@pytest.mark.parametrize("kind", ["argon2", "scrypt"])
def test_a_hashed_password_signs_in(kind, tmp_path, sqlite_url):
    if kind == "argon2":
        hashed = hash_password(EDITOR_PASSWORD)
    else:
        digest = hashlib.scrypt(EDITOR_PASSWORD.encode(), salt=b"pepperpot", n=2 ** 14, r=8,
                                p=1, dklen=64).hex()
        hashed = f"scrypt:16384:8:1$pepperpot${digest}"
    assert verify_hash(hashed, EDITOR_PASSWORD) and not verify_hash(hashed, "wrong")
    app = an_app(tmp_path, sqlite_url, editor_password_hash=hashed)
    with AsgiServer(create_app(app, webhooks={})) as server:
        with signed_in(server) as client:
            assert client.get("/editor/lists").status_code == 200


def test_the_password_may_come_from_the_environment_and_a_bad_hash_is_named(tmp_path):
    config = config_from_dict({}, base_dir=tmp_path,
                              environ={"DIGEST_EDITOR_PASSWORD": "from-env"})
    assert config.web.editor_password.get_secret_value() == "from-env"
    with pytest.raises(ConfigError, match="editor_password_hash"):
        config_from_dict({"web": {"editor_password_hash": "md5:abc"}}, base_dir=tmp_path,
                         environ={})


def test_digest_editor_hash_prints_a_hash_the_desk_accepts(tmp_path, sqlite_url, digest,
                                                           monkeypatch):
    import io
    config = tmp_path / "digest.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(EDITOR_PASSWORD + "\n"))
    result = digest(config, "editor-hash")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert hashed.startswith("$argon2id$") and verify_hash(hashed, EDITOR_PASSWORD)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert digest(config, "editor-hash").exit_code == 2
