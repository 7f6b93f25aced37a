"""SIGKILL the engine while an agent's tool call is in flight; a new engine finishes the run
without running any recorded tool call again."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from providers.servers import FakeOpenAI, ok

WORKER = Path(__file__).resolve().with_name("crash_worker.py")
LINE_TIMEOUT = 20.0  # bound on waiting for one expected line; never reached when all is well

pytestmark = pytest.mark.slow


class Worker:
    """A crash_worker.py process whose stdout lines the test waits for."""

    def __init__(self, args: list[str], env: dict[str, str], stderr: Path) -> None:
        self._stderr = stderr.open("w")
        self.stderr_path = stderr
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, word: str) -> list[str]:
        while True:
            try:
                line = self._lines.get(timeout=LINE_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"timed out waiting for {word}\n{self.stderr_path.read_text()}")
            if line is None:
                pytest.fail(f"the worker ended before {word}\n{self.stderr_path.read_text()}")
            words = line.split(maxsplit=1)
            if words and words[0] == word:
                return words

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def test_sigkill_between_tool_calls_runs_no_tool_twice(tmp_path: Path) -> None:
    db, log = tmp_path / "agent.db", tmp_path / "tools.log"
    with FakeOpenAI() as server:
        server.script(
            ok(tool=("add", {"a": 2, "b": 3})),
            ok(tool=("block", {})),
            ok(tool=("shout", {"text": "hi"})),
            ok("all done"),
        )
        args = [str(db), str(log), server.base_url]
        env = {**os.environ, "AGENT_BLOCK": "1"}
        first = Worker(["start", *args], env, tmp_path / "first.err")
        try:
            first.wait_for("RUN")
            first.wait_for("BLOCKING")  # add ran and was recorded; block is in flight
            os.kill(first.proc.pid, signal.SIGKILL)
            assert first.proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            first.close()
        assert log.read_text().splitlines() == ["add 2 3", "block"]
        assert len(server.received) == 2

        env = {k: v for k, v in os.environ.items() if k != "AGENT_BLOCK"}
        second = Worker(["resume", *args], env, tmp_path / "second.err")
        try:
            _, output = second.wait_for("RESULT")
            assert second.proc.wait(timeout=30) == 0
        finally:
            second.close()
        received = len(server.received)

    assert json.loads(output) == {
        "output": "all done",
        "turns": 4,
        "tool_calls": 3,
        "tokens": {"input": 48, "output": 20},
        "cost": 0.0,
    }
    # add ran once; block (in flight at the kill) ran again; shout once; no turn asked twice
    assert log.read_text().splitlines() == ["add 2 3", "block", "block", "shout hi"]
    assert received == 4
