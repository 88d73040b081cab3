"""SIGHUP: the config file read again, validated first, applied only when it is sound.

As Prometheus and Alertmanager do: a file that does not validate changes nothing (the
daemon goes on with the config it has), the error is logged with its key path, and
`healthd_config_last_reload_successful` drops to 0 until a reload succeeds, so an alert
can say that the file on disk is not what runs. A sound file is applied at once:

- its integrations, compared with the running ones from the file: the new are added, the
  changed replaced (their state kept), the gone removed (their incidents resolve), through
  the same hooks as the registry API (`healthd.fleet.Hooks`);
- its API tokens replace the running ones.

- its defaults (interval, timeout, thresholds): the file's integrations are built under
  them anyway, and so are the registry API's that leave a value unset; those that change
  are re-scheduled and probed now. A registered integration that the new defaults do not
  fit (a timeout it sets, not below the new default interval) refuses the file, as a
  bad file.

Everything else in the file (listen, store, alerting, the defaults' `concurrency` and
`jitter`) takes a restart; a reload that changes any of it says so in the log.
A file integration whose id the registry API holds is refused, as at start.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Gauge

from healthd import config as config_module
from healthd.clock import Clock
from healthd.config import Config
from healthd.errors import ConfigError
from healthd.fleet import Fleet, Hooks

log = structlog.get_logger("healthd.reload")

SUCCESSFUL = "healthd_config_last_reload_successful"
SUCCESS_TIME = "healthd_config_last_reload_success_timestamp_seconds"
# What a reload applies; every other top-level part of the file needs a restart.
_RESTART_ONLY = ("listen", "store", "alerting", "registry", "history")
# The defaults the running daemon was sized with at start (its session and scheduler).
_RESTART_ONLY_DEFAULTS = ("concurrency", "jitter")


class Reloader:
    def __init__(
        self,
        *,
        running: Config,
        fleet: Fleet,
        hooks: Hooks,
        tokens: Callable[[Config], None],
        clock: Clock,
        registry: CollectorRegistry,
    ) -> None:
        self.running = running
        self._fleet = fleet
        self._hooks = hooks
        self._tokens = tokens
        self._clock = clock
        self._ok = Gauge(
            SUCCESSFUL,
            "Whether the last config reload succeeded (1) or not (0).",
            registry=registry,
        )
        self._at = Gauge(
            SUCCESS_TIME, "When the config was last loaded successfully.", registry=registry
        )
        self._succeeded()

    def reload(self) -> bool:
        """Reads `running.source` again; returns whether it was applied."""
        path = self.running.source
        try:
            new = config_module.load(path)
            self._fleet.check_file_ids(i.id for i in new.integrations)
            defaults = self.running.defaults.model_copy(
                update=new.defaults.model_dump(exclude=set(_RESTART_ONLY_DEFAULTS))
            )
            registered = (
                self._fleet.under_defaults(defaults) if defaults != self.running.defaults else []
            )
        except ConfigError as exc:
            self._ok.set(0)
            log.error(
                "config_reload_failed",
                path=path,
                error=str(exc),
                message="the file is not valid; the running config is kept",
            )
            return False
        old = {i.id: i for i in self.running.integrations}
        fresh = {i.id: i for i in new.integrations}
        self._fleet.file_integrations(new.integrations)
        for iid, integration in old.items():
            if iid not in fresh:
                self._hooks.removed(integration)
        changed = [i for iid, i in fresh.items() if old.get(iid) != i]
        for integration in changed:
            self._hooks.added(integration)
        self._fleet.take_defaults(defaults, registered)
        self._tokens(new)
        restart = [k for k in _RESTART_ONLY if getattr(new, k) != getattr(self.running, k)]
        restart += [
            f"defaults.{k}"
            for k in _RESTART_ONLY_DEFAULTS
            if getattr(new.defaults, k) != getattr(self.running.defaults, k)
        ]
        self.running = Config(
            **{
                **{k: getattr(self.running, k) for k in _RESTART_ONLY},
                "defaults": defaults,
                "api": new.api,
                "integrations": new.integrations,
                "source": path,
            }
        )
        self._succeeded()
        log.info(
            "config_reloaded",
            path=path,
            added_or_changed=len(changed),
            registered_changed=len(registered),
            removed=len(old.keys() - fresh.keys()),
            needs_restart=restart,
        )
        return True

    def _succeeded(self) -> None:
        self._ok.set(1)
        self._at.set(self._clock.now().timestamp())
