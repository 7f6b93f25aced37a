"""Hostile workflow documents are refused while they are read, each with file:line:column and
the limit; and ``validate`` gives the runtime's verdict (jq that does not compile, durations
the runtime cannot use)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batonflow import _limits
from batonflow.cli import ExitCode, app
from batonflow.dsl import DslValidationError, load_document

HEADER = "document: {dsl: '1.0.3', namespace: test, name: hostile, version: '1.0.0'}\n"


def alias_bomb() -> str:
    """The billion laughs: nine levels of nine aliases each, 473 bytes with the header."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def problems(text: str, source: str = "flow.yaml") -> list[str]:
    with pytest.raises(DslValidationError) as caught:
        load_document(source, text=text)
    return [str(problem) for problem in caught.value.problems]


def test_an_alias_bomb_is_refused_quickly_with_the_limit() -> None:
    text = alias_bomb() + HEADER + "do:\n- x:\n    set:\n      v: *a8\n"
    assert len(text.encode()) < 600
    started = time.monotonic()
    found = problems(text)
    assert time.monotonic() - started < 10
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:1:")
    assert f"repeat more than {_limits.MAX_NODES} values" in found[0]


def test_a_few_aliases_are_fine() -> None:
    text = HEADER + "base: &b {seconds: 1}\ndo:\n- pause:\n    wait: *b\n- again:\n    wait: *b\n"
    document = load_document("flow.yaml", text=text)
    assert document.raw["do"][1]["again"]["wait"] == {"seconds": 1}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (HEADER + "do:\n- x:\n    set:\n      v: " + "[" * 500 + "]" * 500 + "\n", "flow.yaml:5:"),
        (
            HEADER
            + "do:\n- x:\n    set:\n      v:\n"
            + "".join("        " + "  " * i + "-\n" for i in range(300)),
            "flow.yaml:",
        ),
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text: str, where: str) -> None:
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(where)
    assert f"nests deeper than {_limits.MAX_DEPTH} levels" in found[0]


def test_deep_json_is_refused_where_it_crosses_the_limit() -> None:
    text = '{"do": ' + "[" * 100_000 + "]" * 100_000 + "}"
    found = problems(text, "flow.json")
    assert found == [
        f"flow.json:1:{7 + _limits.MAX_DEPTH}: the document is over a limit: "
        f"it nests deeper than {_limits.MAX_DEPTH} levels"
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (HEADER + 'do:\n- x:\n    set:\n      v: "\\ud800"\n', "flow.yaml:5:10"),
        (HEADER + 'do:\n- x:\n    set:\n      "\\udc00": 1\n', "flow.yaml:5:7"),
    ],
)
def test_a_lone_surrogate_is_refused_where_it_is(text: str, where: str) -> None:
    found = problems(text)
    assert found == [f"{where}: {_limits.SURROGATE}"]


def test_a_surrogate_pair_is_one_character() -> None:
    text = HEADER + 'do:\n- x:\n    set:\n      v: "\\ud83d\\ude00"\n'
    document = load_document("flow.yaml", text=text)
    assert document.raw["do"][0]["x"]["set"]["v"] == "\U0001f600"


def test_a_document_over_the_size_limit_is_refused() -> None:
    text = HEADER + "# " + "x" * _limits.MAX_DOCUMENT_BYTES + "\n"
    found = problems(text)
    assert len(found) == 1
    assert f"the limit is {_limits.MAX_DOCUMENT_BYTES}" in found[0]


# -- one verdict --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "pointer", "words"),
    [
        ("set: {v: '${ .a + }'}", "/do/0/x/set/v", "does not compile"),
        ("set: {v: '${ nosuchfunction(1) }'}", "/do/0/x/set/v", "nosuchfunction/1 is not defined"),
        ("if: '.a +'\n    set: {v: 1}", "/do/0/x/if", "does not compile"),
        ("wait: P1Y", "/do/0/x/wait", "no years or months"),
        ("wait: {days: 1.0e+308}", "/do/0/x/wait", "out of range"),
        ("wait: {days: 40000}", "/do/0/x/wait", "at most 100 years"),
    ],
)
def test_validate_refuses_what_the_runtime_would(task: str, pointer: str, words: str) -> None:
    text = HEADER + f"do:\n- x:\n    {task}\n"
    found = problems(text)
    assert len(found) == 1, found
    assert f": {pointer}: " in found[0]
    assert words in found[0]


