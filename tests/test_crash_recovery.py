"""Crash recovery, for real: engine processes are SIGKILLed and a new process takes over.

Each test starts ``tests/crash/worker.py`` (an engine in a subprocess running the workflows of
``tests/crash/flows.py``), waits for the line on its stdout that says the run is where the test
wants it (mid-step, parked, created), kills it with SIGKILL, checks what the crash left in the
store, then lets a second engine process finish the runs and compares three witnesses:

* the side-effect log, an fsync'd O_APPEND file every step execution writes to (``begin`` when
  the step function starts, ``end`` when it returns), tagged with the engine generation;
* the journal (``steps`` table), read through the public store API;
* the runs' outputs.

The documented semantics: a step whose result was recorded never runs again; the step in flight
at the crash runs again (at least once), with the same idempotency key.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf

pytestmark = pytest.mark.slow

WORKER = Path(__file__).resolve().parent / "crash" / "worker.py"
LINE_TIMEOUT = 20.0  # bound on waiting for one expected line; never reached when all is well
EXIT_TIMEOUT = 30.0

COMPLETED = bf.StepStatus.COMPLETED
PENDING = bf.StepStatus.PENDING


# -- processes -----------------------------------------------------------------------------------


class Worker:
    """A worker subprocess whose stdout lines the test waits for (no sleeping, no polling)."""

    def __init__(self, args: list[str], env: dict[str, str], stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr = stderr.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=stderr.parent,
        )
        self.lines: list[list[str]] = []  # every line read so far, split in words
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def _next(self, deadline: float, waiting_for: str) -> bool:
        """Read one more line into ``self.lines``; False at end of output."""
        if self._eof:
            return False
        try:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            pytest.fail(f"timed out waiting for {waiting_for}\n{self.report()}")
        if line is None:
            self._eof = True
            return False
        self.lines.append(line.split())
        return True

    def wait_for(self, word: str, count: int = 1) -> list[list[str]]:
        """The first ``count`` lines starting with ``word``, reading until they have appeared."""
        deadline = time.monotonic() + LINE_TIMEOUT
        what = f"{count} {word!r} line(s)"
        while True:
            found = [line for line in self.lines if line and line[0] == word]
            if len(found) >= count:
                return found[:count]
            if not self._next(deadline, what):
                pytest.fail(f"the worker ended before printing {what}\n{self.report()}")

    def run_ids(self, count: int) -> list[str]:
        """The ids of the runs the worker started, in the order of its spec."""
        return [line[2] for line in sorted(self.wait_for("RUN", count), key=lambda w: int(w[1]))]

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the worker."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=EXIT_TIMEOUT) == -signal.SIGKILL
        self._drain()

    def finish(self) -> int:
        """Wait for the worker to exit on its own; its exit status."""
        try:
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not finish\n{self.report()}")
        self._drain()
        return code

    def _drain(self) -> None:
        deadline = time.monotonic() + LINE_TIMEOUT
        while self._next(deadline, "the end of the worker's output"):
            pass
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=LINE_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def report(self) -> str:
        out = "\n".join(" ".join(words) for words in self.lines[-40:])
        err = self.stderr_path.read_text()[-4000:] if self.stderr_path.exists() else ""
        return f"--- worker stdout (last lines) ---\n{out}\n--- worker stderr ---\n{err}"


@dataclass
class Recovery:
    outputs: dict[str, Any]  # top-level run id -> output
    opened_at: float  # when the recovering engine had opened (and taken over orphans)
    lines: list[list[str]]


@dataclass
class Crash:
    """One test's database, side-effect log and worker processes."""

    dir: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def db(self) -> str:
        return str(self.dir / "runs.db")

    @property
    def log(self) -> Path:
        return self.dir / "effects.log"

    def _spawn(self, args: list[str], gen: int, block: bool) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRASH_")}
        env.update(CRASH_LOG=str(self.log), CRASH_GEN=str(gen))
        if block:
            env["CRASH_BLOCK"] = "1"
        worker = Worker(args, env, self.dir / f"worker-{len(self.workers)}.stderr")
        self.workers.append(worker)
        return worker

    def start(self, spec: list[dict[str, Any]], *, max_concurrent: int = 500) -> Worker:
        """Generation 1: an engine that starts ``spec``'s runs; marked steps hang in it."""
        args = ["start", self.db, json.dumps(spec), "--max-concurrent", str(max_concurrent)]
        return self._spawn(args, gen=1, block=True)

    def hold(self) -> Worker:
        return self._spawn(["hold", self.db], gen=1, block=True)

    def recover(self) -> Recovery:
        """Generation 2: a fresh engine process finishes every run in the database."""
        worker = self._spawn(["resume", self.db], gen=2, block=False)
        code = worker.finish()
        failed = [line for line in worker.lines if line[:1] == ["FAILED"]]
        assert not failed, f"recovery failed\n{worker.report()}"
        assert code == 0, f"recovery exited with {code}\n{worker.report()}"
        assert worker.lines[-1] == ["DONE"], worker.report()
        outputs = {
            line[1]: json.loads(" ".join(line[2:])) for line in worker.lines if line[0] == "RESULT"
        }
        (opened,) = (float(line[1]) for line in worker.lines if line[0] == "OPENED")
        return Recovery(outputs, opened, worker.lines)

    def effects(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def executions(self) -> dict[tuple[str, str], list[str]]:
        """(run id, step position) -> the generations in which the step function began."""
        runs: dict[tuple[str, str], list[str]] = defaultdict(list)
        for e in self.effects():
            if e["event"] == "begin":
                runs[e["run"], e["step"]].append(e["gen"])
        return dict(runs)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


@pytest.fixture
def crash(tmp_path: Path) -> Iterator[Crash]:
    c = Crash(tmp_path)
    try:
        yield c
    finally:
        c.close()  # kills whatever a failing test left running


# -- reading the store (no engine: plain store access, as any other process may) -----------------


class StoreView:
    def __init__(self, db: str) -> None:
        self.db = db

    async def _with(self, fn: Callable[[bf.Store], Any]) -> Any:
        store = bf.open_store(self.db)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    async def run(self, run_id: str) -> bf.RunRecord:
        record = await self._with(lambda s: s.get_run(run_id))
        assert record is not None, f"run {run_id} is missing from the store"
        return record  # type: ignore[no-any-return]

    async def runs(self) -> dict[str, bf.RunRecord]:
        records = await self._with(lambda s: s.list_runs(limit=1_000_000))
        return {r.id: r for r in records}

    async def steps(self, run_id: str) -> list[bf.StepRecord]:
        return await self._with(lambda s: s.load_steps(run_id))  # type: ignore[no-any-return]

    async def journal(self) -> dict[tuple[str, str], bf.StepRecord]:
        """Every journal entry of every run, by (run id, position)."""

        async def read(store: bf.Store) -> dict[tuple[str, str], bf.StepRecord]:
            out = {}
            for run in await store.list_runs(limit=1_000_000):
                for s in await store.load_steps(run.id):
                    out[s.run_id, s.step_id] = s
            return out

        return await self._with(read)  # type: ignore[no-any-return]


def summary(steps: list[bf.StepRecord]) -> list[tuple[str, str, str, bf.StepStatus]]:
    return [(s.step_id, s.kind.value, s.name, s.status) for s in steps]


# -- the tests -----------------------------------------------------------------------------------


async def test_kill_mid_step_reruns_only_the_step_in_flight(crash: Crash) -> None:
    view = StoreView(crash.db)
    gen1 = crash.start([{"wf": "three_steps", "input": {"x": "in", "block": "s3"}}])
    (run_id,) = gen1.run_ids(1)
    assert gen1.wait_for("STARTED") == [["STARTED", "s3", run_id, "3"]]
    gen1.kill()

    # What the crash left: s1 and s2 recorded (each was durable before the next began), s3 not,
    # and the run still marked running, held by an engine that no longer exists.
    before = await view.steps(run_id)
    assert summary(before) == [("1", "step", "s1", COMPLETED), ("2", "step", "s2", COMPLETED)]
    run = await view.run(run_id)
    assert run.status is bf.RunStatus.RUNNING
    assert run.owner is not None
    assert f":{gen1.pid}:" in run.owner

    recovered = crash.recover()

    assert recovered.outputs == {run_id: "s3(s2(s1(in)))"}
    assert crash.executions() == {
        (run_id, "1"): ["1"],  # exactly once
        (run_id, "2"): ["1"],  # exactly once
        (run_id, "3"): ["1", "2"],  # at least once: killed in flight, then completed
    }
    s3 = [e for e in crash.effects() if e["step"] == "3"]
    assert [(e["gen"], e["event"]) for e in s3] == [("1", "begin"), ("2", "begin"), ("2", "end")]
    assert len({e["key"] for e in s3}) == 1, "the retried step must keep its idempotency key"

    after = await view.steps(run_id)
    assert summary(after) == [
        ("1", "step", "s1", COMPLETED),
        ("2", "step", "s2", COMPLETED),
        ("3", "step", "s3", COMPLETED),
    ]
    assert after[:2] == before, "recorded steps must not be rewritten by the recovery"
    assert [json.loads(s.output_json or "null") for s in after] == [
        "s1(in)",
        "s2(s1(in))",
        "s3(s2(s1(in)))",
    ]
    run = await view.run(run_id)
    assert run.status is bf.RunStatus.COMPLETED
    assert run.activations == 2
    assert json.loads(run.output_json or "null") == "s3(s2(s1(in)))"


async def test_kill_during_durable_sleep_wakes_on_time(crash: Crash) -> None:
    view = StoreView(crash.db)
    # Long enough that the new engine opens before the timer is due even on a loaded machine,
    # where starting a Python process alone can take a second.
    gen1 = crash.start([{"wf": "sleeper", "input": {"x": "in", "seconds": 4.0}}])
    (run_id,) = gen1.run_ids(1)
    assert gen1.wait_for("PARKED") == [["PARKED", run_id, "waiting"]]
    gen1.kill()

    steps = await view.steps(run_id)
    assert summary(steps) == [("1", "step", "s1", COMPLETED), ("2", "sleep", "sleep", PENDING)]
    wake_at = steps[1].wake_at
    assert wake_at is not None
    run = await view.run(run_id)
    assert (run.status, run.owner, run.wake_at) == (bf.RunStatus.WAITING, None, wake_at)

    recovered = crash.recover()

    assert recovered.outputs == {run_id: "s2(s1(in))"}
    # The new engine opened before the timer was due, so it had to wake the run by itself...
    assert recovered.opened_at < wake_at
    assert crash.executions() == {(run_id, "1"): ["1"], (run_id, "3"): ["2"]}
    (s2,) = (e for e in crash.effects() if e["tag"] == "s2" and e["event"] == "begin")
    # ...and it did so on time: never early, and promptly (well within a poll interval).
    assert wake_at <= s2["t"] < wake_at + 2.0
    assert summary(await view.steps(run_id)) == [
        ("1", "step", "s1", COMPLETED),
        ("2", "sleep", "sleep", COMPLETED),
        ("3", "step", "s2", COMPLETED),
    ]


async def test_event_sent_while_no_engine_runs_is_received_after_restart(crash: Crash) -> None:
    view = StoreView(crash.db)
    spec = [{"wf": "waiter", "input": {"x": "in", "topic": "approval"}}]
    gen1 = crash.start(spec)
    (run_id,) = gen1.run_ids(1)
    assert gen1.wait_for("PARKED") == [["PARKED", run_id, "waiting"]]
    gen1.kill()

    steps = await view.steps(run_id)
    assert summary(steps) == [("1", "step", "s1", COMPLETED), ("2", "event", "approval", PENDING)]
    assert (await view.run(run_id)).status is bf.RunStatus.WAITING

    # No engine is running: the event goes straight into the store, and wakes the run there.
    store = bf.open_store(crash.db)
    await store.open()
    try:
        await store.deliver_event(
            "approval", json.dumps({"note": "yes"}), time.time(), run_id=run_id
        )
    finally:
        await store.close()
    assert (await view.run(run_id)).status is bf.RunStatus.PENDING

    recovered = crash.recover()

    assert recovered.outputs == {run_id: "s2(s1(in)+yes)"}
    assert crash.executions() == {(run_id, "1"): ["1"], (run_id, "3"): ["2"]}
    steps = await view.steps(run_id)
    assert summary(steps) == [
        ("1", "step", "s1", COMPLETED),
        ("2", "event", "approval", COMPLETED),
        ("3", "step", "s2", COMPLETED),
    ]
    assert json.loads(steps[1].output_json or "null") == {"note": "yes"}
    store = bf.open_store(crash.db)
    await store.open()
    try:
        (event,) = await store.list_events(run_id=run_id)
    finally:
        await store.close()
    assert (event.consumed_run, event.consumed_step) == (run_id, "2")


async def test_kill_mid_step_of_a_child_run_resumes_parent_and_child(crash: Crash) -> None:
    view = StoreView(crash.db)
    gen1 = crash.start([{"wf": "parent_flow", "input": {"x": "px", "child_block": "k2"}}])
    (parent_id,) = gen1.run_ids(1)
    child_id = f"{parent_id}.2"  # the child started at the parent's position 2
    (hung,) = gen1.wait_for("STARTED")
    gen1.kill()

    assert hung[1:3] == ["k2", child_id]
    assert (await view.run(parent_id)).status is bf.RunStatus.WAITING
    assert (await view.run(child_id)).status is bf.RunStatus.RUNNING

    recovered = crash.recover()

    assert recovered.outputs == {parent_id: "p2(k2(k1(p1(px))))"}
    assert crash.executions() == {
        (parent_id, "1"): ["1"],
        (child_id, "1"): ["1"],
        (child_id, "2"): ["1", "2"],
        (parent_id, "3"): ["2"],
    }
    # A child run is a run like any other: its own positions start at 1.
    assert summary(await view.steps(child_id)) == [
        ("1", "step", "k1", COMPLETED),
        ("2", "step", "k2", COMPLETED),
    ]
    assert summary(await view.steps(parent_id)) == [
        ("1", "step", "p1", COMPLETED),
        ("2", "child", "child_flow", COMPLETED),
        ("3", "step", "p2", COMPLETED),
    ]


def _fanout_block(i: int) -> str | None:
    return {0: "a", 3: "b1", 5: "b1x", 7: "c"}.get(i % 10)


def _fanout_output(i: int) -> str:
    a = f"a({i})"
    return f"c(b0({a}),b1x(b1({a})),b2({a}))"


async def test_many_runs_in_flight_lose_nothing_and_redo_no_recorded_step(crash: Crash) -> None:
    view = StoreView(crash.db)
    n = 50
    spec: list[dict[str, Any]] = [
        {"wf": "fanout", "input": {"i": i, "block": _fanout_block(i)}} for i in range(n)
    ]
    spec.append({"wf": "parent_flow", "input": {"x": "px", "child_block": "k2"}})
    blocked = sum(_fanout_block(i) is not None for i in range(n)) + 1

    gen1 = crash.start(spec)
    run_ids = gen1.run_ids(len(spec))
    hung = gen1.wait_for("STARTED", blocked)
    gen1.kill()

    # The crash: the hung steps are in flight; the parent is parked on its child, which is
    # mid-step; the other runs got wherever they got.
    parent_id = run_ids[n]
    child_id = f"{parent_id}.2"
    in_flight = {(line[2], line[3]) for line in hung}
    assert len(in_flight) == blocked
    assert any(run == child_id for run, _ in in_flight)
    runs = await view.runs()
    assert set(runs) == {*run_ids, child_id}
    assert runs[parent_id].status is bf.RunStatus.WAITING
    assert runs[child_id].status is bf.RunStatus.RUNNING
    for i in range(n):
        if _fanout_block(i) is not None:
            assert runs[run_ids[i]].status is bf.RunStatus.RUNNING
    journal_at_crash = await view.journal()
    recorded_at_crash = {
        k: s
        for k, s in journal_at_crash.items()
        if s.kind is bf.StepKind.STEP and s.status is COMPLETED
    }
    assert not in_flight & set(recorded_at_crash)
    began_in_gen1 = {k for k, gens in crash.executions().items() if "1" in gens}

    recovered = crash.recover()

    # Nothing lost: every run completed, with the right output.
    expected = {run_ids[i]: _fanout_output(i) for i in range(n)}
    expected[parent_id] = "p2(k2(k1(p1(px))))"
    assert recovered.outputs == expected
    runs = await view.runs()
    assert set(runs) == {*run_ids, child_id}
    assert all(r.status is bf.RunStatus.COMPLETED for r in runs.values())

    journal = await view.journal()
    executions = crash.executions()
    step_entries = {k for k, s in journal.items() if s.kind is bf.StepKind.STEP}
    # Every step execution belongs to a journaled step, and every journaled step was executed.
    assert set(executions) == step_entries
    assert all(journal[k].status is COMPLETED for k in step_entries)
    # A step recorded before the crash never ran again, and its record was left as it was.
    for k, record in recorded_at_crash.items():
        assert executions[k] == ["1"], k
        assert journal[k] == record, k
    # The recovery executed exactly the steps without a record, each once; those that had begun
    # in the killed engine (in flight, or returned but not yet recorded) ran a second time.
    for k in step_entries - set(recorded_at_crash):
        assert executions[k] == (["1", "2"] if k in began_in_gen1 else ["2"]), k
    for k in in_flight:
        assert executions[k] == ["1", "2"], k
    # The run-level journal entries (parallel groups, the child) are each there once, completed.
    other = {k: s for k, s in journal.items() if s.kind is not bf.StepKind.STEP}
    assert Counter(s.kind for s in other.values()) == {
        bf.StepKind.PARALLEL: n,
        bf.StepKind.CHILD: 1,
    }
    assert all(s.status is COMPLETED for s in other.values())
    assert journal[parent_id, "2"].child_id == child_id


async def test_kill_between_start_and_first_step_loses_no_run(crash: Crash) -> None:
    view = StoreView(crash.db)
    spec = [
        {"wf": "three_steps", "input": {"x": "r0", "hold": True}},  # claimed, before any step
        {"wf": "three_steps", "input": {"x": "r1"}},  # created, never claimed (engine full)
        {"wf": "three_steps", "input": {"x": "r2"}},
    ]
    gen1 = crash.start(spec, max_concurrent=1)
    run_ids = gen1.run_ids(3)
    gen1.wait_for("STARTED_ALL")
    assert gen1.wait_for("ENTERED") == [["ENTERED", run_ids[0]]]
    gen1.kill()

    runs = await view.runs()
    assert [runs[r].status for r in run_ids] == [
        bf.RunStatus.RUNNING,
        bf.RunStatus.PENDING,
        bf.RunStatus.PENDING,
    ]
    assert runs[run_ids[0]].owner is not None
    assert await view.journal() == {}
    assert crash.effects() == []

    recovered = crash.recover()

    assert recovered.outputs == {r: f"s3(s2(s1(r{i})))" for i, r in enumerate(run_ids)}
    assert crash.executions() == {(r, p): ["2"] for r in run_ids for p in ("1", "2", "3")}
    for r in run_ids:
        assert [s.status for s in await view.steps(r)] == [COMPLETED] * 3


async def test_engine_lock_excludes_a_second_engine_until_the_first_dies(crash: Crash) -> None:
    holder = crash.hold()
    holder.wait_for("OPENED")

    engine = bf.Engine(crash.db)
    with pytest.raises(bf.EngineLocked) as caught:
        await engine.open()
    message = str(caught.value)
    assert f"pid {holder.pid}" in message
    assert crash.db in message
    assert "stop it first" in message

    # Other processes may still use the store alongside the engine.
    assert await StoreView(crash.db).runs() == {}

    holder.kill()

    await engine.open()  # the same engine object, now that the lock is free
    try:
        assert not await engine.store.list_runs()
    finally:
        await engine.close()
    async with bf.Engine(crash.db):  # released cleanly on close, so it can be taken again
        pass
