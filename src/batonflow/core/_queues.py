"""Named queues: flow control for runs, honoured by every engine that shares a store.

A workflow names its queue (``@workflow(queue="llm")``); an engine says what each queue allows::

    Engine(url, queues={"llm": Queue(concurrency=4, per_worker=2, rate=RateLimit(50, per=60))})

The limits are enforced where runs are claimed, in the database, so they hold across all worker
processes on all machines. Runs on no queue (the ``default`` queue) have no limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from batonflow.errors import ConfigError
from batonflow.store import QueueLimits

#: The name that stands for "no queue" wherever queues are listed (``--queues default,llm``).
DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` runs of the queue *start* per ``per`` seconds (a sliding window).

    A run counts once, when it first starts; resuming it after a wait does not count again.
    """

    count: int
    per: float = 60.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ConfigError(f"a rate limit needs count >= 1 and per > 0, got {self}")


@dataclass(frozen=True, slots=True)
class Queue:
    """The limits of a named queue (None: no limit of that kind).

    ``concurrency``: runs of the queue executing at once across all workers; ``per_worker``: at
    once in one engine; ``rate``: how many may start per period. A parked run (sleeping,
    waiting for an event or a child) is not executing and holds no slot.
    """

    concurrency: int | None = None
    per_worker: int | None = None
    rate: RateLimit | None = None

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_worker"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"Queue({name}=...) must be at least 1, got {value}")

    def limits(self) -> QueueLimits:
        rate = self.rate
        return QueueLimits(
            concurrency=self.concurrency,
            per_worker=self.per_worker,
            rate=rate.count if rate else None,
            per=rate.per if rate else 60.0,
        )


def queue_name(name: str | None) -> str | None:
    """A workflow's queue as stored: None for the default queue."""
    if name is None or name == DEFAULT_QUEUE:
        return None
    if not name.strip() or name != name.strip():
        raise ConfigError(f"a queue name must be a non-empty word, got {name!r}")
    return name


def queue_limits(queues: Mapping[str, Queue]) -> dict[str, QueueLimits]:
    limits = {}
    for name, queue in queues.items():
        if not isinstance(queue, Queue):
            raise ConfigError(f"queues[{name!r}] must be a Queue, got {type(queue).__name__}")
        stored = queue_name(name)
        if stored is None:
            raise ConfigError("the default queue has no limits; put limited runs on a named queue")
        limits[stored] = queue.limits()
    return limits


def served(names: Iterable[str] | None) -> tuple[str, ...] | None:
    """The queues an engine claims runs from, as the store takes them ("" for the default)."""
    if names is None:
        return None
    if isinstance(names, str):
        raise ConfigError("serve takes a list of queue names, not a string")
    return tuple(queue_name(n) or "" for n in names)
