"""The default transport: write each message as an .eml file into a local outbox folder.

Beside every ``.eml`` goes an ``.html`` copy of its HTML part, and ``index.html`` at the top of
the outbox lists every message, so the morning job can be looked at in a browser with no mail
server and no account.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from datetime import UTC, datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from digest.errors import TransportError
from digest.outbound import OutgoingMessage, SendResult

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds

MANIFEST = "messages.jsonl"


def from_settings(_settings: None, needs: TransportNeeds) -> FileTransport:
    """The file transport has no section: its folder is ``[delivery] outbox``."""
    assert needs.templates is not None, "the outbox index page needs the templates"
    return FileTransport(needs.outbox, needs.templates)


class FileTransport:
    name = "file"
    max_batch = 500

    def __init__(self, outbox: Path, env: jinja2.Environment) -> None:
        self.outbox = outbox
        self._env = env
        self._wrote = False

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        manifests: dict[Path, list[str]] = {}
        for message in messages:
            folder = self.outbox / _safe(message.tag or "messages")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                # Messages that are not deliveries (alerts) have no id of their own.
                number = (f"{message.delivery_id:07d}" if message.delivery_id > 0 else
                          f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")
                stem = f"{number}-{_safe(message.to_address)}"
                _write_atomic(folder / f"{stem}.eml", message.raw)
                _write_atomic(folder / f"{stem}.html", message.html.encode("utf-8"))
            except OSError as exc:
                raise TransportError(f"cannot write to the outbox {self.outbox}: {exc.strerror}",
                                     retry=False, hint="check [delivery] outbox") from exc
            manifests.setdefault(folder, []).append(json.dumps({
                "eml": f"{stem}.eml", "html": f"{stem}.html", "to": message.to_address,
                "name": message.to_name, "subject": message.subject,
                "variant": message.variant, "message_id": message.message_id,
            }, ensure_ascii=False))
            results.append(SendResult.sent(message, f"file:{folder.name}/{stem}.eml"))
        for folder, lines in manifests.items():
            with (folder / MANIFEST).open("a", encoding="utf-8") as manifest:
                manifest.write("\n".join(lines) + "\n")
        self._wrote = self._wrote or bool(results)
        return results

    def close(self) -> None:
        if self._wrote:
            write_index(self.outbox, self._env)
            self._wrote = False


def write_index(outbox: Path, env: jinja2.Environment) -> Path:
    """(Re)write ``index.html`` listing every message in every folder of the outbox."""
    editions = []
    for manifest in sorted(outbox.glob(f"*/{MANIFEST}"), reverse=True):
        messages = [json.loads(line) for line in manifest.read_text("utf-8").splitlines()
                    if line.strip()]
        editions.append({"folder": manifest.parent.name, "messages": messages})
    page = env.get_template("web/outbox_index.html.j2").render(editions=editions)
    index = outbox / "index.html"
    _write_atomic(index, page.encode("utf-8"))
    return index


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", text)[:120]


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
