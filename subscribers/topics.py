"""The topics a reader follows: parsed from what people type, stored in one canonical form.

Invariant: a stored topic set is the empty string (every post) or its topics joined by ";",
each one line of text, none repeated (compared without case), sorted without case. So two
readers who follow the same topics store the same string, and SQL can group and compare them.
A post matches a topic set when one of its categories is in the set (compared without case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from digest.errors import InputError
from subscribers.validation import clean_name

SEPARATOR = ";"
MAX_TOPICS = 30
MAX_TOPIC_LENGTH = 100
_SPLIT = re.compile(r"[;,]")


def canonical_topics(raw: str | Iterable[str] | None) -> str:
    """``"AI, Government"``, ``"AI;Government"`` or ``["AI", "Government"]`` → the stored form."""
    if raw is None:
        return ""
    pieces = _SPLIT.split(raw) if isinstance(raw, str) else [
        piece for item in raw for piece in _SPLIT.split(item)]
    chosen: dict[str, str] = {}
    for piece in pieces:
        topic = clean_name(piece)
        if not topic:
            continue
        if len(topic) > MAX_TOPIC_LENGTH:
            raise InputError(f"the topic {topic[:30]!r}… is longer than {MAX_TOPIC_LENGTH} "
                             "characters")
        chosen.setdefault(topic.casefold(), topic)
    if len(chosen) > MAX_TOPICS:
        raise InputError(f"{len(chosen)} topics given; the limit is {MAX_TOPICS}")
    return SEPARATOR.join(chosen[key] for key in sorted(chosen))


def topic_list(stored: str) -> list[str]:
    """The stored form as a list (empty: every post)."""
    return [topic for topic in stored.split(SEPARATOR) if topic]


def matches(categories: Iterable[str] | None, stored: str) -> bool:
    """Whether a post with these categories is for a reader who follows ``stored``."""
    if not stored:
        return True
    wanted = {topic.casefold() for topic in topic_list(stored)}
    return any(category.casefold() in wanted for category in categories or ())
