"""Connector kill switches: a disabled connector makes runs wait (not fail, not skip) until it is
enabled again; switches are governance records with audit entries; the `connector` commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow._net import make_client
from batonflow.cli._connectors import connector_app
from batonflow.cli._exit_codes import ExitCode
from batonflow.dsl._runtime import DslRuntime
from batonflow.governance._connectors import ConnectorMap, ConnectorSwitches
from batonflow.governance._egress import EgressPolicy
from batonflow.store import SQLiteStore
from batonflow.testing import FakeClock
from dsl.servers import LoopbackServer, Request, Response


async def loopback_resolver(host: str, port: int) -> list[str]:
    """crm.example.test has no DNS: it reaches the loopback server only through the egress
    layer's pinned address."""
    if host == "crm.example.test":
        return ["127.0.0.1"]
    raise OSError(8, "not known")


# -- which connector a host belongs to --------------------------------------------------------


def test_hosts_map_to_connectors_and_default_to_themselves() -> None:
    table = {"crm": ["crm.example.test", "*.crm.example.test"], "wide": ["*.example.test"]}
    connectors = ConnectorMap.parse(table, "bf.toml: governance.connectors").with_connector(
        "OpenAI", ["api.openai.com"]
    )
    assert connectors.names() == ["crm", "wide", "openai"]
    assert connectors.name_for("crm.example.test", 443) == "crm"
    assert connectors.name_for("eu.crm.example.test", 443) == "crm"
    assert connectors.name_for("other.example.test", 443) == "wide"
    assert connectors.name_for("api.openai.com", 443) == "openai"
    assert connectors.name_for("api.example.com", 443) == "api.example.com"
    # an exact entry wins over a wildcard listed before it
    both = ConnectorMap.parse({"all": ["*.example.test"], "crm": ["crm.example.test"]})
    assert both.name_for("crm.example.test", 80) == "crm"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([], "bf.toml: governance.connectors: expected a table"),
        ({"crm": "crm.example.test"}, "governance.connectors.crm: expected a list of hosts"),
        ({"crm": ["https://crm.example.test"]}, "governance.connectors.crm[0]: "),
        ({"crm": ["*"]}, "'*' would make 'crm' every host"),
        ({"bad name": ["crm.example.test"]}, "'bad name' is not a connector name"),
    ],
)
def test_bad_connector_tables_are_refused(table: Any, message: str) -> None:
    with pytest.raises(bf.ConfigError) as caught:
        ConnectorMap.parse(table, "bf.toml: governance.connectors")
    assert message in str(caught.value)


# -- the switches ---------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "runs.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_switching_is_recorded_with_its_audit_entry(
    store: SQLiteStore, clock: FakeClock
) -> None:
    switches = ConnectorSwitches(store, clock)
    assert await switches.list() == []
    state, changed = await switches.disable("CRM", "alice", "vendor outage INC-42")
    assert changed
    assert (state.name, state.enabled, state.actor) == ("crm", False, "alice")
    assert (state.reason, state.changed_at) == ("vendor outage INC-42", clock.now())
    again, changed = await switches.disable("crm", "bob", "another reason")
    assert not changed
    assert (again.actor, again.reason) == ("alice", "vendor outage INC-42")
    assert not await switches.is_enabled("crm")
    assert [s.to_dict() for s in await switches.list()] == [state.to_dict()]

    await clock.advance(60)
    state, changed = await switches.enable("crm", "bob")
    assert changed
    assert (state.enabled, state.actor, state.reason) == (True, "bob", None)
    assert await switches.is_enabled("crm")
    _, changed = await switches.enable("crm", "bob")
    assert not changed

    trail = [(r.kind, r.actor, json.loads(r.data_json)) for r in await store.read_audit()]
    assert trail == [
        ("connector.disabled", "alice", {"connector": "crm", "reason": "vendor outage INC-42"}),
        ("connector.enabled", "bob", {"connector": "crm"}),
    ]


@pytest.mark.parametrize(
    ("name", "actor", "message"),
    [
        ("", "alice", "'' is not a connector name"),
        ("crm/prod", "alice", "'crm/prod' is not a connector name"),
        ("crm", " ", "an actor is required"),
    ],
)
async def test_bad_switch_requests_are_refused(
    store: SQLiteStore, name: str, actor: str, message: str
) -> None:
    with pytest.raises(bf.ConfigError, match=message):
        await ConnectorSwitches(store).disable(name, actor)


