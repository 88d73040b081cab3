"""Without a browser the browser tests skip, except in CI, where they fail."""

from __future__ import annotations

import pytest

from tests.browser.conftest import unavailable


def test_missing_browser_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
        unavailable("/usr/bin/chromium is missing")


def test_missing_browser_skips_with_the_reason_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="install-browser-deps"):
        unavailable("/usr/bin/chromium is missing")
