"""Debian's Chromium driven by Playwright: the browser fixture for `tests/browser`.

Playwright's own browser builds are never downloaded (`playwright install` needs the
internet); it drives `/usr/bin/chromium`, which `scripts/install-browser-deps` installs.
Without a browser the tests are skipped with the reason, except in CI (`CI=true`), where a
missing browser is a failure: CI installs it, so its absence is a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from playwright.async_api import async_playwright

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser tests: run scripts/install-browser-deps)")
    pytest.skip(f"{reason}; run scripts/install-browser-deps as root")


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Any]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
