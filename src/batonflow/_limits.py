"""Bounds on untrusted input, checked where it enters (ARCHITECTURE rule 11).

Workflow documents, run inputs, event data and step results are bounded in size and nesting,
and strings that cannot be written as UTF-8 (lone surrogates, such as the JSON ``"\\ud800"``) are
refused, so nothing is accepted that a later reader (``show``, ``audit export``, PostgreSQL)
cannot read back. Durations and wake-up times are bounded where they are parsed
(``dsl/_durations.py``, ``core/_context.py``).

The checks work on JSON text, iteratively: a value nested 100,000 deep is refused with the place
it crossed the limit, never by a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "MAX_VALUE_BYTES",
    "SURROGATE",
    "SURROGATE_CHAR",
    "TextLimitError",
    "check_json_text",
    "line_column",
    "loads",
]

MAX_DEPTH: Final = 128
"""Arrays and objects open at once, in a document or a value."""
MAX_DOCUMENT_BYTES: Final = 4 << 20
"""Characters in one workflow document."""
MAX_VALUE_BYTES: Final = 64 << 20
"""Characters of JSON in one recorded value (a run's input, an event, a step's result)."""
MAX_NODES: Final = 50_000
"""Values that YAML aliases may repeat in one workflow document (the alias-bomb bound)."""
MAX_DIGITS: Final = 4300
"""Digits in one number: Python's own bound on reading an integer from text
(``sys.get_int_max_str_digits``), which would otherwise fail with a bare ValueError."""

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_LONG_NUMBER = re.compile(rf'"(?:[^"\\]|\\.)*"|\d{{{MAX_DIGITS + 1},}}', re.DOTALL)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
SURROGATE_CHAR = re.compile("[\ud800-\udfff]")


class TextLimitError(ValueError):
    """JSON text over a bound; ``offset`` is where (0-based), ``message`` says which bound."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def check_json_text(text: str, *, max_bytes: int = MAX_VALUE_BYTES) -> None:
    """Raise :class:`TextLimitError` if JSON ``text`` is too long, nests deeper than
    :data:`MAX_DEPTH`, holds a string that is not valid Unicode (a lone surrogate) or a
    number of more than :data:`MAX_DIGITS` digits."""
    if len(text) > max_bytes:
        raise TextLimitError(f"it is {len(text)} characters long; the limit is {max_bytes}", 0)
    _check_depth(text)
    _check_surrogates(text)
    _check_numbers(text)


def _check_numbers(text: str) -> None:
    if len(text) <= MAX_DIGITS or not re.search(rf"\d{{{MAX_DIGITS + 1}}}", text):
        return
    for match in _LONG_NUMBER.finditer(text):
        if not match.group().startswith('"'):  # digits in a string are text, not a number
            raise TextLimitError(
                f"a number has {len(match.group())} digits; the limit is {MAX_DIGITS}",
                match.start(),
            )


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TextLimitError(f"it nests deeper than {MAX_DEPTH} levels", match.start())
        elif token in "]}":
            depth -= 1


def _check_surrogates(text: str) -> None:
    raw = SURROGATE_CHAR.search(text)
    if raw is not None:
        raise TextLimitError(SURROGATE, raw.start())
    if "\\u" not in text and "\\U" not in text:
        return
    high: int | None = None  # offset of a high surrogate escape awaiting its low half
    high_end = -1
    for match in _ESCAPE.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else None
        if high is not None:
            if code is not None and 0xDC00 <= code <= 0xDFFF and match.start() == high_end:
                high = None
                continue
            raise TextLimitError(SURROGATE, high)
        if code is not None and 0xD800 <= code <= 0xDBFF:
            high, high_end = match.start(), match.end()
        elif code is not None and 0xDC00 <= code <= 0xDFFF:
            raise TextLimitError(SURROGATE, match.start())
    if high is not None:
        raise TextLimitError(SURROGATE, high)


SURROGATE = "a string holds a lone surrogate (such as \\ud800), which is not valid Unicode"


def loads(text: str, *, max_bytes: int = MAX_VALUE_BYTES) -> Any:
    """``json.loads`` within the bounds; NaN and Infinity are refused. Raises
    :class:`TextLimitError` or ``json.JSONDecodeError``."""
    check_json_text(text, max_bytes=max_bytes)
    return json.loads(text, parse_constant=_constant)


def _constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)
