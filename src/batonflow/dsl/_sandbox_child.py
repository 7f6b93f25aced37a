"""The evaluator process: runs jq programs for :mod:`batonflow.dsl._sandbox`, one at a time.

Started as a script (``python -I _sandbox_child.py MEMORY MAX_RESULT``), so it imports only the
standard library and ``jq``, never batonflow: it is up in a few tens of milliseconds. Its address
space is capped (``RLIMIT_AS``) before jq is loaded, and it dies with its parent (Linux).

Protocol, one request at a time on stdin/stdout, newline-framed JSON:

    parent -> child   the program text as a JSON string, then the input as JSON text; or
                      ``{"regex": pattern}``, then a JSON string: does the pattern match the
                      whole string (Python's ``re``)? The reply's results are ``[true]`` or
                      ``[false]``; a pattern that does not compile is an ``error``; or
                      ``{"schema": document}``, then a value: its first JSON Schema error
                      (``[{"path": [...], "message": ...}]``) or ``[null]``
    child -> parent   ``["ok", [results...]]`` (at most two results) or ``["error", message]``
                      or ``["memory", message]`` or ``["size", message]``

The child writes ``"ready"`` once, after start-up. The parent enforces the time budget by
killing the process; a program that exhausts memory makes jq abort, which the parent sees as
the pipe closing.
"""

from __future__ import annotations

import ctypes
import json
import re
import resource
import sys
from typing import Any

_CACHE_SIZE = 256
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed stdin still ends the loop
        pass


def _first_two(program: Any, text: str) -> list[Any]:
    """Up to two results; the iterator never outlives this frame (see ``_expr._first_two``)."""
    results: Any = None
    try:
        results = iter(program.input_text(text))
        found = []
        for item in results:
            found.append(item)
            if len(found) == 2:
                break
        return found
    finally:
        del results


def _schema_error(schema: Any, value: Any) -> dict[str, Any] | None:
    """The first error of ``value`` against JSON Schema ``schema`` (checked by the parent),
    as ``{"path": [...], "message": ...}``, or None. jsonschema is imported on first use."""
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    if error is None:
        return None
    return {"path": [str(p) for p in error.absolute_path], "message": error.message}


def main() -> None:
    memory, max_result = int(sys.argv[1]), int(sys.argv[2])
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _die_with_parent()
    import jq  # type: ignore[import-not-found]  # after the limit: jq allocates under it

    cache: dict[str, Any] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b'"ready"\n')
    stdout.flush()
    while True:
        head = stdin.readline()
        data = stdin.readline()
        if not head or not data:
            return
        reply: list[Any]
        try:
            body = json.loads(head)
            if isinstance(body, dict) and "schema" in body:  # its patterns may backtrack
                reply = ["ok", [_schema_error(body["schema"], json.loads(data))]]
                stdout.write(json.dumps(reply).encode("ascii") + b"\n")
                stdout.flush()
                continue
            if isinstance(body, dict):  # a regular expression: backtracking can take for ever
                text = json.loads(data)
                found = isinstance(text, str) and re.fullmatch(body["regex"], text) is not None
                reply = ["ok", [found]]
                stdout.write(json.dumps(reply).encode("ascii") + b"\n")
                stdout.flush()
                continue
            program = cache.get(body)
            if program is None:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                program = cache[body] = jq.compile(body)
            reply = ["ok", _first_two(program, data.decode("utf-8", "surrogatepass"))]
        except (ValueError, TypeError, re.error, RecursionError) as error:
            reply = ["error", str(error)]
        except MemoryError:
            reply = ["memory", "ran out of memory"]
        try:
            out = json.dumps(reply, ensure_ascii=True).encode("ascii")
        except MemoryError:
            out = b'["memory", "ran out of memory"]'
        except (ValueError, TypeError) as error:
            out = json.dumps(["error", f"result is not JSON: {error}"]).encode("ascii")
        if len(out) > max_result:
            out = json.dumps(["size", f"the result is larger than {max_result} bytes"]).encode()
        stdout.write(out + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
