"""Route requests for public host names to loopback servers, without DNS tricks.

:class:`HostRouter` is an :class:`httpx.AsyncBaseTransport`: hand it to
``batonflow._net.make_client(transport=...)`` and a request for
``https://petstore.swagger.io/v2/pet/1`` goes to ``http://127.0.0.1:<port>/v2/pet/1`` with its
``Host`` header unchanged. The response still names the public URL (httpx keeps the request it
was given), so outputs look exactly as they would against the real host. A request for a host
with no route fails as a connection error: no test reaches the real network.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class HostRouter(httpx.AsyncBaseTransport):
    """``routes`` maps a host name to a loopback base URL (``http://127.0.0.1:8123``, optionally
    with a path prefix); loopback URLs pass through unchanged; any other host is refused."""

    def __init__(
        self, routes: Mapping[str, str], inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.routes = {host.lower(): base.rstrip("/") for host, base in routes.items()}
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.lower()
        base = self.routes.get(host)
        if base is None:
            if host in LOOPBACK:
                return await self._inner.handle_async_request(request)
            raise httpx.ConnectError(f"no loopback route for host {host!r}", request=request)
        target = httpx.URL(base + request.url.raw_path.decode("ascii"))
        routed = httpx.Request(
            request.method,
            target,
            headers=request.headers,  # keeps Host: the server picks the fake host by it
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self._inner.handle_async_request(routed)

    async def aclose(self) -> None:
        await self._inner.aclose()
