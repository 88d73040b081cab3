"""The live registry: integrations the CRM adds, changes and removes while healthd runs.

The config file is one source of integrations (read-only here); the registry API is the
other. A registered integration is validated by the config file's own models and rules
(`config.IntegrationRequest`, `config.build_integration`: the same key paths), its
credentials are sealed (`healthd.vault`) into a `RegistryRecord` in the store, and then it
is put to work at once:

- added: the runner and the scheduler take it, and it is probed now (within a second of
  the PUT), then in its slot;
- changed: the same, keeping its state; only a change that changes something (the body or
  a credential's value) counts, so the CRM's reconciliation job may send the same set
  every minute and nothing happens;
- removed: out of the runner (its series leave `/metrics`) and the scheduler; the alert
  engine is told, and its open incidents resolve on the next evaluation, once, as any
  condition that no longer holds. Its history stays in the store.

Every change is written to the store first, then applied: a change the store refused
(a StoreError) changes nothing. Changes are serialised by one lock, so an `If-Match`
check and the write it guards cannot interleave with another caller's.

The ETag of an integration is a digest of its stored body and its credentials'
fingerprints: it changes exactly when the integration does. A tenant's set has one too,
a digest over its members' ETags.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import (
    Callable,
    Collection,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    ValuesView,
)
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from pydantic import ValidationError

from healthd.alerts.settings import AlertingSettings
from healthd.clock import Clock, SystemClock
from healthd.config import (
    Config,
    Defaults,
    IntegrationRequest,
    IntegrationSpec,
    build_integration,
    config_error,
)
from healthd.errors import ConfigError, HealthdError, IntegrationNotFound
from healthd.interfaces import Store
from healthd.model import Integration, RegistryRecord
from healthd.secrets import Secret
from healthd.store import open_store
from healthd.vault import KeyRing, VaultError

log = structlog.get_logger("healthd.fleet")


class RegistryConflict(HealthdError):
    """The change cannot be made as asked: a config-file integration, an id that exists
    (`If-None-Match: *`), or one of another tenant. The API answers 409."""


class PreconditionFailed(HealthdError):
    """`If-Match` names another version than the current one. The API answers 412."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered integration: its stored record and what it was built into."""

    record: RegistryRecord
    integration: Integration
    fingerprints: Mapping[str, str]
    etag: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change did: the ids created, changed, removed and left as they were."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Hooks:
    """Who hears of a change once it is stored: the runner, scheduler, API index, engine."""

    added: Callable[[Integration], None]
    removed: Callable[[Integration], None]


class Entries(Mapping[str, Entry]):
    """The registered integrations by id, and by tenant: a tenant's PUT, GET and ETag read
    its own entries only. They scanned every registration three times (its set's removals,
    the answer's list and its ETag): at 100,000 integrations in 1,000 tenants, 300,000
    entries read per PUT of 100 (bench/RESULTS.md, "A tenant PUT reads the tenant's own
    registrations")."""

    def __init__(self) -> None:
        self._by_id: dict[str, Entry] = {}
        self._by_tenant: dict[str, dict[str, Entry]] = {}

    def __getitem__(self, integration_id: str) -> Entry:
        return self._by_id[integration_id]

    def __contains__(self, integration_id: object) -> bool:
        return integration_id in self._by_id

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def values(self) -> ValuesView[Entry]:
        return self._by_id.values()  # the dict's own: the mixin's looks each id up again

    def items(self) -> ItemsView[str, Entry]:
        return self._by_id.items()

    def put(self, entry: Entry) -> None:
        """Adds `entry`, or replaces the one of its id, which may have been another tenant's
        (a single PUT may move an integration)."""
        iid = entry.record.id
        old = self._by_id.get(iid)
        if old is not None and old.record.tenant != entry.record.tenant:
            self._leave(old)
        self._by_id[iid] = entry
        self._by_tenant.setdefault(entry.record.tenant, {})[iid] = entry

    def pop(self, integration_id: str) -> Entry:
        entry = self._by_id.pop(integration_id)
        self._leave(entry)
        return entry

    def of_tenant(self, tenant: str) -> Collection[Entry]:
        return self._by_tenant.get(tenant, {}).values()

    def _leave(self, entry: Entry) -> None:
        members = self._by_tenant[entry.record.tenant]
        del members[entry.record.id]
        if not members:
            del self._by_tenant[entry.record.tenant]


def etag_of(spec: str) -> str:
    return '"' + hashlib.sha256(spec.encode()).hexdigest()[:16] + '"'


