"""Egress control: where outbound calls may go, and a record of every one (issue #5).

All outbound HTTP goes through the one client that ``batonflow._net.make_client`` builds; the
:class:`EgressTransport` here is a layer of that client, so a call from a model provider, a DSL
``call: http`` or a catalog function is checked the same way. For every request it:

1. names the workflow and step making it (``batonflow.core.current_step()``, or the
   :func:`egress_scope` that the DSL runtime opens for a document's run);
2. refuses a host that is on neither the global allow-list nor that workflow's own list;
3. holds a call to a disabled connector (``batonflow connector disable``): it raises
   :class:`~batonflow.errors.ConnectorDisabled`, and the kernel parks the run and tries the step
   again later without using up an attempt;
4. resolves the host and refuses it if ANY of its addresses is private, loopback, link-local,
   shared (CGNAT), multicast, reserved or unspecified (IPv4 and IPv6, IPv4 embedded in IPv6,
   the cloud metadata address), unless that host is allow-listed by its exact name or the
   address by an IP or network entry: a templated URL cannot reach inside the firm (SSRF);
5. records the call (``egress.call``: host, method, path without query and with personal
   data redacted (sealed too for a run with data subjects), status, bytes out and
   in as actually transferred, milliseconds, workflow, step) or the refusal (``egress.denied``
   with the reason) on the current step's audit trail. Headers and bodies are never recorded.

DNS rebinding: a plain ``http://`` request is pinned to the address that was checked (the URL's
host is replaced by that address; the ``Host`` header keeps the name), so a second, different
answer from DNS cannot send it elsewhere. ``https://`` requests are not rewritten: the TLS
handshake must prove the name (certificate verification is on in ``make_client``), and a
rebinding to an internal service fails there, since that service holds no certificate for the
attacker's name. Limits: with certificate verification turned off, an ``https://`` host whose
DNS answer changes between the check and the connection (normally a few milliseconds, served
from the resolver's cache) is not pinned; a pinned request uses the first checked address only
(no fallback to the host's other addresses).

Redirects are not followed unless a request asks; when one does, httpx sends every hop through
this transport again, so each hop is checked and recorded like the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote

import httpx

from batonflow._net import TransportLayer
from batonflow.core import audit, current_step
from batonflow.errors import ConfigError, ConnectorDisabled, EgressDenied
from batonflow.governance._redaction import detect

if TYPE_CHECKING:
    from batonflow.governance._connectors import ConnectorMap, ConnectorSwitches

__all__ = [
    "Address",
    "EgressPolicy",
    "EgressScope",
    "EgressTransport",
    "HostPattern",
    "Resolver",
    "egress_scope",
    "parse_hosts",
    "restricted",
    "system_resolver",
]

from batonflow.governance._egress_hosts import (
    _DEFAULT_PORTS,
    Address,
    HostPattern,
    Resolver,
    _address,
    _unmapped,
    normal_host,
    parse_hosts,
    restricted,
    system_resolver,
)

# -- the policy -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The global allow-list, the per-workflow lists, and whether private addresses are
    blocked. Immutable: :meth:`with_workflow` and :meth:`allowing` return new policies.

    ``source`` says where the global list is configured (for the hint in refusals)."""

    allow: tuple[HostPattern, ...] = ()
    block_private: bool = True
    workflows: Mapping[str, tuple[HostPattern, ...]] = field(default_factory=dict)
    source: str = "[governance.egress] allow"
    #: Hosts the operator configured as services (the model providers): reachable from a
    #: workflow whose own list does not name them (a document narrows the general list).
    services: tuple[HostPattern, ...] = ()

    @classmethod
    def parse(cls, table: Any, where: str = "governance.egress") -> EgressPolicy:
        """From the ``[governance.egress]`` TOML table::

            [governance.egress]
            allow = ["api.openai.com", "*.anthropic.com", "crm.internal", "10.1.2.0/24"]
            block_private = true     # the default

        Without the table (``None``), any public host may be reached (``allow = ["*"]``) and
        private addresses may not: zero configuration still blocks SSRF and records every
        call. A table must say ``allow`` (``[]``: nothing but the workflows' own lists).
        ``where`` prefixes every error (say ``"batonflow.toml: governance.egress"``)."""
        source = f"{where}.allow"
        if table is None:
            return cls((HostPattern.parse("*", source),), True, {}, source)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        for key in table:
            if key not in ("allow", "block_private"):
                raise ConfigError(f"{where}.{key}: unknown key (expected allow, block_private)")
        if "allow" not in table:
            raise ConfigError(
                f"{source}: missing; list the hosts outbound calls may reach, such as"
                ' ["api.openai.com"] (["*"]: any public host)'
            )
        block = table.get("block_private", True)
        if not isinstance(block, bool):
            raise ConfigError(f"{where}.block_private: expected true or false, got {block!r}")
        return cls(parse_hosts(table["allow"], source), block, {}, source)

    def with_workflow(
        self, workflow: str, hosts: Iterable[str | HostPattern], where: str | None = None
    ) -> EgressPolicy:
        """This policy plus ``hosts`` for runs of ``workflow`` (added to any it had)."""
        if not isinstance(workflow, str) or not workflow:
            raise ConfigError("egress: a workflow's allow-list needs the workflow's name")
        extra = _patterns(hosts, where or f"workflow {workflow!r}: egress", workflow=True)
        workflows = dict(self.workflows)
        workflows[workflow] = workflows.get(workflow, ()) + extra
        return replace(self, workflows=workflows)

    def allowing(self, hosts: Iterable[str | HostPattern], where: str = "egress") -> EgressPolicy:
        """This policy plus ``hosts`` on the global list as the operator's services (say,
        the configured providers' base URL hosts): a workflow's own list does not cut them."""
        added = _patterns(hosts, where)
        return replace(self, allow=self.allow + added, services=self.services + added)

    def patterns(self, workflow: str | None) -> list[HostPattern]:
        """The operator's entries that apply to a call made by ``workflow`` (None: outside any
        workflow): the global list and the operator's list for that workflow. A document's
        own list (:func:`egress_scope`) is not among them: it only narrows these."""
        own = self.workflows.get(workflow, ()) if workflow else ()
        return [*self.allow, *own]

    def wider_than(
        self, hosts: Iterable[str | HostPattern], workflow: str | None = None
    ) -> list[str]:
        """The entries of a document's egress list the operator's policy does not grant
        (``dataflow`` flags them; at run time they reach nothing): hosts no operator entry
        names, networks wider than the operator's, and private, loopback, link-local or
        metadata addresses the operator has not opened."""
        operator = self.patterns(workflow)
        wider = []
        for entry in _patterns(hosts, "egress", workflow=False):
            if not _granted(entry, operator, self.block_private):
                wider.append(entry.text)
        return wider

    def layer(
        self,
        *,
        switches: ConnectorSwitches | None = None,
        connectors: ConnectorMap | None = None,
        resolver: Resolver | None = None,
        pin: bool = True,
    ) -> TransportLayer:
        """The transport layer enforcing this policy, for ``make_client(layers=[...])``."""

        def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
            return EgressTransport(
                inner, self, switches=switches, connectors=connectors, resolver=resolver, pin=pin
            )

        return wrap


