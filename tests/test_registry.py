"""The probe table: every registered probe meets the Probe contract's shape."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from healthd.errors import UnknownProviderError
from healthd.interfaces import Probe
from healthd.registry import probe_class, probes


def test_the_bridge_probe_is_registered() -> None:
    assert "imessage_bridge" in probes()


@pytest.mark.parametrize("provider", sorted(probes()))
def test_every_registered_probe_meets_the_protocol(provider: str) -> None:
    cls = probes()[provider]
    assert isinstance(cls(), Probe)
    assert cls.provider == provider
    assert issubclass(cls.Options, BaseModel)
    assert cls.Options.model_config.get("extra") == "forbid"
    assert cls.default_base_url.startswith(("http://", "https://"))
    assert all(isinstance(name, str) for name in cls.credentials)


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(UnknownProviderError, match="imessage_bridge"):
        probe_class("carrier-pigeon")