def _set_etag(entries: Iterable[Entry]) -> str:
    joined = ",".join(f"{e.record.id}={e.etag}" for e in sorted(entries, key=lambda e: e.record.id))
    return etag_of(joined)


class Fleet:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        clock: Clock,
        keys: KeyRing | None = None,
    ) -> None:
        self._defaults: Defaults = config.defaults
        self._alerting: AlertingSettings = config.alerting
        self._source = config.source
        self._from_file = {i.id: i for i in config.integrations}
        self._store = store
        self._clock = clock
        self.keys = keys if keys is not None else KeyRing(config.registry.keys)
        self.entries = Entries()
        self._lock = asyncio.Lock()
        self._hooks: Hooks | None = None

    # -- start -------------------------------------------------------------------------

    async def load(self) -> list[Integration]:
        """The stored registry, opened and validated: what the daemon starts with.

        Raises ConfigError (the CLI exits 2) when a credential cannot be opened (no key,
        or not the key it was sealed under) or a record no longer validates; nothing in
        the store is changed, so the right key on the next start finds everything.
        """
        for record in await self._store.registry_records():
            try:
                self.entries.put(self._entry(record))
            except VaultError as exc:
                raise ConfigError("registry.keys", str(exc)) from None
        self.check_file_ids(self._from_file)
        return [e.integration for e in self.entries.values()]

    def check_file_ids(self, ids: Iterable[str]) -> None:
        """A config file's integration ids must not be registered ones (ConfigError)."""
        for iid in ids:
            if iid in self.entries:
                raise ConfigError(
                    "integrations",
                    f"{iid!r} is in the config file and in the registry; remove one",
                )

    def file_integrations(self, integrations: Iterable[Integration]) -> None:
        """The config file's integrations after a reload (`healthd.reload`): read-only here."""
        self._from_file = {i.id: i for i in integrations}

    def attach(self, hooks: Hooks) -> None:
        """Who applies changes from now on (the daemon, once everything is up)."""
        self._hooks = hooks

    def _entry(self, record: RegistryRecord) -> Entry:
        doc = json.loads(record.spec)
        sealed: dict[str, dict[str, str]] = doc.pop("credentials")
        credentials = {
            name: self.keys.open(c["sealed"], context=f"{record.id}.credentials.{name}")
            for name, c in sealed.items()
        }
        integration = self._built(doc, record.id, credentials, self._defaults)
        fingerprints = {n: c["fingerprint"] for n, c in sealed.items()}
        # The body and the fingerprints, not the ciphertext: a rekey keeps the ETag.
        return Entry(record, integration, fingerprints, etag_of(_dump({**doc, "_": fingerprints})))

    def _built(
        self,
        doc: Mapping[str, Any],
        integration_id: str,
        credentials: Mapping[str, Secret],
        defaults: Defaults,
    ) -> Integration:
        """A stored body (credentials opened, given apart) built under `defaults`."""
        spec = IntegrationSpec.model_validate(doc)
        return build_integration(
            spec, integration_id, credentials, defaults=defaults, alerting=self._alerting
        )

    # -- a reload's new defaults (healthd.reload) -----------------------------------------

    def under_defaults(self, defaults: Defaults) -> list[Integration]:
        """The registered integrations that `defaults` would change (those that leave a
        value unset), built again; nothing is applied yet. Raises ConfigError naming the
        first registered integration that the new defaults do not fit (a timeout not
        below the new interval): the reload then keeps the running config."""
        changed = []
        for iid, entry in self.entries.items():
            doc = json.loads(entry.record.spec)
            doc.pop("credentials")
            try:
                integration = self._built(doc, iid, entry.integration.credentials, defaults)
            except ConfigError as exc:
                raise ConfigError(
                    "defaults", f"the registered integration {iid!r} would not fit them: {exc}"
                ) from None
            if integration != entry.integration:
                changed.append(integration)
        return changed

    def take_defaults(self, defaults: Defaults, changed: Iterable[Integration]) -> None:
        """Applies what `under_defaults` found: later registrations are built under
        `defaults` too, and each changed integration goes through the hooks (re-scheduled at
        its new interval and probed now, as any changed registration)."""
        self._defaults = defaults
        for integration in changed:
            self.entries.put(replace(self.entries[integration.id], integration=integration))
            if self._hooks is not None:
                self._hooks.added(integration)

    # -- reads -------------------------------------------------------------------------

    def source_of(self, integration_id: str) -> str | None:
        """`config` or `api` for an id healthd knows, else None."""
        if integration_id in self._from_file:
            return "config"
        return "api" if integration_id in self.entries else None

    def tenant_entries(self, tenant: str) -> list[Entry]:
        return list(self.entries.of_tenant(tenant))

    def tenant_etag(self, tenant: str) -> str:
        return _set_etag(self.tenant_entries(tenant))

    # -- changes -----------------------------------------------------------------------

    async def put(
        self,
        integration_id: str,
        body: Mapping[str, Any],
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[Entry, Outcome]:
        """Create or replace one integration. Raises ConfigError (422), RegistryConflict
        (409), PreconditionFailed (412), StoreError."""
        async with self._lock:
            self._writable(integration_id)
            current = self.entries.get(integration_id)
            _check_match(current, if_match, if_none_match)
            record = self._record(integration_id, body, current, at="")
            outcome = Outcome()
            await self._commit([record] if record else [], [], outcome)
            return self.entries[integration_id], outcome

    async def delete(self, integration_id: str, *, if_match: str | None = None) -> None:
        async with self._lock:
            self._writable(integration_id)
            current = self.entries.get(integration_id)
            if current is None:
                raise IntegrationNotFound(integration_id)
            _check_match(current, if_match, None)
            await self._commit([], [integration_id], Outcome())

    async def replace_tenant(
        self, tenant: str, items: Sequence[Any], *, if_match: str | None = None
    ) -> Outcome:
        """Makes `items` the tenant's whole registered set, in one store transaction:
        what is new is created, what differs is changed, what is missing is removed,
        what is the same is left alone (so the call is idempotent)."""
        async with self._lock:
            if if_match is not None and if_match not in ("*", self.tenant_etag(tenant)):
                raise PreconditionFailed(
                    f"the tenant {tenant!r}'s integrations have changed (ETag"
                    f" {self.tenant_etag(tenant)})"
                )
            records: list[RegistryRecord] = []
            wanted: set[str] = set()
            for n, item in enumerate(items):
                at = f"integrations[{n}]"
                if not isinstance(item, dict):
                    raise ConfigError(at, "must be an object")
                iid = item.get("id")
                if not isinstance(iid, str):
                    raise ConfigError(f"{at}.id", "required key is missing")
                if iid in wanted:
                    raise ConfigError(f"{at}.id", f"duplicate integration id {iid!r}")
                wanted.add(iid)
                self._writable(iid)
                doc = {"tenant": tenant, **item}
                if doc["tenant"] != tenant:
                    raise ConfigError(f"{at}.tenant", f"must be {tenant!r}, the tenant of the path")
                current = self.entries.get(iid)
                if current is not None and current.record.tenant != tenant:
                    raise RegistryConflict(f"{iid!r} belongs to another tenant")
                record = self._record(iid, doc, current, at=at)
                if record is not None:
                    records.append(record)
            gone = [e.record.id for e in self.tenant_entries(tenant) if e.record.id not in wanted]
            outcome = Outcome(unchanged=sorted(wanted - {r.id for r in records}))
            await self._commit(records, gone, outcome)
            return outcome

    async def rekey(self) -> int:
        """Seals every credential again under the ring's first key; returns how many
        records changed. Fingerprints and ETags stay: the values did not change."""
        async with self._lock:
            records = []
            for entry in self.entries.values():
                doc = json.loads(entry.record.spec)
                stale = [
                    n for n, c in doc["credentials"].items() if self.keys.needs_rekey(c["sealed"])
                ]
                if not stale:
                    continue
                for name in stale:
                    value = entry.integration.credentials[name]
                    context = f"{entry.record.id}.credentials.{name}"
                    doc["credentials"][name]["sealed"] = self.keys.seal(
                        value.reveal(), context=context
                    )
                records.append(replace(entry.record, spec=_dump(doc)))
            await self._store.registry_write(put=records, delete=[])
            for record in records:
                self.entries.put(replace(self.entries[record.id], record=record))
            return len(records)

    async def sync(self) -> Outcome:
        """Another replica changed the registry (PostgreSQL tells every replica,
        `PostgresStore.watch_meta`): the stored registry is read again and what differs
        from this replica's is applied through the hooks, as a change made here would be,
        so its owner probes it at once and every replica's API lists it. Writes nothing.

        Raises ConfigError when a stored credential cannot be opened here (replicas with
        different keys), StoreError when the store cannot be read.
        """
        async with self._lock:
            stored = {r.id: r for r in await self._store.registry_records()}
            changed = [
                record
                for iid, record in stored.items()
                if iid not in self._from_file
                and (
                    (entry := self.entries.get(iid)) is None
                    or (entry.record.revision, entry.record.spec) != (record.revision, record.spec)
                )
            ]
            gone = [iid for iid in self.entries if iid not in stored]
            outcome = Outcome()
            try:
                self._apply(changed, gone, outcome)
            except VaultError as exc:
                raise ConfigError("registry.keys", str(exc)) from None
            return outcome

    # -- helpers -----------------------------------------------------------------------

    def _writable(self, integration_id: str) -> None:
        if integration_id in self._from_file:
            raise RegistryConflict(
                f"{integration_id!r} comes from the config file ({self._source}); it is"
                " read-only through the API: change it there"
            )

    def _record(
        self,
        integration_id: str,
        body: Mapping[str, Any],
        current: Entry | None,
        *,
        at: str,
    ) -> RegistryRecord | None:
        """The record `body` makes, or None when it would change nothing."""
        try:
            request = IntegrationRequest.model_validate(body)
        except ValidationError as exc:
            raise config_error(exc, prefix=at) from None
        if request.id is not None and request.id != integration_id:
            key = f"{at}.id" if at else "id"
            raise ConfigError(key, f"must be {integration_id!r}, the id of the path")
        if request.credentials is not None:
            credentials: Mapping[str, Secret] = request.credentials
        elif current is not None:
            credentials = current.integration.credentials
        else:
            credentials = {}
        integration = self._built(
            request.model_dump(exclude={"id", "credentials"}, exclude_unset=True),
            integration_id,
            credentials,
            self._defaults,
        )
        doc = dict(body)
        doc.pop("id", None)
        doc.pop("credentials", None)
        if current is not None:
            before = json.loads(current.record.spec)
            before.pop("credentials")
            if before == doc and dict(current.integration.credentials) == dict(credentials):
                return None
        if self.keys.empty:
            raise ConfigError(
                "registry.keys", "no key to seal credentials with: the registry is off"
            )
        doc["credentials"] = {
            name: self._sealed(integration_id, name, value, current)
            for name, value in sorted(credentials.items())
        }
        revision = current.record.revision + 1 if current else 1
        record = RegistryRecord(
            id=integration_id,
            tenant=integration.tenant,
            revision=revision,
            spec=_dump(doc),
            updated_at=self._clock.now(),
        )
        return record

    def _sealed(
        self, integration_id: str, name: str, value: Secret, current: Entry | None
    ) -> dict[str, str]:
        """A credential's stored form; an unchanged value keeps its fingerprint."""
        if current is not None and current.integration.credentials.get(name) == value:
            fingerprint = current.fingerprints[name]
        else:
            fingerprint = self.keys.fingerprint(value.reveal())
        context = f"{integration_id}.credentials.{name}"
        return {
            "sealed": self.keys.seal(value.reveal(), context=context),
            "fingerprint": fingerprint,
        }

    async def _commit(
        self, records: list[RegistryRecord], gone: list[str], outcome: Outcome
    ) -> None:
        """Store first; then memory, then the hooks (the runner, scheduler, API, engine)."""
        await self._store.registry_write(put=records, delete=gone)
        self._apply(records, gone, outcome)

    def _apply(self, records: list[RegistryRecord], gone: list[str], outcome: Outcome) -> None:
        """Stored records into memory and through the hooks."""
        for record in records:
            (outcome.changed if record.id in self.entries else outcome.created).append(record.id)
            entry = self._entry(record)
            self.entries.put(entry)
            if self._hooks is not None:
                self._hooks.added(entry.integration)
        for iid in gone:
            entry = self.entries.pop(iid)
            outcome.removed.append(iid)
            if self._hooks is not None:
                self._hooks.removed(entry.integration)
        if records or gone:
            log.info(
                "registry_changed",
                created=len(outcome.created),
                changed=len(outcome.changed),
                removed=len(outcome.removed),
            )


def _check_match(current: Entry | None, if_match: str | None, if_none_match: str | None) -> None:
    if if_none_match == "*" and current is not None:
        raise PreconditionFailed("the integration exists (If-None-Match: *)")
    if if_match is None or if_match == "*" and current is not None:
        return
    if current is None or if_match != current.etag:
        now = current.etag if current else "none: it does not exist"
        raise PreconditionFailed(f"the integration has changed (its ETag is {now})")


def _dump(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


async def rekey_store(config: Config) -> tuple[int, int]:
    """`healthd rekey`: opens the config's store (taking its lock: not while a daemon runs
    on it), seals again what is under an older key; returns (changed, registered)."""
    store = open_store(config.store, config.history.retention())
    await store.open()
    try:
        fleet = Fleet(config=config, store=store, clock=SystemClock())
        await fleet.load()
        return await fleet.rekey(), len(fleet.entries)
    finally:
        await store.close()
