"""JSON encoding of inputs, outputs and errors.

Everything a run records is JSON text, so both stores and any later reader (the CLI, an auditor)
can read it. Values are round-tripped on first execution too: a workflow sees exactly what a
replay would see, never a richer object the first time and a plain dict after a crash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import json
import traceback
import uuid
from typing import Any

from batonflow import _limits
from batonflow.errors import RecordedError, RunFailed, SerializationError


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic v2 models
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        raise TypeError("bytes are not JSON; encode them (base64) before returning them")
    raise TypeError(f"{type(value).__qualname__} is not JSON-serializable")


def dumps(value: Any, *, what: str = "value") -> str:
    """Encode ``value`` as compact JSON, or raise SerializationError naming ``what``: also
    for a value over the bounds of :mod:`batonflow._limits` (size, nesting, a lone surrogate),
    so nothing is recorded that cannot be read back."""
    try:
        text = json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise SerializationError(
            f"cannot record {what} as JSON: it nests deeper than {_limits.MAX_DEPTH} levels"
        ) from None
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot record {what} as JSON: {exc}") from exc
    try:
        _limits.check_json_text(text)
    except _limits.TextLimitError as exc:
        raise SerializationError(f"cannot record {what}: {exc.message}") from None
    return text


def dumps_lenient(value: Any) -> str:
    """Encode for the record only (step arguments): unencodable parts become their repr."""
    try:
        return dumps(value)
    except SerializationError:
        try:
            text = json.dumps(
                value, default=lambda v: {"$repr": repr(v)[:200]}, separators=(",", ":")
            )
            _limits.check_json_text(text)
        except (RecursionError, ValueError):
            return json.dumps({"$repr": f"<{type(value).__qualname__} that cannot be recorded>"})
        return text


def _readable(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates) shown as an escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def roundtrip(value: Any, *, what: str) -> tuple[Any, str]:
    """Return (the value as a replay will see it, its JSON text)."""
    text = dumps(value, what=what)
    return json.loads(text), text


def type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """A JSON-ready description of ``exc`` that :func:`error_from_dict` can raise again."""
    if isinstance(exc, RecordedError):
        name = exc.type_name
        message = str(exc).removeprefix(f"{name}: ")
    else:
        name, message = type_name(type(exc)), str(exc)
    data: dict[str, Any] = {"type": name, "message": _readable(message)}
    retryable = getattr(exc, "retryable", None)
    if isinstance(retryable, bool):
        data["retryable"] = retryable
    extra = getattr(exc, "error", None)
    if isinstance(extra, dict) and extra:
        data["cause"] = extra
    record_state = getattr(exc, "record_state", None)
    if callable(record_state):  # errors that carry structured data (e.g. DSL problem details)
        data["state"] = record_state()
    step = failed_step(exc)
    if step is not None:
        data["step"] = step
    tb = "".join(traceback.format_exception(exc)[-6:])
    data["traceback"] = _readable(tb[-4000:])
    return data


def failed_step(exc: BaseException) -> str | None:
    """The position of the step whose failure ``exc`` is, or was raised from.

    The kernel tags a step's error with its position. An error explicitly raised from it
    (``raise Problem(...) from error``) is that step's failure too, so ``resume`` of the run it
    faulted retries that step; the DSL wraps every task's error this way, to say which task of
    the document failed. (An error merely raised while handling one, without ``from``, is not
    here: the handler may have recorded steps since, which a retried step would leave behind;
    the engine, which knows the journal, decides that case: ``Context.failure_being_handled``.)
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        step = getattr(current, "__batonflow_step__", None)
        if isinstance(step, str):
            return step
        current = current.__cause__
    return None


def error_from_dict(data: dict[str, Any]) -> BaseException:
    """Rebuild a recorded error as its original class when possible.

    The instance is made without calling ``__init__`` (custom signatures vary), with ``args``
    set to the message, so ``except TheClass`` and ``str(exc)`` behave as before the crash.
    An error class may define ``record_state()`` and a ``from_record(message, state)``
    classmethod to carry structured data through the record.
    """
    name = str(data.get("type", "builtins:Exception"))
    message = str(data.get("message", ""))
    cls = _resolve_exception_class(name)
    if cls is None:
        return RecordedError(name, message)
    from_record = getattr(cls, "from_record", None)
    if callable(from_record) and isinstance(data.get("state"), dict):
        rebuilt = from_record(message, data["state"])
        if isinstance(rebuilt, BaseException):
            return rebuilt
    try:
        exc = cls.__new__(cls)
    except TypeError:  # a class whose __new__ needs arguments (ExceptionGroup): keep the name
        return RecordedError(name, message)
    exc.args = (message,)
    if isinstance(exc, RunFailed):  # its recorded error (an instance attribute: set it here)
        cause = data.get("cause")
        exc.error = cause if isinstance(cause, dict) else {}
    return exc


def _resolve_exception_class(name: str) -> type[BaseException] | None:
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None
