"""Integration config entries pointed at this simulator: one provider's options, said once.

The demo, the end-to-end, scenario and contract tests and the benchmarks all configure the
same providers against the simulator. What makes a probe check the simulator's world (its
numbers and Messaging Service, its status pages, its token endpoint, a bridge's path) is
simulator knowledge, so it lives here beside the simulator, and a change to the simulator
changes every caller at once. Callers keep what differs between them: ids, tenants, and
how credentials are given (`env:NAME` references in a config, literal values in a bench).

An entry is the config-dict shape of one `integrations:` item; the bench turns it into an
`Integration` itself, everyone else hands it to `healthd.config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from healthd.sim.bridge import DEFAULT_PASSWORD as BRIDGE_PASSWORD
from healthd.sim.twilio import DEFAULT_TOKEN as TWILIO_TOKEN
from healthd.sim.twilio import LOCAL_NUMBER, TOLLFREE_NUMBER, service_sid

# The Google sim checks only that a client secret and a refresh token are sent.
GOOGLE_CLIENT_SECRET = "sim-google-secret"
GOOGLE_REFRESH_TOKEN = "sim-google-refresh-token"
# The SendGrid sim's verified sender.
FROM_EMAIL = "sales@example.com"
# An alias of the Google sim's mailbox (sales@), not the mailbox itself: only an alias
# carries a verificationStatus, so `send_as_pending` shows.
SEND_AS = "support@example.com"

Credentials = Mapping[str, str] | Callable[[str], str]


def sim_credentials(provider: str, target: str) -> dict[str, str]:
    """Literal credentials the simulator accepts for `target`, by the probe's credential names.

    The target is what the simulator keys a scenario on: a bridge's name, a Twilio account
    SID, a SendGrid API key, a Google OAuth client_id.
    """
    match provider:
        case "imessage_bridge":
            return {"password": BRIDGE_PASSWORD}
        case "twilio":
            return {"account_sid": target, "auth_token": TWILIO_TOKEN}
        case "sendgrid":
            return {"api_key": target}
        case "google":
            return {
                "client_id": target,
                "client_secret": GOOGLE_CLIENT_SECRET,
                "refresh_token": GOOGLE_REFRESH_TOKEN,
            }
    raise ValueError(f"the simulator has no fixture for provider {provider!r}")


def integration_entry(
    provider: str,
    sim_url: str,
    target: str,
    *,
    id: str,
    tenant: str,
    credentials: Credentials | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A healthy simulator-backed integration of `provider` for `target`.

    `credentials` is a mapping as given, or a function from each credential's name to its
    value (e.g. an `env:` reference); without it, the literal `sim_credentials`. `extra`
    adds or replaces top-level keys (`name`, `timeout`, `page` ...).
    """
    base_url, options = _base_url_and_options(provider, sim_url, target)
    if credentials is None:
        credentials = sim_credentials(provider, target)
    elif callable(credentials):
        credentials = {name: credentials(name) for name in sim_credentials(provider, target)}
    entry: dict[str, Any] = {
        "id": id,
        "provider": provider,
        "tenant": tenant,
        "base_url": base_url,
        "credentials": dict(credentials),
    }
    if options:
        entry["options"] = options
    return entry | extra


def _statuspage_url(sim_url: str, provider: str) -> str:
    return f"{sim_url}/status/{provider}/api/v2/summary.json"


def _base_url_and_options(provider: str, sim_url: str, target: str) -> tuple[str, dict[str, Any]]:
    match provider:
        case "imessage_bridge":
            # One sim serves every bridge, each under its own path.
            return f"{sim_url}/bridges/{target}", {}
        case "twilio":
            # Every simulated account owns both numbers and a Messaging Service pooling them,
            # with a verified A2P campaign: the probe checks all of it.
            return sim_url, {
                "messaging_base_url": sim_url,
                "monitor_base_url": sim_url,
                "senders": [LOCAL_NUMBER, TOLLFREE_NUMBER],
                "messaging_service_sid": service_sid(target),
                "a2p": True,
                "statuspage_url": _statuspage_url(sim_url, provider),
            }
        case "sendgrid":
            return sim_url, {
                "from_email": FROM_EMAIL,
                "statuspage_url": _statuspage_url(sim_url, provider),
            }
        case "google":
            return sim_url, {"token_url": f"{sim_url}/token", "send_as": SEND_AS}
    raise ValueError(f"the simulator has no fixture for provider {provider!r}")
