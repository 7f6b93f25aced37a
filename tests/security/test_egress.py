"""Egress the operator controls: every spelling of an address is the address; a workflow's own
list only narrows the operator's; a switched-off connector is unreachable by any address."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import batonflow as bf
from batonflow.cli._app import app
from batonflow.governance import ConnectorSwitches, egress_scope
from security.conftest import Site
from security.servers import Crm

#: 127.0.0.1 as people, parsers and attackers write it ({port} filled in).
LOOPBACK = [
    "127.0.0.1", "127.1", "0x7f.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.0.0.1.",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[::1]",
    "[0:0:0:0:0:0:0:1]", "localhost", "LocalHost.", "127.0.0.01", "0x7F.0.0.1", "0x7f.0.1",
    "017700000001", "0177.1", "0177.0.0.1.", "127.000.000.001",
]  # fmt: skip
#: The cloud metadata address, likewise.
METADATA = [
    "169.254.169.254", "169.254.169.254.", "0xa9fea9fe", "2852039166", "0251.0376.0251.0376",
    "169.254.43518", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[fd00:ec2::254]",
    "0xa9.0xfe.0xa9.0xfe", "0251.254.169.254", "169.254.0251.0376", "0xa9.16689662",
    "025177524776",
]  # fmt: skip


async def call(site: Site, url: str, *, scope: list[str] | None = None) -> BaseException | int:
    """Request ``url`` through the configured (egress-controlled) client; the status, or what
    refused it."""
    async with site.store() as store:
        client = site.setup().client(store, site.clock)
        try:
            if scope is None:
                return (await client.get(url)).status_code
            with egress_scope("firm/sneaky", scope):
                return (await client.get(url)).status_code
        except (bf.EgressDenied, bf.ConnectorDisabled, httpx.InvalidURL, httpx.ConnectError) as e:
            return e
        finally:
            await client.aclose()


@pytest.mark.parametrize("spelling", LOOPBACK + METADATA)
def test_every_spelling_of_loopback_and_metadata_is_refused(site: Site, spelling: str) -> None:
    with Crm() as crm:
        port = "" if spelling in METADATA else f":{crm.port}"
        outcome = asyncio.run(call(site, f"http://{spelling}{port}/steal"))
        assert crm.paths == []
    assert isinstance(outcome, bf.EgressDenied), outcome  # never the URL parser's InvalidURL
    message = str(outcome)
    assert message.startswith("egress denied: ")
    assert any(
        why in message
        for why in ("a loopback address", "the cloud metadata address", "resolves to")
    ), message


def test_the_operator_opens_loopback_and_the_test_can_fail(site: Site) -> None:
    site.configure({"governance": {"egress": {"allow": ["*", "127.0.0.1"]}}})
    with Crm() as crm:
        assert asyncio.run(call(site, f"{crm.url}/ok")) == 200
        assert crm.paths == ["/ok"]


WIDE = ["0.0.0.0/0", "::/0", "localhost", "127.0.0.1", "169.254.169.254", "10.0.0.0/8"]


def test_a_wide_document_list_under_a_strict_operator_reaches_nothing(site: Site) -> None:
    site.configure({"governance": {"egress": {"allow": ["api.example.test"]}}})
    with Crm() as crm:
        for host in (f"127.0.0.1:{crm.port}", f"localhost:{crm.port}", "169.254.169.254"):
            outcome = asyncio.run(call(site, f"http://{host}/", scope=WIDE))
            assert isinstance(outcome, bf.EgressDenied), (host, outcome)
            assert "is not on the egress allow-list" in str(outcome)
        assert crm.paths == []
    # even under the widest operator list, only the operator opens private addresses
    site.configure({"governance": {"egress": {"allow": ["*"]}}})
    outcome = asyncio.run(call(site, "http://127.0.0.1:9/", scope=WIDE))
    assert isinstance(outcome, bf.EgressDenied)
    assert "127.0.0.1 is a loopback address" in str(outcome)


def test_dataflow_flags_a_document_asking_for_more(tmp_path: Path) -> None:
    document = tmp_path / "sneaky.yaml"
    document.write_text(
        "document:\n  dsl: '1.0.3'\n  namespace: firm\n  name: sneaky\n  version: '1.0.0'\n"
        f"  metadata:\n    batonflow:\n      egress: {json.dumps(WIDE)}\n"
        "do:\n  - fetch:\n      call: http\n      with: {method: get, endpoint: 'http://127.0.0.1/'}\n"
    )
    config = tmp_path / "batonflow.toml"
    config.write_text('[governance.egress]\nallow = ["api.example.test"]\n')
    result = CliRunner().invoke(
        app, ["dataflow", str(document), "--config", str(config), "--format", "json"]
    )
    assert result.exit_code in (0, 1), result.output
    flags = json.loads(result.stdout)["flags"]
    wider = [f["message"] for f in flags if f["code"] == "egress-wider"]
    assert [m.split(" asks")[0] for m in wider] == [f"egress: {e!r}" for e in WIDE]
    assert any(f["code"] in ("egress-private", "egress-not-allowed") for f in flags)


async def switch_off(site: Site) -> None:
    async with site.store() as store:
        switches = ConnectorSwitches(store, site.clock)
        await switches.disable("crm", "olga", reason="the CRM leaks")


def test_a_disabled_connector_is_unreachable_by_any_address(site: Site) -> None:
    site.configure(
        {
            "governance": {
                "egress": {"allow": ["*", "localhost", "127.0.0.0/8", "[::1]"]},
                "connectors": {"crm": ["localhost"]},
            }
        }
    )
    with Crm() as crm:
        assert asyncio.run(call(site, f"http://localhost:{crm.port}/before")) == 200
        asyncio.run(switch_off(site))
        for spelling in LOOPBACK:
            if spelling in ("[::1]", "[0:0:0:0:0:0:0:1]"):
                continue  # ::1 is another address (the server listens on IPv4)
            outcome = asyncio.run(call(site, f"http://{spelling}:{crm.port}/after"))
            assert isinstance(outcome, bf.ConnectorDisabled), (spelling, outcome)
        assert crm.paths == ["/before"]


@bf.step
async def fetch(url: str) -> int:
    return int((await bf.current_step().http.get(url)).status_code)


@bf.workflow
async def scraper(ctx: bf.Context, url: str) -> Any:
    return await ctx.step(bf.step(fetch, retry=bf.Retry.never()), url)


def test_python_steps_call_out_through_the_controlled_client(site: Site) -> None:
    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with site.engine(scraper) as engine:
            handle = await engine.start(scraper, "http://169.254.169.254/latest/meta-data/")
            with pytest.raises(bf.RunFailed) as caught:
                await handle.result()
            records = await engine.store.read_audit(run_id=handle.run_id)
            return caught.value.error, [
                {"kind": r.kind, **json.loads(r.data_json)} for r in records
            ]

    error, entries = asyncio.run(go())
    assert error["type"] == "batonflow.errors:EgressDenied"
    [denied] = [e for e in entries if e["kind"] == "egress.denied"]
    assert denied["step"] == "fetch"
    assert denied["reason"] == "169.254.169.254 is the cloud metadata address"