def test_strings_that_are_data_are_not_compiled() -> None:
    text = HEADER + (
        "do:\n- x:\n    metadata: {note: '${ not jq'}\n    set: {v: 1}\n"
        "- y:\n    call: http\n    with:\n      method: get\n      endpoint: https://a.example/\n"
        "      headers: {if: 'not jq either'}\n"
    )
    load_document("flow.yaml", text=text)


# -- files that are not files -------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_validate_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "flow.yaml"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["validate", str(fifo)])
    assert result.exit_code == ExitCode.USAGE
    assert "is not a regular file" in result.output


def test_validate_reports_the_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb() + HEADER + "do:\n- x:\n    set:\n      v: *a8\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == ExitCode.USAGE
    assert f"{path}:1:" in result.output
    assert "repeat more than" in result.output


async def test_an_event_with_a_lone_surrogate_is_refused_when_published(tmp_path: Path) -> None:
    import batonflow as bf
    from batonflow.dsl import DslRuntime

    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "e.db", workflows=[runtime.workflow]) as engine:
        with pytest.raises(bf.SerializationError, match="lone surrogate"):
            await runtime.publish(engine, {"id": "1", "source": "s", "type": "t", "data": "\ud800"})


# -- variables ----------------------------------------------------------------------------------

LOOP = "for: {in: '${ .items }', each: order, at: n}\n    while: '${ $n < 3 }'\n    do:\n"
TRY = "try:\n    - y:\n        set: {v: 1}\n    catch:\n      as: failure\n      do:\n"


@pytest.mark.parametrize(
    ("task", "pointer", "name"),
    [
        ("set: {v: '${ $foo }'}", "/do/0/x/set/v", "$foo"),
        ("set: {v: '${ [$input, $inputs] }'}", "/do/0/x/set/v", "$inputs"),
        (LOOP + "    - y:\n        set: {v: '${ $item }'}", "/do/0/x/do/0/y/set/v", "$item"),
        ("for: {in: '${ [$order] }', each: order}\n    do:\n    - y:\n        set: {v: 1}",
         "/do/0/x/for/in", "$order"),  # the loop's variables are not defined before it
        (TRY + "      - z:\n          set: {v: '${ $error }'}", "/do/0/x/catch/do/0/z/set/v",
         "$error"),
        ("try:\n    - y:\n        set: {v: '${ $error }'}\n    catch: {}", "/do/0/x/try/0/y/set/v",
         "$error"),  # the caught error is the catch's, not the try's
    ],
)  # fmt: skip
def test_validate_refuses_an_undefined_variable_with_its_path(
    task: str, pointer: str, name: str
) -> None:
    found = problems(HEADER + f"do:\n- x:\n    {task}\n")
    assert len(found) == 1, found
    assert f": {pointer}: " in found[0]
    assert f"{name} is not defined" in found[0]
    shown = found[0].split("(the variables in scope here: ")[1]
    assert "$context" in shown
    assert "$input" in shown
    assert "$authorization" not in shown  # the interpreter does not bind it


def test_variables_in_scope_are_accepted() -> None:
    text = HEADER + (
        "do:\n- x:\n    " + LOOP + "    - y:\n        set:\n"
        "          v: '${ [$order, $n, $input, $context, $task, $workflow, $runtime] }'\n"
        "          w: '${ [.[] as $x | $x] | reduce .[] as $y (0; . + $y) }'\n"
        "          e: '${ $ENV | length }'\n"
        "- t:\n    " + TRY + "      - z:\n          set: {v: '${ $failure.status }'}\n"
        "- s:\n    set: {v: '${ \"$foo is text\" }'}\n"
    )
    load_document("flow.yaml", text=text)


async def test_the_runtime_fails_an_undefined_variable_as_validate_does(tmp_path: Path) -> None:
    import batonflow as bf
    from batonflow.dsl import DslRuntime

    runtime = DslRuntime()
    document = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "undef", "version": "1.0.0"},
        "do": [{"x": {"set": {"v": "${ $foo }"}}}],
    }
    async with bf.Engine(tmp_path / "r.db", workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, document, {})
        with pytest.raises(bf.RunFailed) as caught:
            await handle.result()
    assert "$foo is not defined" in str(caught.value)
    found = problems(HEADER + "do:\n- x:\n    set: {v: '${ $foo }'}\n")
    assert "$foo is not defined" in found[0]
