"""Store layer: the protocol, its records, and the stores that implement it."""

from __future__ import annotations

from pathlib import Path

from batonflow.errors import ConfigError
from batonflow.store._model import (
    OPERATOR_ACTIONS,
    TRANSITIONS,
    AttemptRecord,
    EventRecord,
    NewRun,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
    allowed_sources,
)
from batonflow.store._protocol import Store
from batonflow.store._sqlite import SQLiteStore

__all__ = [
    "OPERATOR_ACTIONS",
    "TRANSITIONS",
    "AttemptRecord",
    "EventRecord",
    "NewRun",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "StepKind",
    "StepRecord",
    "StepStatus",
    "Store",
    "allowed_sources",
    "open_store",
]


def open_store(url: str | Path) -> Store:
    """A store for ``url``: ``sqlite:///path/runs.db`` (or a plain file path)."""
    text = str(url)
    if text.startswith("sqlite:///"):
        return SQLiteStore(text.removeprefix("sqlite:///"))
    if text.startswith("sqlite://"):
        raise ConfigError(
            f"{text!r}: write SQLite URLs as sqlite:///relative.db or sqlite:////abs.db"
        )
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"unsupported store URL scheme {scheme!r} in {text!r}; this version supports "
            "sqlite:///path (or a plain file path)"
        )
    return SQLiteStore(text)
