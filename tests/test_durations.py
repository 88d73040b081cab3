from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from healthd.durations import Duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("2d", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
        ("90", timedelta(seconds=90)),
        (45, timedelta(seconds=45)),
        (0.25, timedelta(seconds=0.25)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parses_units_and_plain_seconds(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["10 minutes", "", "m", "10x", "-5s", "1h 30m", True, -1, None])
def test_rejects_anything_else_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"^invalid duration "):
        parse_duration(bad)


def test_error_message_quotes_the_value():
    with pytest.raises(ValueError) as info:
        parse_duration("10 minutes")
    assert str(info.value) == "invalid duration '10 minutes'"


class Model(BaseModel):
    page_after: Duration


def test_pydantic_field_parses_duration():
    assert Model.model_validate({"page_after": "10m"}).page_after == timedelta(minutes=10)


def test_pydantic_error_carries_the_plain_message_at_the_key():
    with pytest.raises(ValidationError) as info:
        Model.model_validate({"page_after": "10 minutes"})
    [error] = info.value.errors()
    assert error["loc"] == ("page_after",)
    assert error["msg"] == "invalid duration '10 minutes'"
