"""The `batonflow` command line: in-process through Typer's CliRunner, plus the installed entry
point as real subprocesses (the example, and a worker stopped with SIGTERM)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import EXIT_CODES, ExitCode, app, exit_code_for

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "cli_fixtures"
FLOWS = FIXTURES / "flows.py"
BIN = Path(sys.executable).parent / "batonflow"
POLL = 0.05  # seconds between polls of another process's progress
POLL_LIMIT = 400  # polls before giving up (20 s)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the `batonflow` logger; give other tests theirs back."""
    logger = logging.getLogger("batonflow")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "runs.db")


Cli = Callable[..., Result]


@pytest.fixture
def cli(db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """Invoke `batonflow ARGS --db <the test's db>` in-process."""
    monkeypatch.delenv("BATONFLOW_DB", raising=False)
    monkeypatch.setenv("BATONFLOW_DEMO_CRM", str(tmp_path / "crm.jsonl"))
    runner = CliRunner()

    def invoke(*args: str, use_db: bool = True, stdin: str | None = None) -> Result:
        argv = [*args, "--db", db] if use_db else list(args)
        return runner.invoke(app, argv, input=stdin)

    return invoke


def flow(name: str) -> str:
    return f"{FLOWS}:{name}"


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def doc(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def assert_error(result: Result, code: ExitCode, *fragments: str) -> None:
    """Exit code from the table, `error: ...` on stderr naming the problem, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def start_waiting(cli: Cli, name: str = "approval", data: str = '{"name": "ada"}') -> str:
    result = cli("run", flow(name), "--input", data, "--json")
    run = doc(result)
    assert run["status"] == "waiting", run
    return str(run["id"])


# -- run ------------------------------------------------------------------------------------


def test_run_with_json_input_prints_a_summary(cli: Cli) -> None:
    result = ok(cli("run", flow("greet"), "--input", '{"name": "ada"}'))
    out = result.stdout
    assert "completed" in out
    assert "HELLO ADA" in out
    assert "shout" in out  # the step timeline
    assert result.stderr == ""


def test_run_with_input_from_a_file_and_json_output(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"name": "grace"}', encoding="utf-8")
    run = doc(cli("run", flow("greet"), "--input", f"@{tmp_path / 'in.json'}", "--json"))
    assert run["status"] == "completed"
    assert run["output"] == {"greeting": "HELLO GRACE"}
    assert run["input"] == {"name": "grace"}
    assert [(s["position"], s["kind"], s["name"], s["status"]) for s in run["steps"]] == [
        ("1", "step", "shout", "completed")
    ]
    assert run["steps"][0]["attempts"] == 1


def test_run_reads_input_from_stdin(cli: Cli) -> None:
    run = doc(cli("run", flow("greet"), "--input", "@-", "--json", stdin='{"name": "lin"}'))
    assert run["output"] == {"greeting": "HELLO LIN"}


def test_run_by_module_reference_from_the_current_directory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_module_ref_flows.py").write_text(
        "import batonflow as bf\n\n\n@bf.workflow\nasync def hello(ctx, name):\n"
        "    return f'hello {name}'\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "cli_module_ref_flows", raising=False)
    run = doc(cli("run", "cli_module_ref_flows:hello", "--input", '"ada"', "--json"))
    assert run["output"] == "hello ada"
    assert run["workflow_ref"] == "cli_module_ref_flows:hello"
    sys.modules.pop("cli_module_ref_flows", None)


def test_run_with_idempotency_key_reports_the_same_run(cli: Cli) -> None:
    first = doc(cli("run", flow("greet"), "-i", '{"name": "a"}', "-k", "order-1", "--json"))
    again = doc(cli("run", flow("greet"), "-i", '{"name": "a"}', "-k", "order-1", "--json"))
    assert again["id"] == first["id"]
    assert again["idempotency_key"] == "order-1"
    other = cli("run", flow("greet"), "-i", '{"name": "b"}', "-k", "order-1")
    assert_error(other, ExitCode.CONFLICT, "order-1", "different input")


def test_run_detach_records_a_pending_run_without_executing_it(cli: Cli) -> None:
    result = ok(cli("run", flow("greet"), "-i", '{"name": "ada"}', "--detach"))
    run_id = result.stdout.strip()
    assert "batonflow worker" in result.stderr
    shown = doc(cli("show", run_id, "--json"))
    assert shown["status"] == "pending"
    assert shown["steps"] == []
    assert "batonflow worker" in ok(cli("show", run_id)).stdout
    assert shown["workflow_ref"] == flow("greet")
    done = doc(cli("resume", run_id, "--wait", "--json"))  # executes a pending run here
    assert done["output"] == {"greeting": "HELLO ADA"}


def test_run_of_a_faulted_workflow_exits_4_and_shows_the_failed_attempts(cli: Cli) -> None:
    result = cli("run", flow("boom"), "--input", '"the truth"')
    assert_error(result, ExitCode.RUN_FAULTED, "faulted", "ValueError: cannot handle the truth")
    assert "↳ ValueError: cannot handle the truth" in result.stdout  # attempts under the step
    run_id = doc(cli("list", "--json"))[0]["id"]
    shown = doc(cli("show", run_id, "--json"))
    assert shown["status"] == "faulted"
    assert shown["error"] == {  # an RFC 9457 problem, the class beside it
        "type": "urn:batonflow:error:builtins.ValueError",
        "status": 500,
        "title": "ValueError",
        "detail": "cannot handle the truth",
        "class": "builtins:ValueError",
        "step": "1",
        "traceback": shown["error"]["traceback"],
    }
    assert "cannot handle the truth" in shown["error"]["traceback"]
    attempts = shown["steps"][0]["failed_attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]  # the 50 ms backoff was waited through
    assert attempts[0]["error"]["type"] == "builtins:ValueError"


def test_run_waits_through_a_short_sleep_and_reports_a_long_one(cli: Cli) -> None:
    assert doc(cli("run", flow("nap"), "--input", "0.2", "--json"))["output"] == "rested"
    parked = doc(cli("run", flow("nap"), "--input", "5", "--linger", "0", "--json"))
    assert parked["status"] == "waiting"
    result = ok(cli("run", flow("nap"), "--input", "3600"))
    assert "waiting" in result.stdout
    assert "sleep until" in result.stdout
    assert "batonflow worker" in result.stdout


def test_run_that_waits_for_an_event_exits_0_reporting_what_it_waits_for(cli: Cli, db: str) -> None:
    result = ok(cli("run", flow("approval"), "--input", '{"name": "ada"}'))
    assert "waiting" in result.stdout
    assert "event 'approve'" in result.stdout
    run_id = doc(cli("list", "--json"))[0]["id"]
    assert f"batonflow events deliver approve --run {run_id} --db {db}" in result.stdout
    shown = doc(cli("show", run_id, "--json"))
    assert shown["waiting_on"] == [
        {
            "run_id": run_id, "step_id": "2", "kind": "event", "name": "approve",
            "wake_at": None, "topic": "approve", "key": None, "child_id": None,
            "child_status": None, "detail": None,
        }
    ]  # fmt: skip


def test_event_send_then_resume_wait_completes_the_run(cli: Cli) -> None:
    run_id = start_waiting(cli)
    sent = ok(cli("events", "deliver", "approve", "--run", run_id, "--data", '{"ok": true}'))
    assert f"to run {run_id}" in sent.stdout
    assert "is pending" in sent.stderr
    done = doc(cli("resume", run_id, "--wait", "--json"))
    assert done["status"] == "completed"
    assert done["output"] == {"greeting": "HELLO ADA", "decision": {"ok": True}}
    [event] = done["events"]
    assert event["consumed_step"] == "2"
    assert event["payload"] == {"ok": True}


def test_event_by_correlation_key_and_from_a_file(cli: Cli, tmp_path: Path) -> None:
    run_id = start_waiting(cli, "keyed", '{"key": "order-7"}')
    hint = ok(cli("show", run_id)).stdout
    assert "--key order-7" in hint
    (tmp_path / "decision.json").write_text('{"approved": "yes"}', encoding="utf-8")
    event = doc(
        cli("events", "deliver", "approve", "--key", "order-7",
            "--data", f"@{tmp_path}/decision.json", "--json")
    )  # fmt: skip
    assert event["key"] == "order-7"
    assert event["payload"] == {"approved": "yes"}
    assert doc(cli("resume", run_id, "--wait", "--json"))["output"] == {"approved": "yes"}


def test_a_parked_child_run_is_reported_with_what_it_waits_for(cli: Cli) -> None:
    parent_id = start_waiting(cli, "parent")
    child_id = f"{parent_id}.1"
    shown = doc(cli("show", parent_id, "--json"))
    assert [(w["kind"], w["run_id"]) for w in shown["waiting_on"]] == [
        ("child", parent_id),
        ("event", child_id),
    ]
    assert f"batonflow events deliver approve --run {child_id}" in ok(cli("show", parent_id)).stdout


def test_a_parked_child_run_completes_after_its_event(cli: Cli) -> None:
    """`resume --wait` on the parent executes the woken child, then the parent."""
    parent_id = start_waiting(cli, "parent")
    ok(cli("events", "deliver", "approve", "--run", f"{parent_id}.1", "--data", "1"))
    done = doc(cli("resume", parent_id, "--wait", "--json"))
    assert done["output"] == {"child": {"greeting": "HELLO ADA", "decision": 1}}


def test_the_example_runs_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    example = ROOT / "examples" / "enquiry.py"
    data = f"@{ROOT / 'examples' / 'enquiry.json'}"
    run = doc(cli("run", f"{example}:triage", "--input", data, "--json"))
    assert run["status"] == "completed"
    assert run["output"]["label"] == "complaint"
    assert [s["name"] for s in run["steps"]] == ["classify", "log_to_crm", "draft_reply"]
    crm = (tmp_path / "crm.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in crm] == [run["output"]["crm_record"]]


# -- list and show ----------------------------------------------------------------------------


def test_list_is_newest_first_and_filters(cli: Cli) -> None:
    first = doc(cli("run", flow("greet"), "-i", '{"name": "a"}', "--json"))["id"]
    second = start_waiting(cli)
    assert [r["id"] for r in doc(cli("list", "--json"))] == [second, first]
    assert [r["id"] for r in doc(cli("list", "--status", "WAITING", "--json"))] == [second]
    assert [r["id"] for r in doc(cli("list", "--workflow", "greet", "--json"))] == [first]
    assert [r["id"] for r in doc(cli("list", "--limit", "1", "--json"))] == [second]
    table = ok(cli("list")).stdout
    for fragment in (first, second, "waiting", "completed"):
        assert fragment in table
    assert ok(cli("list", "--status", "faulted")).stdout.strip() == "no runs"


def test_show_renders_the_run_in_full(cli: Cli) -> None:
    run_id = start_waiting(cli)
    ok(cli("events", "deliver", "approve", "--run", run_id, "--data", '"yes"'))
    ok(cli("resume", run_id, "--wait"))
    out = ok(cli("show", run_id)).stdout
    for fragment in (run_id, "approval", "completed", "input", "output", "steps", "events"):
        assert fragment in out
    assert '"yes"' in out


# -- operator actions --------------------------------------------------------------------------


def test_cancel_a_waiting_run(cli: Cli) -> None:
    run_id = start_waiting(cli)
    result = ok(cli("cancel", run_id, "--reason", "customer withdrew"))
    assert "waiting → cancelled" in result.stdout
    shown = doc(cli("show", run_id, "--json"))
    assert shown["status"] == "cancelled"
    assert shown["error"]["class"] == "batonflow.errors:RunCancelled"
    assert shown["error"]["type"] == "urn:batonflow:error:batonflow.errors.RunCancelled"
    assert shown["error"]["status"] == 409
    assert shown["error"]["detail"] == f"run {run_id} was cancelled: customer withdrew"
    assert_error(cli("cancel", run_id), ExitCode.INVALID_TRANSITION, "already cancelled")
    assert_error(
        cli("events", "deliver", "approve", "--run", run_id),
        ExitCode.INVALID_TRANSITION,
        "cancelled",
    )


def test_suspend_and_resume(cli: Cli) -> None:
    run_id = start_waiting(cli)
    assert doc(cli("suspend", run_id, "--json"))["status"] == "suspended"
    assert "suspended by an operator" in ok(cli("show", run_id)).stdout
    ok(cli("events", "deliver", "approve", "--run", run_id, "--data", "true"))  # kept for later
    resumed = ok(cli("resume", run_id))
    assert "suspended → pending" in resumed.stdout
    assert "batonflow worker" in resumed.stderr
    assert doc(cli("resume", run_id, "--wait", "--json"))["output"]["decision"] is True


def test_resume_retries_a_faulted_run_from_the_failed_step(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = json.dumps({"marker": str(marker)})
    result = cli("run", flow("fragile"), "--input", data, "--json")
    assert result.exit_code == ExitCode.RUN_FAULTED
    run_id = json.loads(result.stdout)["id"]
    marker.touch()
    done = doc(cli("resume", run_id, "--wait", "--json"))
    assert done["status"] == "completed"
    assert done["output"] == "found"


def test_resume_retries_the_failed_step_of_a_sealed_subject_run(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On SQLite and PostgreSQL: a run naming a data subject (its error sealed) that raised its
    own error from the failed step's is resumed from that step."""
    monkeypatch.delenv("BATONFLOW_DB", raising=False)
    runner = CliRunner()

    def run_cli(*args: str) -> Result:
        return runner.invoke(app, [*args, "--db", store_url])

    marker = tmp_path / "marker"
    data = json.dumps({"marker": str(marker), "email": "ann@example.com"})
    result = run_cli("run", flow("fragile_client"), "--input", data, "--json")
    assert result.exit_code == ExitCode.RUN_FAULTED, result.output
    faulted = json.loads(result.stdout)
    assert faulted["subjects"]
    assert faulted["error"]["class"] == "builtins:LookupError"
    # a stored error text is run data: the address in it is redacted (docs/security.md)
    assert faulted["error"]["detail"] == "nothing to send [email] yet"
    assert faulted["error"]["step"] == "1"
    assert f"batonflow resume {faulted['id']} --wait" in result.stderr  # the hint
    marker.touch()
    done = doc(run_cli("resume", faulted["id"], "--wait", "--json"))
    assert done["status"] == "completed"
    assert done["output"] == "found"
    assert [s["status"] for s in done["steps"]] == ["completed"]


def test_invalid_transitions_exit_5(cli: Cli) -> None:
    run_id = doc(cli("run", flow("greet"), "-i", '{"name": "a"}', "--json"))["id"]
    assert_error(cli("cancel", run_id), ExitCode.INVALID_TRANSITION, "completed", "cancelled")
    assert_error(cli("suspend", run_id), ExitCode.INVALID_TRANSITION, "completed")
    assert_error(
        cli("resume", run_id), ExitCode.INVALID_TRANSITION, "only suspended or faulted runs"
    )
    waiting = start_waiting(cli)
    assert_error(cli("resume", waiting), ExitCode.INVALID_TRANSITION, "is waiting")


def test_a_cancelled_run_reports_exit_9(cli: Cli) -> None:
    run_id = doc(cli("run", flow("approval"), "-i", '{"name": "a"}', "-k", "k1", "--json"))["id"]
    ok(cli("cancel", run_id))
    result = cli("run", flow("approval"), "-i", '{"name": "a"}', "-k", "k1")
    assert_error(result, ExitCode.RUN_CANCELLED, run_id, "cancelled")


# -- mistakes: exit code, message on stderr, no traceback --------------------------------------


@pytest.mark.parametrize(
    ("ref", "fragments"),
    [
        ("no_such_module_xyz:flow", ["cannot import module 'no_such_module_xyz'"]),
        ("just-a-name", ["not a workflow reference"]),
        ("missing/file.py:flow", ["no such file: missing/file.py"]),
        (f"{FLOWS}:nope", ["has no attribute 'nope'"]),
        (f"{FLOWS}:shout", ["is a Step, not a workflow"]),
        (f"{FIXTURES / 'broken.py'}:flow", ["ZeroDivisionError", "broken.py, line 5"]),
    ],
)
def test_unknown_workflow_references(cli: Cli, ref: str, fragments: list[str]) -> None:
    assert_error(cli("run", ref), ExitCode.USAGE, *fragments)


def test_a_workflow_file_with_a_syntax_error(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad_syntax.py"
    shutil.copy(FIXTURES / "syntax_error.txt", bad)
    assert_error(cli("run", f"{bad}:broken"), ExitCode.USAGE, "SyntaxError", "line 1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"name": ', "--input: invalid JSON at line 1 column 10: Expecting value"),
        ("{'name': 1}", "--input: invalid JSON at line 1 column 2: Expecting property name"),
        ("NaN", "--input: invalid JSON: NaN is not a JSON value"),
        ("@", "--input: '@' must be followed by a file name"),
        ("@does/not/exist.json", "--input: no such file: does/not/exist.json"),
    ],
)
def test_bad_input(cli: Cli, value: str, message: str) -> None:
    assert_error(cli("run", flow("greet"), "--input", value), ExitCode.USAGE, message)


def test_bad_input_file_names_the_file_and_position(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{\n  "name": "a",\n}\n', encoding="utf-8")
    result = cli("run", flow("greet"), "--input", f"@{tmp_path}/in.json")
    assert_error(result, ExitCode.USAGE, f"--input @{tmp_path}/in.json: invalid JSON at line 3")
    assert_error(cli("run", flow("greet"), "--input", f"@{tmp_path}"), ExitCode.USAGE, "directory")


def test_bad_event_data(cli: Cli) -> None:
    run_id = start_waiting(cli)
    result = cli("events", "deliver", "approve", "--run", run_id, "--data", "[1,")
    assert_error(result, ExitCode.USAGE, "--data: invalid JSON at line 1 column 4")
    assert_error(cli("events", "deliver", "approve"), ExitCode.USAGE, "--run RUN_ID or --key KEY")


def test_bad_database_paths(cli: Cli, tmp_path: Path) -> None:
    assert_error(
        cli("run", flow("greet"), "--db", str(tmp_path), use_db=False),
        ExitCode.USAGE,
        "is a directory",
    )
    missing = str(tmp_path / "typo.db")
    assert_error(cli("list", "--db", missing, use_db=False), ExitCode.USAGE, "no such database")
    assert not Path(missing).exists()  # not created by a read
    (tmp_path / "notes.txt").write_text("not a database " * 100, encoding="utf-8")
    result = cli("list", "--db", str(tmp_path / "notes.txt"), use_db=False)
    assert_error(result, ExitCode.STORE_ERROR, "cannot open", "notes.txt")
    assert_error(cli("list", "--db", "mysql://x/y", use_db=False), ExitCode.USAGE, "unsupported")
    under_a_file = str(tmp_path / "notes.txt" / "runs.db")
    result = cli("run", flow("greet"), "--db", under_a_file, use_db=False)
    assert_error(result, ExitCode.USAGE, "is not a directory")


def test_unknown_run_ids_exit_3(cli: Cli) -> None:
    ok(cli("run", flow("greet"), "-i", '{"name": "a"}'))  # the database exists
    for command in (["show"], ["cancel"], ["suspend"], ["resume"], ["resume", "--wait"]):
        assert_error(cli(*command, "nope"), ExitCode.NOT_FOUND, "no run with id 'nope'")
    result = cli("events", "deliver", "approve", "--run", "nope")
    assert_error(result, ExitCode.NOT_FOUND, "'nope'")


def test_unknown_status_filter(cli: Cli) -> None:
    ok(cli("run", flow("greet"), "-i", '{"name": "a"}'))
    assert_error(cli("list", "--status", "done"), ExitCode.USAGE, "unknown status 'done'")


def test_db_from_the_environment(cli: Cli, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATONFLOW_DB", db)
    ok(cli("run", flow("greet"), "-i", '{"name": "a"}', use_db=False))
    assert len(doc(cli("list", "--json", use_db=False))) == 1


def test_version(cli: Cli) -> None:
    assert ok(cli("--version", use_db=False)).stdout.strip() == f"batonflow {bf.__version__}"


def test_detach_with_an_idempotency_key(cli: Cli) -> None:
    first = ok(cli("run", flow("greet"), "-i", '{"name": "a"}', "-k", "k", "--detach")).stdout
    again = ok(cli("run", flow("greet"), "-i", '{"name": "a"}', "-k", "k", "--detach")).stdout
    assert first == again
    other = cli("run", flow("approval"), "-i", '{"name": "a"}', "-k", "k", "--detach")
    assert_error(other, ExitCode.CONFLICT, "already started a run of workflow 'greet'")


def test_an_unexpected_error_is_exit_1_with_a_hint(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaput")

    ok(cli("run", flow("greet"), "-i", '{"name": "a"}'))
    monkeypatch.setattr("batonflow.cli._ops.list_runs", broken)
    result = cli("list")
    assert_error(result, ExitCode.INTERNAL, "unexpected RuntimeError: kaput", "BATONFLOW_DEBUG")
    monkeypatch.setenv("BATONFLOW_DEBUG", "1")
    assert "Traceback" in cli("list").stderr


def test_exit_code_table() -> None:
    assert exit_code_for(bf.WorkflowNotFound("x")) is ExitCode.USAGE
    assert exit_code_for(bf.EngineLocked("x")) is ExitCode.ENGINE_LOCKED
    assert exit_code_for(bf.LeaseLost("x")) is ExitCode.STORE_ERROR
    assert exit_code_for(bf.ChildWorkflowFailed("x")) is ExitCode.RUN_FAULTED
    assert exit_code_for(RuntimeError("bug")) is ExitCode.INTERNAL
    assert exit_code_for(KeyboardInterrupt()) is ExitCode.INTERRUPTED
    verdicts = {ExitCode.OK, ExitCode.INTERNAL, ExitCode.AUDIT_BROKEN}  # no error class of theirs
    assert len(set(EXIT_CODES.values()) | verdicts) == len(ExitCode)
    assert exit_code_for(bf.ApprovalRefused("x")) is ExitCode.FORBIDDEN


# -- the installed entry point, as real processes -----------------------------------------------


def batonflow(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=30, check=False
    )


@pytest.fixture
def env(db: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BATONFLOW_DB": db,
        "BATONFLOW_DEMO_CRM": str(tmp_path / "crm.jsonl"),
        "COLUMNS": "120",
    }


@pytest.mark.slow
def test_entry_point_runs_the_example(env: dict[str, str], tmp_path: Path) -> None:
    """The installed entry point runs a Python workflow file from another directory."""
    assert BIN.exists(), f"{BIN} is missing: pip install -e ."
    version = batonflow("--version", env=env, cwd=tmp_path)
    assert version.stdout.strip() == f"batonflow {bf.__version__}"
    example = ROOT / "examples" / "enquiry.py"
    data = f"@{ROOT / 'examples' / 'enquiry.json'}"
    result = batonflow("run", f"{example}:triage", "--input", data, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert "draft_reply" in result.stdout
    bad = batonflow("run", f"{example}:nope", env=env, cwd=tmp_path)
    assert bad.returncode == ExitCode.USAGE
    assert bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr


def _wait_for_status(cli: Cli, run_id: str, status: str) -> dict[str, Any]:
    for _ in range(POLL_LIMIT):
        shown: dict[str, Any] = doc(cli("show", run_id, "--json"))
        if shown["status"] == status:
            return shown
        time.sleep(POLL)
    raise AssertionError(f"run {run_id} did not become {status}: {shown}")


@pytest.mark.slow
def test_worker_continues_parked_runs_and_stops_on_sigterm(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    run_id = start_waiting(cli)
    ok(cli("events", "deliver", "approve", "--run", run_id, "--data", '{"by": "ops"}'))
    worker = subprocess.Popen(
        [str(BIN), "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done = _wait_for_status(cli, run_id, "completed")
        assert done["output"]["decision"] == {"by": "ops"}
        # While the worker holds the database, `run` cannot execute: it says why (exit 6);
        # `run --detach` hands the worker the run instead.
        assert_error(cli("run", flow("greet"), "-i", '{"name": "x"}'), ExitCode.ENGINE_LOCKED)
        detached = ok(cli("run", flow("greet"), "-i", '{"name": "bo"}', "--detach")).stdout
        assert _wait_for_status(cli, detached.strip(), "completed")["output"] == {
            "greeting": "HELLO BO"
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert "executing runs on" in err
    assert "stopped" in err
