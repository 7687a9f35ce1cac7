"""Personalisation: per-subscriber cost once the variant is rendered, against rendering with
Jinja2 + premailer for every subscriber (what the design forbids)."""

from __future__ import annotations

import argparse
import time
from datetime import date

from bench.common import Row, median_of, print_table, sample_posts, verdict
from digest.message import MessageBuilder, Recipient
from digest.render import EditionView, Renderer, SiteView, make_environment, post_view
from digest.weblinks import WebVersionLinks
from subscribers.tokens import TokenSigner

SITE = SiteView("Example Newsroom", "https://news.example.com", "https://news.example.com/signin")
EDITION = EditionView(1, date(2026, 11, 25), "Example Newsroom — 25 November 2026",
                      "Morning Briefing", "morning")


def setup(posts: int) -> tuple[Renderer, list, MessageBuilder]:
    renderer = Renderer(make_environment(), SITE, max_html_bytes=100_000)
    views = [post_view(p, mode="full") for p in sample_posts(posts)]
    variant = renderer.render("full", EDITION, views)
    signer = TokenSigner("bench-secret")
    preferences = TokenSigner("bench-secret", purpose="preferences")
    web = WebVersionLinks("bench-secret", base_url="https://digest.news.example.com",
                          max_age_days=365)
    issued = 1_796_000_000
    # Every per-reader link the production path signs: unsubscribe, preferences, web version.
    builder = MessageBuilder(
        variant=variant, sender="Example Digest <digest@news.example.com>",
        list_name="Morning Briefing", list_id_domain="digest.news.example.com",
        list_slug="morning", edition_id=1, tag="2026-11-25-morning",
        unsubscribe_url=lambda sid: "https://digest.news.example.com/unsubscribe/"
                                    + signer.sign(sid, 1, issued_at=issued),
        preferences_url=lambda sid: "https://digest.news.example.com/preferences/"
                                    + preferences.sign(sid, 1, issued_at=issued),
        web_version_url=lambda sid: web.url(1, "full", sid, issued_at=issued),
        message_id_key="bench-secret", issued_at=issued)
    return renderer, views, builder


def recipients(count: int) -> list[Recipient]:
    names = ["Ana Ribeiro", "Jonas Brandt", "Zoë Ångström", "", "Kit O'Neill"]
    return [Recipient(n, n, f"reader{n}@example.org", names[n % len(names)])
            for n in range(count)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--baseline-subscribers", type=int, default=100)
    parser.add_argument("--posts", type=int, default=5)
    # Many short runs: on a shared VM the speed of a run varies by 2x from second to second,
    # and the median of many short runs is the typical cost.
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    renderer, views, builder = setup(args.posts)
    people = recipients(args.subscribers)

    def personalise() -> float:
        started = time.perf_counter()
        for person in people:
            builder.build(person).raw
        return (time.perf_counter() - started) / len(people)

    def render_each() -> float:
        started = time.perf_counter()
        for person in people[:args.baseline_subscribers]:
            variant = renderer.render("full", EDITION, views)   # Jinja2 + premailer + text
            MessageBuilder(variant=variant, sender="Example Digest <digest@news.example.com>",
                           list_name="Morning Briefing", list_id_domain="d.example.com",
                           list_slug="morning", edition_id=1,
                           unsubscribe_url=lambda sid: "https://d.example.com/u").build(
                               person).raw
        return (time.perf_counter() - started) / args.baseline_subscribers

    fast, fast_runs = median_of(args.runs, personalise)
    slow, slow_runs = median_of(args.runs, render_each)
    size = len(builder.build(people[0]).raw)
    ratio = slow / fast
    print_table(
        f"Personalisation ({args.posts} posts, a {size / 1024:.0f} KB message, "
        f"medians of {args.runs} runs)",
        [Row("render once + substitute, per subscriber", f"{fast * 1e6:.1f} µs", "≤ 20 µs",
             verdict(fast <= 20e-6)),
         Row("render + premailer per subscriber", f"{slow * 1e3:.1f} ms", "≥ 10 ms", ""),
         Row("ratio", f"{ratio:,.0f}×", "≥ 500×", verdict(ratio >= 500))])


if __name__ == "__main__":
    main()
