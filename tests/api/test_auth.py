"""Tokens: kept as SHA-256 digests only, mapped to an admin or a tenant principal."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from healthd.api.auth import Principal, TokenTable
from healthd.config import TokenConfig
from healthd.secrets import Secret

ADMIN = "admin-token-0123456789abcdef"
TENANT = "tenant-token-0123456789abcdef"


@pytest.fixture
def table() -> TokenTable:
    return TokenTable(
        [
            TokenConfig(name="ops", token=Secret(ADMIN), role="admin"),
            TokenConfig(name="acme-settings", token=Secret(TENANT), tenant="acme"),
        ]
    )


def test_the_table_keeps_digests_and_never_the_tokens(table: TokenTable) -> None:
    dumped = pickle.dumps(table.__dict__)

    assert ADMIN.encode() not in dumped and TENANT.encode() not in dumped
    assert hashlib.sha256(TENANT.encode()).hexdigest().encode() in dumped


@pytest.mark.parametrize(
    ("header", "principal"),
    [
        (f"Bearer {ADMIN}", Principal("ops", None)),
        (f"bearer {TENANT}", Principal("acme-settings", "acme")),
        (f"Bearer  {TENANT} ", Principal("acme-settings", "acme")),
        (None, None),
        ("", None),
        ("Bearer", None),
        (f"Basic {ADMIN}", None),
        (f"Bearer {ADMIN}x", None),
        (f"{ADMIN}", None),
    ],
)
def test_authorization_header_maps_to_its_principal_or_none(
    table: TokenTable, header: str | None, principal: Principal | None
) -> None:
    assert table.authenticate(header) == principal


def test_a_tenant_principal_sees_its_tenant_only_and_admin_sees_all() -> None:
    acme, admin = Principal("a", "acme"), Principal("o", None)

    assert acme.may_see("acme") and not acme.may_see("globex")
    assert admin.may_see("acme") and admin.may_see("globex")


def test_without_tokens_every_caller_is_admin() -> None:
    table = TokenTable([])

    assert table.open
    assert table.authenticate(None) == Principal("anonymous", None)
