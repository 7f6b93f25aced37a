"""batonflow graph / events send / events list, through the real command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import batonflow as bf
from batonflow.cli import app
from batonflow.dsl import DslRuntime

LISTENER = {
    "document": {"dsl": "1.0.3", "namespace": "test", "name": "await-payment", "version": "1.0.0"},
    "do": [
        {
            "awaitPayment": {
                "listen": {"to": {"one": {"with": {"type": "com.shop.paid"}}}},
                "output": {"as": ".[0].amount"},
            }
        }
    ],
}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


async def _park(db: Path) -> str:
    runtime = DslRuntime()
    async with bf.Engine(db, workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, LISTENER, {})
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        return handle.run_id


async def _finish(db: Path, run_id: str) -> Any:
    runtime = DslRuntime()
    async with bf.Engine(db, workflows=[runtime.workflow]) as engine:
        await engine.settle()
        return await engine.handle(run_id).result()


def test_graph_prints_mermaid(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(json.dumps(LISTENER))
    result = invoke("graph", str(flow))
    assert result.exit_code == 0, result.output
    assert "flowchart TD" in result.output
    assert 't_do_0_awaitPayment{{"awaitPayment<br/>listen"}}' in result.output


def test_graph_reports_an_invalid_document(tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text("document: {dsl: '1.0.3'}\ndo: []\n")
    result = invoke("graph", str(flow))
    assert result.exit_code == 2
    assert "broken.yaml" in result.output


def test_events_send_wakes_the_listening_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = asyncio.run(_park(db))
    unrelated = json.dumps({"id": "0", "source": "shop", "type": "com.shop.refunded"})
    result = invoke("events", "send", "--data", unrelated, "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "nothing was delivered" in result.output
    event = json.dumps(
        {"id": "1", "source": "shop", "type": "com.shop.paid", "data": {"amount": 30}}
    )
    result = invoke("events", "send", "--data", event, "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["delivered_to"] == [run_id]
    assert asyncio.run(_finish(db, run_id)) == 30
    result = invoke("events", "list", run_id, "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    kinds = [e["type"] for e in json.loads(result.output)]
    assert kinds[0] == "io.serverlessworkflow.workflow.started.v1"
    assert kinds[-1] == "io.serverlessworkflow.workflow.completed.v1"


def test_events_send_needs_a_cloudevent(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    asyncio.run(_park(db))
    result = invoke("events", "send", "--data", '{"type": "x"}', "--db", str(db))
    assert result.exit_code == 2
    assert "needs id, source" in result.output


def test_run_a_document_from_the_command_line(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "document: { dsl: '1.0.3', namespace: test, name: greet, version: '1.0.0' }\n"
        "do:\n"
        "  - greet:\n"
        "      set: { greeting: '${ \"Hello \\(.name)\" }' }\n"
    )
    db = str(tmp_path / "runs.db")
    result = invoke("run", str(flow), "--input", '{"name": "Ann"}', "--db", db, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["status"] == "completed"
    assert shown["output"] == {"greeting": "Hello Ann"}


def test_a_listening_document_parks_then_continues_after_events_send(tmp_path: Path) -> None:
    flow = tmp_path / "await.json"
    flow.write_text(json.dumps(LISTENER))
    db = str(tmp_path / "runs.db")
    result = invoke("run", str(flow), "--db", db, "--detach")
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[0]
    result = invoke("resume", run_id, "--wait", "--db", db, "--linger", "0")
    assert result.exit_code == 0, result.output
    assert "a CloudEvent with type=com.shop.paid" in result.output
    assert "batonflow events send" in result.output
    event = json.dumps(
        {"id": "9", "source": "shop", "type": "com.shop.paid", "data": {"amount": 7}}
    )
    assert invoke("events", "send", "--data", event, "--db", db).exit_code == 0
    result = invoke("resume", run_id, "--wait", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["output"] == 7


def test_processes_stay_refused_unless_allowed(tmp_path: Path) -> None:
    flow = tmp_path / "shell.yaml"
    flow.write_text(
        "document: { dsl: '1.0.3', namespace: test, name: sh, version: '1.0.0' }\n"
        "do:\n"
        "  - hello:\n"
        "      run:\n"
        "        shell: { command: 'echo hello' }\n"
    )
    db = str(tmp_path / "runs.db")
    refused = invoke("run", str(flow), "--db", db)
    assert refused.exit_code == 4
    assert "run: shell refused" in refused.output
    allowed = invoke("run", str(flow), "--db", db, "--allow-processes", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["output"] == "hello\n"


def test_the_document_example_runs(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    db = str(tmp_path / "runs.db")
    assert invoke("validate", str(examples / "enquiry.yaml")).exit_code == 0
    result = invoke(
        "run", str(examples / "enquiry.yaml"), "--input", f"@{examples / 'enquiry.json'}",
        "--db", db, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)["output"]
    assert output["label"] == "complaint"
    assert output["reply"]["to"] == "jane.doe@example.com"
    shown = invoke("show", json.loads(result.output)["id"], "--db", db)
    assert "/do/1/complaint" in shown.output  # the path the run took
    assert " now " not in shown.output  # the interpreter's bookkeeping stays out of the table


CRM_FLOW = """\
document:
  dsl: '1.0.3'
  namespace: seed
  name: log-enquiry
  version: '1.0.0'
  metadata:
    batonflow:
      egress: [127.0.0.1]
      subjects: ${ [.from] }
