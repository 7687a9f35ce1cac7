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


def test_head_or_put_on_a_confirmation_link_confirms_nothing(reader_site):
    app, server = reader_site.app, reader_site.server
    signed = app.self_service.sign_up("bo@example.org", ["morning"])
    link = app.confirm_url(signed.subscriber_id).replace(app.config.web.base_url, server.url)
    assert httpx.head(link).status_code == 200
    assert httpx.put(link).status_code == 405
    statuses = {row.email: row.status for row in app.subscribers.rows("morning")}
    assert statuses["bo@example.org"] != "active"
    assert httpx.post(link).status_code == 200                        # the button does
    assert {row.email: row.status for row in app.subscribers.rows("morning")
            }["bo@example.org"] == "active"


def test_head_or_delete_on_a_preferences_link_changes_nothing(reader_site):
    app, server = reader_site.app, reader_site.server
    ana = app.subscribers.get_subscriber("ana@example.org")
    link = app.preferences_url(ana.id, app.lists.get("morning").id).replace(
        app.config.web.base_url, server.url)
    assert httpx.head(link, params={"action": "leave"}).status_code == 200
    assert httpx.delete(link).status_code == 405
    assert reader_site.status() == "active"
