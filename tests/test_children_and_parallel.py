"""Child workflows and parallel fan-out / fan-in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.testing import FakeClock


@bf.step
async def score(item: str) -> int:
    return len(item)


@bf.workflow
async def score_all(ctx: bf.Context, items: list[str]) -> list[int]:
    return await ctx.parallel(*(ctx.step(score, item) for item in items))


@bf.workflow
async def child_doubles(ctx: bf.Context, n: int) -> int:
    return n * 2


@bf.workflow
async def child_fails(ctx: bf.Context, n: int) -> int:
    raise ValueError(f"cannot handle {n}")


@bf.workflow
async def child_waits(ctx: bf.Context) -> object:
    return await ctx.wait_for_event("go")


@bf.workflow
async def parent(ctx: bf.Context, n: int) -> dict[str, object]:
    doubled = await ctx.child(child_doubles, n)
    try:
        await ctx.child(child_fails, n)
        outcome = "no error"
    except bf.ChildWorkflowFailed as exc:
        outcome = str(exc)
    return {"doubled": doubled, "outcome": outcome}


async def test_fan_out_and_in_keeps_branch_order(engine: bf.Engine) -> None:
    handle = await engine.start(score_all, ["a", "bbb", "cc"])
    assert await handle.result() == [1, 3, 2]
    steps = await engine.store.load_steps(handle.run_id)
    assert [(s.step_id, s.kind) for s in steps] == [
        ("1", bf.StepKind.PARALLEL),
        ("1.0.1", bf.StepKind.STEP),
        ("1.1.1", bf.StepKind.STEP),
        ("1.2.1", bf.StepKind.STEP),
    ]


async def test_branches_really_run_concurrently(engine: bf.Engine) -> None:
    arrived: list[str] = []
    both_here = asyncio.Event()

    async def meet(name: str) -> str:
        arrived.append(name)
        if len(arrived) == 2:
            both_here.set()
        await both_here.wait()  # deadlocks unless both branches are in flight together
        return name

    @bf.workflow(name="rendezvous")
    async def rendezvous(ctx: bf.Context) -> list[str]:
        return await ctx.parallel(ctx.step(meet, "a"), ctx.step(meet, "b"))

    assert await engine.run(rendezvous) == ["a", "b"]


async def test_branches_can_be_whole_sub_sequences_with_waits(
    engine: bf.Engine, clock: FakeClock
) -> None:
    async def branch(ctx: bf.Context, name: str, pause: float) -> str:
        first = await ctx.step(score, name)
        await ctx.sleep(pause)
        return f"{name}:{first}"

    @bf.workflow(name="staggered")
    async def staggered(ctx: bf.Context) -> list[str]:
        return await ctx.parallel(branch(ctx, "ab", 10), branch(ctx, "abc", 20))

    handle = await engine.start(staggered)
    await engine.settle()
    await clock.advance(10)
    await engine.settle()
    assert await handle.status() is bf.RunStatus.WAITING
    await clock.advance(10)
    await engine.settle()
    assert await handle.result() == ["ab:2", "abc:3"]


async def test_a_failing_branch_raises_after_the_others_finish(engine: bf.Engine) -> None:
    finished: list[str] = []

    async def ok(name: str) -> str:
        finished.append(name)
        return name

    async def bad() -> str:
        raise KeyError("missing")

    @bf.workflow(name="partial")
    async def partial(ctx: bf.Context) -> list[str]:
        return await ctx.parallel(
            ctx.step(ok, "x"), ctx.step(bf.step(bad, retry=bf.Retry.never())), ctx.step(ok, "y")
        )

    with pytest.raises(bf.RunFailed) as info:
        await engine.run(partial)
    assert isinstance(info.value.__cause__, KeyError)
    assert sorted(finished) == ["x", "y"]


async def test_parallel_takes_coroutines(engine: bf.Engine) -> None:
    @bf.workflow(name="wrong")
    async def wrong(ctx: bf.Context) -> object:
        return await ctx.parallel(score)  # type: ignore[arg-type]

    with pytest.raises(bf.RunFailed, match="takes coroutines"):
        await engine.run(wrong)


async def test_child_results_and_failures_reach_the_parent(engine: bf.Engine) -> None:
    handle = await engine.start(parent, 21)
    result = await handle.result()
    assert result["doubled"] == 42
    assert f"child run {handle.run_id}.2 faulted: cannot handle 21" in str(result["outcome"])
    children = await engine.store.list_runs(parent_id=handle.run_id)
    assert sorted((c.id, c.status) for c in children) == [
        (f"{handle.run_id}.1", bf.RunStatus.COMPLETED),
        (f"{handle.run_id}.2", bf.RunStatus.FAULTED),
    ]


async def test_parallel_children(engine: bf.Engine) -> None:
    @bf.workflow(name="many_children")
    async def many_children(ctx: bf.Context) -> list[int]:
        return await ctx.parallel(*(ctx.child(child_doubles, n) for n in range(5)))

    assert await engine.run(many_children) == [0, 2, 4, 6, 8]


async def test_cancelling_a_parent_cancels_its_children(engine: bf.Engine) -> None:
    @bf.workflow(name="waits_on_child")
    async def waits_on_child(ctx: bf.Context) -> object:
        return await ctx.child(child_waits)

    handle = await engine.start(waits_on_child)
    await engine.settle()
    child_id = f"{handle.run_id}.1"
    assert (await engine.get_run(child_id)).status is bf.RunStatus.WAITING
    await engine.cancel(handle.run_id)
    assert (await engine.get_run(child_id)).status is bf.RunStatus.CANCELLED
    with pytest.raises(bf.RunCancelled):
        await handle.result()


async def test_cancelling_a_child_fails_the_parent_step(engine: bf.Engine) -> None:
    @bf.workflow(name="tolerant_parent")
    async def tolerant_parent(ctx: bf.Context) -> str:
        try:
            await ctx.child(child_waits)
        except bf.ChildWorkflowFailed as exc:
            return f"handled: {exc}"
        return "unexpected"

    handle = await engine.start(tolerant_parent)
    await engine.settle()
    await engine.cancel(f"{handle.run_id}.1")
    await engine.settle()
    assert "cancelled" in await handle.result()


@bf.step
async def tally(name: str) -> str:
    return name


async def test_a_child_that_parks_keeps_its_own_positions(
    engine: bf.Engine, clock: FakeClock
) -> None:
    @bf.workflow(name="napping_child")
    async def napping_child(ctx: bf.Context) -> str:
        first = await ctx.step(tally, "in child")
        await ctx.sleep(5)
        return first

    @bf.workflow(name="napping_parent")
    async def napping_parent(ctx: bf.Context) -> list[str]:
        await ctx.step(tally, "in parent")
        return await ctx.parallel(ctx.child(napping_child), ctx.step(tally, "sibling"))

    handle = await engine.start(napping_parent)
    await engine.settle()
    await clock.advance(5)
    await engine.settle()
    assert await handle.result() == ["in child", "sibling"]
    child_steps = await engine.store.load_steps(f"{handle.run_id}.2.0.1")
    assert [s.step_id for s in child_steps] == ["1", "2"]


class SignallingStore(bf.SQLiteStore):
    """Sets ``saved`` once a write containing the watched position has committed."""

    def __init__(self, path: Path, watch: str) -> None:
        super().__init__(path)
        self.watch, self.saved = watch, asyncio.Event()

    async def save_steps(
        self, run_id: str, owner: str, steps: Any, *rest: Any, **options: Any
    ) -> None:
        await super().save_steps(run_id, owner, steps, *rest, **options)
        if any(s.step_id == self.watch for s in steps):
            self.saved.set()


async def test_a_finished_branch_step_is_recorded_while_siblings_run(db_path: Path) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    @bf.workflow(name="uneven")
    async def uneven(ctx: bf.Context) -> list[str]:
        return await ctx.parallel(ctx.step(slow), ctx.step(tally, "quick"))

    store = SignallingStore(db_path, watch="1.1.1")
    async with bf.Engine(store) as engine:
        handle = await engine.start(uneven)
        await store.saved.wait()  # committed while the slow sibling is still running
        steps = await store.load_steps(handle.run_id)
        assert [(s.step_id, s.output_json) for s in steps if s.step_id == "1.1.1"] == [
            ("1.1.1", '"quick"')
        ]
        release.set()
        assert await handle.result() == ["slow", "quick"]


async def test_race_keeps_the_first_success_and_cancels_the_rest(
    engine: bf.Engine, clock: FakeClock
) -> None:
    cancelled: list[str] = []

    async def slow(name: str) -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(name)
        return name

    async def failing() -> str:
        raise ValueError("no")

    @bf.workflow(name="racer")
    async def racer(ctx: bf.Context) -> list[object]:
        winner, value = await ctx.race(
            ctx.step(slow, "slow"),
            ctx.step(bf.step(failing, retry=bf.Retry.never())),
            ctx.step(tally, "quick"),
        )
        await ctx.sleep(5)  # park, so the race is replayed once from the journal
        return [winner, value]

    handle = await engine.start(racer)
    await engine.settle()
    assert cancelled == ["slow"]
    await clock.advance(5)
    await engine.settle()
    assert await handle.result() == [2, "quick"]
    assert cancelled == ["slow"]  # the replay ran only the winner
    group = (await engine.store.load_steps(handle.run_id))[0]
    assert (group.name, group.output_json) == ("race", '{"winner":2,"branches":3}')


async def test_a_race_without_a_winner_raises_the_first_error(engine: bf.Engine) -> None:
    async def fails(message: str) -> str:
        raise KeyError(message)

    never = bf.step(fails, retry=bf.Retry.never())

    @bf.workflow(name="no_winner")
    async def no_winner(ctx: bf.Context) -> object:
        return await ctx.race(ctx.step(never, "first"), ctx.step(never, "second"))

    with pytest.raises(bf.RunFailed, match="first"):
        await engine.run(no_winner)


async def test_a_race_whose_branches_wait_parks_and_resumes(
    engine: bf.Engine, clock: FakeClock
) -> None:
    async def napper(ctx: bf.Context, seconds: float, name: str) -> str:
        await ctx.sleep(seconds)
        return name

    @bf.workflow(name="sleepy_race")
    async def sleepy_race(ctx: bf.Context) -> list[object]:
        winner, value = await ctx.race(napper(ctx, 20, "late"), napper(ctx, 10, "early"))
        return [winner, value]

    handle = await engine.start(sleepy_race)
    await engine.settle()
    await clock.advance(10)
    await engine.settle()
    assert await handle.result() == [1, "early"]