def _patterns(
    hosts: Iterable[str | HostPattern], where: str, *, workflow: bool = False
) -> tuple[HostPattern, ...]:
    if isinstance(hosts, str):
        raise ConfigError(f"{where}: expected a list of hosts, got the string {hosts!r}")
    patterns = tuple(
        h if isinstance(h, HostPattern) else HostPattern.parse(h, f"{where}[{i}]")
        for i, h in enumerate(hosts)
    )
    if workflow and any(p.kind == "any" for p in patterns):
        # a workflow file must not switch the global list off; the operator's config may
        raise ConfigError(
            f"{where}: a workflow's own list cannot allow every host ('*'); list its hosts, or"
            " put '*' in the global [governance.egress] allow"
        )
    return patterns


def _granted(entry: HostPattern, operator: Sequence[HostPattern], block_private: bool) -> bool:
    """Does the operator's list grant all of what ``entry`` asks for?"""
    if entry.kind == "any":
        return any(p.kind == "any" for p in operator)
    if entry.kind == "network":
        assert entry.network is not None
        net = entry.network
        if block_private and (restricted(net.network_address) or restricted(net.broadcast_address)
                              or net.prefixlen == 0):  # fmt: skip
            return any(
                p.kind == "network" and p.network is not None
                and p.network.version == net.version and net.subnet_of(p.network)  # type: ignore[arg-type]
                for p in operator
            )  # fmt: skip
        return any(
            p.kind == "any"
            or (p.kind == "network" and p.network is not None
                and p.network.version == net.version and net.subnet_of(p.network))  # type: ignore[arg-type]
            for p in operator
        )  # fmt: skip
    if entry.kind == "suffix":
        return any(
            p.kind == "any" or (p.kind == "suffix" and entry.name.endswith(p.name))
            for p in operator
        )
    if entry.name in _LOCAL_NAMES and block_private:
        return any(p.names_exactly(entry.name, entry.port or 0) or
                   (p.kind == "host" and p.name == entry.name) for p in operator)  # fmt: skip
    return any(p.names(entry.name, entry.port or 0, None) or
               (p.kind == "host" and p.name == entry.name) for p in operator)  # fmt: skip


