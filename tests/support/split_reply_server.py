"""An SMTP server on loopback that replies the way Postfix does when a client's write reaches
it in two pieces: it keeps replies until it has read all there is, then writes them, and writes
its 354 in a send of its own right after the others. Its socket keeps Nagle's algorithm on,
as Postfix's does. It records, per message, how long the client took to start the message
after the 354 was written: about 40 ms each time when the client delays its ACKs.
"""

from __future__ import annotations

import select
import socket
import threading
import time


class _Lines:
    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.connection.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def drained(self) -> bool:
        return not self.buffer and not select.select([self.connection], [], [], 0)[0]


class SplitReplyServer:
    """One connection at a time; ``waits`` holds seconds from each 354 to the message."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.waits: list[float] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SplitReplyServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.listener.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            connection, _address = self.listener.accept()
        except OSError:
            return
        with connection:
            self._session(connection, _Lines(connection))

    def _session(self, connection: socket.socket, lines: _Lines) -> None:
        pending: list[bytes] = []

        def flush() -> None:
            if pending:
                connection.sendall(b"".join(pending))
                pending.clear()

        connection.sendall(b"220 split-reply ESMTP\r\n")
        while line := lines.readline():
            command = line[:4].upper()
            if command == b"EHLO":
                pending.append(b"250-split-reply\r\n250 PIPELINING\r\n")
            elif command in (b"MAIL", b"RCPT"):
                pending.append(b"250 2.1.0 Ok\r\n")
            elif command == b"DATA":
                flush()
                connection.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                written = time.monotonic()
                first = lines.readline()
                self.waits.append(time.monotonic() - written)
                while first != b".\r\n":
                    first = lines.readline()
                self.accepted += 1
                pending.append(f"250 2.0.0 Ok: queued as Q{self.accepted}\r\n".encode())
            elif command == b"QUIT":
                pending.append(b"221 2.0.0 Bye\r\n")
                flush()
                return
            else:
                pending.append(b"250 2.0.0 Ok\r\n")
            if lines.drained():
                flush()
