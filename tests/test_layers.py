"""The import layering the README's "How the code is laid out" draws, checked on every run.

Imports only point down: a module may import its own layer or any layer below it, never one
above, and no two modules may import each other (directly or round a loop). Imports inside
functions count: a lazy import is still a dependency. Every module must have a layer, so a new
module is placed on purpose, not by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("digest", "subscribers")
MAX_LINES = 450

# Lowest first. A name matches a module and everything under it; the longest match wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("digest.errors", "digest.timeutil", "digest.scrub", "digest.holders",
              "digest.bodyfit")),
    # The registry is declarations only (sections, env names, dotted factory paths): config
    # derives its provider sections from it, so it sits beside config, below the adapters.
    ("data", ("subscribers", "digest.models", "digest.config", "digest.config_checks",
              "digest.db", "digest.db_errors", "digest.migrations",
              "digest.schedule", "digest.outbound", "digest.sanitize", "digest.ratelimit",
              "digest.transports.registry", "digest.transports.settings",
              "digest.weblinks", "digest.mailconfig")),
    ("edges", ("digest.transports", "digest.sources")),
    ("content", ("digest.deliver", "digest.sending", "digest.render", "digest.message",
                 "digest.editions", "digest.collect", "digest.variants", "digest.history",
                 "digest.approval", "digest.archive", "digest.checks",
                 "digest.alerts", "digest.dkim", "digest.reader_mail",
                 "digest.topic_filter")),
    ("jobs", ("digest.app", "digest.jobs", "digest.runs", "digest.status", "digest.scheduler",
              "digest.preview", "digest.metrics", "digest.desk")),
    ("face", ("digest.cli", "digest.web", "digest.progress", "digest.__main__")),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None          # (length of the matching prefix, layer)
    for rank, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), rank)
    return None if best is None else best[1]


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here[: len(here) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer_of(m) is None] == []


def test_imports_only_point_down():
    upward = [f"{module} ({LAYERS[_layer_of(module)][0]}) imports {target} "
              f"({LAYERS[_layer_of(target)][0]})"
              for module, targets in sorted(GRAPH.items()) for target in sorted(targets)
              if (_layer_of(target) or 0) > (_layer_of(module) or 0)]
    assert upward == []


def test_no_import_cycles():
    # Tarjan's strongly connected components, iteratively deep enough for any package.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_module_is_too_long():
    long = {module: lines for module, path in sorted(MODULES.items())
            if ".migrations" not in module
            and (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES}
    assert long == {}, "split these by job"
