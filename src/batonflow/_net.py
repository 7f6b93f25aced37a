"""The one place that builds outbound HTTP clients (architecture rule 6).

Every module that talks to the network takes an injected :class:`httpx.AsyncClient`; the engine
builds that client here, once, and everything outbound goes through its transport. The transport is
the seam:

- ``transport`` replaces the real network: tests pass :class:`httpx.MockTransport` or a transport
  that routes public host names to loopback servers;
- ``layers`` wrap whatever transport is in use, innermost first: governance adds its egress
  allow-list and per-call record here, so a test transport is governed exactly like the real one.

The client keeps no cookies and ignores proxy and ``.netrc`` settings from the environment: runs
share one client, and nothing one run's call receives may ride along with another run's call.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

__all__ = [
    "DEFAULT_TIMEOUT",
    "TransportLayer",
    "canonical_ipv4",
    "make_client",
    "normal_url",
    "user_agent",
]

#: Connect quickly or fail; give a slow service half a minute to answer.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

#: Wraps a transport in another (an egress policy, a recorder): ``layer(inner) -> outer``.
TransportLayer = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]

_MAX_REDIRECTS = 10
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
# scheme://[userinfo@]host[:port]...: the host of a URL written as text, before any parser
_AUTHORITY = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?)(?P<host>[^/?#:@\[\]]*)"
)


def canonical_ipv4(host: str) -> str | None:
    """The dotted quad an IPv4 host stands for in any spelling the C library's ``inet_aton``
    (and so the resolver that would connect to it) accepts: ``0177.0.0.1``, ``0x7f.1``,
    ``127.1``, ``2130706433``, a final dot; None for anything else."""
    if not _NUMERIC_HOST.match(host):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(host.rstrip(".")))
    except OSError:
        return None


def normal_url(url: str) -> str:
    """``url`` with an IPv4 host in any spelling written as its dotted quad. httpx refuses
    some spellings (``0177.0.0.1``: "Invalid IPv4 address") and passes others to the resolver,
    which reads them as addresses: either way the egress policy must judge the address, so
    every spelling becomes the one it means before a URL is parsed."""
    match = _AUTHORITY.match(url)
    if match is None:
        return url
    canonical = canonical_ipv4(match.group("host"))
    if canonical is None or canonical == match.group("host"):
        return url
    return match.group("head") + canonical + url[match.end() :]


class _Client(httpx.AsyncClient):
    """An ``AsyncClient`` whose requests given as text have their IPv4 spellings normalised
    (:func:`normal_url`), so a refusal is the egress policy's, never the URL parser's."""

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        if isinstance(url, str):
            url = normal_url(url)
        return super().build_request(method, url, **kwargs)


def user_agent() -> str:
    try:
        return f"batonflow/{version('batonflow')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "batonflow"


def make_client(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    layers: Sequence[TransportLayer] = (),
    timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """The client for all outbound traffic.

    ``transport`` is the innermost transport (default: the real network, no retries: retrying is
    the workflow's decision). Each of ``layers`` wraps the transport built so far. Redirects are
    not followed unless a request asks (``follow_redirects=True`` on ``send``). Close the client
    when done (``async with``).
    """
    inner = transport if transport is not None else httpx.AsyncHTTPTransport(trust_env=False)
    for layer in layers:
        inner = layer(inner)
    return _Client(
        transport=inner,
        timeout=timeout,
        headers={"User-Agent": user_agent(), **(headers or {})},
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        follow_redirects=False,
        max_redirects=_MAX_REDIRECTS,
        trust_env=False,
    )
