"""An engine process for the SIGKILL scenario: runs a document until task 'second' blocks.

argv: database, document (JSON file), side-effect log. Prints "RUN <id>" once the run is
recorded and "STARTED second" when the blocking task has begun; then it waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import batonflow as bf
from batonflow.dsl._runtime import DslRuntime


def side_effect(name: str) -> str:
    with open(sys.argv[3], "a") as log:
        log.write(name + "\n")
        log.flush()
        os.fsync(log.fileno())
    return name


async def block_in_first_engine() -> None:
    print("STARTED second", flush=True)
    await asyncio.Event().wait()


async def main(document: dict[str, object]) -> None:
    functions = {"sideEffect": side_effect, "blockInFirstEngine": block_in_first_engine}
    runtime = DslRuntime(functions=functions)
    async with bf.Engine(sys.argv[1]) as engine:
        handle = await runtime.start(engine, document, {})
        print(f"RUN {handle.run_id}", flush=True)
        await asyncio.Event().wait()


asyncio.run(main(json.loads(Path(sys.argv[2]).read_text())))
