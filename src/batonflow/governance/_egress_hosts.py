"""Hosts and addresses as the egress policy compares them: one canonical spelling per
address, what is private, and allow-list entries (``HostPattern``)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from batonflow._net import canonical_ipv4, normal_url
from batonflow.errors import ConfigError

__all__ = [
    "Address",
    "HostPattern",
    "Network",
    "Resolver",
    "canonical_address",
    "normal_host",
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


def _unmapped(address: Address) -> Address:
    """An IPv4 address carried as IPv6 (``::ffff:a.b.c.d``) as the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
        url = httpx.URL(normal_url(f"http://{entry}/"))
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
    """A URL's host as the allow-list compares it: ASCII (IDNA), lower case, no final dot, and
    an address in its one canonical spelling: every form the C library's ``inet_aton``
    accepts (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``) is the dotted quad it
    stands for, an IPv6 literal is compressed (``0:0::ffff:7f00:1`` -> ``::ffff:7f00:1``) and
    loses its zone. So an allow-list, a block and a kill switch see one name per address."""
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    return canonical_address(host) or host


def canonical_address(host: str) -> str | None:
    """The canonical text of ``host`` when it is an IP address in any spelling, else None."""
    if ":" in host:
        literal = _address(host.split("%")[0].strip("[]"))
        return None if literal is None else str(literal)
    return canonical_ipv4(host)


def parse_hosts(hosts: Any, where: str) -> tuple[HostPattern, ...]:
    """A list of allow-list entries (from TOML or a document's metadata), or a ConfigError
    naming ``where`` and the offending item."""
    if isinstance(hosts, str) or not isinstance(hosts, Sequence):
        raise ConfigError(
            f'{where}: expected a list of hosts, such as ["api.example.com"], '
            f"got {type(hosts).__name__}"
        )
    return tuple(HostPattern.parse(item, f"{where}[{i}]") for i, item in enumerate(hosts))
