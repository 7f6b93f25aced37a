"""Validate knows which runtime expression arguments each place binds (dsl.md's availability
table, as the interpreter binds it): an argument read where it is not bound is refused with the
expression's pointer and what is available there, and the runtime fails the same document with
the same error, while a document reading each argument where it is bound validates and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.dsl import DslRuntime, DslValidationError, load_document
from batonflow.dsl._yaml import parse_text

HEADER = "document: {dsl: '1.0.3', namespace: test, name: places, version: '1.0.0'}\n"

#: (document body, pointer of the expression, the argument it may not read there, available)
REFUSED = [
    ("input: {from: '${ $context }'}\ndo:\n- x:\n    set: {v: 1}\n",
     "/input/from", "$context", "$runtime, $secrets, $workflow"),
    ("input: {from: '$task'}\ndo:\n- x:\n    set: {v: 1}\n",
     "/input/from", "$task", "$runtime, $secrets, $workflow"),
    ("do:\n- x:\n    if: '$input != null'\n    set: {v: 1}\n",
     "/do/0/x/if", "$input", "$context, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    input: {from: '${ $input }'}\n    set: {v: 1}\n",
     "/do/0/x/input/from", "$input", "$context, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    set: {v: '${ $output }'}\n",
     "/do/0/x/set/v", "$output", "$context, $input, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    set: {v: 1}\n    output: {as: '$output'}\n",
     "/do/0/x/output/as", "$output", "$context, $input, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    set: {v: 1}\noutput: {as: '${ $task }'}\n",
     "/output/as", "$task", "$context, $runtime, $secrets, $workflow"),
    ("do:\n- x:\n    set: {v: 1}\noutput: {as: '$input'}\n",
     "/output/as", "$input", "$context, $runtime, $secrets, $workflow"),
    ("do:\n- x:\n    set: {v: 1}\n    export: {as: '$authorization'}\n",
     "/do/0/x/export/as", "$authorization",
     "$context, $input, $output, $runtime, $secrets, $task, $workflow"),
    # nested task lists: each task decides for itself, its loop variables stay in scope
    ("do:\n- x:\n    for: {in: '${ [1] }', each: n}\n    do:\n"
     "    - y:\n        if: '$input == $n'\n        set: {v: 1}\n",
     "/do/0/x/do/0/y/if", "$input", "$context, $index, $n, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    try:\n    - y:\n        raise: {error: {type: 'https://e.test', status: 400}}"
     "\n    catch:\n      do:\n"
     "      - z:\n          set: {v: '${ [$error, $output] }'}\n",
     "/do/0/x/catch/do/0/z/set/v", "$output",
     "$context, $error, $input, $runtime, $secrets, $task, $workflow"),
    ("do:\n- x:\n    fork:\n      branches:\n      - y:\n          input: {from: '$input'}\n"
     "          set: {v: 1}\n",
     "/do/0/x/fork/branches/0/y/input/from", "$input",
     "$context, $runtime, $secrets, $task, $workflow"),
]  # fmt: skip

ACCEPTED = (
    HEADER
    + """\
input: {from: '${ [$secrets, $workflow.id, $runtime.name] | {v: 1} }'}
do:
- first:
    if: '${ [$context, $secrets, $task.name, $workflow.id, $runtime.name] | length == 5 }'
    input: {from: '${ {v: ($task.name | length), c: $context} }'}
    set:
      v: '${ [$input.v, $task.name, $workflow.id, $runtime.name, $context, $secrets] | length }'
    output: {as: '${ {v: .v, i: $input.v, t: $task.name} }'}
    export: {as: '${ {seen: [$output.v, $input.v, $context, $task.name, $workflow.id]} }'}
- loop:
    for: {in: '${ [$input.v, $task.name] }', each: n}
    do:
    - inner:
        if: '${ $n != null and $task.name == "inner" }'
        set: {n: '${ [$n, $input.v] }'}
output: {as: '${ {context: $context, task: ($runtime.name != null), w: $workflow.id} }'}
"""
)


def problems(text: str) -> list[str]:
    with pytest.raises(DslValidationError) as caught:
        load_document("flow.yaml", text=text)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(("body", "pointer", "name", "available"), REFUSED)
def test_validate_refuses_an_argument_its_place_does_not_bind(
    body: str, pointer: str, name: str, available: str
) -> None:
    found = problems(HEADER + body)
    assert len(found) == 1, found
    assert f": {pointer}: " in found[0]
    assert f"{name} is not defined" in found[0]
    assert f"(the variables in scope here: {available})" in found[0]


def test_authorization_is_refused_with_the_reason() -> None:
    found = problems(HEADER + "do:\n- x:\n    set: {v: '${ $authorization.scheme }'}\n")
    assert "batonflow does not bind the resolved authorization of a call yet" in found[0]


def test_a_listen_until_condition_reads_no_input() -> None:
    listen = (
        "do:\n- x:\n    listen:\n      to:\n        any: [{with: {type: t}}]\n"
        "        until: '${ CONDITION }'\n"
    )
    found = problems(HEADER + listen.replace("CONDITION", "$input.stop"))
    assert ": /do/0/x/listen/to/until: " in found[0]
    assert "$input is not defined" in found[0]
    load_document("flow.yaml", text=HEADER + listen.replace("CONDITION", "length > $context.count"))


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("do:\n- x:\n    listen:\n      to:\n        one: {with: {type: '${ . == $input.t }'}}\n",
         "/do/0/x/listen/to/one/with/type"),
        ("do:\n- x:\n    listen:\n      to:\n        all:\n        - with: {type: t}\n"
         "          correlate: {k: {from: '${ .data[$task.name] }'}}\n",
         "/do/0/x/listen/to/all/0/correlate/k/from"),
        ("schedule:\n  on:\n    any:\n    - with: {data: '${ .n > $context.n }'}\n"
         "do:\n- x:\n    set: {v: 1}\n",
         "/schedule/on/any/0/with/data"),
    ],
)  # fmt: skip
def test_an_event_filter_reads_no_variable(body: str, pointer: str) -> None:
    found = problems(HEADER + body)
    assert len(found) == 1, found
    assert f": {pointer}: " in found[0]
    assert "(no variables are in scope here: it sees only the event)" in found[0]


def test_a_correlation_expects_what_the_listen_task_sees() -> None:
    load_document(
        "flow.yaml",
        text=HEADER + "do:\n- x:\n    listen:\n      to:\n        one:\n"
        "          with: {type: '${ . == \"t\" }'}\n"
        "          correlate: {k: {from: .data.k, expect: '${ [$input.k, $task.name] }'}}\n",
    )


def test_every_argument_is_accepted_where_it_is_bound() -> None:
    load_document("flow.yaml", text=ACCEPTED)


async def run(tmp_path: Path, text: str) -> Any:
    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "places.db", workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, parse_text(text, "flow.yaml").data, {})
        return await handle.result()


async def test_the_accepted_document_runs(tmp_path: Path) -> None:
    output = await run(tmp_path, ACCEPTED)
    assert output["context"] == {"seen": [6, 5, {}, "first", output["w"]]}
    assert output["task"] is True


@pytest.mark.parametrize(("body", "pointer", "name"), [case[:3] for case in REFUSED])
async def test_the_runtime_fails_what_validate_refuses(
    tmp_path: Path, body: str, pointer: str, name: str
) -> None:
    with pytest.raises(bf.RunFailed) as caught:
        await run(tmp_path, HEADER + body)
    assert f"{name} is not defined" in str(caught.value)
