"""Runtime expressions: strict mode, jq evaluation, arguments, conditions, templates, errors."""

from __future__ import annotations

import copy
import datetime
import time
from typing import Any

import pytest

from batonflow.dsl import (
    STANDARD_ARGUMENTS,
    Arguments,
    ErrorType,
    WorkflowError,
    _expr,
    check,
    check_template,
    evaluate,
    evaluate_condition,
    evaluate_template,
    is_expression,
)

EXPRESSION = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"


def fails(expression: str, data: Any = None, arguments: Arguments | None = None) -> str:
    """Evaluate, expecting an expression error; its detail."""
    with pytest.raises(WorkflowError) as caught:
        evaluate(expression, data, arguments)
    problem = caught.value.problem
    assert problem.type == EXPRESSION
    assert problem.status == 400
    assert problem.detail is not None
    return problem.detail


# --- strict mode ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "${ .a }",
        "${.a}",
        "  ${ .a }\n",
        "${\n  {\n    a: .b\n  }\n}\n",  # a YAML block scalar
        '${ "Hello \\(.user.firstName)!" }',
        "${ .colors + [ $input.color ] }",
        "${ .a } and ${ .b }",  # matches the schema's pattern; fails to compile (see below)
    ],
)
def test_strings_that_are_expressions(value: str) -> None:
    assert is_expression(value)


@pytest.mark.parametrize(
    "value",
    [
        "Hello ${ .name }",  # interpolation in a longer string is not strict mode
        "${ .name }!",
        'echo "Hello, ${ .user.name }"',
        '.color == "red"',  # bare jq: only fields typed as expressions take it
        "${}",  # the schema's pattern needs something inside
        "$ { .a }",
        "{ .a }",
        "",
        5,
        None,
        ["${ .a }"],
    ],
)
def test_values_that_are_not_expressions(value: object) -> None:
    assert not is_expression(value)


def test_evaluate_takes_bare_jq_and_strict_expressions_alike() -> None:
    data = {"color": "red"}
    assert evaluate('.color == "red"', data) is True
    assert evaluate('${ .color == "red" }', data) is True
    assert evaluate("  ${.color}  ", data) == "red"


def test_several_expressions_in_one_string_do_not_compile_and_say_why() -> None:
    detail = fails("${ .first } ${ .last }", {"first": "Ada", "last": "Lovelace"})
    assert detail.startswith("Runtime expression '${ .first } ${ .last }' does not compile: ")
    assert "syntax error" in detail
    assert 'interpolate in jq: ${ "Hello \\(.name)" }' in detail


# --- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STANDARD_ARGUMENTS))
def test_every_standard_argument_is_a_variable(name: str) -> None:
    arguments = Arguments(**{name: {"which": name}})
    assert arguments.names == {name}
    assert evaluate(f"${{ ${name}.which }}", {"data": True}, arguments) == name


def test_descriptors_as_the_spec_shows_them() -> None:
    arguments = Arguments(
        context={"userId": "u1"},
        input={"petId": 1},
        output={"id": 1},
        secrets={"apiKey": "s3cr3t"},
        task={"name": "getPet", "reference": "/do/0/getPet", "startedAt": {"iso8601": "x"}},
        workflow={
            "id": "4a5c8422",
            "definition": {"document": {"name": "wf", "version": "1.0.0"}},
            "input": [{"data": {"patient": {"id": "p1"}}}],
            "startedAt": {"epoch": {"seconds": 1641024000}},
        },
        runtime={"name": "batonflow", "version": "0.1.0", "metadata": {}},
        authorization={"scheme": "Bearer", "parameter": "t0k3n"},
    )
    got = evaluate(
        """${ {
            message: "Executing task '\\($task.reference)'...",
            doc: "\\($workflow.definition.document.name):\\($workflow.definition.document.version)",
            patientId: $workflow.input[0].data.patient.id,
            epoch: $workflow.startedAt.epoch.seconds,
            header: "\\($authorization.scheme) \\($authorization.parameter)",
            rest: [$context.userId, $input.petId, $output.id, $secrets.apiKey, $runtime.name]
        } }""",
        None,
        arguments,
    )
    assert got == {
        "message": "Executing task '/do/0/getPet'...",
        "doc": "wf:1.0.0",
        "patientId": "p1",
        "epoch": 1641024000,
        "header": "Bearer t0k3n",
        "rest": ["u1", 1, 1, "s3cr3t", "batonflow"],
    }


