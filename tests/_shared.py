"""The shared folder (provider specs and seed pages) that some tests check against.

It is `../shared`, the sibling of the repository's root, or wherever `HEALTHD_SHARED`
points (a worktree inside another folder: `HEALTHD_SHARED=/path/to/shared pytest`). A test
that needs a file from it asks `shared_file`: when the file is missing, the test skips for
a developer but fails under CI, where 30+ silently skipped tests would hide drifting
simulators and catalogues.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import REPO

SHARED_ENV = "HEALTHD_SHARED"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def shared_dir() -> Path:
    override = os.environ.get(SHARED_ENV)
    return Path(override) if override else REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Where a shared file would be, unchecked (for parameters read while collecting)."""
    return shared_dir().joinpath(*parts)


def shared_file(*parts: str, module: bool = False) -> Path:
    """A shared file that exists; else skip (fail under CI). `module=True` at import time."""
    path = shared_path(*parts)
    if not path.exists():
        missing(f"{path} is not there (set {SHARED_ENV} to the shared folder)", module=module)
    return path


def missing(reason: str, *, module: bool = False) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}: CI must run the tests that read the shared specs")
    pytest.skip(reason, allow_module_level=module)
