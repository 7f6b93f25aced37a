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

from collections.abc import Callable, Mapping, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from importlib.metadata import PackageNotFoundError, version

import httpx

__all__ = ["DEFAULT_TIMEOUT", "TransportLayer", "make_client", "user_agent"]

#: Connect quickly or fail; give a slow service half a minute to answer.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

#: Wraps a transport in another (an egress policy, a recorder): ``layer(inner) -> outer``.
TransportLayer = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]

_MAX_REDIRECTS = 10


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
    return httpx.AsyncClient(
        transport=inner,
        timeout=timeout,
        headers={"User-Agent": user_agent(), **(headers or {})},
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        follow_redirects=False,
        max_redirects=_MAX_REDIRECTS,
        trust_env=False,
    )