def test_an_absent_argument_is_an_error_and_a_null_one_is_null() -> None:
    detail = fails("${ $output.id }", {}, Arguments(input={}))
    assert detail.startswith("Runtime expression '${ $output.id }' does not compile: ")
    assert "$output is not defined" in detail
    assert evaluate("${ $output }", {}, Arguments(output=None)) is None
    assert "$context is not defined" in fails("${ $context }")  # no arguments at all


def test_task_variables_and_shadowing() -> None:
    loop = Arguments(context={}).with_variables({"color": "red", "index": 0})
    assert loop.names == {"context", "color", "index"}
    assert evaluate("${ [$color, $index] }", None, loop) == ["red", 0]
    shadowed = Arguments(input="outer").with_variables({"input": "inner"})
    assert evaluate("${ $input }", None, shadowed) == "inner"


@pytest.mark.parametrize("name", ["my-item", "1st", "", "__loc__", "a b"])
def test_a_variable_that_jq_cannot_name_is_a_configuration_error(name: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        Arguments(variables={name: 1})
    assert caught.value.problem.type.endswith("/configuration")
    assert repr(name) in (caught.value.problem.detail or "")


def test_arguments_are_a_read_only_mapping() -> None:
    arguments = Arguments(input=1, variables={"item": 2})
    assert dict(arguments) == {"input": 1, "item": 2}
    assert len(arguments) == 2
    assert arguments["item"] == 2
    assert repr(arguments) == "Arguments(input, item)"


def test_unread_arguments_are_not_converted() -> None:
    # A workflow definition that jq could not take is fine while no expression reads it.
    arguments = Arguments(workflow={"startedAt": datetime.datetime.now(datetime.UTC)}, input=1)
    assert evaluate("${ .a + $input }", {"a": 1}, arguments) == 2
    assert "failed:" in fails("${ $workflow }", {}, arguments)


# --- results -------------------------------------------------------------------------------


def test_no_result_is_null() -> None:
    assert evaluate("${ empty }", {"a": 1}) is None
    assert evaluate("${ .[] | select(. > 5) }", [1, 2]) is None


def test_several_results_are_an_error() -> None:
    detail = fails("${ .[] }", [1, 2, 3])
    assert detail == (
        "Runtime expression '${ .[] }' yielded more than one result (1, 2, ...); "
        "wrap it in [ ... ] to collect them into an array"
    )
    assert evaluate("${ [ .[] ] }", [1, 2, 3]) == [1, 2, 3]
    assert evaluate("${ first(.[]) }", [1, 2, 3]) == 1


def test_an_endless_stream_stops_at_the_second_result() -> None:
    assert "more than one result" in fails("${ repeat(1) }")


def test_integers_stay_integers() -> None:
    assert evaluate("${ .count + 1 }", {"count": 1}) == 2
    assert type(evaluate("${ .count + 1 }", {"count": 1})) is int
    assert type(evaluate("${ 10 / 2 }", None)) is int
    assert evaluate("${ .x / 2 }", {"x": 3}) == 1.5
    assert evaluate("${ . }", {"n": [0, -7, 2**53]}) == {"n": [0, -7, 2**53]}
    assert evaluate("${ . }", [True, False, None]) == [True, False, None]
    assert type(evaluate("${ .[0] }", [True])) is bool
    # jq has one number type, a double: integral results come back as int (1.0 too; equal in
    # Python and in YAML), and integers past 2**53 round as in jq.
    assert evaluate("${ . }", 1.0) == 1
    assert evaluate("${ . }", 2**53 + 1) == 2**53


# --- conditions ----------------------------------------------------------------------------


def test_conditions() -> None:
    assert evaluate_condition('.color == "red"', {"color": "red"}) is True
    assert evaluate_condition('${ .color == "red" }', {"color": "blue"}) is False
    assert evaluate_condition("${ ($context.n | length) < 5 }", None, Arguments(context={"n": []}))


@pytest.mark.parametrize(
    ("expression", "data", "shown"),
    [
        ("${ .a }", {"a": 1}, "number (1)"),
        ("${ .a }", {"a": "yes"}, 'string ("yes")'),
        ("${ .missing }", {}, "null (null)"),
        ("${ empty }", {}, "null (null)"),
        ("${ .a }", {"a": [True]}, "array ([true])"),
        ("${ . }", {}, "object ({})"),
    ],
)
def test_a_condition_must_be_a_boolean(expression: str, data: Any, shown: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        evaluate_condition(expression, data, instance="/do/0/t/if")
    problem = caught.value.problem
    assert (problem.type, problem.status, problem.instance) == (EXPRESSION, 400, "/do/0/t/if")
    assert (
        problem.detail == f"Runtime expression '{expression}' must yield true or false, not {shown}"
    )


# --- templates -----------------------------------------------------------------------------


def test_templates_evaluate_nested_values_only() -> None:
    template = {
        "shape": "circle",
        "${ .key }": "${ .value }",
        "greeting": "Hello ${ .name }",
        "nested": {"list": ["${ .value }", 1, True, None, {"deep": ["${ .value * 2 }"]}]},
        "count": 3,
    }
    before = copy.deepcopy(template)
    got = evaluate_template(template, {"key": "k", "value": 21, "name": "Ada"})
    assert got == {
        "shape": "circle",
        "${ .key }": 21,  # keys are names, never evaluated
        "greeting": "Hello ${ .name }",
        "nested": {"list": [21, 1, True, None, {"deep": [42]}]},
        "count": 3,
    }
    assert template == before
    assert evaluate_template("${ .value }", {"value": [1]}) == [1]  # `set: ${ ... }`
    assert evaluate_template(7, {}) == 7


def test_a_template_never_evaluates_what_data_supplies() -> None:
    data = {"note": "${ $secrets.key }"}
    got = evaluate_template({"copy": "${ .note }"}, data, Arguments(secrets={"key": "x"}))
    assert got == {"copy": "${ $secrets.key }"}


def test_a_template_error_points_at_the_failing_string() -> None:
    template = {"a": [{"b/c~d": "${ .x.y }"}]}
    with pytest.raises(WorkflowError) as caught:
        evaluate_template(template, {"x": "s"}, instance="/do/0/t/set")
    problem = caught.value.problem
    assert problem.instance == "/do/0/t/set/a/0/b~1c~0d"
    assert problem.detail == (
        "Runtime expression '${ .x.y }' failed: Cannot index string with string (\"y\")"
    )
    with pytest.raises(WorkflowError) as caught:
        evaluate_template(template, {"x": "s"})
    assert caught.value.problem.instance is None


# --- errors --------------------------------------------------------------------------------


def test_a_syntax_error() -> None:
    with pytest.raises(WorkflowError) as caught:
        evaluate("${ .a + }", {"a": 1}, instance="/do/0/t/output/as")
    problem = caught.value.problem
    assert problem.to_dict() == {
        "type": EXPRESSION,
        "status": 400,
        "title": "Runtime expression error",
        "detail": (
            "Runtime expression '${ .a + }' does not compile: syntax error, unexpected end of "
            "file at line 1, column 4:\n    .a +\n       ^"
        ),
        "instance": "/do/0/t/output/as",
    }


@pytest.mark.parametrize(
    ("expression", "data", "message"),
    [
        ("${ .a.b }", {"a": "s"}, 'failed: Cannot index string with string ("b")'),
        ("${ .[0] }", {"a": 1}, "failed: Cannot index object with number"),
        ("${ .a + 1 }", {"a": "s"}, 'failed: string ("s") and number (1) cannot be added'),
        ('${ error("boom") }', {}, "failed: boom"),
        ("${ nosuch(1) }", {}, "does not compile: nosuch/1 is not defined"),
        ("${ $nope }", {}, "does not compile: $nope is not defined"),
        ("${ }", {}, "does not compile: the expression is empty"),
        ("   ", {}, "does not compile: the expression is empty"),
    ],
)
def test_failures(expression: str, data: Any, message: str) -> None:
    detail = fails(expression, data)
    assert detail.startswith(f"Runtime expression '{expression.strip()}' {message}")


def test_data_that_is_not_json_is_an_expression_error() -> None:
    detail = fails("${ . }", {"when": datetime.date(2024, 1, 1)})
    assert "failed:" in detail
    assert "not JSON serializable" in detail


def test_a_long_expression_is_shortened_in_the_detail() -> None:
    expression = "${ " + " + ".join(["1"] * 200) + " + }"
    detail = fails(expression)
    quoted = detail.split("'")[1]
    assert len(quoted) == 200
    assert quoted.endswith("...")


def test_the_process_environment_is_not_readable() -> None:
    assert evaluate("${ $ENV }", None) == {}
    assert evaluate("${ env.HOME }", None) is None
    assert evaluate("${ $ENV }", None, Arguments(variables={"ENV": 1})) == 1


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("${ halt }", "failed: halt is not available in workflow expressions"),
        ('${ "stop" | halt_error }', "failed: stop"),
        ('${ "stop" | halt_error(1) }', "failed: stop"),
        ("${ input }", "failed: input is not available in workflow expressions"),
    ],
)
def test_programs_do_not_end_silently(expression: str, message: str) -> None:
    assert fails(expression).endswith(message)


