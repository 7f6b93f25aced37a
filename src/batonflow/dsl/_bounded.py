"""Which jq programs are *plainly bounded*: they end soon and stay small whatever their input,
so they may run in the worker's process; every other runs under a budget in an evaluator
process (``_sandbox``). The test is syntactic and conservative: a false "no" costs one round
trip to the pool (about 150 us), a false "yes" would let an expression escape its budget.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["is_bounded"]

_FAST_LENGTH = 2_000
_KEYWORDS = frozenset({"null", "true", "false", "and", "or", "if", "then", "elif", "else", "end"})
_TOKENS = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\[^(])*")
    |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    |(?P<variable>\$[A-Za-z_][A-Za-z0-9_]*)
    |(?P<recurse>\.\.)
    |(?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    |(?P<dot>\.)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<operator>==|!=|<=|>=|//|[<>+])
    |(?P<question>\?)
    |(?P<open>[(\[{])
    |(?P<close>[)\]}])
    |(?P<colon>:)
    |(?P<comma>,)
    """,
    re.VERBOSE,
)
# after these, ``[`` indexes (``.a[0]``, ``.a[]``) rather than constructs (``[.a, .b]``); a
# keyword counts too (``end[]`` iterates), which only sends a few more expressions to the pool
_POSTFIX_BEFORE = frozenset(
    {"field", "dot", "variable", "string", "close", "number", "name", "question"}
)


def is_bounded(body: str) -> bool:
    """Whether a jq program plainly ends soon and stays small: it uses only paths
    (``.a.b[0]``, ``.[1:3]``), variables, literals, object and array construction, comparisons,
    ``and``/``or``, ``//``, ``+``, ``?`` and ``if``; no pipe, no function, no iteration, no
    string interpolation, no comma that multiplies results. Its work and its result then grow
    at most with the expression's length times its input's size. Such a program runs in this
    process; any other under the budget in an evaluator process."""
    if len(body) > _FAST_LENGTH:
        return False
    frames: list[list[Any]] = []  # [bracket, construction?, expecting an object key?]
    previous = ""
    position = 0
    while position < len(body):
        match = _TOKENS.match(body, position)
        if match is None:
            return False
        position = match.end()
        kind, text = match.lastgroup or "", match.group()
        if kind == "space":
            continue
        if not _token_allowed(kind, text, previous, frames, body, position):
            return False
        previous = kind
    return True


def _token_allowed(
    kind: str, text: str, previous: str, frames: list[list[Any]], body: str, position: int
) -> bool:
    top = frames[-1] if frames else None
    if kind == "recurse":
        return False
    if kind == "name":
        if top is not None and top[0] == "{" and top[2]:
            return True  # an object key
        return text in _KEYWORDS
    if kind == "open":
        construction = previous not in _POSTFIX_BEFORE
        if text == "[" and not construction and body[position:].lstrip().startswith("]"):
            return False  # .[]: iteration
        frames.append([text, construction, text == "{"])
        return True
    if kind == "close":
        if frames:
            frames.pop()
        return True
    if kind == "colon":
        if top is not None and top[0] == "{":
            top[2] = False
        return True
    if kind == "comma":
        if top is None or top[0] == "(" or (top[0] == "[" and not top[1]):
            return False  # the comma operator: several results
        if top[0] == "{":
            top[2] = True
        return True
    return True