#: Names that always mean this machine (refused by resolution too; flagged statically).
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


# -- which workflow is calling ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressScope:
    """The workflow a call belongs to when the kernel's workflow name does not say (a DSL run
    is a run of the one interpreter workflow), with that workflow's own allow-list."""

    workflow: str
    hosts: tuple[HostPattern, ...] = ()


_scope: contextvars.ContextVar[EgressScope | None] = contextvars.ContextVar(
    "batonflow_egress_scope", default=None
)


@contextlib.contextmanager
def egress_scope(
    workflow: str, hosts: Iterable[str | HostPattern] = (), where: str | None = None
) -> Iterator[EgressScope]:
    """Within the block (and the tasks and steps it starts), outbound calls belong to
    ``workflow`` and may also reach ``hosts``. The DSL runtime wraps a document's run in it,
    with the document's ``metadata.batonflow.egress``."""
    where = where or f"workflow {workflow!r}: egress"
    scope = EgressScope(workflow, _patterns(hosts, where, workflow=True))
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


@dataclass(frozen=True, slots=True)
class _Caller:
    workflow: str | None
    step: str | None
    extra: tuple[HostPattern, ...]

    @classmethod
    def now(cls) -> _Caller:
        try:
            info = current_step()
        except ConfigError:
            step, workflow = None, None
        else:
            step, workflow = info.name, info.workflow or None
        scope = _scope.get()
        if scope is not None:
            return cls(scope.workflow, step, scope.hosts)
        return cls(workflow, step, ())

    def describe(self) -> str:
        if self.step is None:
            return f"workflow {self.workflow!r}" if self.workflow else "outside any workflow step"
        return f"workflow {self.workflow!r}, step {self.step!r}"


# -- the transport --------------------------------------------------------------------------


