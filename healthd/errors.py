"""The exceptions healthd raises, as a small tree.

    HealthdError                   base; never raised itself
    ├── ConfigError(path, message) the config file is wrong; the CLI exits 2 (config.py)
    ├── UnknownProviderError       no probe is registered for a provider (registry.py)
    ├── NotFoundError              an id, tenant or code the caller asked for is not there
    │   ├── IntegrationNotFound    (api/, runner) -> HTTP 404
    │   └── CodeNotFound           (catalog) -> HTTP 404, `healthd explain` exit 1
    ├── StoreError                 the store could not read or write (store/)
    ├── LeaseLost                  this replica no longer holds the lease a write was
    │                              fenced by: the write is dropped, never held (store/)
    └── DeliveryError(permanent)   a notifier could not deliver an event (alerts/);
                                   permanent ones are recorded, transient ones retried

Messages name the offending thing (`integrations[2].page_after`, `'bridge-dc1'`), because
the person reading them at 3 a.m. should not have to guess which of forty entries it is.
Messages never contain a secret.
"""

from __future__ import annotations


class HealthdError(Exception):
    """Base of every error healthd raises on purpose."""


class ConfigError(HealthdError):
    """The configuration is invalid; `path` is the key path, as in `integrations[2].timeout`."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class UnknownProviderError(HealthdError):
    def __init__(self, provider: str, known: list[str]) -> None:
        self.provider = provider
        super().__init__(
            f"no probe is registered for provider {provider!r}; known: {', '.join(sorted(known))}"
        )


class NotFoundError(HealthdError):
    """Something asked for by id is not there. The API answers 404 with this message."""


class IntegrationNotFound(NotFoundError):
    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id
        super().__init__(f"no integration by the id of {integration_id!r}")


class CodeNotFound(NotFoundError):
    def __init__(self, provider: str, code: str) -> None:
        super().__init__(f"no catalogue entry for {provider} code {code!r}")


class StoreError(HealthdError):
    """The store failed to read or write."""


class LeaseLost(HealthdError):
    """A write fenced by a lease (the alert plan) was refused: another replica holds the
    lease now. Not a StoreError on purpose: a store that cannot write has its plan's events
    held and sent from memory, a replica that lost the lease must send nothing."""


class DeliveryError(HealthdError):
    """A notifier could not deliver an event.

    `permanent` is True when sending again cannot help (PagerDuty 400: the event or the
    routing key is wrong); False for 429, 5xx and network errors, which the outbox retries.
    """

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(message)
