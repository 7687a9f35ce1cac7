"""Undo a response's Content-Encoding, one bounded piece at a time, for every layer.

Invariants: no layer ever hands on more than ``PIECE`` bytes at once, and no layer produces more
than ``max_bytes`` in all, so a stacked bomb (``Content-Encoding: gzip, gzip``, or gzip over br)
costs at most a few pieces of memory per layer before it is refused. httpx's own decoders
decompress each network chunk whole before anyone can count the output, which is why the
fetcher reads the raw bytes and decodes them here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import brotli

from digest.errors import SourceError

PIECE = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
# What the fetcher asks for; anything else a server sends anyway is refused by name.
ACCEPT_ENCODING = "gzip, deflate, br"
IDENTITY = {"", "identity"}


def encodings_of(header: str) -> list[str]:
    """The codings of a Content-Encoding header, in the order the server applied them."""
    return [name for name in (part.strip().lower() for part in header.split(","))
            if name not in IDENTITY]


def decoded(raw: Iterable[bytes], header: str, *, max_bytes: int, where: str) -> Iterator[bytes]:
    """The body behind ``raw`` (the bytes as they came off the wire), piece by piece."""
    stream: Iterator[bytes] = iter(raw)
    # The last coding applied is the first to undo.
    for name in reversed(encodings_of(header)):
        step = _STEPS.get(name)
        if step is None:
            raise SourceError(f"{where} is sent with Content-Encoding {name!r}, which the "
                              "fetcher does not read",
                              hint=f"ask the site to serve the feed plain or as {ACCEPT_ENCODING}")
        stream = _bounded(step(stream, where), max_bytes, where)
    return stream


def _bounded(pieces: Iterator[bytes], max_bytes: int, where: str) -> Iterator[bytes]:
    # A real feed grows at every layer it is unpacked, so no layer of one fits in more than the
    # whole feed: counting each layer also stops a layer that spins out empty blocks.
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > max_bytes:
            raise SourceError(f"{where} is larger than {max_bytes:,} bytes once decompressed",
                              hint="raise [collect] max_bytes if this feed is that big")
        yield piece


def _inflate(stream: Iterator[bytes], where: str, *, gzip: bool) -> Iterator[bytes]:
    decompressor = None
    ended = False            # a stream ended before: only another gzip member may follow
    for data in stream:
        while data:
            if decompressor is None:
                if ended and not (gzip and data.startswith(GZIP_MAGIC)):
                    return   # anything after the end of the data is ignored, as browsers do
                decompressor = zlib.decompressobj(_wbits(data, gzip=gzip))
            piece = _take(decompressor, data, where)
            data = decompressor.unconsumed_tail
            if piece:
                yield piece
            # zlib may still hold output for input it has taken (a long run of one byte).
            while not data and len(piece) == PIECE and not decompressor.eof:
                piece = _take(decompressor, b"", where)
                if piece:
                    yield piece
            if decompressor.eof:
                data, decompressor, ended = decompressor.unused_data, None, True


def _take(decompressor: Any, data: bytes, where: str) -> bytes:
    try:
        return decompressor.decompress(data, PIECE)
    except zlib.error as exc:
        raise SourceError(f"{where}: compressed data is corrupt ({exc})") from exc


def _wbits(head: bytes, *, gzip: bool) -> int:
    if gzip:
        return 16 + zlib.MAX_WBITS
    # "deflate" is meant to be zlib-wrapped (RFC 9110), but some servers send it raw.
    wrapped = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


def _gunzip(stream: Iterator[bytes], where: str) -> Iterator[bytes]:
    return _inflate(stream, where, gzip=True)


def _deflate(stream: Iterator[bytes], where: str) -> Iterator[bytes]:
    return _inflate(stream, where, gzip=False)


def _unbrotli(stream: Iterator[bytes], where: str) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    try:
        for data in stream:
            piece = decompressor.process(data, output_buffer_limit=PIECE)
            # Past the limit the decoder keeps the rest of its output (and maybe input) back,
            # handing it out only to calls with empty input: drain it a piece at a time.
            while piece:
                yield piece
                piece = decompressor.process(b"", output_buffer_limit=PIECE)
    except brotli.error as exc:
        raise SourceError(f"{where}: compressed data is corrupt ({exc})") from exc


_STEPS: dict[str, Callable[[Iterator[bytes], str], Iterator[bytes]]] = {
    "gzip": _gunzip, "x-gzip": _gunzip, "deflate": _deflate, "br": _unbrotli,
}
