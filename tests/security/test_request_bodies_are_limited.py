"""Every route refuses a large body with 413 before reading it, and a slow one with 408.

A 300 MB POST to a valid unsubscribe link once took the server from 100 MB to 685 MB. Now a
declared Content-Length over the limit is refused without a byte read, a chunked body as soon
as it passes the limit, and a body trickled in slowly times out.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from digest.web.body import FORM_BODY_LIMIT

def raw_request(url: str, head: str, parts: list[bytes], pause: float = 0.0) -> bytes:
    """Send ``head`` and then each part (pausing between them); return the answer's head."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        for part in parts:
            try:
                connection.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break                       # the server has answered and closed: fine
            time.sleep(pause)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
        return answer

def request_head(url: str, extra: str) -> str:
    where = urlsplit(url)
    return (f"POST {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\n")

def test_a_huge_declared_body_is_refused_before_it_is_read(reader_site):
    site, link = reader_site, reader_site.link
    started = time.monotonic()
    # Declares 300 MB and sends none of it: the answer must come without waiting for the body.
    answer = raw_request(link, request_head(link, f"Content-Length: {300_000_000}\r\n"), [])
    assert answer.startswith(b"HTTP/1.1 413")
    assert time.monotonic() - started < 5
    assert site.status() == "active"

def test_a_chunked_body_is_refused_once_it_passes_the_limit(reader_site):
    site, link = reader_site, reader_site.link
    chunk = b"x" * 4096
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (FORM_BODY_LIMIT // len(chunk) + 4)
    answer = raw_request(link, request_head(link, "Transfer-Encoding: chunked\r\n"),
                         [*parts, b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413")
    assert site.status() == "active"

def test_a_form_post_just_over_the_limit_is_refused(reader_site):
    site, link = reader_site, reader_site.link
    body = "List-Unsubscribe=One-Click&" + "x" * FORM_BODY_LIMIT
    assert httpx.post(link, content=body).status_code == 413
    assert site.status() == "active"

def test_a_slow_body_times_out_with_408(reader_site):
    site, link = reader_site, reader_site.link
    started = time.monotonic()
    answer = raw_request(link, request_head(link, "Content-Length: 26\r\n"),
                         [b"List-Unsubscribe=", b"One", b"-Cl", b"ick"], pause=site.body_timeout)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < site.body_timeout * 4 + 2
    assert site.status() == "active"

def test_webhooks_take_a_few_megabytes_but_no_more(reader_site):
    from digest.web.webhooks.routes import MAX_WEBHOOK_BYTES

    server = reader_site.server
    # Over the form limit but under the webhook's: read and judged (an unreadable body, 400).
    response = httpx.post(f"{server.url}/webhooks/postmark", auth=("u", "p"),
                          content=b"[" + b" " * (FORM_BODY_LIMIT * 4) + b"]")
    assert response.status_code != 413
    answer = raw_request(server.url + "/webhooks/postmark",
                         request_head(server.url + "/webhooks/postmark",
                                      f"Content-Length: {MAX_WEBHOOK_BYTES + 1}\r\n"), [])
    assert answer.startswith(b"HTTP/1.1 413")
