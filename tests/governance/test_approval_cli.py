"""`batonflow identity|token|approval ...` in-process: tokens, refusals with a clear message and
a non-zero exit, and a decision from the shell that a worker's engine then continues."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.catalog._approval import approval
from batonflow.cli._approvals import approval_app
from batonflow.cli._exit_codes import ExitCode, exit_code_for
from batonflow.cli._identities import identity_app, token_app
from batonflow.errors import AccessDenied, ApprovalRefused
from batonflow.governance._identity import TOKEN_ENV
from batonflow.testing import FakeClock

app = typer.Typer()
app.add_typer(identity_app, name="identity")
app.add_typer(token_app, name="token")
app.add_typer(approval_app, name="approval")

Cli = Callable[..., Result]


@bf.workflow
async def expense(ctx: bf.Context, claim: dict[str, Any]) -> dict[str, Any]:
    return await approval(
        ctx,
        title="Expense {amount} EUR",
        data=claim,
        approvers={"groups": ["finance"]},
        require_comment=["reject"],
        expires_in="P1D",
    )


@pytest.fixture
def cli(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("BATONFLOW_DB", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, [*args, "--db", str(db_path)])

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def refusal_code() -> int:
    """The table's code for a refused action: the same for both kinds of refusal."""
    code = exit_code_for(ApprovalRefused("x"))
    assert code == exit_code_for(AccessDenied("x")) == ExitCode.FORBIDDEN
    return int(code)


def refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == refusal_code(), (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "bug" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def token(cli: Cli, identity: str, *auth: str) -> str:
    return ok(cli("token", "create", identity, *auth)).stdout.strip()


def people(cli: Cli) -> dict[str, str]:
    """root (admin) made by the local bootstrap; alice and bob in finance; dave outside."""
    first = ok(cli("identity", "create", "root", "--role", "admin"))  # gets a token
    tokens = {"root": first.stdout.strip()}
    assert tokens["root"].startswith("bf_")
    assert "shown above this once" in first.stderr
    auth = ("--token", tokens["root"])
    ok(cli("identity", "create", "alice", "--group", "finance", *auth))
    ok(cli("identity", "create", "bob", "--group", "finance", *auth))
    ok(cli("identity", "create", "dave", *auth))
    for name in ("alice", "bob", "dave"):
        tokens[name] = token(cli, name, *auth)
    return tokens


async def start(db_path: Path, clock: FakeClock, started_by: str) -> str:
    async with bf.Engine(db_path, clock=clock, rng=random.Random(1)) as engine:
        handle = await engine.start(expense, {"amount": 42}, started_by=started_by)
        await engine.settle()
        return handle.run_id


async def finish(db_path: Path, clock: FakeClock, run_id: str) -> Any:
    async with bf.Engine(db_path, clock=clock, workflows=[expense]) as engine:
        await engine.settle()
        return await engine.handle(run_id).result()


def test_tokens_from_the_shell(cli: Cli, db_path: Path) -> None:
    tokens = people(cli)
    listed = json.loads(ok(cli("token", "list", "--json")).stdout)
    assert {t["identity"] for t in listed} == {"root", "alice", "bob", "dave"}
    assert all(tokens["root"] not in json.dumps(t) for t in listed)
    # identities exist now: changing things needs a token
    refused(cli("identity", "create", "eve"), "pass --token or set BATONFLOW_TOKEN")
    refused(cli("identity", "create", "eve", "--token", tokens["alice"]), "needs the role admin")
    alice_id = next(t["id"] for t in listed if t["identity"] == "alice")
    ok(cli("token", "revoke", alice_id, "--token", tokens["root"]))
    refused(cli("token", "create", "alice", "--token", tokens["alice"]), "revoked")
    table = ok(cli("identity", "list")).stdout
    assert "alice" in table
    assert "finance" in table


def test_decisions_from_the_shell(cli: Cli, db_path: Path) -> None:
    clock = FakeClock(time.time())  # the CLI decides on the wall clock
    tokens = people(cli)
    run_id = asyncio.run(start(db_path, clock, started_by="alice"))

    refused(cli("approval", "list"), "pass --token")  # listing them is reading: a role
    refused(cli("approval", "list", "--token", tokens["bob"]), "bob may not read")
    [pending] = json.loads(ok(cli("approval", "list", "--json", "--token", tokens["root"])).stdout)
    assert (pending["run_id"], pending["title"]) == (run_id, "Expense 42 EUR")
    assert "Expense 42 EUR" in ok(cli("approval", "list", "--token", tokens["root"])).stdout
    mine = json.loads(
        ok(cli("approval", "list", "--mine", "--json", "--token", tokens["bob"])).stdout
    )
    assert [p["run_id"] for p in mine] == [run_id]
    theirs = cli("approval", "list", "--mine", "--json", "--token", tokens["alice"])
    assert json.loads(ok(theirs).stdout) == []  # alice started it

    decide = ("approval", "decide", run_id)
    refused(cli(*decide, "--option", "approve"), "pass --token")
    refused(cli(*decide, "--option", "approve", "--token", tokens["alice"]), "separation of duties")
    refused(
        cli(*decide, "--option", "approve", "--token", tokens["dave"]), "not one of the deciders"
    )
    refused(cli(*decide, "--option", "reject", "--token", tokens["bob"]), "needs a comment")
    refused(cli(*decide, "--option", "maybe", "--token", tokens["bob"]), "not an option")
    result = ok(cli(*decide, "-o", "reject", "-m", "no receipt", "--token", tokens["bob"]))
    assert "bob decided 'reject'" in result.stdout
    refused(cli(*decide, "--option", "approve", "--token", tokens["bob"]), "already decided")

    # reading needs a role once the database has identities (refused without a token)
    refused(cli("approval", "show", run_id, "--json"), "pass --token")
    refused(cli("approval", "show", run_id, "--token", tokens["dave"]), "dave may not read")
    shown = json.loads(
        ok(cli("approval", "show", run_id, "--json", "--token", tokens["root"])).stdout
    )
    [state] = shown
    assert state["status"] == "pending"
    assert [(d["by"], d["option"]) for d in state["decisions"]] == [("bob", "reject")]
    assert {(r["by"]) for r in state["refusals"]} == {"alice", "dave", "bob"}

    verdict = asyncio.run(finish(db_path, clock, run_id))
    assert (verdict["outcome"], verdict["decided_by"]) == ("reject", ["bob"])
    assert verdict["comments"] == {"bob": "no receipt"}
    [state] = json.loads(
        ok(cli("approval", "show", run_id, "--json", "--token", tokens["root"])).stdout
    )
    assert state["status"] == "decided"
    assert state["result"]["outcome"] == "reject"
    text = ok(cli("approval", "show", run_id, "--token", tokens["root"])).stdout
    assert "reject (decided by bob)" in text
    assert "separation of duties" in text
    assert (
        "no approvals are waiting" in ok(cli("approval", "list", "--token", tokens["root"])).stdout
    )


def test_an_unknown_run_is_reported(cli: Cli) -> None:
    tokens = people(cli)
    result = cli("approval", "decide", "nope", "--option", "approve", "--token", tokens["bob"])
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no run with id 'nope'" in result.stderr
