"""The shared step around every probe (`healthd.probing`), with a probe that makes no requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from healthd import probing
from healthd.catalog import Catalog
from healthd.clock import FakeClock
from healthd.interfaces import Probe, ProbeContext
from healthd.model import Finding, Integration, ProviderTraits, Status
from tests.email_support import make_integration

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status = Status.OK


class OtherOptions(BaseModel):
    """Another probe's options model."""


class EchoProbe:
    """Reports what the shared step handed it: the options and the context's timeout."""

    provider: ClassVar[str] = "echo"
    traits: ClassVar[ProviderTraits] = ProviderTraits(display_name="Echo", code_prefix="echo")
    Options: ClassVar[type[BaseModel]] = EchoOptions
    credentials: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.seen: list[tuple[EchoOptions, float]] = []

    async def findings(
        self, integration: Integration, options: EchoOptions, ctx: ProbeContext
    ) -> list[Finding]:
        self.seen.append((options, ctx.timeout))
        return [
            Finding(check="echo", status=Status.OK, code="echo.ok", summary="ok"),
            Finding(check="echo", status=options.status, code="echo.said", summary="said"),
        ]


def integration(options: Any = None) -> Integration:
    return make_integration("echo", "http://127.0.0.1:1", {}, options)


def context(timeout: float = 10.0) -> ProbeContext:
    return ProbeContext(
        session=None,  # type: ignore[arg-type]  # the echo probe makes no requests
        clock=FakeClock(NOW),
        catalog=Catalog({}),
        timeout=timeout,
    )


def test_the_echo_probe_meets_the_probe_protocol() -> None:
    assert isinstance(EchoProbe(), Probe)


async def test_started_at_comes_from_the_injected_clock() -> None:
    result = await probing.check(EchoProbe(), integration(), context())
    assert result.started_at == NOW
    assert result.integration_id == "echo-acme"
    assert result.duration_seconds >= 0


async def test_the_probe_gets_the_deadline_share_of_the_runner_s_timeout() -> None:
    probe = EchoProbe()
    await probing.check(probe, integration(), context(timeout=10.0))
    assert probe.seen[0][1] == pytest.approx(10.0 * probing.DEADLINE_SHARE)


async def test_the_result_is_as_bad_as_its_worst_finding() -> None:
    result = await probing.check(
        EchoProbe(), integration(EchoOptions(status=Status.FAILING)), context()
    )
    assert result.status is Status.FAILING
    assert [f.code for f in result.findings] == ["echo.ok", "echo.said"]


async def test_the_probe_receives_the_integration_s_own_options_instance() -> None:
    options = EchoOptions(status=Status.DEGRADED)
    probe = EchoProbe()
    await probing.check(probe, integration(options), context())
    assert probe.seen[0][0] is options


async def test_an_integration_without_options_gets_the_probe_s_defaults() -> None:
    probe = EchoProbe()
    await probing.check(probe, integration(), context())
    assert probe.seen[0][0] == EchoOptions()


@pytest.mark.parametrize("options", [{"status": "ok"}, OtherOptions()])
async def test_options_that_are_not_the_probe_s_model_are_a_bug_not_revalidated(
    options: Any,
) -> None:
    with pytest.raises(TypeError, match="not the echo probe's EchoOptions"):
        await probing.check(EchoProbe(), integration(options), context())
