"""Declaring workflows and steps."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from batonflow.core._queues import queue_name
from batonflow.core._retry import Retry
from batonflow.errors import ConfigError

if TYPE_CHECKING:
    from batonflow.core._context import Context

P = ParamSpec("P")
R = TypeVar("R")
I = TypeVar("I")  # noqa: E741 - a workflow's input type
O = TypeVar("O")  # noqa: E741 - a workflow's output type

DEFAULT_RETRY = Retry()


@dataclass(frozen=True, slots=True)
class StepOptions:
    name: str | None = None
    retry: Retry = DEFAULT_RETRY
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"a step timeout must be positive seconds, got {self.timeout}")


class Step(Generic[P, R]):
    """A function with step options attached. Calling it calls the function, unjournaled;
    inside a workflow, ``await ctx.step(the_step, ...)`` runs it as a durable step."""

    __slots__ = ("__dict__", "fn", "is_async", "options")

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        inner = fn.fn if isinstance(fn, Step) else fn
        self.fn: Callable[P, R] = inner
        self.options = options
        self.is_async = inspect.iscoroutinefunction(inner)
        functools.update_wrapper(self, inner)

    @property
    def name(self) -> str:
        return self.options.name or self.fn.__qualname__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    fn: Callable[P, R], /, *, name: str | None = ..., retry: Retry | None = ...,
    timeout: float | None = ...,
) -> Step[P, R]: ...  # fmt: skip
@overload
def step(
    *, name: str | None = ..., retry: Retry | None = ..., timeout: float | None = ...
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Attach step options to a function: as ``@step``, ``@step(retry=...)`` or inline,
    ``ctx.step(step(fn, timeout=5), arg)``.

    ``retry`` defaults to ``Retry()`` (3 attempts, exponential backoff); ``Retry.never()`` for one.
    ``timeout`` bounds each attempt, in seconds.
    """
    options = StepOptions(name=name, retry=retry or DEFAULT_RETRY, timeout=timeout)

    def wrap(f: Callable[P, R]) -> Step[P, R]:
        if not callable(f):
            raise ConfigError(f"@step decorates a function, not {type(f).__name__}")
        return Step(f, options)

    return wrap(fn) if fn is not None else wrap


def step_options(fn: Callable[..., Any]) -> tuple[Callable[..., Any], str, StepOptions, bool]:
    """(function to call, step name, options, is it async) for anything ``ctx.step`` accepts."""
    if isinstance(fn, Step):
        return fn.fn, fn.name, fn.options, fn.is_async
    if not callable(fn):
        raise ConfigError(f"ctx.step needs a function, got {type(fn).__name__}")
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return fn, name, StepOptions(), inspect.iscoroutinefunction(fn)


#: ``redact(workflow, step, value) -> value``: what may be stored of a workflow's input (step
#: None), a step's arguments and result, and its output (``"$output"``); see
#: ``batonflow.governance.Redactor.persist``.
Redact = Callable[[str, "str | None", Any], Any]

#: ``prepare(input, redact) -> (input to store, data subjects)``, for workflows whose input is
#: not the user's alone (the DSL's carries the document). It may be a coroutine function (the
#: DSL's evaluates the document's ``subjects`` expression off the event loop).
Prepare = Callable[
    [Any, "Redact | None"],
    "tuple[Any, tuple[str, ...]] | Awaitable[tuple[Any, tuple[str, ...]]]",
]


