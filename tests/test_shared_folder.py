"""The shared specs are found beside the repository or through HEALTHD_SHARED; missing, they
skip a developer's tests and fail CI's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._shared import SHARED_ENV, shared_dir, shared_file
from tests.conftest import REPO


def test_the_shared_folder_is_the_repositorys_sibling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_ENV, raising=False)
    assert shared_dir() == REPO.parent / "shared"


def test_healthd_shared_points_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "x.json").write_text("{}")
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    assert shared_file("specs", "x.json") == tmp_path / "specs" / "x.json"


def test_a_missing_shared_file_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the tests"):
        shared_file("specs", "missing.json")


def test_a_missing_shared_file_skips_for_a_developer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing.json is not there"):
        shared_file("specs", "missing.json")
