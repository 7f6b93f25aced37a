"""``run: shell`` and ``run: script``, only when the runtime was told to allow local processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from typing import Any

from batonflow.dsl._problems import ErrorType, Problem, WorkflowError

_INTERPRETERS = {
    "python": [sys.executable, "-c"],
    "js": ["node", "-e"],
    "javascript": ["node", "-e"],
}
_EXCERPT = 500


async def run_process(spec: dict[str, Any], kind: str, where: str) -> Any:
    """Run the process ``spec`` describes (expressions already evaluated) and return what its
    ``return`` asks for: stdout (default), stderr, code, all, or none."""
    argv, environment = _command(spec, kind, where)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment}  # nothing else leaks
    stdin = spec[kind].get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        stdin = json.dumps(stdin)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    if spec.get("await", True) is False:
        if process.stdin is not None and stdin is not None:
            process.stdin.write(stdin.encode())
            process.stdin.close()
        return None
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    code = process.returncode
    returns = spec.get("return", "stdout")
    if code != 0 and returns in ("stdout", "stderr", "none"):
        raise WorkflowError(
            Problem.of(
                ErrorType.RUNTIME,
                f"{kind} exited with code {code}: {stderr.strip()[:_EXCERPT]}",
                title="Process failed",
                instance=where,
            )
        )
    results = {"stdout": stdout, "stderr": stderr, "code": code, "none": None}
    if returns == "all":
        return {"code": code, "stdout": stdout, "stderr": stderr}
    return results[returns]


def _command(spec: dict[str, Any], kind: str, where: str) -> tuple[list[str], dict[str, str]]:
    body = spec[kind]
    arguments = body.get("arguments") or []
    if isinstance(arguments, dict):
        arguments = [f"{key}={value}" for key, value in arguments.items()]
    arguments = [str(a) for a in arguments]
    environment = {str(k): str(v) for k, v in (body.get("environment") or {}).items()}
    if kind == "shell":  # arguments are the script's $1, $2, ...
        return ["/bin/sh", "-c", str(body["command"]), "sh", *arguments], environment
    language = str(body.get("language", "")).lower()
    interpreter = _INTERPRETERS.get(language)
    if interpreter is None or shutil.which(interpreter[0]) is None:
        raise _refuse(f"no interpreter for script language {language!r} on this machine", where)
    if "code" not in body:
        raise _refuse("only inline scripts (code) are supported, not external sources", where)
    return [*interpreter, str(body["code"]), *arguments], environment


def _refuse(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.of(ErrorType.CONFIGURATION, detail, instance=where))
