"""Carries an ``httpx2`` SDK's requests over batonflow's egress client (architecture rule 6).

The ``anthropic`` SDK only accepts an ``httpx2.AsyncClient``; this transport hands each of its
requests to the ``httpx.AsyncClient`` built by ``batonflow._net.make_client``, so the traffic goes
through the one egress-controlled transport (and its layers) like every other call.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2

__all__ = ["EgressBridge"]

#: Headers that describe the body as it travelled; the body handed back is already decoded.
_HOP_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class EgressBridge(httpx2.AsyncBaseTransport):
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"]
        timeout: Any = request.extensions.get("timeout")
        outbound = self._client.build_request(
            request.method,
            str(request.url),
            headers=headers,
            content=content,
            timeout=httpx.Timeout(**timeout) if isinstance(timeout, dict) else timeout,
        )
        try:
            response = await self._client.send(outbound)
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc), request=request) from exc
        except httpx.HTTPError as exc:
            raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_HEADERS]
        return httpx2.Response(
            response.status_code, headers=kept, content=response.content, request=request
        )
