"""Egress control: the allow-list, the private-address block (no SSRF through a templated URL),
pinning, redirects, and the record of every call."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow._net import make_client
from batonflow.core._trail import TrailEntry, collecting
from batonflow.dsl._runtime import DslRuntime
from batonflow.errors import EgressDenied
from batonflow.governance._egress import (
    EgressPolicy,
    egress_scope,
    restricted,
)
from batonflow.testing import FakeClock
from dsl.servers import LoopbackServer, Request, Response

PUBLIC = "93.184.216.34"  # a global unicast address; no test ever connects to it


class Resolver:
    """A DNS stand-in: host -> addresses; counts lookups."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = dict(table)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(8, "nodename nor servname provided, or not known")
        return list(self.table[host])


class Network(httpx.AsyncBaseTransport):
    """The innermost transport for tests that must not touch the network: answers every
    request with its body's length, and keeps what it was asked (URL as sent, Host header)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((str(request.url), request.headers["host"]))
        return httpx.Response(200, content=b"x" * 10 + body)


def policy(*allow: str, block_private: bool = True) -> EgressPolicy:
    table = {"allow": list(allow), "block_private": block_private}
    return EgressPolicy.parse(table, "bf.toml: governance.egress")


@pytest.fixture
def network() -> Network:
    return Network()


def client_for(
    egress: EgressPolicy,
    inner: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    layer = egress.layer(resolver=resolver or Resolver({}))
    return make_client(transport=inner, layers=[layer])


def kinds(entries: Sequence[TrailEntry]) -> list[str]:
    return [e.kind for e in entries]


# -- configuration --------------------------------------------------------------------------


def test_allow_list_entries_parse() -> None:
    parsed = policy(
        "api.openai.com", "*.anthropic.com", "CRM.Internal.:8443", "10.1.2.3", "10.9.0.0/16",
        "[fd00::1]:8080", "bücher.example", "*",
    )  # fmt: skip
    summary = [
        (p.kind, p.name, str(p.network) if p.network else None, p.port) for p in parsed.allow
    ]
    assert summary == [
        ("host", "api.openai.com", None, None),
        ("suffix", ".anthropic.com", None, None),
        ("host", "crm.internal", None, 8443),
        ("network", "", "10.1.2.3/32", None),
        ("network", "", "10.9.0.0/16", None),
        ("network", "", "fd00::1/128", 8080),
        ("host", "xn--bcher-kva.example", None, None),
        ("any", "", None, None),
    ]
    assert parsed.block_private is True
    default = EgressPolicy.parse(None)  # no table: any public host, nothing private
    assert ([p.kind for p in default.allow], default.block_private) == (["any"], True)
    more = parsed.allowing(["api.mistral.ai"], "providers").with_workflow("triage", ["crm.test"])
    assert [p.text for p in more.allow][-2:] == ["*", "api.mistral.ai"]
    assert [p.text for p in more.patterns("triage")][-1] == "crm.test"
    assert [p.text for p in more.patterns("other")] == [p.text for p in more.allow]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"allow": "api.openai.com"}, "governance.egress.allow: expected a list of hosts"),
        (
            {"allow": ["https://api.openai.com/v1"]},
            "allow[0]: 'https://api.openai.com/v1' is a URL",
        ),
        ({"allow": ["ok.example", "10.1.2.3/8"]}, "allow[1]: '10.1.2.3/8' is not a network"),
        ({"allow": ["api.*.com"]}, "allow[0]: 'api.*.com': '*' may only start an entry"),
        ({"allow": ["*.10.0.0.1"]}, "allow[0]: '*.10.0.0.1': a wildcard needs a domain name"),
        ({"allow": [""]}, "allow[0]: expected a host name"),
        ({"allow": [42]}, "allow[0]: expected a host name"),
        ({"allow": ["bad_host!.example"]}, "allow[0]: 'bad_host!.example' is not"),
        ({"allow": ["api.example.com/v1"]}, "allow[0]: 'api.example.com/v1' is not a network"),
        ({"allow": ["api.example.com:http"]}, "allow[0]: 'api.example.com:http' is not a host"),
        ({"alow": []}, "governance.egress.alow: unknown key"),
        ({"block_private": False}, "governance.egress.allow: missing; list the hosts"),
        ({"allow": [], "block_private": "yes"}, "block_private: expected true or false"),
    ],
)
def test_bad_configuration_is_refused_with_where_and_what(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(bf.ConfigError) as caught:
        EgressPolicy.parse(table, "bf.toml: governance.egress")
    assert str(caught.value).startswith("bf.toml: governance.egress")
    assert message in str(caught.value)


def test_a_workflow_list_is_a_list_of_hosts_and_not_everything() -> None:
    with pytest.raises(bf.ConfigError, match=r"triage\.yaml: egress: a workflow's own list"):
        EgressPolicy().with_workflow("triage", ["crm.test", "*"], where="triage.yaml: egress")
    with pytest.raises(bf.ConfigError, match=r"cannot allow every host"), egress_scope("x", ["*"]):
        pass
    with pytest.raises(bf.ConfigError, match=r"triage\.yaml: egress: expected a list of hosts"):
        EgressPolicy().with_workflow("triage", "crm.example.test", where="triage.yaml: egress")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("fd00:ec2::254", "the cloud metadata address"),
        ("::ffff:127.0.0.1", "a loopback address (127.0.0.1 inside IPv6)"),
        ("::ffff:169.254.169.254", "the cloud metadata address (169.254.169.254 inside IPv6)"),
        ("64:ff9b::a00:1", "a private address (10.0.0.1 inside IPv6)"),
        ("2002:7f00:1::1", "a loopback address (127.0.0.1 inside IPv6)"),
        (PUBLIC, None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_restricted_addresses(address: str, why: str | None) -> None:
    assert restricted(ipaddress.ip_address(address)) == why


# -- the allow-list ---------------------------------------------------------------------------


async def test_a_listed_host_is_called_pinned_and_recorded(network: Network) -> None:
    resolver = Resolver({"api.example.test": [PUBLIC]})
    async with client_for(policy("api.example.test"), network, resolver) as client:
        with collecting() as entries:
            response = await client.post(
                "http://api.example.test/v1/items?token=s3cret", content=b"hello"
            )
    assert response.status_code == 200
    assert response.content == b"x" * 10 + b"hello"
    # pinned to the address that was checked; the Host header keeps the name
    assert network.sent == [(f"http://{PUBLIC}/v1/items?token=s3cret", "api.example.test")]
    assert kinds(entries) == ["egress.call"]
    data = dict(entries[0].data)
    assert data.pop("ms") >= 0
    assert data == {
        "host": "api.example.test", "port": 80, "method": "POST", "path": "/v1/items",
        "workflow": None, "step": None, "address": PUBLIC, "status": 200,
        "bytes_out": 5, "bytes_in": 15,
    }  # fmt: skip
    assert "s3cret" not in json.dumps(dict(entries[0].data))


async def test_https_is_checked_but_not_rewritten(network: Network) -> None:
    resolver = Resolver({"api.example.test": [PUBLIC]})
    async with client_for(policy("api.example.test"), network, resolver) as client:
        await client.get("https://api.example.test/x")
    assert network.sent == [("https://api.example.test/x", "api.example.test")]
    assert resolver.asked == ["api.example.test"]


async def test_a_host_not_on_the_list_is_refused_clearly_and_recorded(network: Network) -> None:
    resolver = Resolver({"evil.example.test": [PUBLIC]})
    async with client_for(policy("api.example.test"), network, resolver) as client:
        with collecting() as entries, pytest.raises(EgressDenied) as caught:
            await client.get("http://Evil.Example.Test/steal?key=1")
    assert str(caught.value) == (
        "egress denied: host 'evil.example.test' is not on the egress allow-list (outside any"
        " workflow step); to allow it, add 'evil.example.test' to"
        " bf.toml: governance.egress.allow"
    )
    assert network.sent == []
    assert resolver.asked == []
    assert kinds(entries) == ["egress.denied"]
    assert entries[0].data == {
        "host": "evil.example.test", "port": 80, "method": "GET", "path": "/steal",
        "workflow": None, "step": None,
        "reason": "host 'evil.example.test' is not on the egress allow-list",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("allow", "url", "allowed"),
    [
        (["*.example.test"], "http://a.b.example.test/", True),
        (["*.example.test"], "http://example.test/", False),  # the domain itself is not listed
        (["*.example.test"], "http://badexample.test/", False),
        (["api.example.test:8443"], "http://api.example.test:8443/", True),
        (["api.example.test:8443"], "http://api.example.test/", False),
        (["api.example.test"], "http://api.example.test:9999/", True),
        (["api.example.test"], "ftp://api.example.test/", False),
    ],
)
async def test_host_patterns(network: Network, allow: list[str], url: str, allowed: bool) -> None:
    resolver = Resolver({h: [PUBLIC] for h in ("a.b.example.test", "api.example.test")})
    async with client_for(policy(*allow), network, resolver) as client:
        if allowed:
            assert (await client.get(url)).status_code == 200
        else:
            with pytest.raises((EgressDenied, httpx.UnsupportedProtocol)):
                await client.get(url)


# -- private addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/admin", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address (127.0.0.1 inside"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
    ],
)
async def test_private_address_literals_are_refused_even_under_a_wildcard(
    network: Network, url: str, reason: str
) -> None:
    async with client_for(policy("*"), network) as client:
        with collecting() as entries, pytest.raises(EgressDenied) as caught:
            await client.get(url)
    assert str(caught.value).startswith(f"egress denied: {reason}")
    assert "allow-list" in str(caught.value)  # and says how to allow it
    assert network.sent == []
    assert kinds(entries) == ["egress.denied"]
    assert reason in entries[0].data["reason"]


async def test_a_name_resolving_to_any_private_address_is_refused(network: Network) -> None:
    resolver = Resolver({"rebind.example.test": [PUBLIC, "127.0.0.1"]})
    async with client_for(policy("*.example.test"), network, resolver) as client:
        with pytest.raises(EgressDenied) as caught:
            await client.get("http://rebind.example.test/")
    assert str(caught.value).startswith(
        "egress denied: host 'rebind.example.test' resolves to 127.0.0.1, a loopback address"
    )
    assert "allow-list the host by its exact name ('rebind.example.test')" in str(caught.value)
    assert network.sent == []


@pytest.mark.parametrize(
    ("allow", "url", "sent"),
    [
        (["crm.internal.test"], "http://crm.internal.test/a", "http://10.1.2.3/a"),
        (["*.internal.test", "10.1.2.0/24"], "http://crm.internal.test/a", "http://10.1.2.3/a"),
        (["10.1.2.3"], "http://10.1.2.3/a", "http://10.1.2.3/a"),
        (["10.1.2.3:8443"], "http://10.1.2.3:8443/a", "http://10.1.2.3:8443/a"),
        (["[fd00::5]"], "http://[fd00::5]/a", "http://[fd00::5]/a"),
    ],
)
async def test_a_private_service_can_be_allow_listed(
    network: Network, allow: list[str], url: str, sent: str
) -> None:
    resolver = Resolver({"crm.internal.test": ["10.1.2.3"]})
    async with client_for(policy(*allow), network, resolver) as client:
        assert (await client.get(url)).status_code == 200
    assert [u for u, _ in network.sent] == [sent]


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["*.internal.test"], "http://crm.internal.test/"),  # a wildcard never admits private
        (["*.internal.test", "10.9.0.0/16"], "http://crm.internal.test/"),
        (["10.1.2.3:8443"], "http://10.1.2.3/"),
        (["10.1.2.3"], "http://10.1.2.4/"),
    ],
)
async def test_private_addresses_need_an_explicit_entry(
    network: Network, allow: list[str], url: str
) -> None:
    resolver = Resolver({"crm.internal.test": ["10.1.2.3"]})
    async with client_for(policy(*allow), network, resolver) as client:
        with pytest.raises(EgressDenied):
            await client.get(url)
    assert network.sent == []


async def test_block_private_false_only_skips_the_address_check(network: Network) -> None:
    resolver = Resolver({"crm.internal.test": ["10.1.2.3"]})
    async with client_for(policy("*.internal.test", block_private=False), network, resolver) as c:
        assert (await c.get("http://crm.internal.test/")).status_code == 200
        with pytest.raises(EgressDenied, match="not on the egress allow-list"):
            await c.get("http://10.1.2.3/")


async def test_a_host_that_does_not_resolve_is_a_connect_error_and_recorded(
    network: Network,
) -> None:
    async with client_for(policy("*.example.test"), network, Resolver({})) as client:
        with collecting() as entries, pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await client.get("http://nowhere.example.test/")
    assert [(e.kind, e.data["error"], e.data["status"]) for e in entries] == [
        ("egress.call", "ResolveError", None)
    ]


# -- real servers: bytes, streams, redirects ----------------------------------------------------


def app(request: Request) -> Response:
    if request.path == "/to-metadata":
        return Response.redirect("http://169.254.169.254/latest/meta-data/")
    if request.path == "/to-home":
        return Response.redirect("/home?step=2")
    return Response.text("y" * 1000)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer({"127.0.0.1": app, "crm.example.test": app}) as server:
        yield server


@pytest.fixture
async def loopback(server: LoopbackServer) -> AsyncIterator[httpx.AsyncClient]:
    egress = policy("*", "127.0.0.1")  # the loopback server stands for an on-prem service
    async with make_client(layers=[egress.layer()]) as client:
        yield client


async def test_bytes_read_are_counted_from_the_stream(
    loopback: httpx.AsyncClient, server: LoopbackServer
) -> None:
    with collecting() as entries:
        async with loopback.stream("PUT", f"{server.base_url}/put", content=b"z" * 77) as r:
            chunks = [chunk async for chunk in r.aiter_raw(100)]
    assert sum(map(len, chunks)) == 1000
    assert [
        (e.kind, e.data["status"], e.data["bytes_out"], e.data["bytes_in"]) for e in entries
    ] == [("egress.call", 200, 77, 1000)]
    assert server.requests()[0].body == b"z" * 77


async def test_a_response_closed_unread_records_no_bytes_in(
    loopback: httpx.AsyncClient, server: LoopbackServer
) -> None:
    with collecting() as entries:
        async with loopback.stream("GET", f"{server.base_url}/big") as response:
            assert response.status_code == 200
    assert [(e.kind, e.data["status"], e.data["bytes_in"]) for e in entries] == [
        ("egress.call", 200, 0)
    ]


async def test_each_redirect_hop_is_checked_and_recorded(
    loopback: httpx.AsyncClient, server: LoopbackServer
) -> None:
    with collecting() as entries:
        response = await loopback.get(f"{server.base_url}/to-home", follow_redirects=True)
    assert response.status_code == 200
    hops = [(e.kind, e.data["path"], e.data["status"]) for e in entries]
    assert hops == [("egress.call", "/to-home", 302), ("egress.call", "/home", 200)]

    with collecting() as entries, pytest.raises(EgressDenied, match=r"169\.254\.169\.254 is the"):
        await loopback.get(f"{server.base_url}/to-metadata", follow_redirects=True)
    assert kinds(entries) == ["egress.call", "egress.denied"]
    assert entries[1].data["host"] == "169.254.169.254"
    assert [r.path for r in server.requests()] == ["/to-home", "/home", "/to-metadata"]


async def test_redirects_are_not_followed_unless_asked(
    loopback: httpx.AsyncClient, server: LoopbackServer
) -> None:
    response = await loopback.get(f"{server.base_url}/to-metadata")
    assert response.status_code == 302


async def test_a_name_is_pinned_to_the_checked_address(server: LoopbackServer) -> None:
    # crm.example.test has no DNS: only the pinned address can reach the loopback server
    resolver = Resolver({"crm.example.test": ["127.0.0.1"]})
    port = server.base_url.rsplit(":", 1)[1]
    egress = policy("crm.example.test")
    async with make_client(layers=[egress.layer(resolver=resolver)]) as client:
        response = await client.get(f"http://crm.example.test:{port}/hello")
    assert response.status_code == 200
    assert [(r.host, r.path) for r in server.requests()] == [("crm.example.test", "/hello")]
    assert str(response.request.url) == f"http://crm.example.test:{port}/hello"


# -- workflows ----------------------------------------------------------------------------------


async def test_each_workflow_has_its_own_list(tmp_path: Path, network: Network) -> None:
    resolver = Resolver({"crm.example.test": [PUBLIC]})
    egress = policy("api.example.test").with_workflow("triage", ["crm.example.test"])
    client = client_for(egress, network, resolver)

    async def fetch() -> int:
        with collecting() as entries:
            try:
                return (await client.get("http://crm.example.test/contacts")).status_code
            finally:
                seen.extend(entries)

    seen: list[TrailEntry] = []

    async def flow(ctx: bf.Context) -> int:
        return await ctx.step(bf.step(fetch, name="fetch", retry=bf.Retry.never()))

    triage, other = bf.Workflow(flow, name="triage"), bf.Workflow(flow, name="other")
    async with bf.Engine(tmp_path / "runs.db", clock=FakeClock()) as engine:
        assert await (await engine.start(triage)).result() == 200
        handle = await engine.start(other)
        with pytest.raises(bf.RunFailed) as caught:
            await handle.result()
    await client.aclose()
    assert caught.value.error["type"] == "batonflow.errors:EgressDenied"
    assert caught.value.error["message"].startswith(
        "egress denied: host 'crm.example.test' is not on the egress allow-list"
        " (workflow 'other', step 'fetch'); to allow it, add 'crm.example.test' to"
        " bf.toml: governance.egress.allow"
    )
    assert [(e.kind, e.data["workflow"], e.data["step"]) for e in seen] == [
        ("egress.call", "triage", "fetch"),
        ("egress.denied", "other", "fetch"),
    ]
    assert len(network.sent) == 1


async def test_an_egress_scope_names_the_workflow_and_narrows_the_operator_list(
    network: Network,
) -> None:
    resolver = Resolver({"crm.example.test": [PUBLIC], "api.example.test": [PUBLIC]})
    operator = policy("api.example.test", "crm.example.test")
    async with client_for(operator, network, resolver) as client:
        with egress_scope("support/triage", ["crm.example.test"]), collecting() as entries:
            await client.get("http://crm.example.test/")
            with pytest.raises(EgressDenied) as caught:
                await client.get("http://api.example.test/")  # the operator's, not the document's
        await client.get("http://api.example.test/")  # outside the document: the operator's list
    assert str(caught.value) == (
        "egress denied: host 'api.example.test' is not on the workflow's own egress list"
        " (workflow 'support/triage'); a workflow's list narrows the operator's; add the host"
        " to the document's metadata.batonflow.egress"
    )
    assert entries[0].data["workflow"] == "support/triage"
    assert [e.kind for e in entries] == ["egress.call", "egress.denied"]
    async with client_for(policy("api.example.test"), network, resolver) as client:
        with (
            egress_scope("support/triage", ["crm.example.test"]),
            pytest.raises(EgressDenied, match=r"not on the egress allow-list"),
        ):
            await client.get("http://crm.example.test/")  # a document cannot widen the ceiling
    scope = egress_scope("x", ["https://a.example/"])
    with pytest.raises(bf.ConfigError, match=r"workflow 'x': egress\[0\]"), scope:
        pass


# -- a DSL `call: http` with a templated URL ------------------------------------------------------


def document(url: str) -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "fetch", "version": "1.0.0"},
        "do": [
            {
                "fetch": {
                    "call": "http",
                    "with": {"method": "get", "endpoint": "${ .url }"},
                }
            }
        ],
    }


@pytest.mark.parametrize(
    ("allow", "url", "reason"),
    [
        (["*"], "http://127.0.0.1:{port}/admin", "127.0.0.1 is a loopback address"),
        (["*"], "http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254 is the cloud"),
        (["*"], "http://10.0.0.1/internal", "10.0.0.1 is a private address"),
        # spellings httpx's URL parser refused outright: the policy judges them now
        (["*"], "http://0177.0.0.1:{port}/admin", "127.0.0.1 is a loopback address"),
        (["*"], "http://127.0.0.01:{port}/admin", "127.0.0.1 is a loopback address"),
        (["*"], "http://0251.0376.0251.0376/", "169.254.169.254 is the cloud"),
        (["*"], "http://0x7f.1:{port}/admin", "127.0.0.1 is a loopback address"),
        (["*"], "http://2852039166/", "169.254.169.254 is the cloud"),
        (["api.example.test"], "http://evil.example.test/x", "host 'evil.example.test' is not on"),
    ],
)
async def test_a_templated_url_cannot_reach_what_the_policy_refuses(
    tmp_path: Path, server: LoopbackServer, allow: list[str], url: str, reason: str
) -> None:
    url = url.format(port=server.base_url.rsplit(":", 1)[1])
    client = make_client(layers=[policy(*allow).layer(resolver=Resolver({}))])
    runtime = DslRuntime(client=client)
    async with bf.Engine(tmp_path / "runs.db", workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, document(url), {"url": url})
        with pytest.raises(bf.RunFailed) as caught:
            await handle.result()
        run = await engine.store.get_run(handle.run_id)
        steps = await engine.store.load_steps(handle.run_id)
        trail = await engine.store.read_audit(run_id=handle.run_id)
    await client.aclose()
    assert run is not None
    assert run.status is bf.RunStatus.FAULTED
    assert f"egress denied: {reason}" in str(caught.value)
    failed = [json.loads(s.error_json) for s in steps if s.error_json]
    assert failed
    assert f"egress denied: {reason}" in failed[0]["message"]
    denied = [json.loads(e.data_json) for e in trail if e.kind == "egress.denied"]
    assert len(denied) == 1
    assert reason in denied[0]["reason"]
    assert denied[0]["step"] == "/do/0/fetch"
    assert server.requests() == []


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://0177.0.0.1/x", "http://127.0.0.1/x"),
        ("http://0177.0.0.1:8080/x?q=0177.0.0.1", "http://127.0.0.1:8080/x?q=0177.0.0.1"),
        ("https://user:pw@0x7f.1/", "https://user:pw@127.0.0.1/"),
        ("http://2130706433", "http://127.0.0.1"),
        ("http://0251.0376.0251.0376./", "http://169.254.169.254/"),
        ("http://127.0.0.1/", "http://127.0.0.1/"),  # already canonical
        ("http://api.example.test/0177.0.0.1", "http://api.example.test/0177.0.0.1"),
        ("http://[::ffff:127.0.0.1]/", "http://[::ffff:127.0.0.1]/"),  # IPv6: the policy's
        ("http://999.1.1.1/", "http://999.1.1.1/"),  # not an address: left to the parser
        ("http://1e3/", "http://1e3/"),  # a host name, not a number
        ("not a url", "not a url"),
    ],
)
def test_ipv4_spellings_are_normalised_before_parsing(url: str, normal: str) -> None:
    from batonflow._net import normal_url

    assert normal_url(url) == normal
