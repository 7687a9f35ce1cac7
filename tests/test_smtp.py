"""The SMTP transport against a real SMTP server on loopback (aiosmtpd).

What a user of the transport relies on: one connection carries a whole batch and stays open
across ``send`` calls until ``close``; the configured security (none, STARTTLS, implicit TLS) is
what is used, never silently less; every reply is turned into the right outcome for that one
message (4xx retry, 5xx failed, RCPT 5.1.x a hard bounce) without stopping the batch; a server
that hangs up between messages costs a reconnect, not a message; what the server receives is
the message byte for byte; and the password never shows up in an error, a log or a repr.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest
import trustme

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.transports.smtp import SmtpSettings, SmtpTransport
from support.smtp_server import HANG_UP, Authenticator, SmtpServer, free_port
from support.split_reply_server import SplitReplyServer

pytestmark = pytest.mark.timeout(20)

SENDER = "bounces@news.example.com"
USERNAME = "digest-sender"
PASSWORD = "Pa55-w0rd_that-must-not-leak"


# -- helpers -------------------------------------------------------------------------------


def raw_message(number: int, to: str, body: bytes | None = None) -> bytes:
    """A small RFC 5322 message with CRLF line endings, as digest.message builds them."""
    if body is None:
        body = f"Hello reader {number},\r\n\r\nthe news of the day.\r\n".encode()
    head = (f"From: Ledger Digest <digest@news.example.com>\r\n"
            f"To: Reader {number} <{to}>\r\n"
            f"Subject: Morning digest {number}\r\n"
            f"Message-ID: <msg-{number}@news.example.com>\r\n"
            f"Date: Wed, 25 Nov 2026 07:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n"
            f"\r\n").encode()
    return head + body


def make_message(number: int, to: str | None = None, *, raw: bytes | None = None,
                 body: bytes | None = None) -> OutgoingMessage:
    to = to or f"reader{number}@example.org"
    data = raw if raw is not None else raw_message(number, to, body)
    return OutgoingMessage(
        delivery_id=number, envelope_from=SENDER, to_address=to, to_name=f"Reader {number}",
        from_header="Ledger Digest <digest@news.example.com>",
        subject=f"Morning digest {number}",
        headers={"Message-ID": f"<msg-{number}@news.example.com>"},
        tag="morning-2026-11-25", build_raw=lambda: data)


def make_batch(count: int, start: int = 1) -> list[OutgoingMessage]:
    return [make_message(n) for n in range(start, start + count)]


def transport_for(server: SmtpServer, *, security: str = "none", username: str = "",
                  password: str = "", ssl_context: ssl.SSLContext | None = None,
                  timeout: float = 2.0) -> SmtpTransport:
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=server.port, security=security,
                                      username=username, password=password, timeout=timeout,
                                      local_hostname="digest.test"),
                         ssl_context=ssl_context)


def by_id(results: list[SendResult]) -> dict[int, SendResult]:
    ids = [r.delivery_id for r in results]
    assert len(ids) == len(set(ids)), f"more than one result for a message: {results}"
    return {r.delivery_id: r for r in results}


def outcomes(results: list[SendResult]) -> dict[int, Outcome]:
    return {i: r.outcome for i, r in by_id(results).items()}


@pytest.fixture
def transport(smtp_server: SmtpServer) -> Iterator[SmtpTransport]:
    transport = transport_for(smtp_server)
    yield transport
    transport.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# -- connection reuse ----------------------------------------------------------------------


def test_a_batch_goes_over_one_connection(smtp_server: SmtpServer,
                                          transport: SmtpTransport) -> None:
    batch = make_batch(5)

    results = transport.send(batch)

    assert outcomes(results) == {n: Outcome.SENT for n in range(1, 6)}
    assert smtp_server.handler.sessions == 1
    assert smtp_server.handler.connections == 1
    assert [r.rcpt_tos for r in smtp_server.received] == [[m.to_address] for m in batch]
    assert all(r.mail_from == SENDER for r in smtp_server.received)


def test_the_connection_stays_open_across_send_calls_until_close(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    first = transport.send(make_batch(2, start=1))
    second = transport.send(make_batch(3, start=3))

    assert all(r.outcome is Outcome.SENT for r in first + second)
    assert smtp_server.handler.sessions == 1
    assert len(smtp_server.received) == 5

    transport.close()
    transport.close()  # closing twice is harmless
    assert transport.send([make_message(6)])[0].outcome is Outcome.SENT
    assert smtp_server.handler.sessions == 2


def test_an_empty_batch_opens_no_connection(smtp_server: SmtpServer,
                                            transport: SmtpTransport) -> None:
    assert transport.send([]) == []
    assert smtp_server.handler.sessions == 0


def test_one_result_per_message_with_its_delivery_id(smtp_server: SmtpServer,
                                                     transport: SmtpTransport) -> None:
    smtp_server.handler.rcpt_replies["reader2@example.org"] = ["451 4.7.1 Try later"]
    smtp_server.handler.rcpt_replies["reader3@example.org"] = ["550 5.1.1 No such user"]
    batch = make_batch(4)

    results = transport.send(batch)

    assert sorted(r.delivery_id for r in results) == [1, 2, 3, 4]


# -- what the server receives --------------------------------------------------------------


def test_the_message_arrives_byte_for_byte(smtp_server: SmtpServer,
                                           transport: SmtpTransport) -> None:
    message = make_message(1, body="Grüße aus Lanternport — 8bit body\r\n\r\nbye\r\n".encode())

    [result] = transport.send([message])

    assert result.outcome is Outcome.SENT
    [received] = smtp_server.received
    assert received.data == message.raw
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["reader1@example.org"]
    assert received.message["Subject"] == "Morning digest 1"


def test_lines_starting_with_a_dot_survive_dot_stuffing(smtp_server: SmtpServer,
                                                        transport: SmtpTransport) -> None:
    body = (b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b".\r\n"                      # a lone dot would end DATA if not stuffed
            b"middle . dot and a final dot.\r\n"
            b"\r\n"
            b".\r\n")
    message = make_message(1, body=body)

    [result] = transport.send([message])
    after = transport.send([make_message(2)])  # the session is still in step

    assert result.outcome is Outcome.SENT
    assert after[0].outcome is Outcome.SENT
    assert smtp_server.received[0].data == message.raw
    assert smtp_server.received[0].message.get_content() == body.decode()
    assert smtp_server.received[1].data == make_message(2).raw


def test_a_message_without_a_final_line_break_is_terminated_properly(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    message = make_message(1, body=b"no line break at the end")

    results = transport.send([message, make_message(2)])

    assert outcomes(results) == {1: Outcome.SENT, 2: Outcome.SENT}
    assert smtp_server.received[0].data == message.raw + b"\r\n"


def test_bare_line_feeds_go_out_as_crlf(smtp_server: SmtpServer,
                                        transport: SmtpTransport) -> None:
    # RFC 5321 2.3.8: bare LF must not be sent; servers reject it or read it differently
    # (the SMTP smuggling fixes). A lone "." line must still be stuffed.
    crlf = raw_message(1, "reader1@example.org", b"first\r\n.\r\nlast\r\n")
    message = make_message(1, raw=crlf.replace(b"\r\n", b"\n"))

    results = transport.send([message, make_message(2)])

    assert outcomes(results) == {1: Outcome.SENT, 2: Outcome.SENT}
    assert smtp_server.received[0].data == crlf


# -- provider id ---------------------------------------------------------------------------


def test_the_provider_id_is_the_queue_id_from_the_data_reply(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    results = by_id(transport.send(make_batch(2)))

    assert results[1].provider_id == "smtp:Q00001"
    assert results[2].provider_id == "smtp:Q00002"


def test_without_a_queue_id_the_message_id_is_kept(smtp_server: SmtpServer,
                                                   transport: SmtpTransport) -> None:
    smtp_server.handler.data_replies.append("250 2.0.0 Message accepted")

    [result] = transport.send([make_message(1)])

    assert result.outcome is Outcome.SENT
    assert result.provider_id == "<msg-1@news.example.com>"


# -- replies to RCPT -----------------------------------------------------------------------


def test_a_4xx_to_rcpt_retries_that_message_only(smtp_server: SmtpServer,
                                                 transport: SmtpTransport) -> None:
    smtp_server.handler.rcpt_replies["reader2@example.org"] = ["451 4.7.1 Greylisted, try later"]

    results = by_id(transport.send(make_batch(3)))

    assert {i: r.outcome for i, r in results.items()} == {
        1: Outcome.SENT, 2: Outcome.RETRY, 3: Outcome.SENT}
    assert "451" in results[2].error and "Greylisted" in results[2].error
    assert results[2].hard_bounce is False
    assert smtp_server.handler.sessions == 1
    # The refused transaction was reset: the next message has only its own recipient.
    assert [r.rcpt_tos for r in smtp_server.received] == [["reader1@example.org"],
                                                         ["reader3@example.org"]]


def test_a_550_to_rcpt_is_a_hard_bounce_and_the_batch_goes_on(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    smtp_server.handler.rcpt_replies["reader2@example.org"] = [
        "550 5.1.1 <reader2@example.org>: Recipient address rejected: User unknown"]

    results = by_id(transport.send(make_batch(4)))

    assert {i: r.outcome for i, r in results.items()} == {
        1: Outcome.SENT, 2: Outcome.FAILED, 3: Outcome.SENT, 4: Outcome.SENT}
    assert results[2].hard_bounce is True
    assert "550" in results[2].error and "User unknown" in results[2].error
    assert not any(r.hard_bounce for i, r in results.items() if i != 2)
    assert len(smtp_server.received) == 3
    assert smtp_server.handler.sessions == 1


@pytest.mark.parametrize(("reply", "hard_bounce"), [
    ("550 5.1.1 <reader1@example.org>: Recipient address rejected: User unknown", True),
    ("550 5.1.1 User unknown", True),
    ("551 5.1.6 User has moved", True),
    ("553 5.1.3 Bad recipient address syntax", True),
    ("550 No such user here", True),            # no enhanced code: the basic code decides
    ("552 5.2.2 Mailbox full", False),
    ("554 5.7.1 Relay access denied", False),
    # Policy and reputation blocks are about us, not the address: suppressing the
    # subscriber for them would lose every reader at that provider.
    ("550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", False),
    ("550 5.7.26 Unauthenticated email is not accepted from this domain", False),
])
def test_which_rcpt_refusals_are_hard_bounces(smtp_server: SmtpServer,
                                              transport: SmtpTransport, reply: str,
                                              hard_bounce: bool) -> None:
    smtp_server.handler.rcpt_replies["reader1@example.org"] = [reply]

    [result] = transport.send([make_message(1)])

    assert result.outcome is Outcome.FAILED
    assert result.hard_bounce is hard_bounce


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
@pytest.mark.parametrize(("stage", "reply"), [
    ("MAIL FROM", "553 5.7.1 Sender not allowed"),
    # Postfix checks the sender at RCPT time too; that says nothing about the recipient.
    ("RCPT TO", "550 5.1.8 <bounces@news.example.com>: Sender address rejected: "
                "Domain not found"),
])
def test_a_refused_sender_stops_the_batch_and_keeps_what_was_sent(
        pipelining: bool, stage: str, reply: str) -> None:
    with SmtpServer(pipelining=pipelining) as server:
        if stage == "MAIL FROM":
            server.handler.mail_replies.extend(["", reply])   # the second message's MAIL
        else:
            server.handler.rcpt_replies["reader2@example.org"] = [reply]
        transport = transport_for(server)
        try:
            with pytest.raises(TransportError) as caught:
                transport.send(make_batch(3))
        finally:
            transport.close()
    exc = caught.value
    assert not exc.retry and "refused our sender <" in exc.message and stage in exc.message
    assert "[delivery] from" in (exc.hint or "")
    assert [(r.delivery_id, r.outcome) for r in exc.handed_over] == [(1, Outcome.SENT)]
    assert [r.rcpt_tos for r in server.received] == [["reader1@example.org"]]


# -- replies at the end of DATA ------------------------------------------------------------


@pytest.mark.parametrize(("reply", "outcome"), [
    ("451 4.3.0 Temporary queue failure", Outcome.RETRY),
    ("452 4.3.1 Insufficient system storage", Outcome.RETRY),
    ("554 5.6.0 Message content rejected", Outcome.FAILED),
    ("552 5.3.4 Message too big", Outcome.FAILED),
])
def test_a_refusal_at_the_end_of_data(smtp_server: SmtpServer, transport: SmtpTransport,
                                      reply: str, outcome: Outcome) -> None:
    smtp_server.handler.data_replies.append(reply)

    results = by_id(transport.send(make_batch(2)))

    assert results[1].outcome is outcome
    assert reply.split()[0] in results[1].error
    assert results[1].hard_bounce is False      # content refusals say nothing of the address
    assert results[1].provider_id == ""
    assert results[2].outcome is Outcome.SENT
    assert smtp_server.handler.sessions == 1
    assert len(smtp_server.received) == 1


# -- 421 and lost connections --------------------------------------------------------------


def test_a_421_to_rcpt_drops_the_connection_and_the_next_message_reconnects(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    smtp_server.handler.rcpt_replies["reader2@example.org"] = [
        "421 4.7.0 Too many connections, closing"]

    results = by_id(transport.send(make_batch(3)))

    assert {i: r.outcome for i, r in results.items()} == {
        1: Outcome.SENT, 2: Outcome.RETRY, 3: Outcome.SENT}
    assert "421" in results[2].error
    assert smtp_server.handler.connections == 2
    assert [r.rcpt_tos for r in smtp_server.received] == [["reader1@example.org"],
                                                         ["reader3@example.org"]]


def test_a_421_at_the_end_of_data_retries_and_reconnects(smtp_server: SmtpServer,
                                                         transport: SmtpTransport) -> None:
    smtp_server.handler.data_replies.append("421 4.3.2 System shutting down")

    results = by_id(transport.send(make_batch(2)))

    assert results[1].outcome is Outcome.RETRY
    assert results[2].outcome is Outcome.SENT
    assert smtp_server.handler.connections == 2


def test_a_server_that_hangs_up_between_messages_costs_a_reconnect_not_a_message(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    smtp_server.handler.messages_per_connection = 2

    results = transport.send(make_batch(5))

    assert outcomes(results) == {n: Outcome.SENT for n in range(1, 6)}
    assert [r.data for r in smtp_server.received] == [m.raw for m in make_batch(5)]
    assert smtp_server.handler.connections == 3


def test_a_server_that_says_421_before_hanging_up_costs_a_reconnect_not_a_message(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    # Postfix and others answer "421 4.4.2 Error: timeout exceeded" to whatever comes next on
    # a connection they have dropped as idle; nothing of the message was handed over.
    transport.send([make_message(1)])
    smtp_server.handler.mail_replies.append("421 4.4.2 mx.example.org Error: timeout exceeded")

    [result] = transport.send([make_message(2)])

    assert result.outcome is Outcome.SENT
    assert len(smtp_server.received) == 2
    assert smtp_server.handler.connections == 2


def test_an_idle_connection_closed_by_the_server_is_reopened() -> None:
    with SmtpServer(idle_timeout=0.3) as server:
        transport = transport_for(server)
        try:
            assert transport.send([make_message(1)])[0].outcome is Outcome.SENT
            time.sleep(0.6)                 # the server's idle timeout closes the connection
            assert transport.send([make_message(2)])[0].outcome is Outcome.SENT
        finally:
            transport.close()
        assert len(server.received) == 2
        assert server.handler.connections == 2


def test_a_connection_lost_after_the_message_was_handed_over_is_uncertain(
        smtp_server: SmtpServer, transport: SmtpTransport) -> None:
    smtp_server.handler.data_replies.append(HANG_UP)

    results = by_id(transport.send(make_batch(2)))

    # It may have been delivered: resending it blindly could send it twice.
    assert results[1].outcome is Outcome.UNCERTAIN
    assert results[2].outcome is Outcome.SENT
    assert smtp_server.handler.connections == 2
    assert [r.rcpt_tos for r in smtp_server.received] == [["reader2@example.org"]]


def test_a_server_gone_between_batches_raises_a_retryable_transport_error() -> None:
    server = SmtpServer()
    server.__enter__()
    transport = transport_for(server)
    try:
        assert transport.send([make_message(1)])[0].outcome is Outcome.SENT
    finally:
        server.__exit__(None, None, None)

    with pytest.raises(TransportError) as caught:
        transport.send(make_batch(2, start=2))
    transport.close()

    assert caught.value.retry is True


def test_a_server_gone_mid_batch_keeps_what_was_sent_and_retries_the_rest() -> None:
    server = SmtpServer()
    server.__enter__()
    transport = transport_for(server)
    stopped = []

    def stop_server_then_build() -> bytes:
        # Message 3's bytes are built while the server takes message 2 (handed over, its
        # reply not yet read): the server goes away then.
        server.__exit__(None, None, None)
        stopped.append(True)
        return raw_message(3, "reader3@example.org")

    batch = [make_message(1), make_message(2), make_message(3), make_message(4)]
    batch[2].build_raw = stop_server_then_build
    try:
        results = by_id(transport.send(batch))
    finally:
        if not stopped:
            server.__exit__(None, None, None)
        transport.close()

    assert results[1].outcome is Outcome.SENT
    assert results[2].outcome in (Outcome.UNCERTAIN, Outcome.RETRY)
    assert results[3].outcome is Outcome.RETRY
    assert results[4].outcome is Outcome.RETRY
    assert results[4].error


def test_a_354_written_on_its_own_is_acknowledged_at_once() -> None:
    # Postfix writes its 354 in a segment of its own after its other replies when our write
    # reaches it in two pieces; with Nagle's algorithm on its side, that segment waits for our
    # ACK, which a client waiting with nothing to send delays by 40 ms — per message (102
    # messages/s into Postfix on one connection instead of 726).
    if not hasattr(socket, "TCP_QUICKACK"):
        pytest.skip("TCP_QUICKACK is Linux's")
    with SplitReplyServer() as server:
        transport = SmtpTransport(SmtpSettings("127.0.0.1", server.port, security="none",
                                               timeout=10))
        try:
            for start in range(1, 41, 10):
                assert set(outcomes(transport.send(make_batch(10, start))).values()) == {
                    Outcome.SENT}
        finally:
            transport.close()
    assert server.accepted == 40
    waits = sorted(server.waits)
    assert waits[len(waits) // 2] < 0.02, [round(w * 1000, 1) for w in waits]


# -- cannot connect at all -----------------------------------------------------------------


def test_connection_refused_is_a_retryable_transport_error() -> None:
    port = free_port()                      # nothing listens there
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none",
                                           timeout=2))

    with pytest.raises(TransportError) as caught:
        transport.send(make_batch(2))

    assert caught.value.retry is True
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_server_that_never_answers_times_out_as_a_retryable_transport_error() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)                    # the kernel accepts; nobody ever says 220
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1",
                                               port=silent.getsockname()[1],
                                               security="none", timeout=0.3))
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            transport.send([make_message(1)])

    assert caught.value.retry is True
    assert time.monotonic() - started < 5


# -- security: STARTTLS, implicit TLS, AUTH -------------------------------------------------


def test_starttls_and_auth(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    authenticator = Authenticator(USERNAME, PASSWORD)
    with SmtpServer(tls_context=server_tls, authenticator=authenticator) as server:
        transport = transport_for(server, security="starttls", username=USERNAME,
                                  password=PASSWORD, ssl_context=client_tls)
        try:
            results = transport.send(make_batch(3))
        finally:
            transport.close()

    assert outcomes(results) == {1: Outcome.SENT, 2: Outcome.SENT, 3: Outcome.SENT}
    assert all(r.tls for r in server.received)
    assert all(r.login == USERNAME.encode() for r in server.received)
    assert server.handler.connections == 1
    assert server.handler.sessions == 2      # EHLO before and after STARTTLS
    assert authenticator.attempts == 1
    assert [r.data for r in server.received] == [m.raw for m in make_batch(3)]


def test_starttls_with_an_untrusted_certificate_is_refused(server_tls: ssl.SSLContext) -> None:
    with SmtpServer(tls_context=server_tls) as server:
        # The default context trusts the system CAs, not our throwaway one.
        transport = transport_for(server, security="starttls")
        with pytest.raises(TransportError) as caught:
            transport.send([make_message(1)])

    assert caught.value.retry is False
    assert "TLS" in str(caught.value)
    assert server.received == []


def test_starttls_configured_but_not_offered_is_a_clear_error(
        smtp_server: SmtpServer, client_tls: ssl.SSLContext) -> None:
    transport = transport_for(smtp_server, security="starttls", username=USERNAME,
                              password=PASSWORD, ssl_context=client_tls)

    with pytest.raises(TransportError) as caught:
        transport.send(make_batch(2))

    assert caught.value.retry is False
    assert "STARTTLS" in str(caught.value)
    assert caught.value.hint and "security" in caught.value.hint
    assert smtp_server.received == []       # never falls back to plain text


def test_implicit_tls(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    with SmtpServer(tls_context=server_tls, implicit_tls=True) as server:
        transport = transport_for(server, security="tls", ssl_context=client_tls)
        try:
            first = transport.send(make_batch(2))
            second = transport.send(make_batch(1, start=3))
        finally:
            transport.close()

    assert all(r.outcome is Outcome.SENT for r in first + second)
    assert all(r.tls for r in server.received)
    assert server.handler.connections == 1
    assert [r.data for r in server.received] == [m.raw for m in make_batch(3)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls_with_auth(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    authenticator = Authenticator(USERNAME, PASSWORD)
    with SmtpServer(tls_context=server_tls, implicit_tls=True,
                    authenticator=authenticator) as server:
        transport = transport_for(server, security="tls", username=USERNAME,
                                  password=PASSWORD, ssl_context=client_tls)
        try:
            results = transport.send(make_batch(2))
        finally:
            transport.close()

    assert outcomes(results) == {1: Outcome.SENT, 2: Outcome.SENT}
    assert all(r.tls and r.login == USERNAME.encode() for r in server.received)


def test_implicit_tls_against_a_plain_server_is_a_clear_error(
        smtp_server: SmtpServer, client_tls: ssl.SSLContext) -> None:
    transport = transport_for(smtp_server, security="tls", ssl_context=client_tls)

    with pytest.raises(TransportError) as caught:
        transport.send([make_message(1)])

    assert caught.value.retry is False
    assert "TLS" in str(caught.value)


def test_security_none_sends_in_plain_text(smtp_server: SmtpServer,
                                           transport: SmtpTransport) -> None:
    transport.send([make_message(1)])

    assert smtp_server.received[0].tls is False


def test_a_server_requiring_auth_without_a_username_configured_is_a_transport_error(
        server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    # Every MAIL would get "530 Authentication required": that is the configuration, not
    # the recipients, and must not fail each delivery for good.
    with SmtpServer(tls_context=server_tls,
                    authenticator=Authenticator(USERNAME, PASSWORD)) as server:
        transport = transport_for(server, security="starttls", ssl_context=client_tls)
        try:
            with pytest.raises(TransportError) as caught:
                transport.send(make_batch(3))
        finally:
            transport.close()

    assert caught.value.retry is False
    assert "530" in str(caught.value)
    assert server.received == []


def test_a_wrong_password_is_a_permanent_error_that_does_not_show_it(
        server_tls: ssl.SSLContext, client_tls: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-but-still-secret"
    authenticator = Authenticator(USERNAME, PASSWORD)
    with SmtpServer(tls_context=server_tls, authenticator=authenticator) as server:
        transport = transport_for(server, security="starttls", username=USERNAME,
                                  password=wrong, ssl_context=client_tls)
        with pytest.raises(TransportError) as caught:
            transport.send(make_batch(2))
        transport.close()

    error = caught.value
    assert error.retry is False
    assert USERNAME in str(error)
    shown = " ".join([str(error), repr(error), error.hint or "", repr(error.args)])
    assert wrong not in shown
    assert server.received == []
    assert server.handler.connections == 1   # no reconnect loop hammering the server
    assert_not_leaked(wrong, caplog, capfd)


def test_a_refused_login_closes_its_connection(server_tls: ssl.SSLContext,
                                               client_tls: ssl.SSLContext) -> None:
    with SmtpServer(tls_context=server_tls,
                    authenticator=Authenticator(USERNAME, PASSWORD)) as server:
        transport = transport_for(server, security="starttls", username=USERNAME,
                                  password="wrong", ssl_context=client_tls)
        with pytest.raises(TransportError) as caught:
            transport.send([make_message(1)])

        # Even while the error (and its traceback) is still alive, as in a caller's handler.
        assert caught.value is not None
        assert wait_until(lambda: server.controller.smtpd.transport is None), \
            "the connection of the refused login is still open"


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_password_is_never_logged(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext,
                                      caplog: pytest.LogCaptureFixture,
                                      capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with SmtpServer(tls_context=server_tls,
                    authenticator=Authenticator(USERNAME, PASSWORD)) as server:
        transport = transport_for(server, security="starttls", username=USERNAME,
                                  password=PASSWORD, ssl_context=client_tls)
        server.handler.rcpt_replies["reader2@example.org"] = ["550 5.1.1 User unknown"]
        try:
            results = transport.send(make_batch(2))
        finally:
            transport.close()

    assert by_id(results)[1].outcome is Outcome.SENT
    assert all(PASSWORD not in r.error for r in results)
    assert_not_leaked(PASSWORD, caplog, capfd)


def assert_not_leaked(password: str, caplog: pytest.LogCaptureFixture,
                      capfd: pytest.CaptureFixture[str]) -> None:
    encoded = [base64.b64encode(password.encode()).decode(),
               base64.b64encode(f"\0{USERNAME}\0{password}".encode()).decode()]
    ours = [r for r in caplog.records if r.name.startswith("digest")]
    for record in ours:
        text = record.getMessage() + str(record.exc_info or "")
        assert password not in text and not any(e in text for e in encoded), record
    assert password not in caplog.text        # the server's own log shows no plain password
    out, err = capfd.readouterr()           # smtplib's debug output would go to stderr
    assert password not in out + err and not any(e in out + err for e in encoded)


def test_settings_repr_hides_the_password() -> None:
    settings = SmtpSettings(host="smtp.example.com", port=587, username=USERNAME,
                            password=PASSWORD)

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in f"{settings}"
    assert USERNAME in repr(settings) and "smtp.example.com" in repr(settings)
    assert PASSWORD not in repr(SmtpTransport(settings).settings)


# -- pipelining ----------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_refusals_are_read_right_with_and_without_pipelining(pipelining: bool) -> None:
    with SmtpServer(pipelining=pipelining) as server:
        server.handler.rcpt_replies["reader2@example.org"] = ["550 5.1.1 User unknown"]
        server.handler.rcpt_replies["reader3@example.org"] = ["451 4.7.1 Try later"]
        transport = transport_for(server)
        try:
            results = by_id(transport.send(make_batch(3)))
            server.handler.mail_replies.append("451 4.3.0 Try MAIL later")
            results.update(by_id(transport.send(make_batch(2, start=4))))
        finally:
            transport.close()
        advertised = server.handler.pipelining
    assert advertised is pipelining
    assert {i: r.outcome for i, r in results.items()} == {
        1: Outcome.SENT, 2: Outcome.FAILED, 3: Outcome.RETRY, 4: Outcome.RETRY,
        5: Outcome.SENT}
    assert results[2].hard_bounce and not results[4].hard_bounce
    assert "MAIL FROM: 451" in results[4].error
    assert [r.rcpt_tos for r in server.received] == [["reader1@example.org"],
                                                     ["reader5@example.org"]]
    assert server.handler.connections == 1
