"""`batonflow validate FILE...`: ok per valid file, every problem of an invalid one, exit 0 only
when all are valid (else the ConfigError code, 2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from batonflow.cli import ExitCode, app

from .spec_kit import spec_path

GOOD = """\
document:
  dsl: '1.0.3'
  namespace: shop
  name: order
  version: '1.2.0'
do:
  - check:
      try:
        - fetch:
            call: http
            with: {method: get, endpoint: 'https://shop.example/orders/1'}
      catch:
        do:
          - note: {set: {failed: true}}
  - done: {set: {ok: true}}
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the `batonflow` logger; give other tests theirs back."""
    logger = logging.getLogger("batonflow")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def validate(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["validate", *map(str, args)])


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("method: get", "method: get, foo: 1"))
    return path


def test_valid_files_are_ok(good: Path) -> None:
    example = spec_path("v1.0.3", "examples", "set.yaml")
    result = validate(good, example)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ok  {good}  (order shop 1.2.0, 4 tasks)",
        f"ok  {example}  (set test 0.1.0, 1 task)",
    ]
    assert result.stderr == ""


def test_every_problem_of_an_invalid_file_is_shown(good: Path, bad: Path) -> None:
    result = validate(good, bad)
    assert result.exit_code == ExitCode.USAGE == 2
    assert result.stdout.splitlines() == [
        f"ok  {good}  (order shop 1.2.0, 4 tasks)",
        f"{bad}:11:33: /do/0/check/try/0/fetch/with/foo: unexpected property 'foo'; expected"
        " one of method, endpoint, headers, body, query, output, redirect",
    ]
    assert result.stderr == "error: 1 of 2 workflow documents are invalid\n"


def test_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("do: [\n")
    result = validate(broken, tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{broken}:2:1: invalid YAML: expected the node content, but found '<stream end>';"
        " while parsing a flow node",
        f"{tmp_path / 'absent.yaml'}: no such file",
    ]


def test_warnings_follow_the_ok_line(tmp_path: Path) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text(GOOD + "ouptut: {as: .x}\n")
    result = validate(path)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == (
        f"warning: {path}:16:1: /ouptut: property 'ouptut' is not part of the DSL and is"
        " ignored; did you mean 'output'?"
    )


def test_json_output(good: Path, bad: Path) -> None:
    result = validate(good, bad, "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["files"][0] == {
        "file": str(good),
        "valid": True,
        "dsl": "1.0.3",
        "namespace": "shop",
        "name": "order",
        "version": "1.2.0",
        "tasks": 4,
        "warnings": [],
    }
    (problem,) = document["files"][1]["problems"]
    assert problem == {
        "source": str(bad),
        "line": 11,
        "column": 33,
        "path": "/do/0/check/try/0/fetch/with/foo",
        "code": "unexpected",
        "message": problem["message"],
        "found": "foo",
        "expected": "method, endpoint, headers, body, query, output, redirect",
    }


def test_json_of_valid_files_exits_zero(good: Path) -> None:
    result = validate("--json", good)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["valid"] is True


def test_at_least_one_file_is_needed() -> None:
    result = validate()
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr
