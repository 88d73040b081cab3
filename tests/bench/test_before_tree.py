"""`--before DIR` runs DIR's healthd, even when the bench is started from the repository."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import cast

from tests.conftest import REPO

Command = Callable[..., tuple[list[str], dict[str, str]]]


def healthd_command() -> Command:
    spec = importlib.util.spec_from_file_location("bench_machine", REPO / "bench" / "_machine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Command, module.healthd_command)


def test_a_daemon_started_from_the_repository_runs_the_before_trees_healthd(
    tmp_path: Path,
) -> None:
    package = tmp_path / "healthd"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("print('the before tree')\n")
    command, env = healthd_command()("--version", tree=tmp_path)
    out = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "the before tree"
