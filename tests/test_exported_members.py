"""`healthd.__all__` is exactly the public names the package exposes."""

from __future__ import annotations

import healthd


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(healthd).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("healthd")
    }
    assert set(healthd.__all__) - {"__version__"} == public


def test_every_name_in_all_resolves() -> None:
    for name in healthd.__all__:
        assert getattr(healthd, name) is not None
