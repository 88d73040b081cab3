"""Where the deploy files are, relative to the repository root."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTALL_SYSTEM_DEPS = REPO / "scripts" / "install-system-deps"
