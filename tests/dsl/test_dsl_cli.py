"""batonflow graph / events send / events list, through the real command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

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
