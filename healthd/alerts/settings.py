"""Placeholder until the alerts branch lands: the shape config.py relies on."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from healthd.durations import Duration


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BridgeUnreachableRule(_M):
    enabled: bool = True
    page_after: Duration = timedelta(minutes=10)


class Rules(_M):
    bridge_unreachable: BridgeUnreachableRule = BridgeUnreachableRule()


class AlertingSettings(_M):
    rules: Rules = Rules()
