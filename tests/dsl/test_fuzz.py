"""Property-based fuzzing of what enters batonflow: workflow documents (the 66 DSL 1.0.3 examples,
mutated as data and as text, plus documents of our own), recorded values and runtime
expressions. Every case must end in a result or in batonflow's own error, within its time bound:
never another exception, never a document accepted that cannot be recorded and read back.

Deterministic (``derandomize``) and bounded: a few thousand cases in all."""

from __future__ import annotations

import asyncio
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batonflow import SerializationError, _limits, _serde
from batonflow.dsl import DslValidationError, load_document
from batonflow.dsl._expr import Evaluator, ExpressionBudget, check
from batonflow.dsl._problems import WorkflowError
from batonflow.dsl._yaml import parse_text

EXAMPLES = (
    Path(__file__).resolve().parents[3] / "shared" / "spec" / "serverless-workflow" / "v1.0.3"
) / "examples"
CASE_SECONDS = 5.0  # the time bound of one case (a document read, a value recorded)

pytestmark = [pytest.mark.fuzz, pytest.mark.long]

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # measured per case below, against CASE_SECONDS
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def examples() -> list[tuple[str, str, Any]]:
    found = sorted(EXAMPLES.glob("*.yaml"))
    assert len(found) == 66, f"expected the 66 DSL 1.0.3 examples in {EXAMPLES}"
    return [(p.name, p.read_text(), parse_text(p.read_text()).data) for p in found]


HOSTILE = [
    "${ .a + }",
    "${ def f: f; f }",
    "${ [repeat(1)] }",
    "${ .a.b[0] }",
    ".a +",
    "\ud800",
    "\udc00x",
    "P1Y",
    "PT1H",
    "P99999999999D",
    "*alias",
    "&anchor",
    "<<",
    "${",
    "}",
    "{{",
    "https://example.com/${ .x }",
    "",
]
strings = st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
    ),
    max_leaves=16,
)


def _judge(name: str, text: str) -> None:
    """Load ``text``: a document or batonflow's verdict, within the bound; a document that is
    accepted can be recorded as JSON and read back."""
    started = time.monotonic()
    try:
        document = load_document(name, text=text)
    except DslValidationError as error:
        problems = error.problems
        assert problems
        for problem in problems:
            str(problem).encode("utf-8")  # every message can be printed
    else:
        recorded = _serde.dumps(document.raw, what="the document")
        json.loads(recorded)
        _limits.check_json_text(recorded)
    assert time.monotonic() - started < CASE_SECONDS, f"{name} took too long"


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, item in data.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += _paths(item, (*prefix, index))
    return found


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy: Any = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy


def test_every_example_gets_a_verdict() -> None:
    for name, text, _ in examples():
        _judge(name, text)


@settings(FUZZ, max_examples=700)
@given(st.data(), values)
def test_examples_with_a_value_replaced(data: st.DataObject, value: Any) -> None:
    name, _, parsed = data.draw(st.sampled_from(examples()), label="example")
    path = data.draw(st.sampled_from(_paths(parsed)), label="path")
    mutated = _replace(parsed, path, value)
    try:
        text = json.dumps(mutated)  # NaN and Infinity travel as JSON's non-standard words
    except (ValueError, RecursionError):  # pragma: no cover - values are small
        return
    _judge(name.replace(".yaml", ".json"), text)


SNIPPETS = [
    "&a [1, 2]",
    "*a",
    "<<: *a",
    "[" * 300,
    "]" * 10,
    "{" * 200,
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    ".inf",
    ".nan",
    "!!binary aGk=",
    "!!python/object:os.system ls",
    "? complex key\n",
    "\t",
    "\n  - ",
    ": ",
    "'${ def f: f; f }'",
    "${ .a + }",
    "P1Y",
    "\x00",
    "\ufeff",
    "%YAML 1.1\n---\n",
    "--- \n...\n",
]


