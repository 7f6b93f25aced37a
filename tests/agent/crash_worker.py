"""An engine process running one agent workflow, for the SIGKILL test.

    crash_worker.py start DB LOG BASE_URL    start the run, print ``RUN <id>``, run until killed
    crash_worker.py resume DB LOG BASE_URL   finish the run, print ``RESULT <json>``, exit

The tools append a line to LOG (fsynced) when they run. In ``start`` mode (``AGENT_BLOCK=1``)
the ``block`` tool prints ``BLOCKING`` and waits forever, so the test SIGKILLs the engine while
that tool call is in flight, after the ``add`` call was recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import batonflow as bf
from batonflow._net import make_client
from batonflow.catalog import AgentTool, agent, tool
from batonflow.providers import OpenAIProvider

LOG = ""
PROVIDER: OpenAIProvider | None = None


def say(*words: object) -> None:
    print(*words, flush=True)


def log(line: str) -> None:
    with open(LOG, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def add(a: int, b: int) -> int:
    log(f"add {a} {b}")
    return a + b


async def block() -> str:
    log("block")
    if os.environ.get("AGENT_BLOCK") == "1":
        say("BLOCKING")
        await asyncio.Event().wait()  # until SIGKILL
    return "unblocked"


def shout(text: str) -> str:
    log(f"shout {text}")
    return text.upper()


NUMBERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TOOLS: list[AgentTool] = [
    tool(add, parameters=NUMBERS),
    tool(block),
    tool(shout, parameters=TEXT),
]


@bf.workflow(name="crash_agent")
async def crash_agent(ctx: bf.Context) -> Any:
    assert PROVIDER is not None
    result = await agent(ctx, PROVIDER, "add, block, then shout", TOOLS, max_steps=10)
    return result.as_dict()


async def main(mode: str, db: str, base_url: str) -> int:
    global PROVIDER
    async with make_client(timeout=10.0) as http:
        PROVIDER = OpenAIProvider(
            "gpt", client=http, model="gpt-test", api_key="sk-test", base_url=base_url + "/v1",
            timeout=10.0,
        )  # fmt: skip
        async with bf.Engine(db, workflows=[crash_agent]) as engine:
            if mode == "start":
                handle = await engine.start(crash_agent)
                say("RUN", handle.run_id)
                await asyncio.Event().wait()  # until SIGKILL
                return 1
            runs = await engine.store.list_runs(limit=10)
            (run,) = runs
            output = await engine.handle(run.id).result(timeout=30)
            say("RESULT", json.dumps(output))
    return 0


if __name__ == "__main__":
    _mode, _db, LOG, _url = sys.argv[1:5]
    sys.exit(asyncio.run(main(_mode, _db, _url)))
