"""Running jq programs under a time and a memory budget, off the event loop.

jq is C: a program that never ends (``def f: f; f``) or grows without end (``[repeat(1)]``)
cannot be interrupted from Python. So a program that is not plainly bounded (see
``_expr.is_bounded``) runs in an evaluator process: a small pool of them, started on first use
and shared by every runtime with the same budget. The process's address space is capped
(``RLIMIT_AS``), and a program still running when its time is up is ended by killing the
process, which is replaced. The event loop only waits on a pipe meanwhile, so other runs go on
and SIGTERM is served.

    pool = EvaluatorPool.shared(ExpressionBudget(seconds=2, memory_mb=512))
    outcome = await pool.run(program_text, input_json_text)
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

__all__ = ["BudgetExceeded", "EvaluatorPool", "ExpressionBudget", "Outcome", "Request"]

#: What an evaluator process runs: a jq program's text, ``{"regex": pattern}`` (does the
#: pattern match the whole of the string given as data?) or ``{"schema": document}`` (the
#: first JSON Schema error of the data).
Request = str | dict[str, Any]

_CHILD: Final = str(Path(__file__).with_name("_sandbox_child.py"))
_START_TIMEOUT: Final = 30.0  # seconds for a new process to be ready (a loaded machine)
_READ: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ExpressionBudget:
    """What one runtime expression may use: wall-clock ``seconds``, ``memory_mb`` of address
    space in its evaluator process, and ``max_result_mb`` of JSON result. ``processes`` is how
    many expressions may evaluate at once (the pool's size)."""

    seconds: float = 2.0
    memory_mb: int = 512
    max_result_mb: int = 16
    processes: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 3600:
            raise ValueError(f"seconds must be in (0, 3600], got {self.seconds!r}")
        if not 64 <= self.memory_mb <= 1 << 20:
            raise ValueError(f"memory_mb must be at least 64, got {self.memory_mb!r}")
        if not 1 <= self.max_result_mb <= self.memory_mb:
            raise ValueError("max_result_mb must be between 1 and memory_mb")
        if not 1 <= self.processes <= 64:
            raise ValueError(f"processes must be between 1 and 64, got {self.processes!r}")


class BudgetExceeded(Exception):
    """The program ran past its time, or ran its process out of memory; ``message`` says
    which, with the limit."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Up to two results of a program, or jq's error message."""

    results: list[Any]
    error: str | None = None


class _Process:
    """One evaluator process and its pipes."""

    def __init__(self, budget: ExpressionBudget) -> None:
        memory = budget.memory_mb << 20
        self.popen = subprocess.Popen(  # our own script, no shell
            [sys.executable, "-I", _CHILD, str(memory), str(budget.max_result_mb << 20)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C is the worker's to handle
        )
        assert self.popen.stdin is not None
        assert self.popen.stdout is not None
        self.stdin = self.popen.stdin
        self.fd = self.popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.ready = False

    def send(self, program: Request, data: str) -> None:
        self.stdin.write(json.dumps(program).encode() + b"\n" + data.encode() + b"\n")
        self.stdin.flush()

    def _take_line(self) -> bytes | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    def _read_some(self) -> bool:
        """Read what is there; False when nothing was (would block). Raises EOFError."""
        try:
            chunk = os.read(self.fd, _READ)
        except BlockingIOError:
            return False
        if not chunk:
            raise EOFError
        self.buffer += chunk
        return True

    async def receive(self, seconds: float) -> bytes:
        """The next line, waiting on the loop (never blocking it). Raises TimeoutError,
        EOFError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (line := self._take_line()) is None:
            if self._read_some():
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            readable = loop.create_future()
            loop.add_reader(self.fd, _wake, readable)
            try:
                await asyncio.wait_for(readable, remaining)
            finally:
                loop.remove_reader(self.fd)
        return line

    def receive_blocking(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        while (line := self._take_line()) is None:
            if self._read_some():
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            select.select([self.fd], [], [], remaining)
        return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            assert self.popen.stdout is not None
            self.popen.stdout.close()


class EvaluatorPool:
    """Evaluator processes for one budget; at most ``budget.processes`` evaluate at once."""

    _shared: ClassVar[dict[ExpressionBudget, EvaluatorPool]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, budget: ExpressionBudget) -> None:
        self.budget = budget
        self._idle: list[_Process] = []
        self._count = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._lock = threading.Lock()  # the blocking path may run on other threads
        self.killed = 0  # processes ended for running past the budget (a metric)

    @classmethod
    def shared(cls, budget: ExpressionBudget) -> EvaluatorPool:
        """The process-wide pool for ``budget`` (made on first use, closed at exit)."""
        with cls._shared_lock:
            pool = cls._shared.get(budget)
            if pool is None:
                pool = cls._shared[budget] = cls(budget)
            return pool

    def close(self) -> None:
        """End the idle processes (busy ones end when their evaluation returns)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for process in idle:
            process.kill()

    # -- evaluating ---------------------------------------------------------------------------
    async def run(self, program: Request, data: str) -> Outcome:
        """Run ``program`` on ``data`` (JSON text). Raises :class:`BudgetExceeded`."""
        try:
            return await self._run_once(program, data)
        except _Gone:  # an idle process had died (killed from outside): once more, on a new one
            return await self._run_once(program, data)

    async def _run_once(self, program: Request, data: str) -> Outcome:
        process = await self._acquire()
        healthy = False
        try:
            if not process.ready:
                await self._start(process, process.receive)
            _send(process, program, data)
            try:
                line = await process.receive(self.budget.seconds)
            except TimeoutError:
                raise self._over_time() from None
            except EOFError:
                raise self._over_memory() from None
            outcome = self._outcome(line)
            healthy = True
            return outcome
        finally:
            self._release(process, healthy)

    def run_blocking(self, program: str, data: str) -> Outcome:
        """:meth:`run` for synchronous callers: blocks this thread for at most the budget."""
        try:
            return self._run_blocking_once(program, data)
        except _Gone:
            return self._run_blocking_once(program, data)

    def _run_blocking_once(self, program: str, data: str) -> Outcome:
        # A synchronous caller may be blocking the very event loop on which the pool's busy
        # processes' answers are awaited: waiting for one of them could never end. With none
        # idle, it gets a process of its own (same budget), ended after this one evaluation.
        pooled = self._try_acquire()
        process = pooled if pooled is not None else _Process(self.budget)
        healthy = False
        try:
            if not process.ready:
                self._start_blocking(process)
            _send(process, program, data)
            try:
                line = process.receive_blocking(self.budget.seconds)
            except TimeoutError:
                raise self._over_time() from None
            except EOFError:
                raise self._over_memory() from None
            outcome = self._outcome(line)
            healthy = True
            return outcome
        finally:
            if pooled is not None:
                self._release(process, healthy)
            else:
                process.kill()

    def _over_time(self) -> BudgetExceeded:
        self.killed += 1
        return BudgetExceeded(f"ran past its time budget of {self.budget.seconds:g}s")

    def _over_memory(self) -> BudgetExceeded:
        self.killed += 1
        return BudgetExceeded(f"ran past its memory budget of {self.budget.memory_mb} MB")

    def _outcome(self, line: bytes) -> Outcome:
        kind, value = json.loads(line)
        if kind == "ok":
            return Outcome(value)
        if kind == "error":
            return Outcome([], str(value))
        if kind == "memory":
            raise self._over_memory()
        raise BudgetExceeded(f"gave a result larger than {self.budget.max_result_mb} MB")

    async def _start(self, process: _Process, receive: Any) -> None:
        try:
            await receive(_START_TIMEOUT)
        except (TimeoutError, EOFError):
            raise BudgetExceeded("could not start an expression evaluator process") from None
        process.ready = True

    def _start_blocking(self, process: _Process) -> None:
        try:
            process.receive_blocking(_START_TIMEOUT)
        except (TimeoutError, EOFError):
            raise BudgetExceeded("could not start an expression evaluator process") from None
        process.ready = True

    # -- the pool -----------------------------------------------------------------------------
    def _try_acquire(self) -> _Process | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._count < self.budget.processes:
                self._count += 1
                spawn = True
            else:
                return None
        if spawn:
            try:
                return _Process(self.budget)
            except BaseException:
                with self._lock:
                    self._count -= 1
                raise
        return None  # pragma: no cover

    async def _acquire(self) -> _Process:
        while (process := self._try_acquire()) is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return process

    def _release(self, process: _Process, healthy: bool) -> None:
        if healthy:
            with self._lock:
                self._idle.append(process)
        else:
            process.kill()
            with self._lock:
                self._count -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
                break


class _Gone(Exception):
    """The process was dead before the program was sent: nothing ran."""


def _send(process: _Process, program: Request, data: str) -> None:
    try:
        process.send(program, data)
    except (BrokenPipeError, ConnectionResetError, ValueError):
        raise _Gone from None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@atexit.register
def _close_shared() -> None:
    for pool in list(EvaluatorPool._shared.values()):
        pool.close()
