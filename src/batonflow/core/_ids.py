"""Run ids that sort by creation time, so the primary-key index grows at its right edge.

A random id (UUIDv4) lands anywhere in the ``runs`` index: once the index is larger than the
cache, each insert reads and dirties a cold page. These ids are UUIDv7 (RFC 9562) written as
32 hex digits, the format run ids already had: 48 bits of milliseconds, then 74 random bits.
"""

from __future__ import annotations

import os

__all__ = ["short_run_id", "time_ordered_id"]


def time_ordered_id(now: float) -> str:
    """A new 32-hex-digit id whose first twelve digits are ``now`` in milliseconds."""
    millis = max(0, int(now * 1000)) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = rand >> 68, rand & ((1 << 62) - 1)  # 12 and 62 random bits
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return f"{value:032x}"


def short_run_id(run_id: str) -> str:
    """The run id as people read it in lists and messages: its last eight hex digits, which
    are random (the first ones are the creation time, shared by runs of the same minute)."""
    return run_id[-8:]
