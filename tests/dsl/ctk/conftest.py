"""Step definitions for the CTK's vocabulary, and ours for time, events and crashes."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

import batonflow as bf

from .harness import Outcome, Session, load_yaml, lookup

CRASH_WORKER = Path(__file__).with_name("crash_worker.py")
LEASE_SECONDS = 30.0  # the engine's default lease


@pytest.fixture(autouse=True)  # autouse: collected with the scenario, so it is parametrized
def world(store_url: str) -> Iterator[dict[str, Any]]:
    """A scenario's state; its database is SQLite or PostgreSQL (every scenario runs on both)."""
    state: dict[str, Any] = {"input": {}, "functions": {}, "available": [], "db": store_url}
    yield state
    if "session" in state:
        state["session"].close()


def _session(world: dict[str, Any]) -> Session:
    if "session" not in world:
        world["session"] = Session(world["db"], functions=world["functions"])
        for document in world["available"]:
            world["session"].runtime.add_document(document)
    session: Session = world["session"]
    return session


def _outcome(world: dict[str, Any]) -> Outcome:
    return _session(world).outcome()


# -- arrange ----------------------------------------------------------------------------------
@given("a workflow with definition:")
def _definition(world: dict[str, Any], docstring: str) -> None:
    world["document"] = load_yaml(docstring)


@given("given the workflow input is:")
def _input(world: dict[str, Any], docstring: str) -> None:
    world["input"] = load_yaml(docstring)


@given("the workflow available to run:")
def _available(world: dict[str, Any], docstring: str) -> None:
    world["available"].append(load_yaml(docstring))


@given(parsers.re(r"a function '(?P<name>\w+)' that fails (?P<n>\d+) times before returning:"))
def _flaky(world: dict[str, Any], name: str, n: str, docstring: str) -> None:
    calls: list[int] = []
    result = load_yaml(docstring)
    world.setdefault("calls", {})[name] = calls

    def flaky() -> Any:
        calls.append(1)
        if len(calls) <= int(n):
            raise ConnectionError(f"{name} is unavailable (call {len(calls)})")
        return result

    world["functions"][name] = flaky


@given(parsers.re(r"a function '(?P<name>\w+)' that never returns"))
def _hangs(world: dict[str, Any], name: str) -> None:
    import asyncio

    entered = asyncio.Event()

    async def hangs() -> None:
        entered.set()
        await asyncio.Event().wait()

    world["functions"][name] = hangs
    world["in_flight"] = entered  # "started" waits for this instead of for the engine to settle


# -- act --------------------------------------------------------------------------------------
@when("the workflow is executed")
@when("the workflow is started")
def _start(world: dict[str, Any]) -> None:
    _session(world).start(world["document"], world["input"], until=world.get("in_flight"))


@when(parsers.re(r"(?P<seconds>\d+) seconds pass"))
def _time_passes(world: dict[str, Any], seconds: str) -> None:
    _session(world).advance(float(seconds))


@when("the event is published:")
def _publish(world: dict[str, Any], docstring: str) -> None:
    _session(world).publish(load_yaml(docstring))


@when(
    parsers.re(r"the engine is killed with SIGKILL during '(?P<task>\w+)' and a new engine resumes")
)
def _crash(world: dict[str, Any], task: str, tmp_path: Path) -> None:
    document, effects = tmp_path / "doc.json", tmp_path / "effects.log"
    document.write_text(json.dumps(world["document"]))
    process = subprocess.Popen(
        [sys.executable, str(CRASH_WORKER), str(world["db"]), str(document), str(effects)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in process.stdout or ()], daemon=True
    ).start()
    run_id = lines.get(timeout=30).split()[1]  # "RUN <id>"
    assert lines.get(timeout=30).strip() == f"STARTED {task}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert process.stdout is not None
    process.stdout.close()
    world["effects"] = effects
    world["functions"]["sideEffect"] = lambda name: _append(effects, name)
    world["functions"]["blockInFirstEngine"] = lambda: "second engine"
    session = _session(world)
    session.handle = session.engine.handle(run_id)
    # SQLite hands a dead engine's runs over at once; PostgreSQL when its lease has expired
    session.advance(LEASE_SECONDS + 1)


