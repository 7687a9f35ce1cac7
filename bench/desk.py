"""The editors' desk: serving an edition page (every tier rendered through the production
path, plus the size, link, preheader and paywall checks) over HTTP, against the ceiling of a
`digest preview` of each tier, one after the other, measured in the same run — the rendering
the page cannot avoid.

An edition of 40 stories of a few KB each ([editions] max_posts), two tiers (free = teaser,
client = full), a SQLite database in a temporary folder, the Starlette app through its test
client (the whole ASGI stack, without sockets).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from datetime import date
from pathlib import Path

from bench.common import Row, median_of, print_table, sample_posts, timed, verdict

PASSWORD = "bench editor password"


def setup(folder: Path, posts: int):  # noqa: ANN201 - (App, edition id)
    from digest.app import App
    from digest.collect import SourceReport, store_entries
    from digest.config import config_from_dict
    from digest.db import upgrade
    from digest.jobs import send_edition
    from digest.sources.base import Entry

    config = config_from_dict({
        "database": {"url": f"sqlite:///{folder / 'bench.db'}"},
        "delivery": {"transport": "null"},
        "web": {"secret_key": "bench", "editor_password": PASSWORD},
    }, base_dir=folder, environ={})
    app = App(config)
    upgrade(app.engine)
    app.lists.create("morning", "Morning Briefing", approval=True)
    app.subscribers.add("ana@example.org", list_slug="morning", tier="free")
    entries = [Entry(guid=f"g{p.id}", url=p.url, title=p.title, author=p.author,
                     published_at=p.published_at, categories=("Town",), summary="",
                     body_html=p.body_html) for p in sample_posts(posts)]
    store_entries(app.engine, "bench", entries, SourceReport("bench"))
    report = send_edition(app, "morning", date.today())
    return app, report.edition_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=40)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)

    from starlette.testclient import TestClient

    from digest.preview import render_preview
    from digest.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        app, edition_id = setup(Path(tmp), args.posts)
        client = TestClient(create_app(app, webhooks={}), base_url="http://127.0.0.1")
        form = client.get("/editor/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        client.post("/editor/login", data={"password": PASSWORD, "csrf": token},
                    follow_redirects=False)

        def previews() -> float:
            return timed(lambda: [render_preview(app, "morning", date.today(), tier=tier)
                                  for tier in app.config.tiers])

        def page() -> float:
            response = None

            def get() -> None:
                nonlocal response
                response = client.get(f"/editor/editions/{edition_id}")
            seconds = timed(get)
            assert response is not None and response.status_code == 200, response
            return seconds

        page()                                                       # warm the templates
        preview, _ = median_of(args.runs, previews)
        served, values = median_of(args.runs, page)
        size = len(client.get(f"/editor/editions/{edition_id}").content)
        app.engine.dispose()
    ratio = served / preview
    print_table(f"Editors' desk, an edition of {args.posts} stories, 2 tiers "
                f"(median of {args.runs})", [
                    Row("a preview of each tier (ceiling)", f"{preview * 1000:.0f} ms"),
                    Row("edition page over HTTP", f"{served * 1000:.0f} ms", "≤ 1.5 s",
                        verdict(served <= 1.5)),
                    Row("page / previews", f"{ratio:.2f}×", "≤ 1.5× (checks + page)",
                        verdict(ratio <= 1.5)),
                    Row("page HTML", f"{size / 1024:.0f} KB"),
                ])
    print(f"  runs: {', '.join(f'{v * 1000:.0f}' for v in values)} ms")


if __name__ == "__main__":
    main()
