"""Steps: journaled results, replay without re-execution, sync and async functions."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from conftest import EngineFactory

calls: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@bf.step
async def fetch(n: int) -> dict[str, int]:
    calls.append(f"fetch {n}")
    return {"n": n}


@bf.step
def blocking_double(n: int) -> int:
    calls.append(f"double {n} on {threading.current_thread().name}")
    return n * 2


@bf.workflow
async def two_steps(ctx: bf.Context, n: int) -> int:
    got = await ctx.step(fetch, n)
    return await ctx.step(blocking_double, got["n"])


@dataclasses.dataclass
class Point:
    x: int
    y: int


@bf.step
async def make_point() -> Point:
    return Point(1, 2)


@bf.workflow
async def returns_dataclass(ctx: bf.Context) -> dict[str, object]:
    point = await ctx.step(make_point)
    return {"type": type(point).__name__, "point": point}


async def test_async_and_sync_steps_run_and_are_journaled(engine: bf.Engine) -> None:
    handle = await engine.start(two_steps, 21)
    assert await handle.result() == 42
    assert calls[0] == "fetch 21"
    assert "batonflow-step" in calls[1]  # sync steps run in the engine's thread pool
    steps = await engine.store.load_steps(handle.run_id)
    assert [(s.step_id, s.name, s.status, s.output_json) for s in steps] == [
        ("1", "fetch", bf.StepStatus.COMPLETED, '{"n":21}'),
        ("2", "blocking_double", bf.StepStatus.COMPLETED, "42"),
    ]
    assert steps[0].input_json == "[21]"
    assert (await handle.record()).status is bf.RunStatus.COMPLETED


async def test_results_look_the_same_on_first_run_and_on_replay(engine: bf.Engine) -> None:
    # A dataclass is recorded as JSON; the workflow sees the JSON form even the first time,
    # so its behaviour cannot differ between a first execution and a replay after a crash.
    assert await engine.run(returns_dataclass) == {"type": "dict", "point": {"x": 1, "y": 2}}


async def test_replay_answers_recorded_steps_without_running_them(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    @bf.workflow(name="sleepy")
    async def sleepy(ctx: bf.Context) -> list[int]:
        a = await ctx.step(fetch, 1)
        await ctx.sleep(60)
        b = await ctx.step(fetch, 2)
        return [a["n"], b["n"]]

    async with make_engine(workflows=[sleepy]) as engine:
        handle = await engine.start(sleepy)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
    assert calls == ["fetch 1"]
    async with make_engine(workflows=[sleepy]) as engine:  # a new engine: the "restart"
        await clock.advance(60)
        await engine.settle()
        assert await engine.handle(handle.run_id).result() == [1, 2]
    assert calls == ["fetch 1", "fetch 2"]


async def test_an_unserializable_result_faults_with_a_clear_error(engine: bf.Engine) -> None:
    @bf.step
    async def gives_a_socket() -> object:
        return threading.Lock()

    @bf.workflow(name="bad_result")
    async def bad_result(ctx: bf.Context) -> object:
        return await ctx.step(bf.step(gives_a_socket, retry=bf.Retry.never()))

    with pytest.raises(bf.RunFailed, match="cannot record the result of step") as info:
        await engine.run(bad_result)
    assert isinstance(info.value.__cause__, bf.SerializationError)


async def test_a_step_knows_its_idempotency_key(engine: bf.Engine) -> None:
    @bf.step
    async def which() -> str:
        return bf.current_step().idempotency_key

    @bf.workflow(name="keys")
    async def keys(ctx: bf.Context) -> list[str]:
        return [await ctx.step(which), await ctx.step(which)]

    handle = await engine.start(keys)
    assert await handle.result() == [f"{handle.run_id}:1", f"{handle.run_id}:2"]
    with pytest.raises(bf.ConfigError):
        bf.current_step()


async def test_recorded_values_are_stable(make_engine: EngineFactory, clock: FakeClock) -> None:
    @bf.workflow(name="stamps")
    async def stamps(ctx: bf.Context) -> list[object]:
        first = [await ctx.now(), await ctx.uuid4()]
        await ctx.sleep(10)
        return [*first, await ctx.now()]

    async with make_engine(workflows=[stamps]) as engine:
        handle = await engine.start(stamps)
        await engine.settle()
        await clock.advance(10)
        await engine.settle()
        started, ident, later = await handle.result()
    assert started == FakeClock().now()
    assert later == started + 10
    assert len(str(ident)) == 36


async def test_workflow_and_step_declarations_are_checked() -> None:
    def not_async(ctx: bf.Context) -> None: ...

    async def too_many(ctx: bf.Context, a: int, b: int) -> None: ...

    with pytest.raises(bf.ConfigError, match="must be an async function"):
        bf.workflow(not_async)  # type: ignore[call-overload]
    with pytest.raises(bf.ConfigError, match="must take"):
        bf.workflow(too_many)  # type: ignore[call-overload]
    with pytest.raises(bf.ConfigError, match="timeout must be positive"):
        bf.step(fetch, timeout=0)
    with pytest.raises(bf.ConfigError, match="max_attempts"):
        bf.Retry(max_attempts=0)


async def test_the_engine_must_be_open(db_path: object) -> None:
    engine = bf.Engine(str(db_path))
    with pytest.raises(bf.ConfigError, match="not open"):
        await engine.start(two_steps, 1)


async def test_partials_and_plain_functions_are_named_after_the_function(
    engine: bf.Engine,
) -> None:
    import functools

    async def add(a: int, b: int) -> int:
        return a + b

    @bf.workflow(name="partials")
    async def partials(ctx: bf.Context) -> int:
        return await ctx.step(functools.partial(add, 1), 2)

    handle = await engine.start(partials)
    assert await handle.result() == 3
    (step,) = await engine.store.load_steps(handle.run_id)
    assert step.name.endswith("add")
