"""The example configs in deploy/config: YAML that names its secrets, never holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.paths import DEPLOY
from tests.deploy.secrets import secret_problems

EXAMPLES = sorted((DEPLOY / "config").glob("*.yaml"))
PROVIDERS = {"twilio", "sendgrid", "google", "imessage_bridge"}


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def test_both_examples_exist() -> None:
    assert [path.name for path in EXAMPLES] == ["multi-tenant.yaml", "single-company.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_uses_only_env_and_file_secret_references(path: Path) -> None:
    assert secret_problems(_load(path)) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_integrations_have_unique_ids_and_known_providers(path: Path) -> None:
    integrations = _load(path)["integrations"]
    ids = [integration["id"] for integration in integrations]
    assert len(ids) == len(set(ids))
    assert {integration["provider"] for integration in integrations} <= PROVIDERS


def test_single_company_watches_its_own_twilio_sendgrid_google_and_bridge() -> None:
    integrations = _load(DEPLOY / "config" / "single-company.yaml")["integrations"]
    assert {integration["provider"] for integration in integrations} == PROVIDERS
    assert len({integration["tenant"] for integration in integrations}) == 1


def test_multi_tenant_shares_a_platform_bridge_among_several_tenants() -> None:
    document = _load(DEPLOY / "config" / "multi-tenant.yaml")
    integrations = document["integrations"]
    bridges = [i for i in integrations if i["provider"] == "imessage_bridge"]
    assert [bridge["tenant"] for bridge in bridges] == ["platform"]
    tenants = {i["tenant"] for i in integrations} - {"platform"}
    assert len(tenants) >= 2
    token_tenants = {token.get("tenant") for token in document["api"]["tokens"]} - {None}
    assert token_tenants == tenants


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"credentials": {"auth_token": "hunter2hunter2"}}, "credentials.auth_token"),
        ({"api": {"tokens": [{"token": "plain"}]}}, "api.tokens[0].token"),
        ({"options": {"note": "SG.abcdefghijklmnopqr.abcdefghijklmnopqrstu"}}, "options.note"),
        ({"credentials": {"account_sid": "env:lowercase"}}, "credentials.account_sid"),
    ],
)
def test_secret_lint_catches(document: dict[str, Any], problem: str) -> None:
    problems = secret_problems(document)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
