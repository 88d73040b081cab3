"""Every config shipped in deploy/ loads through healthd's own config loader.

The examples name their secrets (`env:NAME`, `file:/run/secrets/...`); here each env name is
set to a distinct stand-in value and each file is created under a scratch root, so that the
loader resolves them as it would in production. Integrations of providers whose probe is
not registered yet are left out and the test then says so (it skips after validating the
rest), so it widens by itself as probes land.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from healthd import config as healthd_config
from healthd.registry import probes
from tests.deploy.paths import DEPLOY
from tests.deploy.secrets import SECRET_REF, secret_refs


def _configmap_config() -> str:
    configmap = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    text: str = configmap["data"]["healthd.yaml"]
    return text


CONFIGS: dict[str, Callable[[], str]] = {
    "single-company.yaml": (DEPLOY / "config" / "single-company.yaml").read_text,
    "multi-tenant.yaml": (DEPLOY / "config" / "multi-tenant.yaml").read_text,
    "kubernetes configmap": _configmap_config,
}


def _relocate_files(node: Any, root: Path) -> Any:
    """The document with every `file:/path` moved under `root`."""
    if isinstance(node, dict):
        return {key: _relocate_files(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_relocate_files(value, root) for value in node]
    if isinstance(node, str) and node.startswith("file:/") and SECRET_REF.match(node):
        return f"file:{root}{node.removeprefix('file:')}"
    return node


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_with_its_secrets_provided(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = yaml.safe_load(CONFIGS[name]())
    registered = set(probes())
    missing = sorted({i["provider"] for i in document["integrations"]} - registered)
    document["integrations"] = [i for i in document["integrations"] if i["provider"] in registered]
    for ref in secret_refs(document):
        kind, _, target = ref.partition(":")
        stand_in = f"stand-in-{kind}-{target.replace('/', '-')}-0123456789"
        if kind == "env":
            monkeypatch.setenv(target, stand_in)
        else:
            path = tmp_path / target.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(stand_in)
    loaded = healthd_config.loads(
        yaml.safe_dump(_relocate_files(copy.deepcopy(document), tmp_path))
    )
    assert [i.id for i in loaded.integrations] == [i["id"] for i in document["integrations"]]
    if missing:
        pytest.skip(f"validated all but the {', '.join(missing)} integrations: no probe registered")
