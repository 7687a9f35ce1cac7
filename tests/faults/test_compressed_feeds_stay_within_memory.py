"""Issue 10, item 4: a compressed feed — one layer or several stacked (``Content-Encoding: gzip,
gzip``, deflate, br and mixes) — never takes memory past ~50 MB above the baseline, whatever it
inflates to: every layer is decompressed a bounded piece at a time and the cap counts as it goes.

Served by a real HTTP server on loopback, fetched through httpx by the feed source; memory is
the peak tracemalloc sees during the fetch (the decompressors' output and buffers included).
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import pytest
from support.builders import a_feed_source, an_entry, an_rss_feed
from support.http_server import Response

from digest.errors import SourceError
from digest.sources.base import Validators

INFLATED = 300_000_000           # what each bomb inflates to: 300 MB of zeros
MAX_BYTES = 10_000_000           # the default [collect] max_bytes
CEILING = 50_000_000


def _deflated(data_chunks, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join([*(compressor.compress(c) for c in data_chunks), compressor.flush()])


def _zeros():
    chunk = bytes(1_000_000)
    return (chunk for _ in range(INFLATED // len(chunk)))


def _brotli(data_chunks) -> bytes:
    compressor = brotli.Compressor(quality=5)
    return b"".join([*(compressor.process(c) for c in data_chunks), compressor.finish()])


def _encode(layer: str, data: bytes | None) -> bytes:
    chunks = _zeros() if data is None else iter([data])
    if layer == "gzip":
        return _deflated(chunks, 16 + zlib.MAX_WBITS)
    if layer == "deflate":
        return _deflated(chunks, zlib.MAX_WBITS)
    return _brotli(chunks)


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """Each Content-Encoding stack, applied in header order to 300 MB of zeros."""
    base = {layer: _encode(layer, None) for layer in ("gzip", "deflate", "br")}
    made = {}
    for header in ("gzip, gzip", "deflate", "br", "gzip, br", "br, gzip", "gzip, gzip, gzip"):
        layers = [part.strip() for part in header.split(",")]
        body = base[layers[0]]
        for layer in layers[1:]:
            body = _encode(layer, body)
        made[header] = body
    return made


def serve(server, body: bytes, encoding: str) -> str:
    server.route("GET", "/feed.xml", lambda _request: Response(
        200, body, {"Content-Type": "application/rss+xml", "Content-Encoding": encoding}))
    return server.url + "/feed.xml"


def peak_while(action) -> int:
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("encoding", ["gzip, gzip", "deflate", "br", "gzip, br", "br, gzip",
                                      "gzip, gzip, gzip"])
def test_a_compression_bomb_is_refused_within_50_mb(http_server, client, bombs, encoding):
    body = bombs[encoding]
    assert len(body) < 400_000               # a few KB to a few hundred KB on the wire
    source = a_feed_source(serve(http_server, body, encoding), client=client,
                           max_bytes=MAX_BYTES)
    caught: list[SourceError] = []

    def fetch() -> None:
        with pytest.raises(SourceError) as error:
            source.fetch(Validators())
        caught.append(error.value)

    peak = peak_while(fetch)

    assert "larger than 10,000,000 bytes" in str(caught[0])
    print(f"{encoding}: {len(body):,} bytes on the wire, peak {peak:,} bytes")
    assert peak < CEILING, f"{encoding}: {peak:,} bytes at the peak"


@pytest.mark.parametrize("encoding", ["gzip, gzip", "deflate", "br", "gzip, br", "deflate, gzip"])
def test_a_feed_under_stacked_encodings_reads_as_the_plain_one(http_server, client, encoding):
    feed = an_rss_feed(an_entry(guid="stacked-1", title="Packed twice"))
    body = feed
    for layer in (part.strip() for part in encoding.split(",")):
        body = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[layer](body)

    result = a_feed_source(serve(http_server, body, encoding), client=client).fetch(Validators())

    assert [(e.guid, e.title) for e in result.entries] == [("stacked-1", "Packed twice")]
    assert "br" in http_server.requests[-1].header("accept-encoding")


def test_raw_deflate_is_read_too(http_server, client):
    raw = _deflated(iter([an_rss_feed(an_entry(title="Raw deflate"))]), -zlib.MAX_WBITS)
    result = a_feed_source(serve(http_server, raw, "deflate"), client=client).fetch(Validators())
    assert [e.title for e in result.entries] == ["Raw deflate"]


def test_an_encoding_the_fetcher_cannot_read_is_named(http_server, client):
    url = serve(http_server, b"(\xb5/\xfd...", "zstd")
    with pytest.raises(SourceError, match="Content-Encoding 'zstd'"):
        a_feed_source(url, client=client).fetch(Validators())
