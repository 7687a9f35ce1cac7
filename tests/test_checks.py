"""The checks the desk runs on a built digest: the paywall (as data cases), links, preheader."""

from __future__ import annotations

import pytest
from support.builders import a_post

from digest.checks import links, paywall_leaks, preheader
from digest.outbound import OutgoingMessage

SECRET = "<p>The levy funds a new ferry, council papers show.</p>"
STORY = f"<p>A 40-cent surcharge is proposed.</p>{SECRET}<p>Vote on Friday.</p>"


def a_message(*, html: str, text: str = "", subject: str = "Morning") -> OutgoingMessage:
    return OutgoingMessage(delivery_id=0, envelope_from="d@example.com", to_address="r@x.org",
                           to_name="", from_header="d@example.com", subject=subject,
                           headers={}, build_html=lambda: html, build_text=lambda: text)


def page(body: str, pre: str = "Ferry levy") -> str:
    return (f'<html><body><div class="preheader">{pre}</div>{body}'
            f'<a href="https://news.example.com/signin">Sign in</a></body></html>')


CASES = {
    "a clean teaser": (dict(html=page("<p>A 40-cent surcharge is proposed.</p>"),
                            text="A 40-cent surcharge is proposed."), []),
    "the whole story in the HTML": (dict(html=page(STORY)), ["HTML"]),
    "a paragraph in the text part": (dict(html=page("<p>A 40-cent surcharge is proposed.</p>"),
                                          text="The levy funds a new ferry, council papers "
                                               "show."), ["text part"]),
    "a paragraph in the subject": (dict(html=page(""), subject="The levy funds a new ferry, "
                                                                "council papers show."),
                                   ["subject"]),
    # The preheader is hidden text of the HTML: both say so.
    "a paragraph in the preheader": (dict(html=page("", pre="Vote on Friday.")),
                                     ["HTML", "preheader"]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_paywall_check(case):
    message, expected = CASES[case]
    leaks = paywall_leaks(a_message(**message), [a_post(title="Levy", body_html=STORY)])
    assert sorted({leak.where for leak in leaks}) == sorted(expected)
    assert all(leak.post_title == "Levy" for leak in leaks)


def test_text_the_variant_may_show_anyway_is_no_leak():
    repeated = a_post(body_html="<p>Harbour news.</p><p>Harbour news.</p>")
    boilerplate = "<p>Send us your tips at tips@news.example.com.</p>"
    paid = a_post(body_html=f"<p>Bridge reopens.</p>{boilerplate}")
    public = a_post(body_html=f"<p>Storm warning.</p>{boilerplate}", categories=["Free"])
    html = page(f"<p>Harbour news.</p><p>Bridge reopens.</p><p>Storm warning.</p>{boilerplate}")
    assert paywall_leaks(a_message(html=html), [repeated, paid], [public]) == []


def test_links_and_preheader_are_read_from_the_html():
    message = a_message(html=page('<a href="https://a.example/1">One</a>'
                                  '<a href="https://a.example/1">again</a>', pre="  Top  story "))
    assert [(link.url, link.text) for link in links(message)] == [
        ("https://a.example/1", "One"), ("https://news.example.com/signin", "Sign in")]
    assert preheader(message) == "Top story"
