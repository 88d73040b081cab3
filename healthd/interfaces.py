"""The three seams of healthd, with the rules every implementation must keep.

Implementations do not repeat these docstrings; they point here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from healthd.model import (
    AlertEvent,
    Bucket,
    DeliveryOutcome,
    Finding,
    Incident,
    IncidentQuery,
    IncidentRecord,
    Integration,
    IntegrationState,
    OutboxItem,
    ProbeResult,
    ProviderTraits,
    RegistryRecord,
    Transition,
)

if TYPE_CHECKING:
    import aiohttp

    from healthd.catalog import Catalog
    from healthd.clock import Clock
    from healthd.http import SharedAnswers

OptionsT_contra = TypeVar("OptionsT_contra", bound=BaseModel, contravariant=True)


@dataclass(frozen=True, slots=True)
class PollCursor:
    """How far one poll of an integration's message list read: the newest update time
    among its records (the provider's clock, never past healthd's own)."""

    integration_id: str
    until: datetime


class DeliverySink(Protocol):
    """Where a probe hands the message statuses it read: the delivery ledger.

    `submit` never blocks and never raises; it returns False when the ledger's queue is
    full (the statuses are read again on the next run: a probe looks back over its
    window). The ledger counts each message once, however many runs report it.

    A poller reads its whole window every run (a late receipt changes a message read
    before), but hands over only what changed since its last accepted poll: `polled_until`
    is that poll's `PollCursor.until` (None when there is none: after a restart, a
    takeover, a refused submit), which `submit(..., cursor=)` moves on once queued. Every
    record is otherwise an insert the store refuses as a replay, run after run.
    """

    def submit(
        self, outcomes: Sequence[DeliveryOutcome], *, cursor: PollCursor | None = None
    ) -> bool: ...

    def polled_until(self, integration_id: str) -> datetime | None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeContext:
    """What a probe may use besides its integration. Replaces a long parameter list.

    `timeout` is what the probe's own work may take: `healthd.probing` hands the probe a
    share of the runner's deadline, so the probe's timeout findings come before the cut.
    """

    session: aiohttp.ClientSession
    clock: Clock
    catalog: Catalog
    timeout: float
    last_checked: datetime | None = None
    shared: SharedAnswers | None = None
    deliveries: DeliverySink | None = None

    def with_timeout(self, timeout: float) -> ProbeContext:
        """This context with another `timeout`, built field by field: every probe run
        makes one, and `dataclasses.replace` cost four times a plain construction."""
        return ProbeContext(
            session=self.session,
            clock=self.clock,
            catalog=self.catalog,
            timeout=timeout,
            last_checked=self.last_checked,
            shared=self.shared,
            deliveries=self.deliveries,
        )


@runtime_checkable
class Probe(Protocol[OptionsT_contra]):
    """Checks one provider account. One class per provider, in `probes/<provider>.py`.

    A probe only says what it found. The part every run shares (the clock's `started_at`,
    the duration, the deadline share, the options, the ProbeResult) is done once, by
    `healthd.probing.check(probe, integration, ctx)`, which the runner and `healthd check`
    call: a probe never builds a ProbeResult of its own.

    Contract:
    - `provider` is the name used in config (`twilio`) and in the `healthd.probes` entry point.
    - `traits` is all the core knows of the provider (display name, code prefix, whether it
      keeps an unreachable timer): the core never tests a provider's name.
    - `Options` is a pydantic model (extra="forbid") for the integration's `options:` block;
      `findings()` receives the integration's validated instance of it, typed
      (`Probe[MyOptions]`). `credentials` names the secret keys the integration must set.
    - `findings()` must not raise for anything the provider or the network does: a 401, a
      5xx, HTML where JSON was expected, a refused connection. Each becomes a Finding with
      a catalogue code and a remediation. (The runner still guards against bugs.)
    - `findings()` must not block the event loop: HTTP goes through `ctx.session`; a
      blocking SDK call goes through `asyncio.to_thread`.
    - `findings()` runs inside `ctx.timeout` seconds (already a share of the runner's
      deadline); it may set tighter per-request timeouts but never looser ones.
    - Secrets are revealed only where a request is built, and never put into a Finding.
    """

    provider: ClassVar[str]
    traits: ClassVar[ProviderTraits]
    Options: ClassVar[type[BaseModel]]
    credentials: ClassVar[tuple[str, ...]]
    default_base_url: ClassVar[str]

    async def findings(
        self, integration: Integration, options: OptionsT_contra, ctx: ProbeContext
    ) -> list[Finding]: ...


class Store(Protocol):
    """Durable memory: integration state, latest results, incidents and the alert outbox.

    Contract:
    - `record_run` writes the state, the result and the transitions in one transaction,
      so a crash leaves either all of a run or none of it.
    - `transitions` lists one integration's transitions newest first (the order they were
      recorded in), at most `limit`; only the newest `Retention.transitions` of each
      integration are kept.
    - `apply_alerts` writes incident changes and their outbox rows in one transaction:
      an incident is never marked open without its trigger queued, nor resolved without
      its resolve queued.
    - `claim_due` moves due rows from pending to sending with a conditional update, so a
      row is handed to one sender only; `requeue_stale` on start returns rows left in
      sending by a crash (they are sent again: PagerDuty dedups by key).
    - `claim_due` hands out rows in id order and never one whose channel and dedup key
      match an older row still pending or sending: a resolve never overtakes its trigger.
      Attempts are counted by the `mark_*` methods, not by the claim.
    - All methods are coroutines and never block the event loop.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def load_states(self) -> dict[str, IntegrationState]: ...

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None: ...

    async def latest_results(self) -> dict[str, ProbeResult]: ...

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]: ...

    async def open_incidents(self) -> list[Incident]: ...

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None: ...

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]: ...

    async def mark_sent(self, item_id: int, now: datetime) -> None: ...

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None: ...

    async def mark_rejected(self, item_id: int, error: str) -> None: ...

    async def requeue_stale(self) -> int: ...

    async def outbox_pending(self) -> dict[str, int]: ...

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        """Age in seconds of the oldest pending or sending row (None when there is none)."""
        ...

    async def get_meta(self, key: str) -> Any: ...

    async def set_meta(self, key: str, value: Any) -> None: ...

    # -- history (issue 15) -------------------------------------------------------------
    # `record_run` also counts each run that proved something (status not unknown) into
    # its integration's buckets, an hour and a day (`healthd.store._history`), in
    # the run's own transaction; buckets older than `Retention.recent_history` (hours)
    # or `Retention.history` (days) before the integration's latest day are dropped.
    # Every incident occurrence is kept as its own record (see `apply_alerts`).

    async def buckets(
        self, integration_id: str, span_seconds: int, since: datetime
    ) -> list[Bucket]:
        """One integration's buckets of that span starting at or after `since`, oldest first."""
        ...

    async def fleet_buckets(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, list[Bucket]]:
        """The buckets of that span since `since` (oldest first) of each integration in
        `ids`, in one read: a page of the status page's bars. Integrations with none are
        left out. Always a page's ids, never the fleet: a fleet's 90 days are millions."""
        ...

    async def fleet_totals(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, Bucket]:
        """The buckets of that span since `since` of each integration in `ids` added up
        into one (its `start` is `since`): a window's share without its rows."""
        ...

    async def incident_history(self, query: IncidentQuery) -> list[IncidentRecord]:
        """Incident occurrences newest first (by id), filtered and paged by `query`."""
        ...

    # -- the registry: integrations added through the API (healthd.fleet) -------------
    #
    # - `registry_records` lists every record, in id order;
    # - `registry_write` puts (insert or replace by id) and deletes records in one
    #   transaction: a tenant's whole set is replaced all or nothing;
    # - a record's `spec` is stored as given (sealed credentials); the store never opens it.
    # Removing a record removes nothing else: the integration's state, transitions and
    # incidents stay for their retention.

    async def registry_records(self) -> list[RegistryRecord]: ...

    async def registry_write(
        self, *, put: Sequence[RegistryRecord], delete: Sequence[str]
    ) -> None: ...

    # -- the delivery ledger (issue 12: provider callbacks and polled message statuses) --
    # - `record_deliveries` keeps each (integration_id, message_id, status) once, the whole
    #   batch in one transaction, and returns the outcomes it counted, in the batch's order
    #   (`DeliveryStage` says which count): a replayed status is not counted again, nor a
    #   message's second final status. Outcomes older than `Retention.deliveries_age`
    #   before the batch's newest are pruned.
    # - `counted_deliveries(since)`: every counted outcome at or after `since`, oldest
    #   first; the ledger's windows are rebuilt from it after a restart.
    # - `delivery_examples`: one integration's newest counted outcomes with that provider
    #   code at or after `since`, newest first, at most `limit` (the support bundle).

    async def record_deliveries(
        self, outcomes: Sequence[DeliveryOutcome]
    ) -> list[DeliveryOutcome]: ...

    async def counted_deliveries(self, since: datetime) -> list[DeliveryOutcome]: ...

    async def delivery_examples(
        self, integration_id: str, provider_code: str, since: datetime, limit: int
    ) -> list[DeliveryOutcome]: ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers one alert event to one channel (PagerDuty, a tenant's webhook).

    Contract:
    - `channel` is its channel's name (`healthd.alerts.channels`), the outbox queue it
      drains.
    - `send()` either returns (the receiver accepted the event) or raises
      `DeliveryError(permanent=...)`: permanent when sending again cannot help (400, bad
      key), transient for 429, 5xx and network errors. Nothing else escapes.
    - `close()` releases what the notifier holds itself (a client, its connections), not
      what it was given (the daemon's shared HTTP session). The daemon calls it once at
      shutdown, after the outbox's last flush.
    - Payloads are built by pure functions beside the notifier, testable without I/O.
    - The routing key or signing secret never appears in an exception or a log line.
    """

    channel: str

    async def send(self, event: AlertEvent) -> None: ...

    async def close(self) -> None: ...
