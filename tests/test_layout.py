"""The data flow's dependency rules, read from the import statements (STYLE.md).

The graph is built from the AST of every module under healthd/ and probes/. An edge is
an import of another of these modules, wherever it stands (a function-level import is
still a dependency, only a later one). Imports under `if TYPE_CHECKING:` are for type
checkers only: they are left out of the layering, but they may not close a cycle either.

The layers, from the bottom. A module imports only from its own layer or the ones below;
within a layer, the cycle rule alone applies:

0. leaves, importing nothing of healthd: version, durations, errors, clock, secrets,
   model, loop, gctune;
1. foundations: interfaces (the Probe, Store and Notifier protocols), catalog, http, log,
   and the simulators (healthd.sim, which stand alone beside healthd's own code);
2. parts that each do one job over the foundations: registry, probing (the frame of every
   probe run), state, scheduler, store, metrics, and the probes. metrics sits this low
   because it reads no other part: the runner and the outbox write into its instruments
   and series, the alert engine hands it an `AlertView`, and the daemon wires the
   collector;
3. alerts: the rules, the engine (which reads the fleet through a snapshot callable), the
   silences, the outbox and the notifiers;
4. the runner (one probe run, from start to stored state, telling the engine) and config
   (which validates alerting settings and each probe's options);
5. services over a runner: the HTTP API (healthd.api) and the one-shot sweep;
6. the daemon, which opens all of it on one exit stack;
7. entry points: cli, __main__, demo, reference, and the package's own `__init__`
   (the public facade for embedding programs: nothing inside imports it for a name).

Besides the layers:
- nothing imports in a cycle, even through type-only imports; model.py imports nothing of
  healthd at all, not even for types;
- alerts never import the runner, and no api module imports healthd/api/app.py (which
  assembles them);
- `import healthd.config` does not load the PagerDuty SDK (the config needs only the
  alerting settings, not the notifiers);
- model.py and state.py import nothing that does I/O;
- probes import only healthd.model, healthd.interfaces, healthd.http, healthd.catalog,
  healthd.durations (option types) and each other's private helpers;
- nothing under healthd/ imports probes/ (the registry loads them by entry point).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("healthd", "probes")

# Each row names modules or packages (a package covers everything below it), except
# "healthd", which is the package's `__init__` only: every module must be placed.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "leaves",
        frozenset(
            {
                "healthd.version",
                "healthd.durations",
                "healthd.errors",
                "healthd.clock",
                "healthd.secrets",
                "healthd.model",
                "healthd.loop",
                "healthd.gctune",
            }
        ),
    ),
    (
        "foundations",
        frozenset(
            {
                "healthd.interfaces",
                "healthd.catalog",
                "healthd.http",
                "healthd.log",
                "healthd.sim",
                "healthd.vault",
            }
        ),
    ),
    (
        "parts",
        frozenset(
            {
                "healthd.registry",
                "healthd.probing",
                "healthd.state",
                "healthd.scheduler",
                "healthd.store",
                "healthd.history",
                "healthd.metrics",
                "probes",
            }
        ),
    ),
    ("alerts", frozenset({"healthd.alerts"})),
    ("runner and config", frozenset({"healthd.runner", "healthd.config"})),
    ("services", frozenset({"healthd.api", "healthd.sweep", "healthd.fleet", "healthd.reload"})),
    ("daemon", frozenset({"healthd.daemon"})),
    (
        "entry points",
        frozenset(
            {
                "healthd.cli",
                "healthd.__main__",
                "healthd.demo",
                "healthd.reference",
                "healthd.history_report",
                "healthd",
            }
        ),
    ),
)
FACADE = "healthd"

PURE = {"healthd.model", "healthd.state"}
IO_MODULES = {"aiohttp", "asyncio", "sqlite3", "socket", "urllib", "httpx", "requests", "os"}
PROBE_ALLOWED = {
    "healthd.model",
    "healthd.interfaces",
    "healthd.http",
    "healthd.catalog",
    "healthd.durations",
}

Graph = Mapping[str, frozenset[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of healthd/ and probes/, by dotted name (a package by its own name)."""
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a `from` import names, with a relative one resolved against `module`."""
    if node.level == 0:
        return node.module or ""
    package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imported(module: str) -> Iterator[tuple[str, bool]]:
    """Each dotted name `module` imports, and whether only a type checker sees the import.

    `from m import n` gives `m.n`: that is module m.n where there is one, else a name in m.
    """

    def visit(node: ast.AST, type_only: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                yield from visit(statement, True)
            for statement in node.orelse:
                yield from visit(statement, type_only)
            return
        if isinstance(node, ast.Import):
            yield from ((alias.name, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            yield from ((f"{base}.{alias.name}", type_only) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_only)

    yield from visit(ast.parse(modules()[module].read_text()), False)


def _resolve(name: str) -> str | None:
    """The module of ours that a dotted name is or lies in; None for other packages."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def graph(*, with_type_only: bool) -> Graph:
    edges: dict[str, frozenset[str]] = {}
    for module in modules():
        targets = {
            _resolve(name)
            for name, type_only in imported(module)
            if with_type_only or not type_only
        }
        edges[module] = frozenset(t for t in targets if t is not None and t != module)
    return edges


