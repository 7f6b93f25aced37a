"""An MCP server that is broken in the way its argument says, for the agent tests.

exit       exits at once (status 3), before the handshake
garbage    writes text that is not JSON-RPC to stdout and stays up, never answering
malformed  answers every request with JSON-RPC whose result is not what MCP defines
tools      answers the handshake properly, then answers ``tools/list`` malformed
"""

from __future__ import annotations

import json
import sys
import time


def answer(request: dict[str, object], result: object) -> None:
    print(json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result}), flush=True)


def main(mode: str) -> None:
    if mode == "exit":
        sys.exit(3)
    if mode == "garbage":
        print("hello, I am not an MCP server", flush=True)
        time.sleep(60)
        return
    for line in sys.stdin:
        request = json.loads(line)
        if "id" not in request:
            continue  # a notification
        if mode == "tools" and request.get("method") == "initialize":
            answer(request, {
                "protocolVersion": request["params"]["protocolVersion"],  # type: ignore[index]
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "broken", "version": "0"},
            })  # fmt: skip
        else:
            answer(request, {"nonsense": True})


if __name__ == "__main__":
    main(sys.argv[1])
