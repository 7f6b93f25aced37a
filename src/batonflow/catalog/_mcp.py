"""Tools of an MCP server, reached over stdio with the official ``mcp`` SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from batonflow.errors import BatonflowError

__all__ = ["McpServer", "McpToolError"]


class McpToolError(BatonflowError):
    """An MCP tool answered with ``isError`` (the agent hands the text back to the model)."""


class McpServer:
    """An MCP server started as a subprocess and spoken to over stdio::

        files = McpServer("files", "python", ["-m", "my_mcp_server"])
        result = await agent(ctx, provider, goal, [files])

    The connection is opened lazily, on the first call that needs it (so a replay that answers
    everything from the journal never starts the server), and kept until :meth:`close`
    (:func:`batonflow.catalog.agent` closes the servers it was given when it returns).
    The session lives in a task of its own, so it can be used from any task of the loop.
    ``prefix`` is put before each tool's name as the model sees it (default: none).
    """

    def __init__(
        self,
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        prefix: str = "",
        stderr: TextIO | None = None,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self._params = StdioServerParameters(
            command=command, args=list(args), env=dict(env) if env else None, cwd=cwd
        )
        self._stderr = stderr
        self._ready: asyncio.Future[ClientSession] | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<McpServer {self.name!r}>"

    def clone(self) -> McpServer:
        """A new, unconnected server object with the same settings (one per agent: an agent
        closes the servers it was given when it returns)."""
        twin = McpServer.__new__(McpServer)
        twin.name, twin.prefix, twin._params, twin._stderr = (
            self.name, self.prefix, self._params, self._stderr,
        )  # fmt: skip
        twin._ready = twin._stop = twin._task = None
        return twin

    async def _session(self) -> ClientSession:
        if self._task is not None and self._task.done():
            await self.close()  # the connection ended (the server exited): start it again
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._serve(self._ready, self._stop))
        return await asyncio.shield(self._ready)

    async def _serve(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        errlog = self._stderr or sys.__stderr__ or sys.stderr
        try:
            async with (
                stdio_client(self._params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            raise

    async def close(self) -> None:
        """Stop the server process (a later call starts it again)."""
        task, stop = self._task, self._stop
        self._ready = self._stop = self._task = None
        if task is None or stop is None:
            return
        stop.set()
        with contextlib.suppress(Exception):  # the server is going away; how it ends is moot
            await task

    async def list_tools(self) -> list[dict[str, Any]]:
        """The server's tools as JSON: ``[{"name", "description", "parameters"}]``."""
        session = await self._session()
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            if cursor is None:
                page = await session.list_tools()
            else:
                from mcp.types import PaginatedRequestParams

                page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
            for tool in page.tools:
                tools.append(
                    {
                        "name": tool.name,
                        "description": tool.description or "",
                        "parameters": dict(tool.input_schema),
                    }
                )
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call_tool(self, tool: str, **arguments: Any) -> Any:
        """Call ``tool``; its structured content if any, else its text (joined).

        Raises :class:`McpToolError` when the server reports the call failed.
        """
        session = await self._session()
        result = await session.call_tool(tool, dict(arguments))
        texts = [getattr(block, "text", None) for block in result.content]
        text = "\n".join(t for t in texts if isinstance(t, str))
        if result.is_error:
            raise McpToolError(f"MCP tool {tool!r} of {self.name!r} failed: {text}")
        if result.structured_content is not None:
            return json.loads(json.dumps(result.structured_content))
        return text
