"""Signed, expiring tokens for unsubscribe and preferences links."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from itsdangerous import TimestampSigner

from digest.errors import InputError
from subscribers.tokens import PREFERENCES, UNSUBSCRIBE, TokenSigner, TokenSubject

KEY = "a-test-secret-key"
SIGNED_AT = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def rejected(signer: TokenSigner, token: str) -> InputError:
    with pytest.raises(InputError) as raised:
        signer.verify(token)
    return raised.value


def test_a_token_names_the_subscriber_and_the_list_it_was_signed_for():
    signer = TokenSigner(KEY)
    assert signer.verify(signer.sign(42, 7)) == TokenSubject(subscriber_id=42, list_id=7)
    # Another signer with the same key and purpose (another process) accepts it too.
    assert TokenSigner(KEY).verify(signer.sign(1, 23)) == TokenSubject(1, 23)


def test_tokens_for_different_subjects_differ_and_do_not_mix_up():
    signer = TokenSigner(KEY)
    tokens = {signer.sign(1, 23), signer.sign(12, 3), signer.sign(123, 1)}
    assert len(tokens) == 3
    assert {signer.verify(t) for t in tokens} == {TokenSubject(1, 23), TokenSubject(12, 3),
                                                 TokenSubject(123, 1)}


def test_a_token_can_go_into_a_url_as_it_is():
    token = TokenSigner(KEY).sign(987654321, 123456)
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", token)


BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def tampered(token: str) -> list[str]:
    """Ways to alter a token: each character changed, cut short, grown, aimed elsewhere."""
    variants = []
    for index, char in enumerate(token):
        # Half the alphabet away flips the top bit of the six a character stands for: a bit
        # that is always used (a changed low bit of the last character may be padding).
        other = BASE64URL[(BASE64URL.index(char) + 32) % 64] if char in BASE64URL else "A"
        variants.append(token[:index] + other + token[index + 1:])
    payload, timestamp, signature = token.rsplit(".", 2)
    subscriber_id, list_id = payload.split(".")
    variants += [token[:-1], token + "A", "", ".", "..", "garbage", f"{timestamp}.{signature}",
                 f"{int(subscriber_id) + 1}.{list_id}.{timestamp}.{signature}",
                 f"{subscriber_id}.{int(list_id) + 1}.{timestamp}.{signature}",
                 f"{list_id}.{subscriber_id}.{timestamp}.{signature}",
                 f"{payload}.{timestamp}.{signature[::-1]}", f"{payload}.{signature}"]
    return variants


def test_a_forged_or_altered_token_is_rejected():
    signer = TokenSigner(KEY)
    token = signer.sign(42, 7)
    variants = tampered(token)
    assert len(variants) > len(token) and token not in variants
    for altered in variants:
        assert rejected(signer, altered).message == "this link is not valid", altered


def test_a_token_whose_payload_is_not_two_ids_is_rejected_even_if_signed_with_the_key():
    forger = TimestampSigner(KEY, salt=f"digest.{UNSUBSCRIBE}")
    signer = TokenSigner(KEY)
    for payload in (b"42", b"42.7.1", b"forty-two.7", b"", b"42.", b".7"):
        assert rejected(signer, forger.sign(payload).decode()).message == "this link is not valid"


def test_a_token_signed_with_another_key_is_rejected():
    token = TokenSigner("another-key").sign(42, 7)
    assert rejected(TokenSigner(KEY), token).message == "this link is not valid"


def test_a_token_for_another_purpose_is_rejected():
    unsubscribe = TokenSigner(KEY, purpose=UNSUBSCRIBE)
    preferences = TokenSigner(KEY, purpose=PREFERENCES)
    assert rejected(preferences, unsubscribe.sign(42, 7)).message == "this link is not valid"
    assert rejected(unsubscribe, preferences.sign(42, 7)).message == "this link is not valid"
    assert preferences.verify(preferences.sign(42, 7)) == TokenSubject(42, 7)


def test_signing_needs_a_secret_key():
    with pytest.raises(InputError) as raised:
        TokenSigner("")
    assert "DIGEST_SECRET_KEY" in (raised.value.hint or "")


def test_a_token_works_until_its_maximum_age_and_not_after():
    signer = TokenSigner(KEY, max_age_days=30)
    with time_machine.travel(SIGNED_AT, tick=False):
        token = signer.sign(42, 7)
    with time_machine.travel(SIGNED_AT + timedelta(days=30), tick=False):
        assert signer.verify(token) == TokenSubject(42, 7)
    with time_machine.travel(SIGNED_AT + timedelta(days=30, seconds=1), tick=False):
        error = rejected(signer, token)
    assert error.message == "this link has expired"
    assert error.hint == "use the link in a more recent email"


def test_the_default_maximum_age_is_a_year():
    signer = TokenSigner(KEY)
    with time_machine.travel(SIGNED_AT, tick=False):
        token = signer.sign(42, 7)
    with time_machine.travel(SIGNED_AT + timedelta(days=364), tick=False):
        assert signer.verify(token) == TokenSubject(42, 7)
    with time_machine.travel(SIGNED_AT + timedelta(days=366), tick=False):
        assert rejected(signer, token).message == "this link has expired"


def test_the_maximum_age_is_the_verifiers_not_the_signers():
    with time_machine.travel(SIGNED_AT, tick=False):
        token = TokenSigner(KEY, max_age_days=365).sign(42, 7)
    with time_machine.travel(SIGNED_AT + timedelta(days=10), tick=False):
        assert TokenSigner(KEY, max_age_days=365).verify(token) == TokenSubject(42, 7)
        assert rejected(TokenSigner(KEY, max_age_days=7), token).message == \
            "this link has expired"


def test_a_token_dated_in_the_future_is_rejected():
    with time_machine.travel(SIGNED_AT + timedelta(days=2), tick=False):
        token = TokenSigner(KEY).sign(42, 7)
    with time_machine.travel(SIGNED_AT, tick=False):
        rejected(TokenSigner(KEY), token)