def layer_of(module: str) -> int | None:
    """The index of the module's row in LAYERS: the most specific name that covers it."""
    best: tuple[int, int] | None = None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != FACADE and module.startswith(f"{name}."))
            if covers and (best is None or len(name) > best[1]):
                best = (index, len(name))
    return best[0] if best else None


def find_cycle(edges: Graph) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None. Depth first, in sorted order."""
    done: set[str] = set()
    for start in sorted(edges):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(sorted(edges[start]))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif target in on_path:
                return [*path[path.index(target) :], target]
            elif target not in done:
                path.append(target)
                on_path.add(target)
                stack.append(iter(sorted(edges.get(target, ()))))
    return None


def test_every_module_has_a_layer() -> None:
    assert [m for m in sorted(modules()) if layer_of(m) is None] == []


def test_no_import_runs_back_up_a_layer() -> None:
    upward = [
        f"{source} ({LAYERS[s][0]}) -> {target} ({LAYERS[t][0]})"
        for source, targets in sorted(graph(with_type_only=False).items())
        for target in sorted(targets)
        if (s := layer_of(source)) is not None and (t := layer_of(target)) is not None and t > s
    ]
    assert upward == []


@pytest.mark.parametrize("with_type_only", [False, True], ids=["run-time", "with-type-only"])
def test_there_is_no_import_cycle(with_type_only: bool) -> None:
    cycle = find_cycle(graph(with_type_only=with_type_only))
    assert cycle is None, " -> ".join(cycle or ())


def test_the_cycle_finder_reports_the_cycle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"b"})}
    assert find_cycle(edges) == ["b", "c", "b"]
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset()}) is None


def test_model_imports_nothing_of_healthd_not_even_for_types() -> None:
    assert graph(with_type_only=True)["healthd.model"] == frozenset()


def test_alerts_never_import_the_runner() -> None:
    importers = {
        m for m, targets in graph(with_type_only=True).items() if "healthd.runner" in targets
    }
    assert {m for m in importers if m.split(".")[:2] == ["healthd", "alerts"]} == set()


def test_api_modules_never_import_the_app_that_assembles_them() -> None:
    api = {
        m: t
        for m, t in graph(with_type_only=True).items()
        if m.startswith("healthd.api.") and m != "healthd.api.app"
    }
    assert {m for m, targets in api.items() if "healthd.api.app" in targets} == set()


def test_importing_the_config_does_not_load_the_pagerduty_sdk() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import healthd.config, sys; print('pagerduty' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_import_nothing_with_io(module: str) -> None:
    bad = {
        n for n, type_only in imported(module) if not type_only and n.split(".")[0] in IO_MODULES
    }
    assert bad == set()


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("probes")))
def test_probes_import_only_the_probe_facing_core(module: str) -> None:
    core = {m for m in graph(with_type_only=False)[module] if m.startswith("healthd")}
    assert core <= PROBE_ALLOWED, core - PROBE_ALLOWED


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("healthd")))
def test_the_core_never_imports_a_probe(module: str) -> None:
    assert {m for m in graph(with_type_only=False)[module] if m.split(".")[0] == "probes"} == set()
