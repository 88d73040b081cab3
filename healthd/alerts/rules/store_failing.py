"""`store_failing` (`healthd/store_failing`): healthd's own store has refused writes (a full
disk, a database file replaced under the daemon) for longer than `after`.

healthd keeps probing and paging from memory meanwhile, but nothing it learns survives a
restart, so on-call must hear of it: this page is delivered from memory like any other,
and resolves once a write succeeds again. It holds back nothing: the fleet's pages are
still right, only not yet durable. A single failed write (a lock held a moment too long)
does not page: the store must keep failing for `after`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import Condition, Rule, RuleSettings, Scene, format_duration
from healthd.durations import Duration
from healthd.model import Severity

_KEY = "healthd/store_failing"


class StoreFailingSettings(RuleSettings):
    after: Duration = timedelta(minutes=1)


class StoreFailing(Rule[StoreFailingSettings]):
    name = "store_failing"
    settings = StoreFailingSettings

    def edges(self, scene: Scene, settings: StoreFailingSettings) -> Iterator[datetime]:
        since = scene.store_failing_since
        if since is not None and since + settings.after > scene.now:
            yield since + settings.after

    def conditions(self, scene: Scene, settings: StoreFailingSettings) -> Iterator[Condition]:
        since = scene.store_failing_since
        if since is None or scene.now - since < settings.after:
            return
        yield Condition(
            rule=self.name,
            dedup_key=_KEY,
            audience=Audience.ON_CALL,
            summary=f"healthd cannot write its store for {format_duration(scene.now - since)}:"
            " state and pages live in memory only until it can",
            severity=Severity.CRITICAL,
            details={"failing_since": since.isoformat(), "error": scene.store_problem or ""},
        )
