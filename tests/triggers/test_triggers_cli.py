"""`batonflow triggers`: listing, pause, resume, trigger-now, backfill from the command line, and
`batonflow triggers run` hosting schedules in a real process that is SIGKILLed and restarted:
every tick gets exactly one run, none twice, none lost."""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import app

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent / "batonflow"

CONFIG = """
[triggers.schedules.nightly]
workflow = "trigger_flows:report"
cron = "30 1 * * *"
zone = "Europe/London"
overlap = "skip"
catchup_window = "PT6H"

[triggers.schedules.pulse]
workflow = "trigger_flows:report"
every = 1
overlap = "allow_all"
input = {source = "pulse"}
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    config = tmp_path / "batonflow.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("BATONFLOW_CONFIG", str(config))
    monkeypatch.setenv("BATONFLOW_DB", str(tmp_path / "runs.db"))
    monkeypatch.syspath_prepend(str(HERE))
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def listing() -> dict[str, dict[str, object]]:
    result = cli("triggers", "list", "--json")
    assert result.exit_code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_list_pause_resume_and_requests(env: dict[str, str], tmp_path: Path) -> None:
    states = listing()
    assert states["nightly"]["state"] == "active"
    assert states["nightly"]["when"] == "cron '30 1 * * *' (Europe/London)"
    assert len(states["nightly"]["next"]) == 3
    assert states["pulse"]["overlap"] == "allow_all"
    assert cli("triggers", "pause", "nightly", "--reason", "year end").exit_code == 0
    assert listing()["nightly"]["state"] == "paused"
    assert "was paused already" in cli("triggers", "pause", "nightly").output
    assert cli("triggers", "resume", "nightly").exit_code == 0
    assert listing()["nightly"]["state"] == "active"
    assert cli("triggers", "trigger-now", "pulse").exit_code == 0
    result = cli("triggers", "backfill", "nightly", "--start", "2026-03-28", "--end",
                 "2026-03-30T00:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "nighty"), "no trigger named 'nighty' (known: nightly, pulse)"),
        (("trigger-now", "nighty"), "no schedule named 'nighty' (known: nightly, pulse)"),
        (("trigger-now", "pulse", "--overlap", "queue"), "--overlap 'queue': expected one of"),
        (("backfill", "nightly", "--start", "yesterday", "--end", "2026-01-01"),
         "--start 'yesterday': expected an ISO 8601 instant"),
        (("backfill", "nightly", "--start", "2026-02-01", "--end", "2026-01-01"),
         "is before the start"),
    ],
)  # fmt: skip
def test_mistakes_are_explained(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    cli("triggers", "list")  # creates the database
    result = cli("triggers", *args)
    assert result.exit_code != 0
    assert message in " ".join(result.output.split())


def test_a_bad_configuration_names_the_table(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "batonflow.toml").write_text(
        '[triggers.schedules.x]\nworkflow = "trigger_flows:report"\ncron = "61 * * * *"\n'
    )
    result = cli("triggers", "list")
    assert result.exit_code != 0
    assert "[triggers.schedules.x]" in result.output
    assert "cron '61 * * * *'" in result.output


def host(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN), "triggers", "run", "--poll", "0.2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def pulses() -> list[bf.RunRecord]:
    import asyncio

    async def read() -> list[bf.RunRecord]:
        store = bf.SQLiteStore(os.environ["BATONFLOW_DB"])
        await store.open()
        try:
            return await store.list_runs(workflow="report", limit=10_000)
        finally:
            await store.close()

    return [r for r in asyncio.run(read()) if json.loads(r.input_json).get("source") == "pulse"]


def wait_for_pulses(count: int) -> list[bf.RunRecord]:
    for _ in range(600):  # 30 s at most
        runs = pulses()
        if len(runs) >= count:
            return runs
        time.sleep(0.05)  # another process's progress, in real time
    raise AssertionError(f"fewer than {count} runs after 30 s")


@pytest.mark.long
def test_every_tick_runs_once_across_kills(env: dict[str, str]) -> None:
    cli("triggers", "list")
    seen = 0
    for round in range(3):
        process = host(env)
        try:
            seen = len(wait_for_pulses(seen + 2))
        finally:
            if round < 2:
                process.send_signal(signal.SIGKILL)
            else:
                process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        if round == 2:
            assert process.returncode == 0, err.decode()
        time.sleep(1.2)  # down for at least one tick: it must be caught up
    runs = pulses()
    ticks = sorted(json.loads(r.input_json)["scheduled_at"] for r in runs)
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    seconds = [calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) for t in ticks]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "a tick was lost"
    assert not [r for r in runs if r.status is bf.RunStatus.FAULTED]


def test_the_worker_hosts_triggers_when_asked(env: dict[str, str]) -> None:
    cli("triggers", "list")
    process = subprocess.Popen([str(BIN), "worker", "--triggers", "--poll", "0.2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_pulses(2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()


def test_serve_hosts_the_triggers(env: dict[str, str], tmp_path: Path) -> None:
    """`batonflow serve` runs the configured schedules beside its workers and its API."""
    process = subprocess.Popen([str(BIN), "serve", "--port", "0"], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_pulses(2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()


def test_webhooks_are_listed_flagged_when_unsigned_and_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "batonflow.toml"
    config.write_text(
        '[triggers.webhooks.crm]\nworkflow = "trigger_flows:report"\nsecret_env = "CRM_SECRET"\n'
        '[triggers.webhooks.legacy]\nworkflow = "trigger_flows:report"\nsignature = "none"\n'
    )
    monkeypatch.setenv("BATONFLOW_CONFIG", str(config))
    monkeypatch.setenv("BATONFLOW_DB", str(tmp_path / "runs.db"))
    monkeypatch.syspath_prepend(str(HERE))
    states = listing()
    assert states["crm"]["when"] == "POST /hooks/crm"
    assert states["legacy"]["when"] == "POST /hooks/legacy (UNSIGNED)"
    assert (states["crm"]["state"], states["crm"]["failures"]) == ("active", 0)
    assert cli("triggers", "pause", "crm").exit_code == 0
    assert listing()["crm"]["state"] == "paused"
    table = cli("triggers", "list")
    assert "FAILURES" in table.stdout
    assert "(UNSIGNED)" in table.stdout
    assert cli("triggers", "resume", "crm").exit_code == 0
    assert listing()["crm"]["state"] == "active"


def test_a_deployed_documents_schedule_is_listed_and_can_be_paused(
    env: dict[str, str], tmp_path: Path
) -> None:
    from batonflow.dsl import load_document
    from batonflow.server._catalog import DOCUMENT_KIND
    from triggers.test_schedule_on import DOCUMENT

    async def deploy() -> None:  # as POST /api/v1/workflows stores them, two versions
        store = bf.open_store(str(tmp_path / "runs.db"))
        await store.open()
        try:
            for version, kind in (("1.0.0", "client.returned"), ("1.2.0", "client.back")):
                text = DOCUMENT.replace("'1.0.0'", f"'{version}'")
                document = load_document("w.yaml", text=text.replace("client.returned", kind)).raw
                await store.add_record(DOCUMENT_KIND, f"office/welcome@{version}",
                                       json.dumps(document), time.time())  # fmt: skip
        finally:
            await store.close()

    asyncio.run(deploy())
    welcome = listing()["office/welcome"]
    assert welcome["when"] == "on client.new, client.back"  # the latest version
    assert cli("triggers", "pause", "office/welcome").exit_code == 0
    assert listing()["office/welcome"]["state"] == "paused"