# --- checking without data -----------------------------------------------------------------


def test_check() -> None:
    assert check("${ .a + 1 }") is None
    assert check('.color == "red"') is None
    problem = check("${ .a + }")
    assert problem is not None
    assert (problem.type, problem.status) == (EXPRESSION, 400)
    assert "syntax error" in (problem.detail or "")
    assert check("${ nosuch }") is not None
    # Without variables any variable may exist; with them, others are reported.
    assert check("${ [$item, $context, $__loc__] }") is None
    assert check("${ [$item, $context] }", {"item", "context"}) is None
    problem = check("${ [$item, $context] }", ["context"])
    assert problem is not None
    assert "$item is not defined" in (problem.detail or "")


def test_check_template() -> None:
    template = {"ok": "${ .a }", "bad": ["literal", {"x/y": "${ .a + }"}], "var": "${ $nope }"}
    assert [p.instance for p in check_template(template, instance="/do/0/t/set")] == [
        "/do/0/t/set/bad/1/x~1y"
    ]
    problems = check_template(template, ["input"], instance="/do/0/t/set")
    assert [p.instance for p in problems] == ["/do/0/t/set/bad/1/x~1y", "/do/0/t/set/var"]
    assert all(p.type == ErrorType.EXPRESSION.uri for p in problems)
    assert check_template("${ .a }") == []


