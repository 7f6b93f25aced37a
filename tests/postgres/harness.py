"""Worker processes on one PostgreSQL schema, and the witnesses the tests check them against.

A :class:`Cluster` starts ``batonflow worker`` processes (the real command line) on a test's
schema, kills or stops them, and submits runs of ``flows.py``. :func:`check_history` then checks
the three witnesses a run leaves: the side-effect log its steps wrote (``flows.py``), the journal
in the store, and the runs' outputs.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import batonflow as bf
from batonflow.store import NewRun

FLOWS = Path(__file__).resolve().with_name("flows.py")
WORKER = [sys.executable, "-c", "from batonflow.cli import main; main()", "worker"]
_FENCED = re.compile(r"run (\S+): lease (?:not renewed in time|lost)")


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    stderr: Path
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Cluster:
    url: str
    dir: Path
    lease: float = 2.0
    poll: float = 0.5
    concurrency: int = 50
    grace: float = 0.0
    extra: tuple[str, ...] = ()
    workers: list[Worker] = field(default_factory=list)
    deaths: dict[int, float] = field(default_factory=dict)  # pid -> when it was known dead

    @property
    def effects_path(self) -> Path:
        return self.dir / "effects.log"

    def spawn(self) -> Worker:
        args = [
            "--db", self.url, "--lease", str(self.lease), "--poll", str(self.poll),
            "--concurrency", str(self.concurrency), "--grace", str(self.grace), *self.extra,
        ]  # fmt: skip
        env = {**os.environ, "BF_EFFECTS": str(self.effects_path)}
        stderr = self.dir / f"worker-{len(self.workers)}.stderr"
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [*WORKER, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=self.dir,
            )
        worker = Worker(proc, stderr, time.time())
        self.workers.append(worker)
        return worker

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.proc.poll() is None]

    def kill(self, worker: Worker) -> None:
        """SIGKILL: nothing of the worker's own cleanup runs."""
        worker.proc.send_signal(signal.SIGKILL)
        assert worker.proc.wait(timeout=30) == -signal.SIGKILL
        self.deaths[worker.pid] = time.time()

    def terminate(self, worker: Worker, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the worker to stop by itself; its exit status."""
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=timeout)
        self.deaths[worker.pid] = time.time()
        return code

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()

    def stderr_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- worker pid {w.pid} ---\n{w.stderr.read_text(errors='replace')[-chars:]}"
            for w in self.workers
            if w.stderr.exists()
        )

    def effects(self) -> list[dict[str, Any]]:
        if not self.effects_path.exists():
            return []
        return [json.loads(line) for line in self.effects_path.read_text().splitlines() if line]

    def wait_for_effect(self, ev: str, tag: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first effect line ``ev`` of step ``tag``, polling the log (bounded, 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.effects():
                if e["ev"] == ev and e["tag"] == tag:
                    return e
            assert time.monotonic() < deadline, f"no {ev} of {tag}\n{self.stderr_tail()}"
            time.sleep(0.02)

    def fenced(self) -> set[tuple[int, str]]:
        """(pid, run id) of every run a worker let go of because its lease was not renewed in
        time (a fence) or was found taken over (lease lost): its execution may be redone."""
        out = set()
        for w in self.workers:
            if w.stderr.exists():
                out |= {(w.pid, m[1]) for m in _FENCED.finditer(w.stderr.read_text())}
        return out


async def submit(store: bf.Store, workflow: str, inputs: Iterable[dict[str, Any]]) -> list[str]:
    """Record PENDING runs of ``flows.<workflow>`` for the workers (as `run --detach` does)."""
    ids = []
    for item in inputs:
        run = NewRun(
            id=uuid.uuid4().hex,
            workflow=workflow,
            workflow_ref=f"{FLOWS}:{workflow}",
            input_json=json.dumps(item),
            status=bf.RunStatus.PENDING,
            owner=None,
            lease_until=None,
            created_at=time.time(),
        )
        record, _ = await store.create_run(run)
        ids.append(record.id)
    return ids


def count_ended(url: str, run_ids: list[str]) -> tuple[int, int]:
    """(completed, ended otherwise) among ``run_ids``; a plain read, as any observer would."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status='completed'),"
            " count(*) FILTER (WHERE status IN ('faulted','cancelled'))"
            " FROM runs WHERE id = ANY(%s)",
            (run_ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass
class Execution:
    pid: int
    run: str
    step: str
    token: str
    begin: float
    end: float | None = None  # returned or aborted
    returned: bool = False


def executions(effects: list[dict[str, Any]]) -> dict[str, Execution]:
    by_token: dict[str, Execution] = {}
    for e in effects:
        if e["ev"] == "begin":
            by_token[e["token"]] = Execution(e["pid"], e["run"], e["step"], e["token"], e["t"])
        else:
            ex = by_token[e["token"]]
            ex.end, ex.returned = e["t"], e["ev"] == "end"
    return by_token


async def check_history(
    store: bf.Store, cluster: Cluster, run_ids: list[str], steps: Iterable[str]
) -> dict[str, Any]:
    """Every run completed; its journal holds each step once, recorded from one execution that
    returned; any other execution of a step was cut short by its worker's death (or a lease
    fence); and no two executions of one run's steps overlapped in time, on any workers."""
    effects = cluster.effects()
    by_token = executions(effects)
    per_run: dict[str, list[Execution]] = defaultdict(list)
    for ex in by_token.values():
        per_run[ex.run].append(ex)
    fenced = cluster.fenced()
    expected_steps = list(steps)
    reruns = 0
    for run_id in run_ids:
        run = await store.get_run(run_id)
        assert run is not None, run_id
        assert run.status is bf.RunStatus.COMPLETED, run
        journal = [s for s in await store.load_steps(run_id) if s.kind is bf.StepKind.STEP]
        assert [s.name for s in journal] == expected_steps, (run_id, journal)
        recorded = {json.loads(s.output_json or '""').split(":")[1] for s in journal}
        assert json.loads(run.output_json or "[]") == [
            json.loads(s.output_json or '""') for s in journal
        ]
        for token in recorded:
            assert token in by_token, (run_id, token)
            assert by_token[token].returned, (run_id, token)
        runs_executions = sorted(per_run[run_id], key=lambda ex: ex.begin)
        for ex in runs_executions:
            if ex.token in recorded:
                continue
            reruns += 1
            assert ex.pid in cluster.deaths or (ex.pid, run_id) in fenced, (
                f"run {run_id} step {ex.step} ran in pid {ex.pid} (token {ex.token}), which"
                " neither died nor was fenced, yet its result was not the one recorded"
            )
        for first, second in itertools.pairwise(runs_executions):
            first_end = first.end if first.end is not None else cluster.deaths.get(first.pid)
            assert first_end is not None, f"execution {first} never ended"
            assert first_end <= second.begin, (
                f"run {run_id}: executions overlapped in pids {first.pid} and {second.pid}:"
                f" {first} and {second}"
            )
    return {"executions": len(by_token), "reruns": reruns, "fenced": len(fenced)}
