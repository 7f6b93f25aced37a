"""Tools of an MCP server, reached over stdio with the official ``mcp`` SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from batonflow.errors import BatonflowError

if TYPE_CHECKING:  # the SDK loads when a server is first made: most processes never make one
    from mcp import ClientSession

__all__ = ["McpServer", "McpServerError", "McpToolError"]

#: seconds an MCP server has to start and answer the handshake, and to list its tools
DEFAULT_TIMEOUT = 30.0


class McpToolError(BatonflowError):
    """An MCP tool answered with ``isError`` (the agent hands the text back to the model)."""


class McpServerError(BatonflowError):
    """An MCP server could not be used: it did not start, exited or closed its connection, did
    not answer in time, or answered something that is not MCP (malformed JSON-RPC). The message
    names the server, its command and what went wrong. Not retryable: fix the server (or its
    command) and resume the run."""


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
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.timeout = timeout
        from mcp.client.stdio import StdioServerParameters

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
        twin.name, twin.prefix, twin.timeout, twin._params, twin._stderr = (
            self.name, self.prefix, self.timeout, self._params, self._stderr,
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

    def _failed(self, doing: str, exc: BaseException) -> McpServerError:
        """``exc`` (from the SDK, anyio or the process) as a batonflow error naming the server."""
        command = " ".join([self._params.command, *self._params.args])
        return McpServerError(
            f"MCP server {self.name!r} ({command}) failed while {doing}: {describe_failure(exc)}"
        )

    async def _serve(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import stdio_client

        errlog = self._stderr or sys.__stderr__ or sys.stderr
        try:
            async with (
                stdio_client(self._params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                async with asyncio.timeout(self.timeout):
                    await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(self._failed("starting (the MCP handshake)", exc))
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
            try:
                async with asyncio.timeout(self.timeout):
                    page = await self._list_page(session, cursor)
            except Exception as exc:
                raise self._failed("listing its tools", exc) from exc
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

    @staticmethod
    async def _list_page(session: ClientSession, cursor: str | None) -> Any:
        if cursor is None:
            return await session.list_tools()
        from mcp.types import PaginatedRequestParams

        return await session.list_tools(params=PaginatedRequestParams(cursor=cursor))

    async def call_tool(self, tool: str, **arguments: Any) -> Any:
        """Call ``tool``; its structured content if any, else its text (joined).

        Raises :class:`McpToolError` when the server reports the call failed.
        """
        session = await self._session()
        try:
            result = await session.call_tool(tool, dict(arguments))
        except Exception as exc:
            raise self._failed(f"calling its tool {tool!r}", exc) from exc
        texts = [getattr(block, "text", None) for block in result.content]
        text = "\n".join(t for t in texts if isinstance(t, str))
        if result.is_error:
            raise McpToolError(f"MCP tool {tool!r} of {self.name!r} failed: {text}")
        if result.structured_content is not None:
            return json.loads(json.dumps(result.structured_content))
        return text


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in words, from the innermost errors (anyio wraps them in groups)."""
    leaves = _leaves(exc)
    parts: list[str] = []
    for leaf in leaves:
        text = _describe(leaf)
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    if isinstance(exc, FileNotFoundError | PermissionError):
        return f"it could not be started: {exc}"
    if isinstance(exc, ValidationError):
        first = str(exc).splitlines()
        what = f"{first[0]}: {first[1].strip()}" if len(first) > 1 else str(exc)
        return f"it answered malformed JSON-RPC, not what MCP expects ({what})"
    message = str(exc) or type(exc).__name__
    if "connection closed" in message.lower():
        return "it exited or closed its connection (its own errors, if any, are on stderr)"
    return f"{type(exc).__name__}: {message}"
