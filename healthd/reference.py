"""Reference tables for the README, generated from the code so the docs cannot drift.

`python -m healthd.reference` prints them; `tests/test_reference.py` fails when the
README's copy differs. The metrics table is read from a real registry holding the real
collector and instruments (one sample integration of each kind), so a metric added in
`metrics.py` shows up here with its type, labels and help text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from healthd.api.openapi import openapi_document
from healthd.metrics import (
    DELIVERY_SERIES,
    SERIES,
    AlertView,
    DeliveryInstruments,
    DeliveryRates,
    HealthCollector,
    Instruments,
    View,
)
from healthd.model import (
    Category,
    DeliveryOutcome,
    DeliveryStage,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    ProviderTraits,
    Status,
    Thresholds,
)

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _sample_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    bridge = Integration(
        id="bridge-dc1",
        provider="imessage_bridge",
        tenant="platform",
        base_url="http://bridge",
        page=True,
        interval=timedelta(seconds=60),
        timeout=timedelta(seconds=10),
        thresholds=Thresholds(),
        # It keeps an unreachable timer, so the table lists that series too.
        traits=ProviderTraits(
            display_name="iMessage bridge", code_prefix="bridge", tracks_unreachable=True
        ),
    )
    # Unreachable, so it has its per-integration series (only those that need attention do).
    state = IntegrationState(
        integration_id=bridge.id,
        status=Status.UNREACHABLE,
        last_checked=_NOW,
        last_success=_NOW - timedelta(minutes=15),
        unreachable_since=_NOW - timedelta(minutes=12),
        last_result_status=Status.UNREACHABLE,
    )
    registry.register(
        HealthCollector(
            lambda: [View(bridge, state, 0.1)],
            lambda: AlertView(
                pending={"pagerduty": 0},
                oldest_pending_age=None,
                open_incidents={"bridge_unreachable": 0},
            ),
            lambda: _NOW.timestamp(),
        )
    )
    instruments = Instruments(registry)
    instruments.observe(
        bridge,
        ProbeResult(
            integration_id=bridge.id,
            status=Status.FAILING,
            started_at=_NOW,
            duration_seconds=0.1,
            findings=(
                Finding(
                    check="auth",
                    status=Status.FAILING,
                    code="bridge.auth_invalid",
                    summary="",
                    category=Category.ACCOUNT,
                    provider_code="401",
                ),
            ),
        ),
    )
    instruments.alert_event("bridge_unreachable", "trigger", "sent")
    delivery = DeliveryInstruments(registry, known=lambda provider, code: True)
    delivery.counted(
        "twilio",
        DeliveryOutcome(
            integration_id="tw",
            message_id="SM0",
            status="undelivered",
            stage=DeliveryStage.FINAL,
            category=Category.RECIPIENT,
            provider_code="30003",
            at=_NOW,
        ),
    )
    delivery.callback("twilio", "accepted")
    registry.register(DeliveryRates(lambda: [bridge], lambda integration_id: 0.25))
    return registry


def metrics_markdown() -> str:
    rows = ["| metric | type | labels | series | meaning |", "| --- | --- | --- | --- | --- |"]
    for family in sorted(_sample_registry().collect(), key=lambda f: f.name):
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = sorted({k for s in family.samples for k in s.labels if k != "le"})
        rows.append(
            f"| `{name}` | {family.type} | {', '.join(f'`{label}`' for label in labels) or '—'} "
            f"| {(SERIES | DELIVERY_SERIES)[name]} | {family.documentation} |"
        )
    return "\n".join(rows)


def api_markdown() -> str:
    rows = ["| method and path | what it answers | errors |", "| --- | --- | --- |"]
    for path, item in openapi_document()["paths"].items():
        for method, op in item.items():
            errors = ", ".join(code for code in op["responses"] if not code.startswith("2"))
            rows.append(f"| `{method.upper()} {path}` | {op['summary']} | {errors} |")
    return "\n".join(rows)


SECTIONS = {"metrics": metrics_markdown, "api": api_markdown}


def render_into(text: str) -> str:
    """Replace every `<!-- reference:NAME -->` ... `<!-- /reference:NAME -->` block."""
    for name, make in SECTIONS.items():
        start, end = f"<!-- reference:{name} -->", f"<!-- /reference:{name} -->"
        if start in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{start}\n{make()}\n{end}{tail}"
    return text


if __name__ == "__main__":
    import sys
    from pathlib import Path

    readme = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("README.md")
    readme.write_text(render_into(readme.read_text()))
