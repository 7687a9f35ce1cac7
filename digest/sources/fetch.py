"""Move a source's bytes: HTTP(S) with conditional GET and limits, or a local file.

Every redirect hop is checked against the source's :class:`AddressRule` (no SSRF), and the
body is decoded by :mod:`digest.sources.decode`, so ``max_bytes`` bounds memory for any input.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from digest.errors import SourceError
from digest.sources.addresses import AddressRule
from digest.sources.base import Validators
from digest.sources.decode import ACCEPT_ENCODING, GZIP_MAGIC, decoded

MAX_REDIRECTS = 10


@dataclass(frozen=True)
class Fetched:
    body: bytes              # decompressed
    url: str                 # after redirects: the base for relative links
    content_type: str
    validators: Validators
    not_modified: bool = False


def fetch_url(client: httpx.Client, url: str, validators: Validators, *,
              timeout: float, max_bytes: int, rule: AddressRule | None = None) -> Fetched:
    """GET ``url`` with If-None-Match / If-Modified-Since; stop reading past ``max_bytes``.

    Redirects are followed here, not by httpx, so that every hop's address is checked against
    ``rule`` (by default: the configured url's, private redirects refused).
    """
    rule = rule or AddressRule(url)
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                         "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
               "Accept-Encoding": ACCEPT_ENCODING}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    # httpx's timeout bounds each read, not the whole fetch: a server sending a byte at a time
    # would never trip it, so the body must also arrive before a deadline.
    deadline = time.monotonic() + timeout
    try:
        request = client.build_request("GET", url, headers=headers, timeout=timeout)
        for _hop in range(MAX_REDIRECTS + 1):
            rule.check_before(str(request.url))
            response = client.send(request, stream=True, follow_redirects=False)
            try:
                rule.check_connected(str(request.url), _peer_address(response))
                if response.is_redirect and response.next_request is not None:
                    request = response.next_request
                    continue
                return _read(response, url, validators, max_bytes, deadline, timeout)
            finally:
                response.close()
        raise SourceError(f"{url} redirects more than {MAX_REDIRECTS} times",
                          hint="point the source at the feed's final address")
    except httpx.TimeoutException as exc:
        raise _timed_out(url, timeout) from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot fetch {url}: {exc}") from exc
    except (httpx.InvalidURL, UnicodeError) as exc:
        # Not HTTPErrors: a bad port, or a host name IDNA cannot encode (a label over 63 bytes).
        raise SourceError(f"{url} is not a valid URL ({exc})",
                          hint="check the source's url in the config") from exc


def _read(response: httpx.Response, url: str, validators: Validators, max_bytes: int,
          deadline: float, timeout: float) -> Fetched:
    if response.status_code == 304:
        return Fetched(b"", str(response.url), "", validators, not_modified=True)
    if response.status_code >= 400:
        raise SourceError(f"HTTP {response.status_code} {response.reason_phrase} from {url}",
                          hint="check the source's url in the config")
    body = bytearray()
    raw_size = 0

    def raw() -> Iterator[bytes]:
        nonlocal raw_size
        for chunk in response.iter_raw():
            raw_size += len(chunk)
            if raw_size > max_bytes:
                raise _too_large(url, max_bytes)
            if time.monotonic() > deadline:
                raise _timed_out(url, timeout)
            yield chunk

    # Decoded here, a bounded piece at a time per layer, so the cap also bounds a stacked bomb.
    for piece in decoded(raw(), response.headers.get("content-encoding", ""),
                         max_bytes=max_bytes, where=url):
        body += piece
        if len(body) > max_bytes:
            raise _too_large(url, max_bytes)
        if time.monotonic() > deadline:
            raise _timed_out(url, timeout)
    new_validators = Validators(response.headers.get("etag", ""),
                                response.headers.get("last-modified", ""))
    return Fetched(_maybe_gunzip(bytes(body), max_bytes, url), str(response.url),
                   response.headers.get("content-type", ""), new_validators)


def _peer_address(response: httpx.Response) -> str | None:
    """The IP address the response's connection actually reached (after DNS), if known."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None   # not a socket (a test's MockTransport): only the check before applies
    address = stream.get_extra_info("server_addr")
    return str(address[0]) if address else None


def _too_large(url: str, max_bytes: int) -> SourceError:
    return SourceError(f"{url} is larger than {max_bytes:,} bytes",
                       hint="raise [collect] max_bytes if this feed is that big")


def _timed_out(url: str, timeout: float) -> SourceError:
    return SourceError(f"timed out after {timeout:g}s fetching {url}",
                       hint="the site is slow or down; raise [collect] timeout_seconds")


def read_file(path: str, *, max_bytes: int) -> Fetched:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{path} is larger than {max_bytes:,} bytes",
                              hint="raise [collect] max_bytes")
        body = file.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}",
                          hint="check the source's url (a path relative to the config file)") from exc
    return Fetched(_maybe_gunzip(body, max_bytes, path), file.resolve().as_uri(), "", Validators())


def _maybe_gunzip(body: bytes, max_bytes: int, where: str) -> bytes:
    """Decompress a body that is still gzip (a .gz served without Content-Encoding, a file)."""
    if not body.startswith(GZIP_MAGIC):
        return body
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, max_bytes + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise SourceError(f"{where}: gzip data is corrupt ({exc})") from exc
    if len(out) > max_bytes:
        raise SourceError(f"{where} is larger than {max_bytes:,} bytes once decompressed",
                          hint="raise [collect] max_bytes")
    return out
