"""Any display name and subject round-trips through `email` parsing, with exactly our headers.

Property-based (Hypothesis): whatever text a subscriber's name or an edition's subject holds —
any Unicode, quotes, ``=?``, line breaks, 300 characters — a mail client parsing the message
reads back that text (line breaks made spaces, as :func:`digest.message.one_line` promises;
spaces at either end are not kept by RFC 5322 parsers), the one address we set, and no header
we did not write.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_message import (EXPECTED_HEADERS, VARIANT, a_builder, a_recipient, assert_well_formed,
                          display_name, header_names, parse)

from digest.message import one_line

# Any text a database or CSV may hold (lone surrogates cannot be stored or encoded as UTF-8).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BUILDER = a_builder()


def assert_exactly_our_headers(raw: bytes) -> None:
    names = header_names(raw)
    assert sorted(names) == sorted(EXPECTED_HEADERS), names      # each once, nothing injected


@SETTINGS
@given(name=TEXT)
def test_any_display_name_round_trips_with_exactly_our_headers(name):
    outgoing = BUILDER.build(a_recipient(name))
    raw = outgoing.raw
    assert_well_formed(raw)
    assert_exactly_our_headers(raw)
    to = parse(outgoing)["To"]
    assert [a.addr_spec for a in to.addresses] == ["ada@example.com"]
    expected = one_line(name).strip()
    if expected:
        assert display_name(raw).strip() == expected
    else:
        assert to.addresses[0].display_name.strip() == ""


@SETTINGS
@given(subject=TEXT.filter(lambda s: one_line(s).strip()))
def test_any_subject_round_trips_with_exactly_our_headers(subject):
    outgoing = a_builder(replace(VARIANT, subject=subject)).build(a_recipient())
    raw = outgoing.raw
    assert_well_formed(raw)
    assert_exactly_our_headers(raw)
    assert parse(outgoing)["Subject"].strip() == one_line(subject).strip()
