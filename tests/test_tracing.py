"""OpenTelemetry spans for runs and steps come from an around-hook of the engine."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import batonflow as bf
from batonflow._tracing import TracingHook
from conftest import EngineFactory

FAILS = {"left": 1}


@bf.step(retry=bf.Retry(max_attempts=2, initial_delay=1.0, jitter=0.0))
def flaky(x: int) -> int:
    if FAILS["left"]:
        FAILS["left"] -= 1
        raise ConnectionError("blip")
    return x + 1


@bf.workflow
async def traced(ctx: bf.Context, x: int) -> int:
    first = await ctx.step(flaky, x)
    await ctx.sleep(5)
    return first


async def test_runs_and_step_attempts_are_spans(make_engine: EngineFactory, clock: Any) -> None:
    FAILS["left"] = 1
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with make_engine(around=[TracingHook(provider)]) as engine:
        handle = await engine.start(traced, 1)
        for _ in range(3):  # the backoff, then the sleep
            await engine.settle()
            await clock.advance(10)
        await engine.settle()
        assert await handle.result() == 2
    spans = exporter.get_finished_spans()
    steps = [s for s in spans if s.name == "step flaky"]
    assert [s.attributes["batonflow.step.attempt"] for s in steps] == [1, 2]
    assert steps[0].status.status_code is StatusCode.ERROR
    assert steps[1].status.status_code is StatusCode.UNSET
    runs = [s for s in spans if s.name == "run traced"]
    assert len(runs) >= 2  # it parked (backoff, sleep) and woke
    assert runs[0].attributes["batonflow.run.parked"] is True
    assert all(s.attributes["batonflow.run.id"] == handle.run_id for s in spans)
    parents = {s.context.span_id: s for s in runs}
    assert all(s.parent is not None and s.parent.span_id in parents for s in steps)