async def test_the_hot_path_reads_the_store_at_most_once_per_ttl(
    store: SQLiteStore, clock: FakeClock
) -> None:
    engine_side = ConnectorSwitches(store, clock, ttl=5)
    operator = ConnectorSwitches(store, clock)  # another process: the command line
    assert await engine_side.is_enabled("crm")
    await operator.disable("crm", "alice")
    await clock.advance(4.9)
    assert await engine_side.is_enabled("crm")  # still the cached snapshot
    await clock.advance(0.1)
    assert not await engine_side.is_enabled("crm")
    await operator.enable("crm", "alice")
    assert not await engine_side.is_enabled("crm")
    await clock.advance(5)
    assert await engine_side.is_enabled("crm")


# -- end to end: a disabled connector parks the run; enabling it resumes the run ---------------


def crm_app(request: Request) -> Response:
    return Response.json({"contact": "ada", "path": request.path})


@pytest.fixture
def crm() -> Iterator[LoopbackServer]:
    with LoopbackServer({"crm.example.test": crm_app}) as server:
        yield server


def crm_url(server: LoopbackServer, path: str) -> str:
    return f"http://crm.example.test:{server.base_url.rsplit(':', 1)[1]}{path}"


def egress_client(store: bf.Store, clock: FakeClock) -> httpx.AsyncClient:
    egress = EgressPolicy.parse({"allow": ["crm.example.test"]})
    connectors = ConnectorMap.parse({"crm": ["crm.example.test"]})
    switches = ConnectorSwitches(store, clock, ttl=5, retry_after=15)
    layer = egress.layer(switches=switches, connectors=connectors, resolver=loopback_resolver)
    return make_client(layers=[layer])


async def test_a_disabled_connector_makes_runs_wait_until_it_is_enabled(
    tmp_path: Path, clock: FakeClock, crm: LoopbackServer
) -> None:
    async with bf.Engine(tmp_path / "runs.db", clock=clock) as engine:
        operator = ConnectorSwitches(engine.store, clock)
        await operator.disable("crm", "alice", "vendor outage")
        client = egress_client(engine.store, clock)

        async def lookup(email: str) -> Any:
            return (await client.get(crm_url(crm, f"/contacts/{email}"))).json()

        async def flow(ctx: bf.Context, email: str) -> Any:
            return await ctx.step(
                bf.step(lookup, name="lookup", retry=bf.Retry(max_attempts=1)), email
            )

        handle = await engine.start(bf.Workflow(flow, name="enrich"), "ada@example.test")
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        [step] = await engine.store.load_steps(handle.run_id)
        assert (step.status, step.attempts, step.wake_at) == (
            bf.StepStatus.PENDING, 0, clock.now() + 15,
        )  # fmt: skip
        assert json.loads(step.error_json or "{}")["type"] == "batonflow.errors:ConnectorDisabled"
        assert crm.requests() == []

        await clock.advance(15)  # tries again, still disabled: waits again, uses no attempt
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        assert crm.requests() == []

        await operator.enable("crm", "alice")
        await clock.advance(15)
        await engine.settle()
        assert await handle.result() == {"contact": "ada", "path": "/contacts/ada@example.test"}
        assert len(crm.requests()) == 1
        [step] = await engine.store.load_steps(handle.run_id)
        assert (step.status, step.attempts) == (bf.StepStatus.COMPLETED, 1)
        calls = [r for r in await engine.store.read_audit() if r.kind == "egress.call"]
        await client.aclose()
    assert [(r.run_id, json.loads(r.data_json)["status"]) for r in calls] == [(handle.run_id, 200)]


