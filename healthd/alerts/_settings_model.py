"""The base of every model under `alerting:`, the rules' own settings included.

A leaf module, so that the rule modules (whose settings `healthd.alerts.settings` gathers
into its `rules:` block) and the settings module can share it without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SettingsModel(BaseModel):
    """Unknown keys are rejected (a typo must not silently disable a pager), values are
    frozen, and `hide_input_in_errors` keeps pydantic from echoing an input value (a literal
    secret pasted by mistake) in its messages."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
