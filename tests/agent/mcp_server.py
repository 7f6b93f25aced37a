"""A tiny MCP server over stdio, built with the official ``mcp`` SDK, for the agent tests.

Tools: ``add(a, b)`` and ``shout(text)``. Each call appends a line to the file named by the
``AGENT_MCP_LOG`` environment variable (when set), and ``start`` when the server starts, so
tests can count calls and starts.
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("agent-test-tools")


def _log(line: str) -> None:
    path = os.environ.get("AGENT_MCP_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    _log(f"add {a} {b}")
    return a + b


@server.tool(description="Upper-case a text.")
def shout(text: str) -> str:
    _log(f"shout {text}")
    return text.upper()


if __name__ == "__main__":
    _log("start")
    server.run("stdio")