# --- caching and speed ---------------------------------------------------------------------


def test_compiled_programs_are_cached_and_shared() -> None:
    _expr._bind.cache_clear()
    _expr._program.cache_clear()
    first = _expr._bind("${ .a + $input }", frozenset({"input"}))
    assert _expr._bind("${ .a + $input }", frozenset({"input"})) is first
    # Other arguments that the expression does not read: the same jq program.
    other = _expr._bind("${ .a + $input }", frozenset({"input", "context", "task"}))
    assert other.program is first.program
    assert other.names == ("input",)
    assert _expr._program.cache_info().misses == 1
    assert _expr._program.cache_info().maxsize == _expr.CACHE_SIZE
    for n in range(3):
        assert evaluate("${ .a + $input }", {"a": n}, Arguments(input=1, context={})) == n + 1
    assert _expr._program.cache_info().misses == 1


def test_ten_thousand_evaluations_take_well_under_a_second() -> None:
    evaluate("${ .a + 1 }", {"a": 0})  # compiled once
    start = time.perf_counter()
    for n in range(10_000):
        evaluate("${ .a + 1 }", {"a": n})
    assert time.perf_counter() - start < 1.0  # about 0.05 s here


# --- the conformance kit's expressions (ctk/features) --------------------------------------


def test_ctk_data_flow() -> None:
    # Input filtering: input.from, then `set: playerId: ${ . }`.
    raw = {"user": {"claims": {"subject": "6AsnRgGEB0q2O7ux9JXFAw"}}}
    task_input = evaluate(".user.claims.subject", raw, Arguments(context={}))
    assert evaluate_template({"playerId": "${ . }"}, task_input, Arguments(input=task_input)) == {
        "playerId": "6AsnRgGEB0q2O7ux9JXFAw"
    }
    # Output filtering and non-object output.
    pet = {"id": 2, "name": "doggie", "status": "available"}
    assert evaluate(".id", pet, Arguments(input={"petId": 1})) == 2
    assert evaluate("{ ids: [ $input, .id ] }", pet, Arguments(context={}, input=1)) == {
        "ids": [1, 2]
    }