@settings(FUZZ, max_examples=700)
@given(
    st.data(),
    st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=12)), min_size=1, max_size=4),
)
def test_examples_with_text_spliced_in(data: st.DataObject, pieces: list[str]) -> None:
    name, text, _ = data.draw(st.sampled_from(examples()), label="example")
    for piece in pieces:
        at = data.draw(st.integers(min_value=0, max_value=len(text)), label="at")
        cut = data.draw(st.integers(min_value=0, max_value=8), label="cut")
        text = text[:at] + piece + text[at + cut :]
    _judge(name, text)


def _bomb(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


HEADER = "document: {dsl: '1.0.3', namespace: fuzz, name: own, version: '1.0.0'}\n"


@settings(FUZZ, max_examples=80)
@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=0, max_value=400),
    st.sampled_from(["flow", "block", "json"]),
)
def test_documents_of_our_own_aliases_and_nesting(
    levels: int, width: int, depth: int, style: str
) -> None:
    if style == "flow":
        text = HEADER + _bomb(levels, width) + "do:\n- x:\n    set: {v: " + "[" * depth
        text += "]" * depth + "}\n"
    elif style == "block":
        text = _bomb(levels, width) + HEADER + "do:\n- x:\n    set:\n      v:\n"
        text += "".join("        " + "  " * i + "-\n" for i in range(depth))
    else:
        text = '{"document": {"dsl": "1.0.3", "namespace": "f", "name": "j", "version": "1"},'
        text += '"do": [{"x": {"set": {"v": ' + "[" * depth + "]" * depth + "}}}]}"
    _judge(f"own.{'json' if style == 'json' else 'yaml'}", text)


@settings(FUZZ, max_examples=1500)
@given(values)
def test_a_value_is_recorded_readably_or_refused(value: Any) -> None:
    try:
        text = _serde.dumps(value, what="the value")
    except SerializationError as error:
        str(error).encode("utf-8")
        return
    back = json.loads(text)
    json.dumps(back, ensure_ascii=False).encode("utf-8")  # readable: no lone surrogate


FRAGMENTS = [
    ".a", ".b[0]", ".[]", "$x", "length", "keys", "map(. + 1)", "select(. != null)",
    "tostring", "tojson", "add", "[.[]]", "{k: .a}", '"s\\(.a)"', "(1, 2)", ".a // 0",
    "if .a then .b else .c end", "reduce .[] as $i (0; . + $i)", "range(3)", "first(.[])",
    "limit(2; repeat(1))", "..", "error(\"x\")", "try error(\"y\") catch .", "not",
    "ascii_downcase", "split(\",\")", "test(\"a+\")", "@base64", "env", "$ENV", "input",
    "splits(\"x\")", "paths", "getpath([\"a\"])", "to_entries", "group_by(.)", "unique",
]  # fmt: skip
JOINS = [" | ", " , ", " + ", " and ", " == ", " // ", " - "]


@settings(FUZZ, max_examples=300)
@given(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4),
    st.lists(st.sampled_from(JOINS), min_size=3, max_size=3),
    values,
)
def test_expressions_give_a_value_or_a_workflow_error(
    fragments: list[str], joins: list[str], data: Any
) -> None:
    body = fragments[0] + "".join(j + f for j, f in zip(joins, fragments[1:], strict=False))
    expression = "${ " + body + " }"
    static = check(expression, ())  # no variables: none are given below
    evaluator = Evaluator(ExpressionBudget(seconds=2.0, memory_mb=256))
    started = time.monotonic()
    try:
        asyncio.run(evaluator.evaluate(expression, data, None))
    except WorkflowError as error:
        detail = error.problem.detail or ""
        compiled = "does not compile" not in detail
        # one verdict: what fails to compile at run time, validate's check saw first
        assert compiled == (static is None), detail
    else:
        assert static is None
    assert time.monotonic() - started < CASE_SECONDS
