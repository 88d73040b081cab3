"""The systemd unit, verified by Debian's systemd-analyze.

`systemd-analyze verify` checks that ExecStart's binary exists, and loads every unit the
unit depends on. This machine has neither /opt/healthd nor a running systemd, so the check
runs against a scratch root (`--root`) holding: the unit under test, a stub executable at
/opt/healthd/bin/healthd (the path the unit names; only its existence is checked), and a
copy of this machine's own unit directory (so network-online.target and friends resolve to
Debian's real units). Nothing is faked about the unit itself.

verify reports unknown keys and unparseable values as warnings and still exits 0, so any
output at all is a failure here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.paths import DEPLOY
from tests.deploy.tools import ToolRun, run_tool, system_tool, unavailable

UNIT = DEPLOY / "systemd" / "healthd.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
#: systemd-analyze security's overall exposure, in tenths: 2.0 is the top of its "OK" band.
MAX_EXPOSURE = 20


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    system_tool("systemd-analyze")
    if not (SYSTEM_UNITS / "multi-user.target").exists():
        unavailable(f"{SYSTEM_UNITS} has no system units to resolve the unit's dependencies")
    shutil.copytree(SYSTEM_UNITS, tmp_path / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    stub = tmp_path / "opt" / "healthd" / "bin" / "healthd"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    (tmp_path / "etc" / "systemd" / "system").mkdir(parents=True)
    return tmp_path


def _verify(root: Path, unit_text: str) -> ToolRun:
    (root / "etc" / "systemd" / "system" / UNIT.name).write_text(unit_text)
    return run_tool(
        [system_tool("systemd-analyze"), "verify", f"--root={root}", "--man=no", UNIT.name]
    )


def test_unit_verifies_without_a_single_warning(scratch_root: Path) -> None:
    run = _verify(scratch_root, UNIT.read_text())
    assert run.returncode == 0, run.explain()
    assert run.stdout == run.stderr == "", run.explain()


def test_verify_as_run_here_catches_a_misspelt_key(scratch_root: Path) -> None:
    run = _verify(scratch_root, UNIT.read_text().replace("ProtectHome=", "ProtectHomes="))
    assert "Unknown key" in run.stderr, run.explain()


def test_verify_as_run_here_catches_a_missing_executable(scratch_root: Path) -> None:
    (scratch_root / "opt" / "healthd" / "bin" / "healthd").unlink()
    run = _verify(scratch_root, UNIT.read_text())
    assert run.returncode != 0 or run.stderr, run.explain()


def test_unit_exposure_is_in_systemds_ok_band(scratch_root: Path) -> None:
    (scratch_root / "etc" / "systemd" / "system" / UNIT.name).write_text(UNIT.read_text())
    run = run_tool(
        [
            system_tool("systemd-analyze"),
            "security",
            "--offline=true",
            f"--root={scratch_root}",
            f"--threshold={MAX_EXPOSURE}",
            "--no-pager",
            UNIT.name,
        ]
    )
    assert run.returncode == 0, run.explain()


def test_unit_runs_the_venv_binary_and_does_not_claim_a_reload() -> None:
    service = _section(UNIT.read_text(), "Service")
    assert service["ExecStart"] == [
        "/opt/healthd/bin/healthd run --config /etc/healthd/healthd.yaml"
    ]
    assert "ExecReload" not in service
    assert service["Restart"] == ["on-failure"]
    assert service["EnvironmentFile"] == ["-/etc/healthd/healthd.env"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DynamicUser", "yes"),
        ("StateDirectory", "healthd"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("MemoryDenyWriteExecute", "yes"),
    ],
)
def test_unit_is_hardened_with(key: str, value: str) -> None:
    assert value in _section(UNIT.read_text(), "Service").get(key, [])


def _section(text: str, name: str) -> dict[str, list[str]]:
    """The key -> values of one [section] (systemd keys may repeat)."""
    values: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == name:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values
