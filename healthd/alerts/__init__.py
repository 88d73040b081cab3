"""Alerting: rules decide which incidents are open, the outbox delivers their events.

runner ──> rules.evaluate(...) -> AlertPlan ──> Store.apply_alerts (incidents + outbox rows)
                                                      │
        PagerDuty / tenant webhooks <── Notifier <── Outbox (claim, send, retry, reject)

- `rules/`: one module per rule and the rule table (`rules.table.RULES`);
- `channels`, `routing`: channel names, and which channel a condition goes to;
- `notifiers`: the notifier table (`build_notifiers`); `pagerduty`, `webhook`: notifiers;
- `outbox`: durable delivery; `engine`: runs the rules; `settings`: the `alerting:` block.

Nothing is imported here, so `import healthd.config` (which needs only the settings) does
not load the notifiers' SDKs.
"""

from __future__ import annotations
