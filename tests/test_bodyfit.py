"""Story bodies fitted to the mail column: wide images, missing alt text, dead links."""

from __future__ import annotations

import lxml.html

from digest.bodyfit import COLUMN_PX, fit_body
from digest.sanitize import clean_html


def test_a_wide_image_is_narrowed_to_the_column_and_keeps_its_proportions():
    fitted = fit_body('<p><img src="https://x.example/a.jpg" width="1200" height="800"></p>',
                      alt="Harbour at dawn")
    image = lxml.html.fragment_fromstring(fitted).find(".//img")
    assert image.get("width") == str(COLUMN_PX)
    assert image.get("height") is None
    assert image.get("alt") == "Harbour at dawn"


def test_a_small_image_and_its_own_alt_text_are_left_alone():
    body = '<p><img src="https://x.example/a.jpg" width="300" height="200" alt="Map"></p>'
    assert fit_body(body, alt="Title") is body


def test_links_without_an_href_are_unwrapped_and_their_text_kept():
    fitted = fit_body('<p>Before <a>dead</a> &amp; <a href="https://ok.example/">live</a> '
                      "after</p>")
    assert fitted == '<p>Before dead &amp; <a href="https://ok.example/">live</a> after</p>'


def test_the_sanitiser_leaves_no_empty_link_and_no_image_without_a_source():
    cleaned = clean_html('<p><a href="javascript:alert(1)">click</a> '
                         '<img src="data:image/png;base64,AAAA"> text</p>')
    tree = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    assert tree.findall(".//a") == [] and tree.findall(".//img") == []
    assert tree.text_content() == "click  text"
