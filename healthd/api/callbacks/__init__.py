"""Provider delivery callbacks: `POST /callbacks/{integration id}`, one URL per integration.

The URL carries no bearer token (providers cannot send one): the provider's signature is
the authentication, checked by the provider's own SDK before anything is read from the
body. A request that does not verify answers 403 and is recorded nowhere but in
`healthd_callbacks_total{outcome=...}`; so does one to an id that names no integration
taking callbacks, with the same body, so the URL does not tell which ids exist. A
verified one is handed to the delivery ledger, which only queues it: the answer never
waits on the store, and a replay is counted once (the ledger deduplicates by message and
status).

A provider is one receiver module plus one row of `RECEIVERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from aiohttp import web

from healthd.api.callbacks._receiver import Received, Receiver, Rejected, forged
from healthd.api.callbacks.sendgrid_events import SendGridEventReceiver
from healthd.api.callbacks.twilio_status import TwilioStatusReceiver
from healthd.api.problems import ApiProblem
from healthd.catalog import Catalog
from healthd.clock import Clock
from healthd.config import CallbacksConfig
from healthd.ledger import DeliveryLedger
from healthd.metrics import DeliveryInstruments
from healthd.model import Integration

__all__ = ["PREFIX", "CallbackRoutes"]

log = structlog.get_logger("healthd.api")

PREFIX = "/callbacks/"
RETRY_AFTER_SECONDS = 5
# The provider label of a callback to an id that names no integration.
UNKNOWN = "unknown"
NOT_TAKEN = forged()


def _receivers(config: CallbacksConfig) -> dict[str, Receiver]:
    return {
        TwilioStatusReceiver.provider: TwilioStatusReceiver(),
        SendGridEventReceiver.provider: SendGridEventReceiver(config.tolerance),
    }


class CallbackRoutes:
    def __init__(
        self,
        *,
        integrations: Mapping[str, Integration],
        ledger: DeliveryLedger,
        catalog: Catalog,
        clock: Clock,
        config: CallbacksConfig,
        instruments: DeliveryInstruments,
        receivers: Callable[[CallbacksConfig], dict[str, Receiver]] = _receivers,
    ) -> None:
        self._integrations = integrations
        self._ledger = ledger
        self._catalog = catalog
        self._clock = clock
        self._public_url = config.public_url
        self._instruments = instruments
        self._receivers = receivers(config)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PREFIX + "{id}", self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        integration = self._integrations.get(request.match_info["id"])
        receiver = None if integration is None else self._receivers.get(integration.provider)
        if integration is None or receiver is None:
            # Answered as a bad signature is: a 404 would tell a prober which ids exist.
            provider = UNKNOWN if integration is None else integration.provider
            self._instruments.callback(provider, "unknown_integration")
            raise ApiProblem(NOT_TAKEN.status, NOT_TAKEN.detail)
        url = (self._public_url + request.path_qs) if self._public_url else str(request.url)
        received = Received(
            integration=integration, url=url, now=self._clock.now(), catalog=self._catalog
        )
        try:
            outcomes = await receiver.outcomes(request, received)
        except Rejected as exc:
            self._instruments.callback(integration.provider, exc.outcome)
            log.info("callback_rejected", integration=integration.id, outcome=exc.outcome)
            raise ApiProblem(exc.status, exc.detail) from None
        if not self._ledger.submit(outcomes):
            self._instruments.callback(integration.provider, "busy")
            raise ApiProblem(
                503,
                "healthd is behind on writing delivery outcomes; send again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._instruments.callback(integration.provider, "accepted")
        return web.Response(status=200)
