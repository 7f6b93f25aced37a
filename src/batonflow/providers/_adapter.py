"""What every SDK adapter shares: its identity, and the recorded attempt around each call."""

from __future__ import annotations

import dataclasses

from batonflow.core import Clock, SystemClock
from batonflow.providers._protocol import ChatRequest, ChatResponse
from batonflow.providers._records import CallHook, Prices, record_attempt


class SdkAdapter:
    """Base of the adapters over the official SDKs: ``complete`` records every attempt
    (provider, model, tokens, cost, latency, outcome) and prices the answer (``cost``);
    subclasses implement ``_call``."""

    def __init__(
        self,
        name: str,
        *,
        model: str,
        prices: Prices | None = None,
        on_call: CallHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._name = name
        self.model = model
        self._prices = prices or Prices()
        self._on_call = on_call
        self._clock: Clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:  # names only: never a key
        return f"{type(self).__name__}(name={self._name!r}, model={self.model!r})"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        model = request.model or self.model
        response = await record_attempt(
            provider=self._name,
            model=model,
            clock=self._clock,
            prices=self._prices,
            hook=self._on_call,
            call=lambda: self._call(request, model),
        )
        return dataclasses.replace(response, cost=self._prices.cost(response.usage))

    async def _call(self, request: ChatRequest, model: str) -> ChatResponse:
        raise NotImplementedError