do:
  - logInCrm:
      try:
        - post:
            call: http
            with:
              method: post
              endpoint: CRM_URL/enquiries
              headers:
                Idempotency-Key: ${ $workflow.id + "/logInCrm" }
              body: ${ $workflow.input }
      catch:
        errors:
          with: { status: 503 }
        retry:
          delay: { seconds: 0 }
          limit: { attempt: { count: 1 } }
  - confirm:
      set: { crm_id: '${ .id }' }
"""


def test_a_faulted_document_reports_its_own_problem_and_resume_completes_it(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the command line (whose store seals subject runs): the CRM is down past the
    retry, so the run faults with the workflow's own problem at the top level of --json and in
    show; after the CRM is back, resume retries the failed call and the run completes."""
    from flaky_crm import FlakyCrm

    crm = FlakyCrm("down")
    try:
        flow = tmp_path / "crm.yaml"
        flow.write_text(CRM_FLOW.replace("CRM_URL", crm.url))
        db = store_url  # SQLite, then PostgreSQL
        # the operator's policy opens the loopback CRM; the document's own list only narrows it
        config = tmp_path / "batonflow.toml"
        config.write_text('[governance.egress]\nallow = ["127.0.0.1"]\n')
        monkeypatch.setenv("BATONFLOW_CONFIG", str(config))
        enquiry = json.dumps({"from": "ann@example.com", "subject": "Refund"})
        result = invoke("run", str(flow), "--input", enquiry, "--db", db, "--json")
        assert result.exit_code == 4, result.output
        faulted = json.loads(result.stdout)
        assert faulted["status"] == "faulted"
        error = faulted["error"]
        assert {k: error[k] for k in ("type", "status", "title", "instance", "class")} == {
            "type": "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
            "status": 503,
            "title": "Service Unavailable",
            "instance": "/do/0/logInCrm/try/0/post",
            "class": "batonflow.dsl._problems:WorkflowError",
        }
        assert error["detail"].startswith(f"POST {crm.url}/enquiries answered 503")
        assert "state" not in error
        assert "Service Unavailable: POST" in result.stderr  # the one-line summary
        assert "(503 at /do/0/logInCrm/try/0/post)" in result.stderr
        assert crm.posts == 2

        shown = invoke("show", faulted["id"], "--db", db)
        assert shown.exit_code == 0, shown.output
        for fragment in ("errors/communication", "503", "/do/0/logInCrm/try/0/post",
                         "batonflow.dsl._problems:WorkflowError"):  # fmt: skip
            assert fragment in shown.stdout, fragment
        assert (
            json.loads(invoke("show", faulted["id"], "--db", db, "--json").stdout)["error"] == error
        )

        crm.recover()
        result = invoke("resume", faulted["id"], "--wait", "--db", db, "--json")
        assert result.exit_code == 0, result.output
        done = json.loads(result.stdout)
        assert done["status"] == "completed"
        assert done["error"] is None
        assert done["output"] == {"crm_id": "ENQ-00001"}
        assert done["subjects"]  # a sealed subject run, resumed all the same
        assert crm.posts == 3
        assert len(crm.enquiries) == 1
    finally:
        crm.close()
