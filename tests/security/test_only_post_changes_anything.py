"""Only a POST may change anything: HEAD is a bodiless GET, every other method gets 405.

Mail scanners and link previewers send HEAD (and sometimes OPTIONS) to every link in a message;
none of them may unsubscribe a reader.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import make_config

from digest.app import App
from digest.web.app import create_app

def test_head_on_an_unsubscribe_link_changes_nothing(reader_site):
    site, link = reader_site, reader_site.link
    response = httpx.head(link)
    assert response.status_code == 200
    assert response.content == b""
    assert site.status() == "active"

@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
def test_other_methods_on_an_unsubscribe_link_get_405_and_change_nothing(reader_site, method):
    site, link = reader_site, reader_site.link
    response = httpx.request(method, link, content="List-Unsubscribe=One-Click")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert site.status() == "active"

def test_a_one_click_post_still_unsubscribes(reader_site):
    site, link = reader_site, reader_site.link
    assert httpx.post(link, content="List-Unsubscribe=One-Click").status_code == 200
    assert site.status() == "unsubscribed"

def test_every_route_names_its_methods(tmp_path, sqlite_url):
    routes = create_app(App(make_config(tmp_path, sqlite_url))).routes
    assert routes and all(route.methods for route in routes)    # None would mean "any method"

def test_the_health_check_answers_get_and_refuses_post(reader_site):
    server = reader_site.server
    assert httpx.get(f"{server.url}/healthz").text == "ok"
    assert httpx.post(f"{server.url}/healthz").status_code == 405
