"""The command line under governance: who did what (identities and tokens), the configuration
file, and the audit trail that records it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import app
from batonflow.cli._exit_codes import ExitCode

FLOWS = Path(__file__).parent.parent / "cli_fixtures" / "flows.py"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BATONFLOW_TOKEN", "BATONFLOW_DB", "BATONFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./batonflow.toml from elsewhere


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def _trail(db: Path) -> list[bf.AuditRecord]:
    async def read() -> list[bf.AuditRecord]:
        store = bf.SQLiteStore(db)
        await store.open()
        try:
            return await store.read_audit()
        finally:
            await store.close()

    return asyncio.run(read())


def test_operator_actions_are_attributed_to_identities(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    # without identities, the local user acts (as admin) and is named on the trail
    started = json.loads(ok(cli("run", f"{FLOWS}:approval", "-i", '{"name": "a"}', "--db", db,
                                "--json")).stdout)  # fmt: skip
    run_id = started["id"]
    assert started["started_by"].startswith("local:")
    admin_token = ok(cli("identity", "create", "ann", "--role", "admin", "--db", db)).stdout.strip()
    ok(cli("identity", "create", "vic", "--role", "viewer", "--db", db, "--token", admin_token))
    viewer_token = ok(cli("token", "create", "vic", "--db", db, "--token", admin_token))
    viewer_token_text = viewer_token.stdout.strip()

    refused = cli("cancel", run_id, "--db", db)  # identities exist now: a token is needed
    assert refused.exit_code == ExitCode.FORBIDDEN
    assert "--token" in refused.stderr
    refused = cli("cancel", run_id, "--db", db, "--token", viewer_token_text)
    assert refused.exit_code == ExitCode.FORBIDDEN
    assert "viewer" in refused.stderr or "role" in refused.stderr

    ok(cli("suspend", run_id, "--db", db, "--token", admin_token))
    ok(cli("resume", run_id, "--db", db, "--token", admin_token))
    ok(cli("cancel", run_id, "--db", db, "--token", admin_token, "--reason", "duplicate"))

    actions = {r.kind: r.actor for r in _trail(tmp_path / "runs.db") if r.run_id == run_id}
    assert actions["run.created"].startswith("local:")
    assert actions["run.suspended"] == "ann"
    assert actions["run.resumed"] == "ann"
    assert actions["run.cancelled"] == "ann"
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    assert admin_token.encode() not in raw  # only its hash is kept


def test_a_bad_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[governance.egress]\nallow = "api.example.com"\n')
    result = cli("--config", str(tmp_path / "bad.toml"), "list", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == ExitCode.USAGE
    assert "bad.toml" in result.stderr
    assert "governance.egress" in result.stderr
    missing = cli("--config", "nope.toml", "list")
    assert missing.exit_code == ExitCode.USAGE
    assert "nope.toml" in missing.stderr


def test_a_policy_change_is_on_the_trail_with_who_acted_under_it(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    config = tmp_path / "batonflow.toml"
    config.write_text('[governance.egress]\nallow = ["crm.example.test"]\n')
    run = ["run", f"{FLOWS}:greet", "-i", '{"name": "a"}', "--db", db]
    ok(cli("--config", str(config), *run))
    ok(cli("--config", str(config), *run))  # the same policy: recorded once
    config.write_text('[governance.egress]\nallow = ["crm.example.test", "api.openai.com"]\n')
    ok(cli("--config", str(config), *run))
    changes = [r for r in _trail(tmp_path / "runs.db") if r.kind == "policy.changed"]
    assert len(changes) == 2
    first, second = (json.loads(r.data_json) for r in changes)
    assert second["previous"] == first["sha256"]
    assert second["policy"]["governance"]["egress"]["allow"][-1] == "api.openai.com"
    assert all(r.actor and r.actor.startswith("local:") for r in changes)


def test_audit_report_tells_a_run_and_writes_a_private_printable_page(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    started = json.loads(ok(cli("run", f"{FLOWS}:approval", "-i", '{"name": "a"}', "--db", db,
                                "--json")).stdout)  # fmt: skip
    page = tmp_path / "report.html"
    told = ok(cli("audit", "report", started["id"], "--html", str(page), "--db", db))
    assert f"Report on run {started['id']}" in told.stdout
    assert "The run of approval started by local:" in told.stdout
    assert "The audit chain verifies from its start" in told.stdout
    assert "<h2>What happened, in order</h2>" in page.read_text()
    assert page.stat().st_mode & 0o777 == 0o600
    kinds = [e.kind for e in _trail(Path(db))]
    assert kinds[-1] == "data.read"
    unknown = cli("audit", "report", "nope", "--db", db)
    assert unknown.exit_code == ExitCode.NOT_FOUND, unknown.stderr
    assert "no run with id 'nope'" in unknown.stderr