class EgressTransport(httpx.AsyncBaseTransport):
    """Checks, holds, pins and records every request before ``inner`` sends it (see the
    module docstring). Build it with :meth:`EgressPolicy.layer`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: EgressPolicy,
        *,
        switches: ConnectorSwitches | None = None,
        connectors: ConnectorMap | None = None,
        resolver: Resolver | None = None,
        pin: bool = True,
    ) -> None:
        self._inner = inner
        self.policy = policy
        self._switches = switches
        self._connectors = connectors
        self._resolve = resolver or system_resolver
        self._pin = pin

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request, _Caller.now())
        patterns = self.policy.patterns(call.caller.workflow)
        if call.scheme not in _DEFAULT_PORTS:
            self._deny(call, f"scheme {call.scheme!r} is not allowed (only http and https)", "")
        if not any(p.names(call.host, call.port, call.literal) for p in patterns):
            self._deny(
                call,
                f"host {call.host!r} is not on the egress allow-list",
                self._listing_hint(call),
            )
        document = call.caller.extra
        if document and not any(
            p.names(call.host, call.port, call.literal) for p in (*document, *self.policy.services)
        ):
            self._deny(
                call,
                f"host {call.host!r} is not on the workflow's own egress list",
                "a workflow's list narrows the operator's; add the host to the document's"
                " metadata.batonflow.egress",
            )
        addresses = (
            [call.literal] if call.literal is not None else await self._addresses(call, request)
        )
        await self._check_connector(call, addresses)
        if self.policy.block_private:
            self._check_addresses(call, addresses, patterns)
        return await self._send(call, request, addresses[0])

    # -- checks -------------------------------------------------------------------------------
    async def _check_connector(self, call: _Call, addresses: Sequence[Address]) -> None:
        """Hold a call to a disabled connector, named by its host or reached at any address
        of it (an IP literal, another spelling, another name resolving to it)."""
        if self._switches is None:
            return
        name = (
            self._connectors.name_for(call.host, call.port, call.literal)
            if self._connectors is not None
            else call.host
        )
        if not await self._switches.is_enabled(name):
            raise ConnectorDisabled(name, self._switches.retry_after)
        mine = {_unmapped(a) for a in addresses}
        for disabled in await self._switches.disabled():
            if await self._reaches(disabled, mine, call.port):
                raise ConnectorDisabled(disabled, self._switches.retry_after)

    async def _reaches(self, connector: str, addresses: set[Address], port: int) -> bool:
        """Is any of ``addresses`` an address of ``connector`` (its configured hosts, or the
        connector's own name when it is a host or an address)?"""
        patterns = self._connectors.patterns_of(connector) if self._connectors else ()
        if not patterns:
            try:
                patterns = (HostPattern.parse(connector, "connector"),)
            except ConfigError:
                return False
        for pattern in patterns:
            if pattern.kind == "network" and any(pattern.covers(a, port) for a in addresses):
                return True
            if pattern.kind == "host" and pattern._port_ok(port):
                try:
                    found = await self._resolve(pattern.name, port)
                except OSError:
                    continue
                theirs = {_unmapped(a) for a in (_address(t.split("%")[0]) for t in found) if a}
                if theirs & addresses:
                    return True
        return False

    async def _addresses(self, call: _Call, request: httpx.Request) -> list[Address]:
        try:
            found = await self._resolve(call.host, call.port)
        except OSError as exc:
            call.record(status=None, error="ResolveError")
            raise httpx.ConnectError(
                f"cannot resolve host {call.host!r}: {exc.strerror or exc}", request=request
            ) from None
        addresses = [a for a in (_address(text.split("%")[0]) for text in found) if a]
        if not addresses:
            call.record(status=None, error="ResolveError")
            raise httpx.ConnectError(f"host {call.host!r} has no address", request=request)
        return addresses

    def _check_addresses(
        self, call: _Call, addresses: Sequence[Address], patterns: Sequence[HostPattern]
    ) -> None:
        if any(p.names_exactly(call.host, call.port) for p in patterns):
            return  # listed by its exact name: a service the firm runs
        for address in addresses:
            why = restricted(address)
            if why is None or any(p.covers(address, call.port) for p in patterns):
                continue
            subject = (
                f"{address} is {why}"
                if call.literal is not None
                else f"host {call.host!r} resolves to {address}, {why}"
            )
            self._deny(call, subject, self._private_hint(call, address))

    def _deny(self, call: _Call, reason: str, hint: str) -> NoReturn:
        data = {**call.facts(), "reason": reason}
        call.audit_now("egress.denied", data)
        message = f"egress denied: {reason} ({call.caller.describe()})"
        raise EgressDenied(f"{message}; {hint}" if hint else message)

    def _listing_hint(self, call: _Call) -> str:
        entry = call.host if call.literal is None or call.literal.version == 4 else f"[{call.host}]"
        return f"to allow it, add {entry!r} to {self.policy.source}"

    def _private_hint(self, call: _Call, address: Address) -> str:
        target = f"the host by its exact name ({call.host!r}) or " if call.literal is None else ""
        return (
            "private, loopback and link-local addresses are blocked; if this is a service you "
            f"run, allow-list {target}the address ({str(address)!r}) or its network in "
            f"{self.policy.source}"
        )

    # -- sending and recording ------------------------------------------------------------------
    async def _send(self, call: _Call, request: httpx.Request, address: Address) -> httpx.Response:
        call.address = str(address)
        body = (
            _CountingRequest(request.stream)
            if isinstance(request.stream, httpx.AsyncByteStream)
            else None
        )
        url = request.url
        if self._pin and call.scheme == "http" and call.literal is None:
            url = url.copy_with(host=str(address))  # the Host header keeps the name
        outgoing = httpx.Request(
            request.method,
            url,
            headers=request.headers,
            stream=body if body is not None else request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._inner.handle_async_request(outgoing)
        except BaseException as exc:
            call.record(
                status=None, bytes_out=body.count if body else None, error=type(exc).__name__
            )
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream), "an async transport's response"

        def finished(received: int, error: str | None) -> None:
            call.record(
                status=response.status_code,
                bytes_out=body.count if body else None,
                bytes_in=received,
                error=error,
            )

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CountingResponse(stream, finished),
            extensions=response.extensions,
        )