class Workflow(Generic[I, O]):
    """A durable workflow: ``async def fn(ctx, input) -> output`` (or ``fn(ctx)``).

    ``ref`` (``module:function``) lets an engine in another process, after a crash, load the code
    of a run it finds in the store; it is None for functions defined inside other functions.
    """

    def __init__(
        self,
        fn: Callable[..., Awaitable[O]],
        *,
        name: str | None = None,
        timeout: float | None = None,
        ref: str | None = None,
        queue: str | None = None,
        subjects: Callable[[Any], Iterable[str] | str | None] | None = None,
        prepare: Prepare | None = None,
        run_name: Callable[[Any], str] | None = None,
        claims: Callable[[str], bool] | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"workflow {fn.__qualname__!r} must be an async function: "
                "async def my_flow(ctx, input): ..."
            )
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(params) not in (1, 2):
            raise ConfigError(
                f"workflow {fn.__qualname__!r} must take (ctx) or (ctx, input), "
                f"it takes {len(params)} required positional parameters"
            )
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"a workflow timeout must be positive seconds, got {timeout}")
        self.fn = fn
        self.name = name or fn.__name__
        self.timeout = timeout
        self.queue = queue_name(queue)  # None: the default queue, which has no limits
        self.takes_input = len(params) == 2
        self.ref = ref or _default_ref(fn)
        self.subjects = subjects
        self._prepare = prepare
        self._run_name = run_name
        self._claims = claims
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def name_for(self, input: Any) -> str:
        """The workflow name a run of this input is recorded under: the workflow's own, or
        what ``run_name`` says (the DSL names each run after its document)."""
        return self.name if self._run_name is None else self._run_name(input)

    def serves(self, name: str) -> bool:
        """True if runs recorded under ``name`` are this workflow's (its name, or one its
        ``claims`` accepts: an interpreter of documents claims their names)."""
        return name == self.name or (self._claims is not None and self._claims(name))

    @property
    def redacts_itself(self) -> bool:
        """True when ``prepare`` was given: the workflow then redacts its own input (there) and
        output (before returning it), as the DSL interpreter does per document."""
        return self._prepare is not None

    async def prepare(self, input: Any, redact: Redact | None) -> tuple[Any, tuple[str, ...]]:
        """A new run's input as it may be stored, and the data subjects it concerns (found
        before redaction, which may remove what names them)."""
        if self._prepare is not None:
            prepared = self._prepare(input, redact)
            if inspect.isawaitable(prepared):
                return await prepared
            return prepared
        subjects = self.subjects_of(input)
        return (input if redact is None else redact(self.name, None, input)), subjects

    def subjects_of(self, input: Any) -> tuple[str, ...]:
        """The data subjects ``subjects`` finds in a run's input (distinct, in order)."""
        if self.subjects is None:
            return ()
        try:
            found = self.subjects(input)
        except Exception as exc:
            raise ConfigError(
                f"workflow {self.name!r}: its subjects function failed on the input: {exc}"
            ) from exc
        if found is None:
            return ()
        items = [found] if isinstance(found, str) else list(found)
        bad = [s for s in items if not isinstance(s, str) or not s.strip()]
        if bad:
            raise ConfigError(
                f"workflow {self.name!r}: data subjects must be non-empty strings, got {bad!r}"
            )
        return tuple(dict.fromkeys(s.strip() for s in items))

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}>"

    def invoke(self, ctx: Context, input: I) -> Awaitable[O]:
        return self.fn(ctx, input) if self.takes_input else self.fn(ctx)


@overload
def workflow(fn: Callable[[Context, I], Awaitable[O]], /) -> Workflow[I, O]: ...
@overload
def workflow(fn: Callable[[Context], Awaitable[O]], /) -> Workflow[None, O]: ...
@overload
def workflow(
    *,
    name: str | None = ...,
    timeout: float | None = ...,
    queue: str | None = ...,
    subjects: Callable[[Any], Iterable[str] | str | None] | None = ...,
) -> Callable[[Callable[..., Awaitable[O]]], Workflow[Any, O]]: ...
def workflow(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | None = None,
    queue: str | None = None,
    subjects: Callable[[Any], Iterable[str] | str | None] | None = None,
) -> Workflow[Any, Any] | Callable[[Callable[..., Awaitable[Any]]], Workflow[Any, Any]]:
    """Declare a workflow: ``@workflow`` or ``@workflow(name="triage", timeout=3600)``.

    ``timeout`` (seconds) is the run's deadline, counted from its creation, including time spent
    sleeping or waiting; past it the run faults with ``RunTimeout``. ``queue`` names the queue
    its runs join: the engine's ``queues={...}`` says how many may run at once and how fast
    they may start, across all workers. ``subjects(input)`` names the data subjects a run
    concerns (an e-mail address, a client number): runs are tagged with them, their data is
    sealed with per-subject keys when the store is sealed, and ``batonflow subject export`` /
    ``erase`` find them.
    """

    def wrap(f: Callable[..., Awaitable[Any]]) -> Workflow[Any, Any]:
        return Workflow(f, name=name, timeout=timeout, queue=queue, subjects=subjects)

    return wrap(fn) if fn is not None else wrap


def _default_ref(fn: Callable[..., Any]) -> str | None:
    """How another process finds ``fn``: by module name, or by file path for scripts and files
    the CLI loaded by path (their module names mean nothing elsewhere)."""
    if "<locals>" in fn.__qualname__ or inspect.ismethod(fn):
        return None  # not importable by name: the engine must be given the workflow
    module = sys.modules.get(fn.__module__)
    by_path = fn.__module__ == "__main__" or fn.__module__.startswith("batonflow_user_")
    if by_path:
        file = getattr(module, "__file__", None)
        return f"{Path(file).resolve()}:{fn.__qualname__}" if file else None
    return f"{fn.__module__}:{fn.__qualname__}"


_TAKES_CONTEXT = "__batonflow_takes_context__"
F = TypeVar("F", bound=Callable[..., Any])


def takes_context(fn: F) -> F:
    """Mark ``fn(ctx, **arguments)`` as a function that runs at workflow level with the run's
    :class:`Context` (it makes its own steps and waits: an agent, an approval), instead of
    being wrapped in one step. A DSL ``call:`` of a registered function so marked passes the
    context first."""
    setattr(fn, _TAKES_CONTEXT, True)
    return fn


def wants_context(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` was marked with :func:`takes_context`."""
    return getattr(fn, _TAKES_CONTEXT, False) is True
