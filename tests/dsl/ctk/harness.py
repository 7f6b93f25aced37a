"""Runs a workflow document the way the CTK's "When the workflow is executed" means it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

import batonflow as bf
from batonflow._net import make_client
from batonflow.dsl._interpreter import TASK_MARK
from batonflow.dsl._lifecycle import _problem
from batonflow.dsl._runtime import DslRuntime

from ..servers import public_hosts
from ..spec_kit import spec_path

__all__ = ["spec_path"]  # the kit's paths: skipped outside CI when it is missing (spec_kit.py)


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)  # YAML 1.2: 'on' stays a string


@dataclass
class Outcome:
    status: bf.RunStatus
    output: Any = None
    error: dict[str, Any] = field(default_factory=dict)  # the problem details, if faulted
    tasks: list[str] = field(default_factory=list)  # task names in the order they started


async def execute(document: dict[str, Any], input: Any, db: Path) -> Outcome:
    with public_hosts() as hosts:
        async with make_client(transport=hosts.transport()) as client:
            runtime = DslRuntime(client=client)
            async with bf.Engine(db) as engine:
                handle = await runtime.start(engine, document, input)
                try:
                    output = await asyncio.wait_for(handle.result(), timeout=30)
                except bf.RunFailed as failed:
                    return await _outcome(engine, handle.run_id, error=failed.error)
                return await _outcome(engine, handle.run_id, output=output)


async def _outcome(
    engine: bf.Engine, run_id: str, output: Any = None, error: dict[str, Any] | None = None
) -> Outcome:
    record = await engine.get_run(run_id)
    steps = await engine.store.load_steps(run_id)
    tasks = [
        s.name.removeprefix(TASK_MARK).rsplit("/", 1)[-1]
        for s in steps
        if s.name.startswith(TASK_MARK)
    ]
    problem = _problem(json.dumps(error)) if error else {}
    return Outcome(record.status, output, problem, tasks)


def lookup(data: Any, dotted: str) -> Any:
    """``a.b.c`` in nested mappings; KeyError names the missing part."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            raise KeyError(f"{dotted!r}: no {part!r} in {json.dumps(data)[:200]}")
        data = data[part]
    return data


class Session:
    """A scenario that unfolds over time: one engine on a fake clock, driven step by step.

    Each Gherkin step runs to quiescence on the session's own event loop: the engine's
    background tasks live between steps, and time moves only when a step says so.
    """

    def __init__(
        self,
        db: Path | str,
        *,
        functions: dict[str, Any] | None = None,
        allow_processes: bool = False,
    ) -> None:
        from batonflow.testing import FakeClock

        self.loop = asyncio.new_event_loop()
        # starts at the real time: leases written by engine processes on real clocks compare
        self.clock = FakeClock(start=time.time())
        self.db = db
        self.functions = functions or {}
        self._hosts = public_hosts()
        hosts = self._hosts.__enter__()
        self.client = make_client(transport=hosts.transport())
        self.runtime = DslRuntime(
            client=self.client, functions=self.functions, allow_processes=allow_processes
        )
        self.engine = bf.Engine(db, clock=self.clock, workflows=[self.runtime.workflow])
        self.handle: bf.RunHandle[Any] | None = None
        self.do(self.engine.open())

    def do(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def start(
        self, document: dict[str, Any], input: Any, until: asyncio.Event | None = None
    ) -> None:
        """Start the run and let it go as far as it can now; with ``until``, only until that
        event is set (a task that hangs until time passes would never let the engine settle)."""
        self.handle = self.do(self.runtime.start(self.engine, document, input))
        self.do(until.wait() if until is not None else self.engine.settle())

    def advance(self, seconds: float) -> None:
        self.do(self.clock.advance(seconds))
        self.do(self.engine.settle())

    def publish(self, event: dict[str, Any]) -> list[str]:
        delivered: list[str] = self.do(self.runtime.publish(self.engine, event))
        self.do(self.engine.settle())
        return delivered

    def outcome(self) -> Outcome:
        assert self.handle is not None, "the workflow was not started"
        run_id = self.handle.run_id
        record = self.do(self.engine.get_run(run_id))
        error = json.loads(record.error_json) if record.error_json else None
        output = json.loads(record.output_json) if record.output_json else None
        return self.do(_outcome(self.engine, run_id, output=output, error=error))

    def attempts(self, task: str) -> int:
        """How many times a task's step was tried (its attempts in the journal)."""
        assert self.handle is not None
        steps = self.do(self.engine.store.load_steps(self.handle.run_id))
        return sum(1 for s in steps if s.name.rsplit("/", 1)[-1] == task and s.kind.value == "step")

    def close(self) -> None:
        self.do(self.engine.close())
        self.do(self.client.aclose())
        self._hosts.__exit__(None, None, None)
        self.loop.close()
