"""A run's token and cost budget: counted from the journal, so it holds across restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow.catalog import (
    AgentBudgetExceeded,
    BudgetExceeded,
    Catalog,
    InvalidModelOutput,
    RunBudget,
    agent,
    tool,
)
from batonflow.catalog._budget import spend_of
from batonflow.dsl._runtime import DslRuntime
from batonflow.errors import ConfigError
from batonflow.providers import OpenAIProvider, build_providers, parse_config
from batonflow.testing import FakeClock
from providers.servers import FakeOpenAI, ok

# The fake answers every call with 12 input + 5 output = 17 tokens unless told otherwise.


def budgeted(path: Path, provider: Any, **limits: Any) -> tuple[bf.Store, Catalog]:
    store = bf.open_store(path)
    return store, Catalog(providers={"default": provider}, budget=RunBudget(**limits), store=store)


def asks(catalog: Catalog, count: int) -> bf.Workflow[Any, Any]:
    async def flow(ctx: bf.Context) -> Any:
        return [(await ctx.step(catalog.llm, f"q{i}"))["usage"] for i in range(count)]

    return bf.Workflow(flow, name="asks")


async def failure(handle: bf.RunHandle[Any]) -> dict[str, Any]:
    with pytest.raises(bf.RunFailed) as caught:
        await handle.result()
    error: dict[str, Any] = caught.value.error
    return error


async def test_the_call_after_the_token_budget_is_used_up_fails_its_step(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=40)
    workflow = asks(catalog, 4)
    async with bf.Engine(store, workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        error = await failure(handle)
        steps = await engine.store.load_steps(handle.run_id)
    # 17, 34: still under 40, so a third call starts (and goes over); the fourth may not start
    assert len(server.received) == 3
    assert error["type"] == "batonflow.catalog._errors:BudgetExceeded"
    assert error["retryable"] is False
    assert "used 51 model tokens of its budget of 40" in error["message"]
    assert error["state"] == {"limit": "tokens", "spent": 51, "allowed": 40}
    assert [s.status for s in steps] == [bf.StepStatus.COMPLETED] * 3 + [bf.StepStatus.FAILED]
    assert steps[3].attempts == 1  # not retried
    first = json.loads(steps[0].output_json or "")
    assert first["usage"] == {"input_tokens": 12, "output_tokens": 5, "cost": 0.0, "step": "1"}


CONFIG = """
[providers.gpt]
kind = "openai"
base_url = "{url}/v1"
model = "gpt-test"
price_in = 2.0
price_out = 10.0
max_attempts = 1
"""


async def test_the_cost_budget_uses_the_configured_prices(
    tmp_path: Path, server: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    config = parse_config(__import__("tomllib").loads(CONFIG.format(url=server.base_url)))
    providers = build_providers(config, client=client, clock=FakeClock(), env={})
    store = bf.open_store(tmp_path / "x.db")
    catalog = Catalog(providers=providers, budget=RunBudget(max_cost=0.01), store=store)
    workflow = asks(catalog, 3)
    # 1000 in at 2.0/M + 500 out at 10.0/M = 0.007 a call
    server.script(*[ok(usage=(1000, 500))] * 3)
    async with bf.Engine(store, workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        error = await failure(handle)
        steps = await engine.store.load_steps(handle.run_id)
    assert json.loads(steps[0].output_json or "")["usage"]["cost"] == pytest.approx(0.007)
    assert len(server.received) == 2
    assert error["state"]["limit"] == "cost"
    assert error["state"]["spent"] == pytest.approx(0.014)
    assert "(RunBudget.max_cost)" in error["message"]


async def test_the_budget_survives_an_engine_restart(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    """The spend is read from the journal: a new engine with a new catalog (a new process)
    sees what the run spent before it."""

    def flow_for(catalog: Catalog) -> bf.Workflow[Any, Any]:
        async def spender(ctx: bf.Context) -> Any:
            await ctx.step(catalog.llm, "one")
            await ctx.step(catalog.llm, "two")
            await ctx.wait_for_event("more")  # parks: the engine is closed here
            return await ctx.step(catalog.llm, "three")

        return bf.Workflow(spender, name="spender")

    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=30)
    workflow = flow_for(catalog)
    async with bf.Engine(store, workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
    assert len(server.received) == 2

    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=30)
    workflow = flow_for(catalog)
    async with bf.Engine(store, workflows=[workflow]) as engine:
        await engine.send_event("more", None, run_id=handle.run_id)
        error = await failure(engine.handle(handle.run_id))
    assert error["state"] == {"limit": "tokens", "spent": 34, "allowed": 30}
    assert len(server.received) == 2  # the third call never went out


async def test_rejected_answers_count_and_copies_do_not(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=60)

    def copy(value: Any) -> Any:
        return value

    async def flow(ctx: bf.Context) -> Any:
        charged: dict[str, Any] = {}
        try:
            await ctx.step(catalog.classify, "text", ["a", "b"])
        except InvalidModelOutput as exc:
            charged = exc.usage  # three answers, all charged to the step
        assert charged["input_tokens"] == 36
        answer = await ctx.step(catalog.llm, "hi")  # 51 spent so far: allowed
        await ctx.step(copy, answer)  # holds a usage object that names another step
        await ctx.step(copy, [answer, answer])
        return await ctx.step(catalog.llm, "again")  # 68 spent: refused

    workflow = bf.Workflow(flow, name="mixed")
    server.script(ok("not json"), ok("still not"), ok("nope"))
    async with bf.Engine(store, workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        error = await failure(handle)
        steps = await engine.store.load_steps(handle.run_id)
    assert error["state"] == {"limit": "tokens", "spent": 68, "allowed": 60}
    assert json.loads(steps[0].error_json or "")["state"]["usage"]["step"] == "1"
    assert spend_of(steps).tokens == 68


async def test_an_agent_turn_is_held_to_the_run_budget(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    numbers = {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}
    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=40)

    async def flow(ctx: bf.Context) -> Any:
        await agent(ctx, catalog, "sum", [tool(add, parameters=numbers)])

    workflow = bf.Workflow(flow, name="spending_agent")
    server.script(*[ok(tool=("add", {"a": 1, "b": 1}))] * 5)
    async with bf.Engine(store, workflows=[workflow]) as engine:
        handle = await engine.start(workflow)
        error = await failure(handle)
        steps = await engine.store.load_steps(handle.run_id)
    assert error["type"] == "batonflow.catalog._errors:BudgetExceeded"  # the run's, not the agent's
    assert len(server.received) == 3
    assert steps[-1].name == "agent.model"
    assert steps[-1].status is bf.StepStatus.FAILED
    assert issubclass(AgentBudgetExceeded, BudgetExceeded)


async def test_a_dsl_run_with_a_budget_faults_with_a_catchable_error(
    tmp_path: Path, server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    store, catalog = budgeted(tmp_path / "x.db", provider, max_tokens=20)
    runtime = DslRuntime(functions=catalog.functions())
    document = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "budget", "version": "1.0.0"},
        "do": [
            {"first": {"call": "llm", "with": {"prompt": "one"}}},
            {"second": {"call": "llm", "with": {"prompt": "two"}}},
            {
                "guarded": {
                    "try": [{"third": {"call": "llm", "with": {"prompt": "three"}}}],
                    "catch": {"as": "e", "do": [{"why": {"set": {"why": "${ $e.detail }"}}}]},
                }
            },
        ],
    }
    async with bf.Engine(store, workflows=[runtime.workflow]) as engine:
        output = await runtime.run(engine, document, {})
    await runtime.aclose()
    assert output["why"].startswith("BudgetExceeded: the run has used 34 model tokens")
    assert len(server.received) == 2


def test_budgets_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs max_tokens, max_cost or both"):
        RunBudget()
    with pytest.raises(ConfigError, match="max_tokens must be at least 1"):
        RunBudget(max_tokens=0)
    with pytest.raises(ConfigError, match="max_cost must be a number"):
        RunBudget(max_cost="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_tokens must be an integer"):
        RunBudget(max_tokens=True)
    with pytest.raises(ConfigError, match="needs store="):
        Catalog(providers={"default": object()}, budget=RunBudget(max_cost=1))  # type: ignore[dict-item]
    exc = BudgetExceeded("x", limit="cost", spent=2.5, allowed=2)
    assert exc.retryable is False
    rebuilt = BudgetExceeded.from_record("x", exc.record_state())
    assert (rebuilt.limit, rebuilt.spent, rebuilt.allowed) == ("cost", 2.5, 2)
