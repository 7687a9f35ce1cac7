"""The `digest` command (Typer + Rich): one module per noun, one console module.

``main`` is the console script's entry point (``digest = "digest.cli:main"``) and what
``python -m digest`` runs; the app and its wiring are ``digest.cli.main``.
"""

from digest.cli.main import main

__all__ = ["main"]
