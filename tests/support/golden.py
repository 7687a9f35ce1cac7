"""Golden files: expected output kept beside the tests, reviewed by eye when it changes.

``assert_golden("digest_teaser.html", text)`` compares ``text`` with ``tests/golden/<name>``.
Run with ``UPDATE_GOLDEN=1`` to (re)write the files instead; then read the diff before
committing it. Volatile parts (dates of sending, marker nonces, MIME boundaries, signed tokens)
must be scrubbed before comparing: :func:`scrub` does the usual ones.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"

_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Date: .*$", re.MULTILINE), "Date: <date>"),
    (re.compile(r"=_digest_[0-9a-f]{24}"), "=_digest_<boundary>"),
    (re.compile(r"__digest_[0-9a-f]{12}_([a-z_]+?)__"), r"{{ \1 }}"),
    (re.compile(r"/unsubscribe/[A-Za-z0-9._~-]+"), "/unsubscribe/<token>"),
    (re.compile(r"/web/[A-Za-z0-9._~-]+"), "/web/<token>"),
    (re.compile(r"(<digest\.\d+\.\d+)\.[0-9a-f]{16}@"), r"\1.<tag>@"),
)


def scrub(text: str) -> str:
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN_DIR / name
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    if not path.exists():
        raise AssertionError(f"no golden file {path}; run the tests with UPDATE_GOLDEN=1, "
                             "then review the new file by eye")
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            f"golden/{name}", "actual", n=2))
        raise AssertionError(f"{name} differs from its golden file; if the change is intended, "
                             f"rerun with UPDATE_GOLDEN=1 and review the diff:\n{diff}")
