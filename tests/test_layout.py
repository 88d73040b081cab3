"""The data flow's dependency rules, read from the import statements (STYLE.md).

- model.py and state.py import nothing that does I/O;
- probes import only healthd.model, healthd.interfaces, healthd.http, healthd.catalog,
  healthd.durations (option types) and each other's private helpers;
- nothing under healthd/ imports probes/ (the registry loads them by entry point).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = {"healthd/model.py", "healthd/state.py"}
IO_MODULES = {"aiohttp", "asyncio", "sqlite3", "socket", "urllib", "httpx", "requests", "os"}
PROBE_ALLOWED = {
    "healthd.model",
    "healthd.interfaces",
    "healthd.http",
    "healthd.catalog",
    "healthd.durations",
}


def imports(path: Path) -> set[str]:
    """Modules imported at run time (imports under `if TYPE_CHECKING:` are for types only)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_import_nothing_with_io(module: str) -> None:
    bad = {m for m in imports(ROOT / module) if m.split(".")[0] in IO_MODULES}
    assert bad == set()


@pytest.mark.parametrize("path", sorted((ROOT / "probes").glob("*.py")), ids=lambda p: p.name)
def test_probes_import_only_the_probe_facing_core(path: Path) -> None:
    core = {m for m in imports(path) if m.startswith("healthd")}
    assert core <= PROBE_ALLOWED, core - PROBE_ALLOWED


@pytest.mark.parametrize(
    "path", sorted((ROOT / "healthd").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_core_never_imports_a_probe(path: Path) -> None:
    assert not {m for m in imports(path) if m == "probes" or m.startswith("probes.")}
