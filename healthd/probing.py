"""The part of a probe run that is the same for every probe, done once.

As blackbox_exporter's handler does for its probers, this step owns the frame of a run and
the probe fills in only what it found (`Probe.findings`):

- `started_at` from the injectable clock, and the duration;
- the deadline share: the runner cuts a run off at exactly `ctx.timeout` and then keeps
  none of its findings (`healthd.probe_timeout`), so the probe's own work gets the first
  DEADLINE_SHARE of that time, and a hanging provider shows as the probe's own timeout
  finding, with whatever the earlier steps found;
- the probe's own validated `Options` instance, typed;
- redaction: every finding's text (summary, remediation, examples, provider code) is masked
  against each of the integration's credentials and anything credential-shaped
  (`healthd.secrets.Redactor`), because a provider, a proxy or a bridge may echo the request
  (the bridge's `?password=`, an Authorization header) into an error body or message, and
  from a finding it would reach the status API, `healthd check`, webhooks and PagerDuty;
- the ProbeResult, whose status is the worst of the findings.

The runner (and so `healthd check`) calls `check`; so do the probe tests.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TypeVar, cast

from pydantic import BaseModel

from healthd.interfaces import Probe, ProbeContext
from healthd.model import Finding, Integration, ProbeResult
from healthd.secrets import Redactor

OptionsT = TypeVar("OptionsT", bound=BaseModel)

DEADLINE_SHARE = 0.9


async def check(probe: Probe[OptionsT], integration: Integration, ctx: ProbeContext) -> ProbeResult:
    """One run of `probe` for `integration`; `ctx.timeout` is the runner's whole deadline."""
    started_at = ctx.clock.now()
    t0 = time.perf_counter()
    findings = await probe.findings(
        integration,
        options_for(probe, integration),
        ctx.with_timeout(ctx.timeout * DEADLINE_SHARE),
    )
    redactor = redactor_for(integration)
    if not redactor.leaves_alone("\0".join(t for f in findings for t in _texts(f))):
        findings = [redacted(f, redactor) for f in findings]
    return ProbeResult.from_findings(
        integration_id=integration.id,
        started_at=started_at,
        duration_seconds=time.perf_counter() - t0,
        findings=findings,
    )


def _texts(finding: Finding) -> tuple[str, ...]:
    """What `redacted` masks in `finding`."""
    code = finding.provider_code
    codes = () if code is None else (code,)
    return (finding.summary, finding.remediation, *finding.examples, *codes)


def redactor_for(integration: Integration) -> Redactor:
    """The integration's credentials (and their basic-auth pairs) as a Redactor."""
    return Redactor.for_credentials([s.reveal() for s in integration.credentials.values()])


def redacted(finding: Finding, redactor: Redactor) -> Finding:
    """`finding` with every text that may carry what a provider said masked; the finding
    itself when nothing was (nearly every run: a copy per finding is most of the cost)."""
    summary = redactor.redact(finding.summary)
    remediation = redactor.redact(finding.remediation)
    examples = tuple(redactor.redact(e) for e in finding.examples)
    code = finding.provider_code
    provider_code = None if code is None else redactor.redact(code)
    if (summary, remediation, examples, provider_code) == (
        finding.summary,
        finding.remediation,
        finding.examples,
        code,
    ):
        return finding
    return replace(
        finding,
        summary=summary,
        remediation=remediation,
        examples=examples,
        provider_code=provider_code,
    )


def options_for(probe: Probe[OptionsT], integration: Integration) -> OptionsT:
    """The integration's options as the probe's own type, the one place they are typed.

    Config always sets the validated instance; an Integration built by hand without options
    gets the defaults here. Anything else (a dict, another provider's options) is a bug in
    whoever built the Integration, and says so rather than being re-validated.
    """
    options = integration.options
    if options is None:
        options = probe.Options()
    elif not isinstance(options, probe.Options):
        raise TypeError(
            f"integration {integration.id!r}: options are a {type(options).__name__}, "
            f"not the {probe.provider} probe's {probe.Options.__name__}"
        )
    return cast(OptionsT, options)
