"""Building an integration's answer: findings' answers are validated once per distinct
finding (`views.finding_view`), and a changed finding gets its own answer."""

from __future__ import annotations

from dataclasses import replace

from healthd.api.views import finding_view
from healthd.model import Finding, Status

FOUND = Finding(
    check="reachability",
    status=Status.OK,
    code="bridge.ok",
    summary="Bridge server 1.9.0 answered",
    examples=("SM0123",),
)


def test_the_same_finding_of_another_run_reuses_its_answer() -> None:
    again = replace(FOUND)  # an equal finding from a later run: another object
    assert again is not FOUND
    assert finding_view(again) is finding_view(FOUND)


def test_a_finding_that_differs_in_anything_gets_its_own_answer() -> None:
    later = replace(FOUND, summary="Bridge server 1.9.1 answered", examples=("SM0456",))
    view, later_view = finding_view(FOUND), finding_view(later)

    assert (view.summary, view.examples) == ("Bridge server 1.9.0 answered", ["SM0123"])
    assert (later_view.summary, later_view.examples) == (
        "Bridge server 1.9.1 answered",
        ["SM0456"],
    )
