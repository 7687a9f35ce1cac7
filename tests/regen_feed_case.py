"""Write (or rewrite) the expected file of feed-normaliser cases.

    python -m tests.regen_feed_case tests/data/feeds/new-case.xml [more inputs…]

Run from the checkout root. It prints each expected file it wrote; read it before committing:
an expected file is a specification, and a wrong expectation is a bug (tests/data/feeds/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.feed_cases import expected_path, normalised, render  # noqa: E402


def main(arguments: list[str]) -> int:
    if not arguments:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for argument in arguments:
        feed = Path(argument).resolve()
        target = expected_path(feed)
        target.write_text(render(normalised(feed)), encoding="utf-8")
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
