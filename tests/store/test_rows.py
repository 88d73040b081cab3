"""The row codecs' encodings, checked against what they stand for."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from healthd.model import Category, Finding, ProbeResult, Status
from healthd.store import _rows

NOW = datetime(2026, 12, 1, 23, 0, 0, 123456, tzinfo=UTC)


def awkward_result(iid: str = 'bridge-"1" é') -> ProbeResult:
    """Text JSON must escape (quotes, backslash, newline, non-ASCII), every field set."""
    return ProbeResult(
        integration_id=iid,
        status=Status.DEGRADED,
        started_at=NOW,
        duration_seconds=0.0512,
        findings=(
            Finding(
                check="backlog",
                status=Status.DEGRADED,
                code="bridge.backlog",
                provider_code="21610",
                category=Category.RECIPIENT,
                summary='4 outgoing "iMessages" \\ undelivered\n— oldest 15 minutes',
                remediation="Check the Mac’s network",
                count=4,
                examples=("guid-1", "guid-é"),
            ),
            Finding(check="reachability", status=Status.OK, code="bridge.ok", summary="up"),
        ),
    )


def test_a_result_row_holds_the_results_json_as_json_dumps_writes_it() -> None:
    result = awkward_result()
    assert _rows.result_row(result) == (result.integration_id, json.dumps(result.to_dict()))


def test_a_result_row_is_the_same_text_when_its_findings_were_seen_before() -> None:
    first, again = awkward_result("a"), awkward_result("b")
    _rows.result_row(first)
    assert _rows.result_row(again)[1] == json.dumps(again.to_dict())


def test_a_result_row_reads_back_as_the_result() -> None:
    result = awkward_result()
    assert _rows.result_from_row(_rows.result_row(result)) == result


def test_a_result_whose_text_names_the_findings_key_reads_back_as_the_result() -> None:
    """The decoder finds the findings by their key's spelling: a summary or an id that
    spells it too (escaped, inside a JSON string) must not mislead it."""
    tricky = 'x, "findings": [{"a": 1}]}'
    result = awkward_result(tricky)
    finding = replace(result.findings[0], summary=tricky, examples=(tricky,))
    result = replace(result, findings=(finding, *result.findings[1:]))
    assert _rows.result_from_row(_rows.result_row(result)) == result


@pytest.mark.parametrize(
    "spell",
    [
        lambda d: json.dumps(d, separators=(",", ":")),  # compact: another writer's
        lambda d: json.dumps({"findings": d["findings"], **d}),  # findings not last
        lambda d: json.dumps(d, indent=2),
    ],
)
def test_a_result_spelled_another_way_still_reads_back(spell: Callable[[Any], str]) -> None:
    result = awkward_result()
    assert _rows.result_from_row((result.integration_id, spell(result.to_dict()))) == result


def test_results_read_back_with_the_same_findings_share_them() -> None:
    """A start-up reads 100,000 results of a few distinct findings: one tuple each."""
    first, second = (
        _rows.result_from_row(_rows.result_row(awkward_result(iid))) for iid in ("a", "b")
    )
    assert first.integration_id == "a" and second.integration_id == "b"
    assert first.findings is second.findings


def test_findings_past_the_kept_number_are_still_encoded_in_full() -> None:
    results = [
        ProbeResult(
            integration_id="i",
            status=Status.OK,
            started_at=NOW,
            duration_seconds=0.1,
            findings=(Finding(check="c", status=Status.OK, code="x.ok", summary=f"run {n}"),),
        )
        for n in range(_rows.FINDING_TEXTS_KEPT + 10)
    ]
    assert [_rows.result_row(r)[1] for r in results] == [json.dumps(r.to_dict()) for r in results]


@pytest.mark.parametrize(
    "when",
    [
        NOW,
        NOW.astimezone(timezone(timedelta(hours=-5))),
        NOW.replace(tzinfo=timezone(timedelta(0), "Z")),
    ],
)
def test_a_datetime_is_written_as_fixed_width_utc_whatever_its_zone(when: datetime) -> None:
    assert _rows.iso(when) == "2026-12-01T23:00:00.123456+00:00"


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _rows.iso(NOW.replace(tzinfo=None))
