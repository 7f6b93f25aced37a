"""Store layer: the protocol, its records, and the stores that implement it."""

from __future__ import annotations

from pathlib import Path

from batonflow.errors import ConfigError
from batonflow.store._model import (
    OPERATOR_ACTIONS,
    TRANSITIONS,
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    EventRecord,
    NewRun,
    QueueLimits,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
    allowed_sources,
)
from batonflow.store._protocol import Store, WakeUps
from batonflow.store._rows import failed_step_of
from batonflow.store._sqlite import SQLiteStore

__all__ = [
    "PostgresStore",
    "OPERATOR_ACTIONS",
    "TRANSITIONS",
    "AttemptRecord",
    "AuditEntry",
    "AuditRecord",
    "EventRecord",
    "NewRun",
    "QueueLimits",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "StepKind",
    "StepRecord",
    "StepStatus",
    "Store",
    "WakeUps",
    "allowed_sources",
    "failed_step_of",
    "open_store",
]


def __getattr__(name: str) -> object:
    if name == "PostgresStore":  # imported on first use: psycopg is an optional dependency
        from batonflow.store._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str | Path) -> Store:
    """A store for ``url``: ``sqlite:///path/runs.db`` (or a plain file path), or
    ``postgresql://user@host:5432/db`` (needs the ``postgres`` extra: psycopg 3)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from batonflow.store._postgres import PostgresStore
        except ImportError as exc:  # psycopg is an optional dependency
            raise ConfigError(
                f"{text.split('://', 1)[0]}:// URLs need psycopg 3:"
                f" pip install 'batonflow[postgres]' ({exc})"
            ) from exc
        return PostgresStore(text)
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
            "sqlite:///path (or a plain file path) and postgresql://..."
        )
    return SQLiteStore(text)
