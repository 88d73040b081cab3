"""The key ring: AES-256-GCM, the first key seals, every key opens, values bound to their place."""

from __future__ import annotations

import base64

import pytest

from healthd.secrets import Secret
from healthd.vault import KeyRing, VaultError, key_id, new_key

OLD, NEW = new_key(), new_key()


def ring(*keys: str) -> KeyRing:
    return KeyRing([Secret(k) for k in keys])


def test_a_sealed_value_opens_to_itself_and_does_not_contain_it() -> None:
    keys = ring(NEW)
    sealed = keys.seal("hunter2-password", context="bridge.credentials.password")

    assert "hunter2" not in sealed
    assert keys.open(sealed, context="bridge.credentials.password").reveal() == "hunter2-password"


def test_the_same_value_seals_differently_each_time() -> None:
    keys = ring(NEW)

    assert keys.seal("v", context="c") != keys.seal("v", context="c")


def test_a_value_moved_to_another_place_does_not_open() -> None:
    keys = ring(NEW)
    sealed = keys.seal("v", context="a.credentials.password")

    with pytest.raises(VaultError, match="damaged"):
        keys.open(sealed, context="b.credentials.password")


def test_an_older_key_still_opens_and_the_first_seals() -> None:
    sealed_before = ring(OLD).seal("v", context="c")
    rolled = ring(NEW, OLD)

    assert rolled.open(sealed_before, context="c").reveal() == "v"
    assert rolled.needs_rekey(sealed_before)
    assert not rolled.needs_rekey(rolled.seal("v", context="c"))


def test_a_missing_key_is_named_by_its_id_and_nothing_else() -> None:
    sealed = ring(OLD).seal("the-value", context="c")

    with pytest.raises(VaultError) as caught:
        ring(NEW).open(sealed, context="c")

    message = str(caught.value)
    assert key_id(base64.b64decode(OLD)) in message
    assert "the-value" not in message and OLD not in message


@pytest.mark.parametrize("bad", ["short", "x" * 44, new_key()[:-4]])
def test_a_key_that_is_not_32_bytes_of_base64_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(VaultError, match=r"registry.keys\[0\]") as caught:
        ring(bad)

    assert bad not in str(caught.value)


def test_fingerprints_match_for_equal_values_and_differ_otherwise() -> None:
    keys = ring(NEW)

    assert keys.fingerprint("a-secret") == keys.fingerprint("a-secret")
    assert keys.fingerprint("a-secret") != keys.fingerprint("b-secret")
    assert len(keys.fingerprint("a-secret")) == 8
