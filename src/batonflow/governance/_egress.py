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
5. records the call (``egress.call``: host, method, path without query, status, bytes out and
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
import ipaddress
import re
import socket
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import httpx

from batonflow._net import TransportLayer
from batonflow.core import audit, current_step
from batonflow.errors import ConfigError, ConnectorDisabled, EgressDenied

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

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``await resolver(host, port)`` -> the host's addresses, as text (default: the system's
#: ``getaddrinfo``, in a thread). Tests inject their own.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_WORKFLOW_HINT = "the workflow's own egress list (a document's metadata.batonflow.egress)"


# -- addresses ----------------------------------------------------------------------------------

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def restricted(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (``"a loopback address"``), or None.

    IPv4 addresses carried inside IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64) are judged by the
    IPv4 address they carry."""
    if address in _METADATA:
        return "the cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = restricted(embedded)
            return f"{inner} ({embedded} inside IPv6)" if inner else None
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (carrier-grade NAT) address"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
         "a site-local address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a non-public address"),
    )  # fmt: skip
    return next((why for hit, why in checks if hit), None)


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (``getaddrinfo`` runs in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# -- host patterns ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One allow-list entry: ``api.example.com`` (that host), ``*.example.com`` (its
    subdomains, not the domain itself), ``*`` (any public host), ``10.1.2.3`` or ``[fd00::1]``
    (an address), ``10.0.0.0/8`` (a network); host and address entries may end in ``:port``
    (only that port). Only exact host names and address or network entries admit private
    addresses; ``*`` and ``*.suffix`` never do."""

    text: str
    kind: Literal["any", "host", "suffix", "network"]
    name: str = ""  # host: the ASCII host name; suffix: ".example.com"
    network: Network | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: Any, where: str) -> HostPattern:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"{where}: expected a host name such as 'api.example.com', "
                f"'*.example.com', '10.1.2.3' or '10.0.0.0/8', got {text!r}"
            )
        entry = text.strip()
        if "://" in entry or entry.startswith("/"):
            raise ConfigError(
                f"{where}: {entry!r} is a URL; give the host only, such as "
                "'api.example.com' (optionally with ':port')"
            )
        if entry == "*":
            return cls(entry, "any")
        if "/" in entry:
            return cls(entry, "network", network=_network(entry, where))
        if entry.startswith("*."):
            name, port = _host_and_port(entry[2:], where)
            if _address(name) is not None:
                raise ConfigError(f"{where}: {entry!r}: a wildcard needs a domain name")
            return cls(entry, "suffix", name="." + name, port=port)
        if "*" in entry:
            raise ConfigError(
                f"{where}: {entry!r}: '*' may only start an entry, as in '*.example.com'"
            )
        name, port = _host_and_port(entry, where)
        address = _address(name)
        if address is not None:
            return cls(entry, "network", network=ipaddress.ip_network(address), port=port)
        return cls(entry, "host", name=name, port=port)

    def _port_ok(self, port: int) -> bool:
        return self.port is None or self.port == port

    def names(self, host: str, port: int, address: Address | None) -> bool:
        """Does the entry allow-list a request for ``host:port`` (``address``: the host when
        it is an IP literal)?"""
        if not self._port_ok(port):
            return False
        if self.kind == "any":
            return True
        if self.kind == "host":
            return host == self.name
        if self.kind == "suffix":
            return host.endswith(self.name)
        return address is not None and self.covers(address, port)

    def covers(self, address: Address, port: int) -> bool:
        """Does this address or network entry admit ``address`` (even a private one)?"""
        if self.network is None or not self._port_ok(port):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.version == self.network.version and address in self.network

    def names_exactly(self, host: str, port: int) -> bool:
        """Is ``host`` listed by its exact name (which admits its private addresses)?"""
        return self.kind == "host" and self.name == host and self._port_ok(port)


def _network(entry: str, where: str) -> Network:
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {entry!r} is not a network such as '10.0.0.0/8' or 'fd00::/8' ({exc})"
        ) from None


def _host_and_port(entry: str, where: str) -> tuple[str, int | None]:
    """The normalised (IDNA, lower-case, no trailing dot) host and the port of an entry."""
    try:
        url = httpx.URL(f"http://{entry}/")
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigError(f"{where}: {entry!r} is not a host name ({exc})") from None
    if url.path != "/" or url.query or url.userinfo or url.fragment:
        raise ConfigError(f"{where}: {entry!r}: give the host only, such as 'api.example.com'")
    host = normal_host(url)
    if not host:
        raise ConfigError(f"{where}: {entry!r}: the host name is empty")
    if _address(host) is None and not all(_LABEL.match(label) for label in host.split(".")):
        raise ConfigError(f"{where}: {entry!r} is not a valid host name")
    return host, url.port


def normal_host(url: httpx.URL) -> str:
    """A URL's host as the allow-list compares it: ASCII (IDNA), lower case, no final dot."""
    return url.raw_host.decode("ascii").lower().rstrip(".")


def parse_hosts(hosts: Any, where: str) -> tuple[HostPattern, ...]:
    """A list of allow-list entries (from TOML or a document's metadata), or a ConfigError
    naming ``where`` and the offending item."""
    if isinstance(hosts, str) or not isinstance(hosts, Sequence):
        raise ConfigError(
            f'{where}: expected a list of hosts, such as ["api.example.com"], '
            f"got {type(hosts).__name__}"
        )
    return tuple(HostPattern.parse(item, f"{where}[{i}]") for i, item in enumerate(hosts))


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
        """This policy plus ``hosts`` on the global list (say, the configured providers'
        base URL hosts)."""
        return replace(self, allow=self.allow + _patterns(hosts, where))

    def patterns(
        self, workflow: str | None, extra: Sequence[HostPattern] = ()
    ) -> list[HostPattern]:
        """The entries that apply to a call made by ``workflow`` (None: outside any workflow)."""
        own = self.workflows.get(workflow, ()) if workflow else ()
        return [*self.allow, *own, *extra]

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
        patterns = self.policy.patterns(call.caller.workflow, call.caller.extra)
        if call.scheme not in _DEFAULT_PORTS:
            self._deny(call, f"scheme {call.scheme!r} is not allowed (only http and https)", "")
        if not any(p.names(call.host, call.port, call.literal) for p in patterns):
            self._deny(
                call,
                f"host {call.host!r} is not on the egress allow-list",
                self._listing_hint(call),
            )
        await self._check_connector(call)
        addresses = (
            [call.literal] if call.literal is not None else await self._addresses(call, request)
        )
        if self.policy.block_private:
            self._check_addresses(call, addresses, patterns)
        return await self._send(call, request, addresses[0])

    # -- checks -------------------------------------------------------------------------------
    async def _check_connector(self, call: _Call) -> None:
        if self._switches is None:
            return
        name = (
            self._connectors.name_for(call.host, call.port, call.literal)
            if self._connectors is not None
            else call.host
        )
        if not await self._switches.is_enabled(name):
            raise ConnectorDisabled(name, self._switches.retry_after)

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
        where = f"add {entry!r} to {self.policy.source}"
        if call.caller.workflow:
            where += f" or to {_WORKFLOW_HINT}"
        return f"to allow it, {where}"

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
        self.path = request.url.path
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