def test_ctk_set() -> None:
    data = {
        "configuration": {
            "size": {"width": 6, "height": 6},
            "fill": {"red": 69, "green": 69, "blue": 69},
        }
    }
    template = {
        "shape": "circle",
        "size": "${ .configuration.size }",
        "fill": "${ .configuration.fill }",
    }
    assert evaluate_template(template, data, Arguments(input=data)) == {
        "shape": "circle",
        "size": {"width": 6, "height": 6},
        "fill": {"red": 69, "green": 69, "blue": 69},
    }


def test_ctk_switch() -> None:
    cases = {
        "red": '.color == "red"',
        "green": '.color == "green"',
        "blue": '.color == "blue"',
    }
    for color, expected in [("red", "red"), ("yellow", None)]:
        data = {"color": color}
        matched = [name for name, when in cases.items() if evaluate_condition(when, data)]
        assert matched == ([expected] if expected else [])
    arguments = Arguments(input={"color": "red"}, context={})
    assert evaluate_template(
        {"colors": '${ .colors + [ "red" ] }'}, {"color": "red"}, arguments
    ) == {"colors": ["red"]}
    arguments = Arguments(input={"color": "yellow"}, context={})
    assert evaluate_template(
        {"colors": "${ .colors + [ $input.color ] }"}, {"color": "yellow"}, arguments
    ) == {"colors": ["yellow"]}


def test_ctk_for() -> None:
    data: Any = {"colors": ["red", "green", "blue"]}
    collection = evaluate(".colors", data, Arguments(context={}))
    template = {
        "processed": (
            "${ { colors: (.processed.colors + [ $color ]), "
            "indexes: (.processed.indexes + [ $index ])} }"
        )
    }
    for index, color in enumerate(collection):
        arguments = Arguments(context={}, input=data).with_variables(
            {"color": color, "index": index}
        )
        data = evaluate_template(template, data, arguments)
    assert data == {"processed": {"colors": ["red", "green", "blue"], "indexes": [0, 1, 2]}}


def test_ctk_call_emit_and_try() -> None:
    assert evaluate(".[0]", [{"id": 1}, {"id": 2}]) == {"id": 1}
    assert evaluate(". | length", [1, 2, 3]) == 3
    user = {"user": {"firstName": "John", "lastName": "Doe"}}
    assert evaluate_template(
        {"greetings": '${ "Hello \\(.user.firstName) \\(.user.lastName)!" }'}, user
    ) == {"greetings": "Hello John Doe!"}
    error = {"type": EXPRESSION, "status": 400}
    caught = Arguments(context={}).with_variables({"err": error})
    assert evaluate_template({"error": "${ $err }"}, {}, caught) == {"error": error}
