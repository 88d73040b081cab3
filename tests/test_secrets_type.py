from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from healthd.secrets import MAX_SECRET_FILE_BYTES, Secret

MARKER = "s3cr3t-marker-value"


class Model(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)
    key: Secret


def test_repr_and_str_are_masked():
    secret = Secret(MARKER)
    assert repr(secret) == "Secret('********')"
    assert MARKER not in str(secret)
    assert MARKER not in f"{secret!r} {secret}"


def test_reveal_returns_the_value():
    assert Secret(MARKER).reveal() == MARKER


def test_equal_by_value():
    assert Secret(MARKER) == Secret(MARKER)
    assert Secret(MARKER) != Secret("other")
    assert hash(Secret(MARKER)) == hash(Secret(MARKER))


def test_env_reference_resolves(monkeypatch):
    monkeypatch.setenv("HEALTHD_TEST_KEY", MARKER)
    assert Model.model_validate({"key": "env:HEALTHD_TEST_KEY"}).key.reveal() == MARKER


def test_file_reference_resolves_without_trailing_newline(tmp_path):
    path = tmp_path / "key"
    path.write_text(MARKER + "\n")
    assert Model.model_validate({"key": f"file:{path}"}).key.reveal() == MARKER


def test_an_already_built_secret_is_accepted():
    assert Model(key=Secret(MARKER)).key == Secret(MARKER)


def test_unset_env_var_error_names_the_variable(monkeypatch):
    monkeypatch.delenv("HEALTHD_UNSET", raising=False)
    with pytest.raises(ValidationError) as info:
        Model.model_validate({"key": "env:HEALTHD_UNSET"})
    [error] = info.value.errors()
    assert error["loc"] == ("key",)
    assert error["msg"] == "environment variable 'HEALTHD_UNSET' is not set"


def test_missing_file_error_names_the_file(tmp_path):
    path = tmp_path / "absent"
    with pytest.raises(ValueError, match=f"cannot read secret file '{path}'"):
        Secret.resolve(f"file:{path}")


def test_an_oversized_secret_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("x" * (MAX_SECRET_FILE_BYTES + 1))
    with pytest.raises(ValueError, match=f"secret file '{path}' is larger than"):
        Secret.resolve(f"file:{path}")


def test_a_secret_file_that_never_ends_is_refused_not_read_forever():
    """`file:/dev/zero` once made `healthd validate` read until memory ran out."""
    with pytest.raises(ValueError, match="secret file '/dev/zero' is larger than"):
        Secret.resolve("file:/dev/zero")


def test_literal_value_is_rejected_without_echoing_it():
    with pytest.raises(ValidationError) as info:
        Model.model_validate({"key": MARKER})
    assert "env:NAME" in str(info.value)
    assert MARKER not in str(info.value)


def test_json_dump_masks_the_secret_and_python_dump_keeps_the_object(monkeypatch):
    monkeypatch.setenv("HEALTHD_TEST_KEY", MARKER)
    model = Model.model_validate({"key": "env:HEALTHD_TEST_KEY"})
    assert MARKER not in repr(model)
    assert model.model_dump_json() == '{"key":"********"}'
    assert model.model_dump() == {"key": Secret(MARKER)}
