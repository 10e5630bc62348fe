"""The price look-up of the shell (`shell.Reconciler`): carries out what `pricing.next_price` decides,
reading the hardware offered through the hardware cache the creates share. A failed look-up keeps the
last price: pricing never fails a reconcile.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from together_operator import pricing
from together_operator.core import Inputs
from together_operator.credentials import ApiKey
from together_operator.hardware import HardwareCatalogue
from together_operator.pricing import KnownPrice, ReadPrice
from together_operator.resource import TogetherEndpointStatus
from together_operator.together import EndpointsAPI, TogetherError

_log = logging.getLogger(__name__)


class PriceLookUp:
    def __init__(self, hardware: HardwareCatalogue, refresh: timedelta) -> None:
        self._hardware = hardware
        self._refresh = refresh
        """How long a price read is kept before it is read again."""

    async def current(
        self,
        api: EndpointsAPI,
        key: ApiKey,
        inputs: Inputs,
        status: TogetherEndpointStatus,
        known: KnownPrice | None,
    ) -> KnownPrice | None:
        """The price of the hardware `status` is priced on, given the one `known` so far."""
        spec = inputs.spec
        step = pricing.next_price(known, spec, status, inputs.hardware_options, inputs.now, self._refresh)
        if not isinstance(step, ReadPrice):
            return step
        try:
            offered = await self._hardware.offered(key.fingerprint, api, spec.model)
        except TogetherError as error:
            _log.info("no price for %s/%s: %s", inputs.namespace, inputs.name, error)
            return known
        return pricing.known_price(step.hardware, offered, inputs.now)