@when("the workflow is resumed")
def _resume(world: dict[str, Any]) -> None:
    session = _session(world)
    assert session.handle is not None
    session.do(session.engine.resume(session.handle.run_id))
    session.do(session.engine.settle())


def _append(path: Path, name: str) -> str:
    with path.open("a") as log:
        log.write(name + "\n")
    return name


# -- assert -----------------------------------------------------------------------------------
@then("the workflow should complete")
def _completes(world: dict[str, Any]) -> None:
    outcome = _outcome(world)
    session = _session(world)
    assert session.handle is not None
    record = session.do(session.engine.get_run(session.handle.run_id))
    assert outcome.status is bf.RunStatus.COMPLETED, (outcome.status, record.error_json)


@then("the workflow should complete with output:")
def _completes_with(world: dict[str, Any], docstring: str) -> None:
    _completes(world)
    assert _outcome(world).output == load_yaml(docstring)


@then("the workflow should be waiting")
def _waiting(world: dict[str, Any]) -> None:
    outcome = _outcome(world)
    assert outcome.status is bf.RunStatus.WAITING, (outcome.status, outcome.error)


@then("the workflow should fault")
def _faults(world: dict[str, Any]) -> None:
    outcome = _outcome(world)
    assert outcome.status is bf.RunStatus.FAULTED, (outcome.status, outcome.output)


@then("the workflow should fault with error:")
def _faults_with(world: dict[str, Any], docstring: str) -> None:
    _faults(world)
    expected = load_yaml(docstring)
    assert {k: _outcome(world).error.get(k) for k in expected} == expected


@then(parsers.re(r"the workflow output should have properties (?P<names>.+)"))
def _has_properties(world: dict[str, Any], names: str) -> None:
    _completes(world)
    for name in re.findall(r"'([^']+)'", names):
        lookup(_outcome(world).output, name)


@then(parsers.re(r"the workflow output should have a '(?P<name>[^']+)' property with value:"))
def _property_value(world: dict[str, Any], name: str, docstring: str) -> None:
    assert lookup(_outcome(world).output, name) == load_yaml(docstring)


@then(
    parsers.re(
        r"the workflow output should have a '(?P<name>[^']+)' property containing (?P<n>\d+) items"
    )
)
def _property_count(world: dict[str, Any], name: str, n: str) -> None:
    assert len(lookup(_outcome(world).output, name)) == int(n)


@then(parsers.re(r"(?P<task>[\w-]+) should run first"))
def _runs_first(world: dict[str, Any], task: str) -> None:
    assert _outcome(world).tasks[0] == task, _outcome(world).tasks


@then(parsers.re(r"(?P<task>[\w-]+) should run last"))
def _runs_last(world: dict[str, Any], task: str) -> None:
    assert _outcome(world).tasks[-1] == task, _outcome(world).tasks


@then(parsers.re(r"(?P<task>[\w-]+) should run after (?P<other>[\w-]+)"))
def _runs_after(world: dict[str, Any], task: str, other: str) -> None:
    tasks = _outcome(world).tasks
    assert tasks.index(task) > tasks.index(other), tasks


@then(parsers.re(r"(?P<task>[\w-]+) should run before (?P<other>[\w-]+)"))
def _runs_before(world: dict[str, Any], task: str, other: str) -> None:
    tasks = _outcome(world).tasks
    assert tasks.index(task) < tasks.index(other), tasks


@then(parsers.re(r"(?P<task>\w+) should have been tried (?P<n>\d+) times"))
def _tried(world: dict[str, Any], task: str, n: str) -> None:
    assert _session(world).attempts(task) == int(n)


@then(parsers.re(r"the function '(?P<name>\w+)' should have been called (?P<n>\d+) times"))
def _called(world: dict[str, Any], name: str, n: str) -> None:
    assert len(world["calls"][name]) == int(n)


@then(parsers.re(r"(?P<task>[\w-]+) should not have run"))
def _not_run(world: dict[str, Any], task: str) -> None:
    assert task not in _outcome(world).tasks, _outcome(world).tasks


@then(parsers.re(r"the side effects should be (?P<names>.+)"))
def _effects(world: dict[str, Any], names: str) -> None:
    expected = re.findall(r"'([^']+)'", names)
    assert world["effects"].read_text().split() == expected