async def test_a_dsl_http_call_waits_for_a_disabled_connector(
    tmp_path: Path, clock: FakeClock, crm: LoopbackServer
) -> None:
    document = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "crm", "version": "1.0.0"},
        "do": [{"get": {"call": "http", "with": {"method": "get", "endpoint": "${ .url }"}}}],
    }
    async with bf.Engine(tmp_path / "runs.db", clock=clock) as engine:
        operator = ConnectorSwitches(engine.store, clock)
        await operator.disable("crm", "alice")
        client = egress_client(engine.store, clock)
        runtime = DslRuntime(client=client)
        handle = await runtime.start(engine, document, {"url": crm_url(crm, "/c/1")})
        await engine.settle()
        assert await handle.status() is bf.RunStatus.WAITING
        assert crm.requests() == []
        await operator.enable("crm", "alice")
        await clock.advance(15)
        await engine.settle()
        assert (await handle.result())["path"] == "/c/1"
        await client.aclose()
    assert len(crm.requests()) == 1


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    runner = CliRunner()
    db = str(tmp_path / "runs.db")
    asyncio.run(_create(db))
    monkeypatch.delenv("BATONFLOW_CONFIG", raising=False)
    monkeypatch.delenv("BATONFLOW_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # its batonflow.toml names the connector
    (tmp_path / "batonflow.toml").write_text(
        '[governance.connectors]\ncrm = ["crm.example.test"]\n'
    )

    def invoke(*args: str) -> Result:
        return runner.invoke(connector_app, [*args, "--db", db])

    invoke.db = db  # type: ignore[attr-defined]
    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


async def _create(db: str) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()


async def read_audit(db: str) -> Sequence[bf.AuditRecord]:
    store = SQLiteStore(db)
    await store.open()
    try:
        return await store.read_audit()
    finally:
        await store.close()


async def _operators(db: str) -> dict[str, str]:
    """Identities alice and bob (operators), after an admin: their tokens."""
    from batonflow.governance._identity import create_identity, create_token, local_identity

    store = SQLiteStore(db)
    await store.open()
    try:
        admin = await create_identity(
            store, "ann", actor=local_identity(), now=1.0, roles=("admin",)
        )
        tokens = {}
        for name in ("alice", "bob", "vic"):
            roles = ("viewer",) if name == "vic" else ("operator",)
            await create_identity(store, name, actor=admin, now=1.0, roles=roles)
            tokens[name] = (await create_token(store, name, actor=admin, now=1.0)).token
        return tokens
    finally:
        await store.close()


def test_connector_commands(cli: Any) -> None:
    # while the database has no identities, the local user switches (and is recorded)
    enabled = json.loads(ok(cli("disable", "crm", "--json")).stdout)
    assert enabled["actor"].startswith("local:")
    ok(cli("enable", "crm"))
    tokens = asyncio.run(_operators(cli.db))

    result = ok(cli("disable", "crm", "--reason", "vendor outage", "--token", tokens["alice"]))
    assert result.stdout.strip() == "disabled connector 'crm' as alice (vendor outage)"
    assert "batonflow connector enable crm" in result.stderr

    result = ok(cli("disable", "crm", "--token", tokens["bob"]))
    assert "connector 'crm' is already disabled by alice at" in result.stdout
    assert "(vendor outage); nothing changed" in result.stdout

    listed = json.loads(ok(cli("list", "--json")).stdout)
    assert [(c["name"], c["enabled"], c["actor"], c["reason"]) for c in listed] == [
        ("crm", False, "alice", "vendor outage")
    ]
    table = ok(cli("list")).stdout
    assert "crm" in table
    assert "disabled" in table
    assert "vendor outage" in table

    refused = cli("enable", "crm", "--token", tokens["vic"])  # a viewer may not switch
    assert refused.exit_code == ExitCode.FORBIDDEN
    refused = cli("enable", "crm")  # identities exist: a token is needed
    assert refused.exit_code == ExitCode.FORBIDDEN
    enabled = json.loads(ok(cli("enable", "crm", "--json", "--token", tokens["bob"])).stdout)
    assert enabled["enabled"] is True
    assert enabled["changed"] is True
    assert enabled["actor"] == "bob"

    trail = [(r.kind, r.actor) for r in asyncio.run(read_audit(cli.db)) if "connector" in r.kind]
    assert trail[-2:] == [("connector.disabled", "alice"), ("connector.enabled", "bob")]


def test_connector_command_errors(cli: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(connector_app, ["list", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert "no such database file" in result.stderr
    result = cli("disable", "crm/prod")
    assert result.exit_code == 2
    assert "error: connector: 'crm/prod' is not a connector name" in result.stderr
    result = cli("disable", "cmr")  # a typo must not switch off nothing
    assert result.exit_code == 2
    assert "no connector named 'cmr' (known: crm;" in result.stderr

    assert "no connector has ever been disabled" in ok(cli("list")).stderr
    ok(cli("disable", "api.example.com"))  # a host nobody names is its own connector
