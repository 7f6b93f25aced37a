"""Cursor paging, the same on every list: ``limit`` (how many, 1 to :data:`MAX_LIMIT`) and
``cursor`` (the ``next_cursor`` of the previous page) in, ``items`` and ``next_cursor`` (None on
the last page) out.

A cursor is an opaque token naming the last item given out, by a key that orders the list and
is unique in it; the next page starts after that key. So an item added or removed between two
pages neither repeats nor shifts the others (unlike an offset).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

import batonflow as bf

__all__ = ["MAX_LIMIT", "Cursor", "Limit", "Paged", "decode", "encode", "page"]

MAX_LIMIT = 500
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="Items per page; the rest via `next_cursor`")
]
Cursor = Annotated[
    str | None,
    Query(max_length=500, description="The `next_cursor` of the previous page"),
]

T = TypeVar("T")


class Paged(BaseModel):
    """What every list answers besides its ``items``."""

    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page"
    )


def encode(key: Any) -> str:
    """The cursor after an item whose sort key is ``key`` (JSON: strings, numbers, lists)."""
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str) -> Any:
    """The key a cursor names; ConfigError (400) for a cursor this API did not give out."""
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError) as exc:
        raise bf.ConfigError(f"cursor {text!r} is not one this API gave out") from exc


def page(
    items: Sequence[T], key: Callable[[T], str], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` in the order of their unique string ``key``: those after the
    cursor's key, at most ``limit``, and the cursor for the page after (None when none is)."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        after = decode(cursor)
        if not isinstance(after, str):
            raise bf.ConfigError(f"cursor {cursor!r} is not one this API gave out")
        ordered = [item for item in ordered if key(item) > after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, encode(key(chosen[-1])) if more and chosen else None
