"""Resolve ``module:attribute`` and ``path/to/file.py:attribute`` references to workflows."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from batonflow.core._workflow import Workflow
from batonflow.errors import WorkflowNotFound


def load_workflow(ref: str) -> Workflow[Any, Any]:
    """Import the workflow named by ``ref``; the error says exactly which part failed."""
    module_part, sep, attr = ref.rpartition(":")
    if not sep or not module_part or not attr:
        raise WorkflowNotFound(
            f"{ref!r} is not a workflow reference; expected module:function or file.py:function"
        )
    module = _import(module_part, ref)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise WorkflowNotFound(
                f"{module_part} has no attribute {attr!r} (from {ref!r})"
            ) from None
    if not isinstance(obj, Workflow):
        raise WorkflowNotFound(
            f"{ref!r} is a {type(obj).__name__}, not a workflow;"
            " decorate it with @batonflow.workflow"
        )
    if module_part.endswith(".py"):  # recover it in other processes by the same path
        obj.ref = f"{Path(module_part).resolve()}:{attr}"
    return obj


def _import(module_part: str, ref: str) -> Any:
    if module_part.endswith(".py"):
        path = Path(module_part).resolve()
        if not path.is_file():
            raise WorkflowNotFound(f"no such file: {module_part} (from {ref!r})")
        name = f"batonflow_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise WorkflowNotFound(f"cannot load {path} as Python (from {ref!r})")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:
            del sys.modules[name]
            raise _exited(module_part, ref, exc) from None
        except Exception:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(module_part)
    except SystemExit as exc:
        raise _exited(module_part, ref, exc) from None
    except ModuleNotFoundError as exc:
        raise WorkflowNotFound(
            f"cannot import module {module_part!r} (from {ref!r}): {exc}"
        ) from exc


def _exited(module_part: str, ref: str, exc: SystemExit) -> WorkflowNotFound:
    """A module that calls ``sys.exit`` while being imported: refused, so the command reports
    it instead of exiting with the module's code and no word."""
    return WorkflowNotFound(
        f"importing {module_part} (from {ref!r}) called sys.exit({exc.code!r}); a workflow"
        ' module must not exit when imported (guard it with `if __name__ == "__main__":`)'
    )
