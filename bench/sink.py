"""An aiosmtpd sink that accepts and discards, in a process of its own; prints its port.

The benchmarks' SMTP server: running it in another process keeps its CPU off the client's.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter

from aiosmtpd.controller import Controller


class Discard:
    accepted = 0
    recipients: Counter[str] = Counter()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        Discard.accepted += 1
        Discard.recipients.update(envelope.rcpt_tos)
        return f"250 2.0.0 Ok: queued as S{Discard.accepted}"


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Discard(), hostname="127.0.0.1", port=port,
                            data_size_limit=10_000_000)
    controller.start()
    print(port, flush=True)
    # "count": the number accepted; "recipients": how many addresses got mail since the last
    # "recipients", and the most messages one of them got; EOF stops.
    for line in sys.stdin:
        if line.strip() == "count":
            print(Discard.accepted, flush=True)
        elif line.strip() == "recipients":
            counts, Discard.recipients = Discard.recipients, Counter()
            print(len(counts), max(counts.values(), default=0), flush=True)
    controller.stop()


if __name__ == "__main__":
    main()
