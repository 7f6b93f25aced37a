"""Runtime expressions: jq, strict mode (DSL 1.0.3, dsl.md "Runtime Expressions").

*Which strings are expressions.* In strict mode (the default, and the only mode here) an
expression is a string that is one ``${ ... }`` as a whole, surrounding whitespace aside: the
schema's ``runtimeExpression`` pattern ``^\\s*\\$\\{.+\\}\\s*$`` (read with ``.`` matching line
breaks, so YAML block scalars work). ``"Hello ${ .name }"`` is not an expression but a literal
string; write ``${ "Hello \\(.name)" }``. Fields whose schema type *is* a runtime expression
(``if``, ``when``, ``while``, ``for.in``, and ``input.from``/``output.as``/``export.as`` given as
strings) take bare jq as well: :func:`evaluate` accepts both.

*Results.* jq yields a stream. No result is ``null`` (as in jq's ``first(f) // null``); more than
one is an expression error, since silently keeping one or switching to an array by count would
lose data or change the shape with the data: wrap the expression in ``[ ... ]`` to collect them.
A condition must yield exactly ``true`` or ``false``; anything else, ``null`` included, is an
expression error, so a misspelt field faults instead of skipping a task.

*Failures* raise :class:`WorkflowError` with the ``expression`` type and status 400 (dsl.md:
"When the evaluation of an expression fails, runtimes must raise an error with type .../expression
and status 400"); the detail quotes the expression and jq's message.

*Sandbox.* ``env``/``$ENV`` (the engine's process environment, where credentials live) read as
``{}``; use ``$secrets``. ``input``, ``halt`` and ``halt_error`` raise instead of ending the
program silently.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import jq  # type: ignore[import-not-found]  # libjq bindings ship no stubs

from batonflow.dsl._bounded import is_bounded
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError
from batonflow.dsl._sandbox import BudgetExceeded, EvaluatorPool, ExpressionBudget, Outcome

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_EXPRESSION_LENGTH",
    "MAX_EXPRESSION_NESTING",
    "STANDARD_ARGUMENTS",
    "Arguments",
    "Evaluator",
    "ExpressionBudget",
    "InvalidPattern",
    "check",
    "check_template",
    "evaluate",
    "evaluate_condition",
    "evaluate_template",
    "is_bounded",
    "is_expression",
    "is_variable_name",
]

#: The runtime expression arguments of dsl.md "Runtime expression arguments".
STANDARD_ARGUMENTS: Final = frozenset(
    {"context", "input", "output", "secrets", "task", "workflow", "runtime", "authorization"}
)

CACHE_SIZE: Final = 1024
"""Compiled programs kept (least recently used dropped first); the same number of parsed
expressions is kept besides."""

DEFAULT_BUDGET: Final = ExpressionBudget()

MAX_EXPRESSION_LENGTH: Final = 65_536
"""Characters in one expression; longer ones are refused before jq compiles them."""
MAX_EXPRESSION_NESTING: Final = 128
"""Brackets open at once in one expression (jq's compiler recurses on nesting)."""

_STRICT = re.compile(r"\s*\$\{(.+)\}\s*", re.DOTALL)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Every variable a jq program reads appears in its text as ``$name`` (jq has no dynamic lookup);
# a match inside a string literal or a comment only binds a variable the program never reads.
_REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_NOT_BINDABLE = frozenset({"__loc__"})
_DETAIL_QUOTE = 200

# Prepended to every program (no line break, so jq's positions and $__loc__ stay right).
_PRELUDE = (
    "def env: {}; "
    'def input: error("input is not available in workflow expressions"); '
    'def halt: error("halt is not available in workflow expressions"); '
    "def halt_error: error; def halt_error($code): error; "
    "{} as $ENV | "
)
_TITLE = "Runtime expression error"


class _ABSENT_TYPE:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


_ABSENT: Final = _ABSENT_TYPE()


def is_variable_name(name: str) -> bool:
    """Whether ``name`` can name a jq variable (``for.each``, ``for.at``, ``catch.as``)."""
    return _VARIABLE_NAME.fullmatch(name) is not None and name not in _NOT_BINDABLE


class Arguments(Mapping[str, Any]):
    """The variables of one evaluation: the runtime expression arguments (``$context``,
    ``$input``, ...) that apply where the expression is evaluated (dsl.md's availability table),
    plus task variables such as ``for``'s ``$item``/``$index`` and ``catch``'s ``$error``.

    An argument not given is absent (reading it is an error); ``None`` is jq's ``null``. A
    variable named like a standard argument shadows it, as an inner jq binding would.
    """

    __slots__ = ("_names", "_values")

    def __init__(
        self,
        *,
        context: Any = _ABSENT,
        input: Any = _ABSENT,
        output: Any = _ABSENT,
        secrets: Any = _ABSENT,
        task: Any = _ABSENT,
        workflow: Any = _ABSENT,
        runtime: Any = _ABSENT,
        authorization: Any = _ABSENT,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        given = {
            "context": context,
            "input": input,
            "output": output,
            "secrets": secrets,
            "task": task,
            "workflow": workflow,
            "runtime": runtime,
            "authorization": authorization,
        }
        values = {name: value for name, value in given.items() if value is not _ABSENT}
        if variables:
            for name in variables:
                if not is_variable_name(name):
                    raise WorkflowError(
                        Problem.of(
                            ErrorType.CONFIGURATION,
                            f"{name!r} cannot name a runtime expression variable: use letters, "
                            "digits and '_', not starting with a digit",
                        )
                    )
            values.update(variables)
        self._values: dict[str, Any] = values
        self._names: frozenset[str] = frozenset(values)

    def with_variables(self, variables: Mapping[str, Any]) -> Arguments:
        """These arguments plus ``variables`` (which win on a clash)."""
        return Arguments(variables={**self._values, **variables})

    @property
    def names(self) -> frozenset[str]:
        return self._names

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Arguments({', '.join(sorted(self._values))})"


_NO_ARGUMENTS: Final = Arguments()


def is_expression(value: object) -> bool:
    """Whether ``value`` is a strict-mode runtime expression: a string that is one ``${ ... }``
    as a whole (whitespace around it aside)."""
    return isinstance(value, str) and _STRICT.fullmatch(value) is not None


class _Program(Protocol):
    def input_value(self, value: Any) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Parsed:
    body: str  # the jq text: inside ``${ }``, or the whole (bare) expression
    references: frozenset[str]  # variables named in the text


@dataclass(frozen=True, slots=True)
class _Compiled:
    program: _Program
    names: tuple[str, ...]  # bound variables, in the order the program destructures them
    text: str  # the whole program as compiled (prelude, bindings, body)
    bounded: bool  # plainly bounded in time and memory: evaluated in this process


def evaluate(
    expression: str,
    data: Any,
    arguments: Arguments | None = None,
    *,
    instance: str | None = None,
    budget: ExpressionBudget | None = None,
) -> Any:
    """The value of ``expression`` (``${ ... }`` or bare jq) on ``data``: its single result,
    ``None`` if it yields none. Raises :class:`WorkflowError` (expression, 400) if it cannot be
    compiled, fails, reads an absent variable, yields more than one result, or runs past its
    ``budget`` (default :class:`ExpressionBudget`). Blocks the calling thread for at most the
    budget's time: on an event loop, use :class:`Evaluator`."""
    compiled, value = _prepare(expression, data, arguments, instance)
    if compiled.bounded:
        outcome = _first_two(compiled.program, value)
    else:
        pool = EvaluatorPool.shared(budget or DEFAULT_BUDGET)
        outcome = _isolated(expression, instance, pool.run_blocking, compiled, value)
    return _conclude(expression, outcome, instance)


def evaluate_condition(
    expression: str,
    data: Any,
    arguments: Arguments | None = None,
    *,
    instance: str | None = None,
    budget: ExpressionBudget | None = None,
) -> bool:
    """``if``/``when``/``while``/``until``: the expression must yield ``true`` or ``false``;
    any other value (``null`` and no result included) is an expression error."""
    result = evaluate(expression, data, arguments, instance=instance, budget=budget)
    return _as_condition(expression, result, instance)


def evaluate_template(
    value: Any,
    data: Any,
    arguments: Arguments | None = None,
    *,
    instance: str | None = None,
    budget: ExpressionBudget | None = None,
) -> Any:
    """``value`` with every strict-mode expression in it replaced by its value: walks mappings
    (values only; keys are names, never evaluated) and lists; other strings and scalars are kept.
    Results are not walked again, so a string that data supplies is never evaluated. Returns new
    containers; ``value`` is not changed. With ``instance`` (a JSON pointer to ``value``), an
    error's instance points at the failing string."""
    found = [
        evaluate(text, data, arguments, instance=where, budget=budget)
        for text, where in _expressions_in(value, instance)
    ]
    return _rebuild(value, iter(found))


class Evaluator:
    """Evaluates runtime expressions on an event loop under ``budget``: a plainly bounded
    expression (paths, literals, comparisons: most of them) in this process, any other in an
    evaluator process, awaited without blocking the loop."""

    def __init__(self, budget: ExpressionBudget | None = None) -> None:
        self.budget = budget or DEFAULT_BUDGET
        self._pool: EvaluatorPool | None = None

    @property
    def pool(self) -> EvaluatorPool:
        if self._pool is None:
            self._pool = EvaluatorPool.shared(self.budget)
        return self._pool

    async def evaluate(
        self, expression: str, data: Any, arguments: Arguments | None = None,
        *, instance: str | None = None,
    ) -> Any:  # fmt: skip
        """:func:`evaluate`, off the loop when the expression is not plainly bounded."""
        compiled, value = _prepare(expression, data, arguments, instance)
        if compiled.bounded:
            outcome = _first_two(compiled.program, value)
        else:
            try:
                isolated = await self.pool.run(compiled.text, _input_text(value))
            except (BudgetExceeded, _CompileError) as over:
                raise _failure(expression, str(over), instance) from None
            outcome = _from_outcome(isolated)
        return _conclude(expression, outcome, instance)

    async def matches(self, pattern: str, text: str) -> bool:
        """Does the regular expression ``pattern`` (Python's ``re``) match the whole of
        ``text``? Plain text (no special character) is compared here; any other pattern runs
        in an evaluator process under the budget, since backtracking can take exponential
        time (``(a+)+$``). Raises :class:`InvalidPattern` if it does not compile and
        :class:`WorkflowError` (expression, 400) if it runs past the budget."""
        if not _REGEX_SPECIAL.search(pattern):
            return pattern == text
        try:
            outcome = await self.pool.run({"regex": pattern}, json.dumps(text))
        except BudgetExceeded as over:
            raise _failure(pattern, f"(a regular expression) {over}", None) from None
        if outcome.error is not None:
            raise InvalidPattern(outcome.error)
        return outcome.results == [True]

    async def condition(
        self, expression: str, data: Any, arguments: Arguments | None = None,
        *, instance: str | None = None,
    ) -> bool:  # fmt: skip
        result = await self.evaluate(expression, data, arguments, instance=instance)
        return _as_condition(expression, result, instance)

    async def template(
        self, value: Any, data: Any, arguments: Arguments | None = None,
        *, instance: str | None = None,
    ) -> Any:  # fmt: skip
        found = [
            await self.evaluate(text, data, arguments, instance=where)
            for text, where in _expressions_in(value, instance)
        ]
        return _rebuild(value, iter(found))


class InvalidPattern(ValueError):
    """A regular expression that does not compile (the message is ``re``'s)."""


_REGEX_SPECIAL = re.compile(r"[.^$*+?{}\[\]\\|()]")


def _prepare(
    expression: str, data: Any, arguments: Arguments | None, instance: str | None
) -> tuple[_Compiled, Any]:
    arguments = arguments if arguments is not None else _NO_ARGUMENTS
    compiled = _resolve(expression, arguments.names, instance)
    if compiled.names:
        value: Any = [arguments[name] for name in compiled.names]
        value.append(data)
    else:
        value = data
    return compiled, value


def _isolated(
    expression: str,
    instance: str | None,
    run: Callable[[str, str], Outcome],
    compiled: _Compiled,
    value: Any,
) -> tuple[Any, Any, str | None]:
    try:
        outcome = run(compiled.text, _input_text(value))
    except (BudgetExceeded, _CompileError) as over:
        raise _failure(expression, str(over), instance) from None
    return _from_outcome(outcome)


def _input_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as error:
        raise _CompileError(f"failed: the data is not JSON ({error})") from None


def _from_outcome(outcome: Outcome) -> tuple[Any, Any, str | None]:
    if outcome.error is not None:
        return _ABSENT, _ABSENT, outcome.error
    results = [*outcome.results, _ABSENT, _ABSENT]
    return results[0], results[1], None


def _conclude(expression: str, outcome: tuple[Any, Any, str | None], instance: str | None) -> Any:
    first, second, message = outcome
    if message is not None:
        raise _failure(expression, f"failed: {message}", instance)
    if first is _ABSENT:
        return None
    if second is not _ABSENT:
        raise _failure(
            expression,
            f"yielded more than one result ({_show(first)}, {_show(second)}, ...); "
            "wrap it in [ ... ] to collect them into an array",
            instance,
        )
    return first


def _first_two(program: _Program, value: Any) -> tuple[Any, Any, str | None]:
    """Up to two results of ``program`` on ``value``, or jq's error message.

    The jq bindings crash (segfault) when a result iterator is freed after its program state:
    an iterator kept alive by a traceback's frame, freed later by the garbage collector, does
    that. So the iterator never outlives this call: it is dropped before any error is raised,
    and no exception escapes with this frame on its traceback.
    """
    results: Any = None
    try:
        results = iter(program.input_value(value))
        first = next(results, _ABSENT)
        second = _ABSENT if first is _ABSENT else next(results, _ABSENT)
    except (ValueError, TypeError) as error:  # jq's errors; TypeError: data that isn't JSON
        return _ABSENT, _ABSENT, str(error)
    finally:
        del results
    return first, second, None


def _as_condition(expression: str, result: Any, instance: str | None) -> bool:
    if not isinstance(result, bool):
        raise _failure(
            expression,
            f"must yield true or false, not {_type_of(result)} ({_show(result)})",
            instance,
        )
    return result


def _expressions_in(value: Any, instance: str | None) -> list[tuple[str, str | None]]:
    """Every strict-mode expression in ``value`` with its pointer, in walking order."""
    found: list[tuple[str, str | None]] = []

    def visit(item: Any, pointer: str | None) -> None:
        if isinstance(item, str):
            if is_expression(item):
                found.append((item, pointer))
        elif isinstance(item, Mapping):
            for key, child in item.items():
                visit(child, _child(pointer, key))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                visit(child, _child(pointer, index))

    visit(value, instance)
    return found


def _rebuild(value: Any, found: Iterator[Any]) -> Any:
    """``value`` with its expressions replaced, in walking order, by ``found``."""
    if isinstance(value, str):
        return next(found) if is_expression(value) else value
    if isinstance(value, Mapping):
        return {key: _rebuild(item, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuild(item, found) for item in value]
    return value


def check(expression: str, variables: Iterable[str] | None = None) -> Problem | None:
    """The problem with ``expression`` (``${ ... }`` or bare jq) that shows without data: a
    syntax error or an unknown function; also a variable outside ``variables`` if those are
    given (``None``: any variable is taken to exist). ``None`` if there is none."""
    parsed = _parse(expression)
    if variables is None:
        names = parsed.references - _NOT_BINDABLE
    else:
        names = parsed.references & frozenset(variables)
    try:
        _program(parsed.body, tuple(sorted(names)))
    except _CompileError as error:
        return _problem(expression, f"does not compile: {error}", None)
    return None


def check_template(
    value: Any, variables: Iterable[str] | None = None, *, instance: str = ""
) -> list[Problem]:
    """:func:`check` for every strict-mode expression in ``value`` (walked as by
    :func:`evaluate_template`); each problem's instance extends ``instance`` to the string."""
    names = None if variables is None else frozenset(variables)
    problems: list[Problem] = []

    def visit(item: Any, pointer: str) -> None:
        if is_expression(item):
            problem = check(item, names)
            if problem is not None:
                problems.append(problem.with_instance(pointer))
        elif isinstance(item, Mapping):
            for key, child in item.items():
                visit(child, f"{pointer}/{_escape(key)}")
        elif isinstance(item, list):
            for index, child in enumerate(item):
                visit(child, f"{pointer}/{index}")

    visit(value, instance)
    return problems


# --- compiling, cached ---------------------------------------------------------------------


class _CompileError(Exception):
    """jq could not compile a program; the message is jq's, cleaned."""


def _resolve(expression: str, available: frozenset[str], instance: str | None) -> _Compiled:
    try:
        return _bind(expression, available)
    except _CompileError as error:
        raise WorkflowError(_problem(expression, f"does not compile: {error}", instance)) from None


@functools.lru_cache(maxsize=CACHE_SIZE)
def _bind(expression: str, available: frozenset[str]) -> _Compiled:
    """The program for ``expression`` with the available variables it reads bound. Unread
    arguments are left out, so ``$workflow.definition`` is not converted for ``.a + 1``."""
    parsed = _parse(expression)
    names = tuple(sorted(parsed.references & available))
    program, text = _program(parsed.body, names)
    return _Compiled(program, names, text, is_bounded(parsed.body))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse(expression: str) -> _Parsed:
    match = _STRICT.fullmatch(expression)
    body = (match.group(1) if match else expression).strip()
    return _Parsed(body, frozenset(_REFERENCE.findall(body)))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _program(body: str, names: tuple[str, ...]) -> tuple[_Program, str]:
    """Compile ``body``; at run time its input is ``[*values of names, data]``."""
    if not body:
        raise _CompileError("the expression is empty")
    _check_size(body)
    if names:
        binding = f". as [{', '.join('$' + name for name in names)}] | .[{len(names)}] | "
    else:
        binding = ""
    text = _PRELUDE + binding + body
    try:
        return cast(_Program, jq.compile(text)), text
    except ValueError as wrapped:
        # Compile the program on its own for a message whose positions are the author's.
        try:
            jq.compile(body, args=dict.fromkeys(names))
        except ValueError as error:
            raise _CompileError(_clean(str(error), body)) from None
        raise _CompileError(_clean(str(wrapped), body)) from None


def _check_size(body: str) -> None:
    if len(body) > MAX_EXPRESSION_LENGTH:
        raise _CompileError(
            f"the expression is {len(body)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
        )
    depth = deepest = 0
    for token in _BRACKETS.findall(body):
        if token in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in ")]}":
            depth -= 1
    if deepest > MAX_EXPRESSION_NESTING:
        raise _CompileError(
            f"the expression nests brackets {deepest} deep; the limit is {MAX_EXPRESSION_NESTING}"
        )


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[()\[\]{}]')


def _clean(message: str, body: str) -> str:
    lines = [
        line.removeprefix("jq: error: ")
        for line in message.strip().splitlines()
        if not re.fullmatch(r"jq: \d+ compile errors?", line.strip())
    ]
    text = "\n".join(lines).replace(" at <top-level>, ", " at ").strip()
    if "${" in body:
        text += (
            "\n(strict mode: a runtime expression is one ${ ... } taking the whole string; "
            'to build a string, interpolate in jq: ${ "Hello \\(.name)" })'
        )
    return text


# --- problems -----------------------------------------------------------------------------


def _problem(expression: str, message: str, instance: str | None) -> Problem:
    return Problem.of(
        ErrorType.EXPRESSION,
        f"Runtime expression {_quote(expression)} {message}",
        title=_TITLE,
        instance=instance,
    )


def _failure(expression: str, message: str, instance: str | None) -> WorkflowError:
    return WorkflowError(_problem(expression, message, instance))


def _quote(expression: str) -> str:
    text = expression.strip()
    if len(text) > _DETAIL_QUOTE:
        text = text[: _DETAIL_QUOTE - 3] + "..."
    return f"'{text}'"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _child(pointer: str | None, key: object) -> str | None:
    return None if pointer is None else f"{pointer}/{_escape(key)}"


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
