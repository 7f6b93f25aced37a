"""OpenTelemetry spans for runs and steps: an around-hook (``batonflow.core.Around``).

One span per activation of a run (``run {workflow}``: a run that parks and wakes has one span
per activation, each with ``batonflow.run.parked`` when it parked) and one per step attempt
(``step {name}``), a child of its run's span. Only ``opentelemetry-api`` is used: with no SDK
configured every span is a no-op. Inputs and results are never recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider

from batonflow.core import Activation, Around, StepInfo

__all__ = ["TracingHook"]


class TracingHook(Around):
    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("batonflow")

    @contextmanager
    def activation(self, info: Activation) -> Iterator[Any]:
        attributes = {
            "batonflow.run.id": info.run_id, "batonflow.workflow": info.workflow,
            "batonflow.run.activation": info.activation,
        }  # fmt: skip
        if info.parent_id:
            attributes["batonflow.run.parent_id"] = info.parent_id
        with self._span(f"run {info.workflow}", attributes) as span:
            yield span

    @contextmanager
    def attempt(self, info: StepInfo) -> Iterator[Any]:
        attributes = {
            "batonflow.run.id": info.run_id, "batonflow.workflow": info.workflow,
            "batonflow.step.id": info.step_id, "batonflow.step.name": info.name,
            "batonflow.step.attempt": info.attempt,
        }  # fmt: skip
        with self._span(f"step {info.name}", attributes) as span:
            yield span

    @contextmanager
    def _span(self, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise
            except BaseException:  # the run parked (or was stopped): not a failure
                span.set_attribute("batonflow.run.parked", True)
                raise
