"""How the deploy tests get their tools: installed when possible, skipped or failed when not."""

from __future__ import annotations

import pytest

from tests.deploy.paths import INSTALL_SYSTEM_DEPS
from tests.deploy.tools import in_ci, run_tool, system_tool, unavailable


@pytest.mark.parametrize(
    ("value", "ci"), [("true", True), ("1", True), ("", False), ("false", False)]
)
def test_ci_is_recognised_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, ci: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have every deploy tool"):
        unavailable("promtool is not installed")


def test_a_missing_tool_skips_with_its_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="promtool is not installed"):
        unavailable("promtool is not installed")


def test_install_script_does_nothing_once_everything_is_installed() -> None:
    system_tool("promtool")  # installs whatever is missing, once
    run = run_tool([str(INSTALL_SYSTEM_DEPS)])
    assert run.returncode == 0, run.explain()
    assert run.stdout == run.stderr == "", run.explain()
