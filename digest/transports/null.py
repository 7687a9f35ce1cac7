"""A transport that accepts everything and sends nothing: for benchmarks and dry runs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest.outbound import OutgoingMessage, SendResult

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds


def from_settings(_settings: None, _needs: TransportNeeds) -> NullTransport:
    return NullTransport()


class NullTransport:
    name = "null"

    def __init__(self, *, latency_seconds: float = 0.0, max_batch: int = 500,
                 build_raw: bool = True) -> None:
        self.latency_seconds = latency_seconds
        self.max_batch = max_batch
        self.build_raw = build_raw
        self.accepted = 0
        self.bytes = 0

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            if self.build_raw:
                # Build the bytes as a real transport would, so benchmarks count that cost.
                self.bytes += len(message.raw)
            self.accepted += 1
            results.append(SendResult.sent(message))
        return results

    def close(self) -> None:
        pass
