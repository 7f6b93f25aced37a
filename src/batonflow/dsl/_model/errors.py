"""Pydantic's validation errors, told the way a workflow author reads them: the JSON pointer of
the place, what was found there and what was expected.

Union tags (``§...``) are dropped from locations: the discriminated unions in the model
already chose the one alternative the author meant. An unknown key is reported with the keys
the model reading that object expected (recorded in the validation context by
``Model._note_shape``), and with a guess when one is close.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from batonflow.dsl._model.base import TAG, Model, describe
from batonflow.dsl._yaml import join_pointer

__all__ = ["Finding", "translate"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a document, before it is given a file position.

    ``on_key``: the place to show is the key (an unexpected or missing property), not the
    value."""

    pointer: str
    message: str
    code: str
    found: str | None = None
    expected: str | None = None
    on_key: bool = False


def translate(error: ValidationError, data: Any, context: dict[str, Any]) -> list[Finding]:
    """Every error in ``error`` as a finding, in document order, without repeats."""
    models: dict[int, type[Model]] = context.get("models", {})
    seen: set[tuple[str, str]] = set()
    findings = []
    for detail in error.errors(include_url=False):
        finding = _finding(detail, data, models)
        if (finding.pointer, finding.message) not in seen:
            seen.add((finding.pointer, finding.message))
            findings.append(finding)
    return findings


def _segments(detail: ErrorDetails) -> list[str | int]:
    return [s for s in detail["loc"] if not (isinstance(s, str) and s.startswith(TAG))]


def _finding(detail: ErrorDetails, data: Any, models: dict[int, type[Model]]) -> Finding:
    segments = _segments(detail)
    kind = detail["type"]
    if kind == "missing":
        name = str(segments[-1])
        return Finding(
            join_pointer("", *segments[:-1]),
            f"missing required property '{name}'",
            "missing",
            expected=name,
            on_key=True,
        )
    if kind == "extra_forbidden":
        parent = _resolve(data, segments[:-1])
        model = models.get(id(parent))
        return _unexpected(segments, model)
    handler = _MESSAGES.get(kind)
    pointer = join_pointer("", *segments)
    if handler is not None:
        expected, message = handler(detail)
        return Finding(pointer, message, "type", describe(detail["input"]), expected)
    ctx = detail.get("ctx") or {}
    return Finding(pointer, detail["msg"], kind, ctx.get("found"), ctx.get("expected"))


def _resolve(data: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(data, dict):
            data = data.get(str(segment))
        elif isinstance(data, list) and isinstance(segment, int) and segment < len(data):
            data = data[segment]
        else:
            return None
    return data


def _unexpected(segments: list[str | int], model: type[Model] | None) -> Finding:
    key = str(segments[-1])
    message = f"unexpected property '{key}'"
    expected = None
    if model is not None:
        keys = model.document_keys()
        expected = ", ".join(keys)
        hint = model.unexpected_hints.get(key)
        guess = difflib.get_close_matches(key, keys, n=1, cutoff=0.7)
        if hint:
            message += f": {hint}"
        elif guess:
            message += f"; did you mean '{guess[0]}'?"
        else:
            message += f"; expected one of {expected}"
    return Finding(join_pointer("", *segments), message, "unexpected", key, expected, on_key=True)


# -- type and value errors ------------------------------------------------------------------------


def _typed(expected: str) -> Callable[[ErrorDetails], tuple[str, str]]:
    def message(detail: ErrorDetails) -> tuple[str, str]:
        value = detail["input"]
        text = f"expected {expected}, found {describe(value)}"
        if expected == "a string" and isinstance(value, int | float) and value is not True:
            text += " (put it in quotes to make it a string)"
        return expected, text

    return message


def _wrong_type(detail: ErrorDetails) -> tuple[str, str]:
    expected = detail["msg"].removeprefix("expected ")
    return expected, f"{detail['msg']}, found {describe(detail['input'])}"


def _literal(detail: ErrorDetails) -> tuple[str, str]:
    expected = str((detail.get("ctx") or {}).get("expected", ""))
    choices = re.findall(r"'([^']*)'", expected)
    value = detail["input"]
    text = f"unknown value {describe(value)}; expected {expected}"
    guess = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    if isinstance(value, str) and guess:
        text += f" (did you mean '{guess[0]}'?)"
    return expected, text


def _bounded(word: str) -> Callable[[ErrorDetails], tuple[str, str]]:
    def message(detail: ErrorDetails) -> tuple[str, str]:
        ctx = detail.get("ctx") or {}
        limit = next(iter(ctx.values()), "?")
        expected = f"a number {word} {limit}"
        return expected, f"expected {expected}, found {describe(detail['input'])}"

    return message


def _too_short(detail: ErrorDetails) -> tuple[str, str]:
    ctx = detail.get("ctx") or {}
    least = ctx.get("min_length", 1)
    expected = f"at least {least} item{'s' if least != 1 else ''}"
    return expected, f"expected {expected}, found {describe(detail['input'])}"


def _pattern(detail: ErrorDetails) -> tuple[str, str]:
    pattern = (detail.get("ctx") or {}).get("pattern", "")
    expected = f"a string matching {pattern}"
    return expected, f"invalid value {describe(detail['input'])}; expected {expected}"


_MESSAGES: dict[str, Callable[[ErrorDetails], tuple[str, str]]] = {
    "wrong_type": _wrong_type,
    "string_type": _typed("a string"),
    "int_type": _typed("an integer"),
    "int_from_float": _typed("an integer"),
    "int_parsing": _typed("an integer"),
    "bool_type": _typed("true or false"),
    "float_type": _typed("a number"),
    "dict_type": _typed("an object"),
    "model_type": _typed("an object"),
    "model_attributes_type": _typed("an object"),
    "list_type": _typed("a list"),
    "literal_error": _literal,
    "enum": _literal,
    "greater_than_equal": _bounded(">="),
    "less_than_equal": _bounded("<="),
    "too_short": _too_short,
    "string_pattern_mismatch": _pattern,
}
