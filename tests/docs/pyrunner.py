"""Runs one page's ```python blocks in order, in one namespace, as a reader would paste them.

Started by ``test_docs_run.py`` in the page's directory. Each request is one JSON line on stdin,
``{"code": ..., "where": "docs/x.md:12"}``; each answer one JSON line on the file descriptor
given as the argument, ``{"ok": true}`` or ``{"ok": false, "error": traceback}``. A block may
``await`` at top level (as in ``python -m asyncio``); all blocks share one event loop, so an
engine opened by one block can be used by the next. A ``test_*`` function a block defines is
called (awaited if async), as pytest would.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any


def run_test(test: Any, loop: asyncio.AbstractEventLoop) -> None:
    """A ``test_*`` function a block defines runs as pytest would run it (``tmp_path`` given)."""
    arguments: dict[str, Any] = {}
    for name in inspect.signature(test).parameters:
        if name != "tmp_path":
            raise TypeError(f"{test.__name__}: the docs runner provides only tmp_path, not {name}")
        arguments[name] = Path(tempfile.mkdtemp(prefix=f"{test.__name__}-", dir=os.getcwd()))
    result = test(**arguments)
    if inspect.iscoroutine(result):
        loop.run_until_complete(result)


def main() -> None:
    answers = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}
    loop = asyncio.new_event_loop()
    sys.path.insert(0, os.getcwd())
    for line in sys.stdin:
        request = json.loads(line)
        try:
            code = compile(
                request["code"], request["where"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            before = set(namespace)
            result = eval(code, namespace)  # the block's own code, from the documentation
            if inspect.iscoroutine(result):
                loop.run_until_complete(result)
            for name in sorted(set(namespace) - before):
                if name.startswith("test_") and inspect.isfunction(namespace[name]):
                    run_test(namespace[name], loop)
            answer: dict[str, object] = {"ok": True}
        except BaseException:
            answer = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


if __name__ == "__main__":
    main()
