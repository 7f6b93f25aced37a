"""What an author reads when a workflow document is wrong: one line per problem, with file, line,
column, JSON pointer, what was found and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.dsl import DocumentProblem, DslValidationError, load_document

HEAD = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""


def problems(body: str, *, head: str = HEAD, source: str = "wf.yaml") -> list[str]:
    with pytest.raises(DslValidationError) as caught:
        load_document(source, text=head + textwrap.dedent(body))
    return [str(p) for p in caught.value.problems]


def only(body: str, **options: str) -> str:
    found = problems(body, **options)
    assert len(found) == 1, found
    return found[0]


# -- task types -----------------------------------------------------------------------------------


def test_a_typo_in_the_task_type_names_the_types_and_guesses() -> None:
    assert only("""\
        do:
          - getPet:
              cal: http
              with: {method: get, endpoint: 'https://x'}
        """) == (
        "wf.yaml:7:5: /do/0/getPet: a task needs one of 'call', 'do', 'emit', 'for', 'fork',"
        " 'listen', 'raise', 'run', 'set', 'switch', 'try' or 'wait'; found keys 'cal', 'with'"
        " (did you mean 'call'?)"
    )


def test_a_typo_in_a_call_type_is_caught_although_any_name_may_be_a_function() -> None:
    assert only("""\
        do:
          - getPet:
              set: {a: 1}
          - callPet:
              call: htttp
              with:
                method: get
                endpoint: https://x
        """) == (
        "wf.yaml:10:13: /do/1/callPet/call: unknown call 'htttp'; expected one of http,"
        " openapi, grpc, asyncapi, a2a, mcp, or a function name (did you mean 'http'?)"
    )


@pytest.mark.parametrize("name", ["HTTP", "grcp", "openap", "asyncAPI"])
def test_lookalikes_of_builtin_calls_are_typos(name: str) -> None:
    assert "unknown call" in only(f"do:\n  - a:\n      call: {name}\n")


@pytest.mark.parametrize(
    "name", ["log", "llm", "classify", "acp", "log:1.0.0@default", "https://x/f.yaml"]
)
def test_other_function_names_are_left_to_the_runtime(name: str) -> None:
    load_document("wf.yaml", text=HEAD + f"do:\n  - a:\n      call: '{name}'\n")


def test_two_task_types_in_one_task() -> None:
    assert only("do:\n  - a:\n      set: {a: 1}\n      call: http\n") == (
        "wf.yaml:7:5: /do/0/a: a task takes only one of 'call', 'do', 'emit', 'for', 'fork',"
        " 'listen', 'raise', 'run', 'set', 'switch', 'try' or 'wait'; found 'call' and 'set'"
    )


def test_an_unknown_property_of_a_task_is_guessed() -> None:
    assert only("do:\n  - a:\n      set: {a: 1}\n      tiemout: {after: PT1S}\n") == (
        "wf.yaml:9:7: /do/0/a/tiemout: unexpected property 'tiemout'; did you mean 'timeout'?"
    )


# -- required properties and types ----------------------------------------------------------------


def test_a_missing_required_property_is_reported_on_its_object() -> None:
    assert only("do:\n  - a:\n      call: http\n") == (
        "wf.yaml:7:5: /do/0/a: missing required property 'with'"
    )
    assert only("do:\n  - a:\n      call: http\n      with:\n        method: get\n") == (
        "wf.yaml:9:7: /do/0/a/with: missing required property 'endpoint'"
    )


def test_a_wrong_type_says_what_was_found() -> None:
    assert only(
        "do:\n  - a:\n      call: http\n      with: {method: 5, endpoint: 'https://x'}\n"
    ) == (
        "wf.yaml:9:22: /do/0/a/with/method: expected a string, found 5"
        " (put it in quotes to make it a string)"
    )
    assert only("do:\n  - a:\n      set: 5\n") == (
        "wf.yaml:8:12: /do/0/a/set: expected the data to set: an object, or a runtime"
        " expression (a string), found 5"
    )
    assert only("do:\n  a:\n    set: {a: 1}\n") == (
        "wf.yaml:6:1: /do: expected a list, found an object"
    )


def test_an_unquoted_version_is_a_number_and_the_hint_says_to_quote_it() -> None:
    head = HEAD.replace("'0.1.0'", "1.0")
    assert only("do:\n  - a:\n      set: {a: 1}\n", head=head) == (
        "wf.yaml:5:12: /document/version: expected a string, found 1.0"
        " (put it in quotes to make it a string)"
    )


def test_a_bad_document_name_and_dsl_version() -> None:
    head = HEAD.replace("name: sample", "name: my_flow").replace("'1.0.3'", "'1.0'")
    assert problems("do: []\n", head=head) == [
        "wf.yaml:2:8: /document/dsl: invalid version '1.0';"
        " expected a semantic version such as '1.0.3'",
        "wf.yaml:4:9: /document/name: invalid name 'my_flow'; expected letters, digits and"
        " '-', at most 63, not starting or ending with '-'",
    ]


def test_null_is_not_absent() -> None:
    assert only("do:\n  - a:\n      set: {a: 1}\n      then:\n") == (
        "wf.yaml:9:7: /do/0/a/then: expected a string, found null"
    )


def test_an_unknown_enum_value_is_guessed() -> None:
    assert only(
        "do:\n  - a:\n      listen:\n        to: {one: {with: {type: t}}}\n        read: envelop\n"
    ) == (
        "wf.yaml:10:15: /do/0/a/listen/read: unknown value 'envelop'; expected 'data',"
        " 'envelope' or 'raw' (did you mean 'envelope'?)"
    )


def test_a_union_reports_the_alternative_that_was_meant() -> None:
    assert only("do:\n  - a:\n      listen:\n        to:\n          many: []\n") == (
        "wf.yaml:9:9: /do/0/a/listen/to: an event consumption strategy needs one of 'all',"
        " 'any' or 'one'; found key 'many' (did you mean 'any'?)"
    )


# -- durations ------------------------------------------------------------------------------------


def test_a_bad_duration_says_what_a_duration_is() -> None:
    assert only("do:\n  - a:\n      wait: 5 seconds\n") == (
        "wf.yaml:8:13: /do/0/a/wait: invalid duration '5 seconds'; expected an ISO 8601"
        " duration such as 'PT5S', a runtime expression '${ ... }', or an object with days,"
        " hours, minutes, seconds or milliseconds"
    )
    assert only("do:\n  - a:\n      wait: {secs: 5}\n") == (
        "wf.yaml:8:14: /do/0/a/wait/secs: unexpected property 'secs'; did you mean 'seconds'?"
    )
    assert only("do:\n  - a:\n      wait: {}\n") == (
        "wf.yaml:8:7: /do/0/a/wait: an inline duration needs at least one of days, hours,"
        " minutes, seconds, milliseconds"
    )


# -- flow and references --------------------------------------------------------------------------


def test_a_then_target_must_be_in_the_same_list() -> None:
    assert only("do:\n  - a:\n      set: {a: 1}\n      then: bb\n  - b:\n      set: {b: 1}\n") == (
        "wf.yaml:9:13: /do/0/a/then: no task named 'bb' in this task list; expected continue,"
        " exit, end, or a task of the same list: a, b (did you mean 'b'?)"
    )


def test_a_then_cannot_jump_into_another_list() -> None:
    assert only("""\
        do:
          - outer:
              do:
                - inner:
                    set: {a: 1}
                    then: last
          - last:
              set: {b: 1}
        """) == (
        "wf.yaml:11:19: /do/0/outer/do/0/inner/then: no task named 'last' in this task list;"
        " expected continue, exit, end, or a task of the same list: inner"
    )


def test_switch_case_targets_are_checked() -> None:
    assert only("""\
        do:
          - pick:
              switch:
                - one:
                    when: .x
                    then: nowhere
          - b:
              set: {x: 1}
        """) == (
        "wf.yaml:11:19: /do/0/pick/switch/0/one/then: no task named 'nowhere' in this task"
        " list; expected continue, exit, end, or a task of the same list: pick, b"
    )


def test_references_to_reusable_components_must_resolve() -> None:
    found = problems("""\
        use:
          retries:
            fast: {delay: {seconds: 1}}
        timeout: slow
        do:
          - a:
              try:
                - b:
                    raise: {error: missing}
              catch:
                retry: quick
          - c:
              call: http
              with:
                method: get
                endpoint: {uri: 'https://x', authentication: {use: nope}}
          - d:
              call: log:1.0.0@tools
        """)
    assert found == [
        "wf.yaml:9:10: /timeout: unknown timeout 'slow'; expected the name of one in"
        " use.timeouts (use.timeouts defines none)",
        "wf.yaml:14:28: /do/0/a/try/0/b/raise/error: unknown error 'missing'; expected the"
        " name of one in use.errors (use.errors defines none)",
        "wf.yaml:16:16: /do/0/a/catch/retry: unknown retry policy 'quick'; expected the name"
        " of one in use.retries (defined: fast)",
        "wf.yaml:21:60: /do/1/c/with/endpoint/authentication/use: unknown authentication"
        " policy 'nope'; expected the name of one in use.authentications"
        " (use.authentications defines none)",
        "wf.yaml:23:13: /do/2/d/call: unknown catalog 'tools'; expected the name of one in"
        " use.catalogs (use.catalogs defines none)",
    ]


# -- reading --------------------------------------------------------------------------------------


def test_a_yaml_syntax_error_names_file_line_and_column() -> None:
    assert only("do:\n  - a: [1\n  - b: 2\n") == (
        "wf.yaml:8:6: invalid YAML: expected ',' or ']', but got ':'; while parsing a flow sequence"
    )


def test_a_json_syntax_error_names_line_and_column() -> None:
    with pytest.raises(DslValidationError) as caught:
        load_document("wf.json", text='{\n  "document": {,\n}')
    assert [str(p) for p in caught.value.problems] == [
        "wf.json:2:16: invalid JSON: Expecting property name enclosed in double quotes"
    ]


def test_a_document_that_is_not_an_object() -> None:
    with pytest.raises(DslValidationError) as caught:
        load_document("wf.yaml", text="- a\n- b\n")
    assert str(caught.value.problems[0]) == (
        "wf.yaml:1:1: expected a workflow (an object), found a list"
    )
    with pytest.raises(DslValidationError) as caught:
        load_document("wf.yaml", text="# nothing\n")
    assert str(caught.value.problems[0]) == "wf.yaml:1:1: the document is empty"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DslValidationError) as caught:
        load_document(tmp_path / "absent.yaml")
    assert str(caught.value.problems[0]) == f"{tmp_path / 'absent.yaml'}: no such file"


def test_problems_come_in_document_order_and_the_error_is_a_config_error() -> None:
    with pytest.raises(DslValidationError) as caught:
        load_document("wf.yaml", text=HEAD + "do:\n  - b:\n      wait: x\n  - a:\n      cal: 1\n")
    error = caught.value
    assert isinstance(error, bf.ConfigError)
    assert [(p.line, p.path) for p in error.problems] == [(8, "/do/0/b/wait"), (9, "/do/1/a")]
    assert str(error).splitlines()[0] == "wf.yaml: 2 problems in the workflow document"
    first = error.problems[0]
    assert isinstance(first, DocumentProblem)
    assert first.to_dict() == {
        "source": "wf.yaml",
        "line": 8,
        "column": 13,
        "path": "/do/0/b/wait",
        "code": "duration",
        "message": first.message,
        "found": "'x'",
        "expected": first.expected,
    }


def test_warnings_for_what_the_dsl_ignores() -> None:
    text = HEAD.replace("'1.0.3'", "'2.0.0'") + "do: []\nouptut: {as: .x}\n"
    document = load_document("wf.yaml", text=text)
    assert [str(w) for w in document.warnings] == [
        "wf.yaml:2:8: /document/dsl: DSL version '2.0.0': this runtime implements DSL 1.0",
        "wf.yaml:7:1: /ouptut: property 'ouptut' is not part of the DSL and is ignored;"
        " did you mean 'output'?",
    ]