class _Call:
    """One request's facts for the trail (no headers, no body, no query string)."""

    def __init__(self, request: httpx.Request, caller: _Caller) -> None:
        self.caller = caller
        self.scheme = request.url.scheme
        self.host = normal_host(request.url)
        self.port = request.url.port or _DEFAULT_PORTS.get(self.scheme, 0)
        self.method = request.method
        self.path = safe_path(request.url.path)
        self.literal = _address(self.host)
        self.address: str | None = None
        self.started = time.perf_counter()
        # the context of the step making the call: the entry lands on its trail even if the
        # body is read (and the response closed) from another task
        self._context = contextvars.copy_context()
        self._recorded = False

    def facts(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "method": self.method,
            "path": self.path,
            "workflow": self.caller.workflow,
            "step": self.caller.step,
        }

    def audit_now(self, kind: str, data: Mapping[str, Any]) -> None:
        self._context.run(audit, kind, data)

    def record(
        self,
        *,
        status: int | None,
        bytes_out: int | None = None,
        bytes_in: int | None = None,
        error: str | None = None,
    ) -> None:
        if self._recorded:
            return
        self._recorded = True
        data: dict[str, Any] = {
            **self.facts(),
            "address": self.address,
            "status": status,
            "bytes_out": bytes_out or 0,
            "bytes_in": bytes_in or 0,
            "ms": round((time.perf_counter() - self.started) * 1000, 3),
        }
        if error is not None:
            data["error"] = error
        self.audit_now("egress.call", data)


def safe_path(path: str) -> str:
    """A URL path as recorded: decoded, with personal data found by the redaction detectors
    replaced (``/contacts/jane@example.com`` -> ``/contacts/[email]``). For a run with data
    subjects the path is sealed as well (``SealedStore``); ``$secrets`` values are masked
    where it is stored."""
    text = unquote(path)
    findings = detect(text)
    if not findings:
        return text
    parts: list[str] = []
    pos = 0
    for start, end, kind in findings:
        parts += (text[pos:start], f"[{kind}]")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


class _CountingRequest(httpx.AsyncByteStream):
    """The request body as sent, counted."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner
        self.count = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self.count += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CountingResponse(httpx.AsyncByteStream):
    """The response body as read, counted; reports once, when closed."""

    def __init__(
        self, inner: httpx.AsyncByteStream, finished: Callable[[int, str | None], None]
    ) -> None:
        self._inner = inner
        self._finished = finished
        self._count = 0
        self._error: str | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._count += len(chunk)
                yield chunk
        except (Exception, asyncio.CancelledError) as exc:
            self._error = type(exc).__name__
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finished(self._count, self._error)
