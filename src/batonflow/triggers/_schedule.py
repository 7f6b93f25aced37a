"""When a schedule fires: cron expressions in an IANA time zone, fixed intervals, or a delay after
the previous run; and what it does when a tick finds the previous run still open.

Clock changes (Europe/London, and every zone with daylight saving) follow the cron tradition
(Debian's cron, which ``cronsim`` implements), with one rule of our own on top:

- clocks go **forward** (29 March 2026, 01:00 -> 02:00 in London): a time in the skipped hour
  (``30 1 * * *``) fires once, at the first instant after the gap (02:00 BST). Nothing is lost.
- clocks go **back** (25 October 2026, 02:00 -> 01:00 in London): a time in the repeated hour
  fires once, on its first pass (01:30 BST), not again an hour later. Nothing runs twice. An
  expression whose hour field is ``*`` (hourly or more often) keeps its rhythm in real time: the
  repeated hour's ticks are real, later instants, so ``0 * * * *`` fires at 01:00 BST and again
  at 01:00 GMT, an hour apart.

``every`` is elapsed time (an hour is 3,600 seconds whatever the wall clock does), counted from
the Unix epoch, so every process computes the same ticks without talking to the others. Use
``cron`` for wall-clock times ("9:00 each weekday").
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from batonflow.errors import ConfigError

__all__ = ["Overlap", "ScheduleSpec", "duration_seconds", "iso"]

#: Temporal's default catch-up window: ticks missed longer ago than this are not acted upon.
DEFAULT_CATCHUP = 365 * 86400.0
#: Temporal's minimum catch-up window.
MIN_CATCHUP = 10.0


class Overlap(enum.StrEnum):
    """What a tick does while the run its schedule started last is still open (Temporal's
    ``ScheduleOverlapPolicy``)."""

    SKIP = "skip"  #: start nothing (the default)
    BUFFER_ONE = "buffer_one"  #: start it when the open run ends; at most one waits
    ALLOW_ALL = "allow_all"  #: start it anyway: runs overlap
    CANCEL_OTHER = "cancel_other"  #: cancel the open run, then start this one


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule: exactly one of ``cron`` (five fields, in ``zone``), ``every`` (seconds,
    offset by ``offset``) or ``after`` (seconds after the previous run ended, the first run at
    once); ``overlap`` policy; ``catchup_window``: after downtime, ticks missed no longer ago
    than this are still acted upon (oldest first), older ones are counted as missed."""

    cron: str | None = None
    every: float | None = None
    after: float | None = None
    zone: str = "UTC"
    offset: float = 0.0
    overlap: Overlap = Overlap.SKIP
    catchup_window: float = DEFAULT_CATCHUP

    def __post_init__(self) -> None:
        given = [n for n in ("cron", "every", "after") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError(
                "a schedule needs exactly one of cron, every, after"
                + (f"; got {', '.join(given)}" if given else "")
            )
        for name in ("every", "after"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"schedule {name}: expected a positive duration, got {value!r}")
        if self.catchup_window < MIN_CATCHUP:
            raise ConfigError(
                f"schedule catchup_window: expected at least {MIN_CATCHUP:g} seconds,"
                f" got {self.catchup_window!r}"
            )
        self.tz  # noqa: B018 - an unknown zone is a configuration error now, not at the tick
        if self.cron is not None:
            self._check_cron(self.cron)

    @property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"schedule zone {self.zone!r}: expected an IANA time zone such as Europe/London"
            ) from None

    @staticmethod
    def _check_cron(expression: str) -> None:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(expression, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        except CronSimError as exc:
            raise ConfigError(
                f"schedule cron {expression!r}: {exc}; expected five fields"
                " (minute hour day-of-month month day-of-week), e.g. '0 9 * * 1-5'"
            ) from None

    @property
    def periodic(self) -> bool:
        """True for ticks on a fixed calendar (cron, every); False for ``after``."""
        return self.after is None

    def ticks(self, after: float) -> Iterator[float]:
        """The fire times (Unix seconds) strictly after ``after``, in order, without end."""
        if self.every is not None:
            k = math.floor((after - self.offset) / self.every) + 1
            while True:
                yield self.offset + k * self.every
                k += 1
        if self.cron is None:
            raise ConfigError("an 'after' schedule has no fixed ticks")
        yield from self._cron_ticks(self.cron, after)

    def _cron_ticks(self, expression: str, after: float) -> Iterator[float]:
        from cronsim import CronSim

        start = dt.datetime.fromtimestamp(after, self.tz)
        hour_is_wild = expression.split()[1] == "*"
        last = after
        for moment in CronSim(expression, start):
            if moment.fold == 1 and not hour_is_wild:
                continue  # the repeated hour when clocks go back: it fired on the first pass
            at = moment.timestamp()
            if at > last:
                last = at
                yield at

    def next_after(self, after: float) -> float:
        return next(self.ticks(after))

    def upcoming(self, after: float, count: int = 3) -> list[float]:
        found: list[float] = []
        for at in self.ticks(after):
            found.append(at)
            if len(found) == count:
                break
        return found

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.zone})"
        if self.every is not None:
            return f"every {self.every:g}s"
        return f"{self.after:g}s after the previous run"

    @classmethod
    def parse(cls, table: Any, where: str) -> ScheduleSpec:
        """From a ``batonflow.toml`` table or a document's schedule options: ``cron``,
        ``every``/``after`` (seconds, ISO 8601 ``PT15M``, or a DSL duration object),
        ``zone``, ``offset``, ``overlap``, ``catchup_window``."""
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        known = {"cron", "every", "after", "zone", "offset", "overlap", "catchup_window"}
        unknown = sorted(set(table) - known - {"workflow", "document", "input"})
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
                ", workflow or document, input"
            )
        try:
            overlap = Overlap(table.get("overlap", "skip"))
        except ValueError:
            choices = ", ".join(o.value for o in Overlap)
            raise ConfigError(
                f"{where}.overlap: {table['overlap']!r} is not one of {choices}"
            ) from None
        cron = table.get("cron")
        if cron is not None and not isinstance(cron, str):
            raise ConfigError(f"{where}.cron: expected a string such as '0 9 * * 1-5'")
        zone = table.get("zone", "UTC")
        if not isinstance(zone, str):
            raise ConfigError(f"{where}.zone: expected an IANA zone name such as Europe/London")
        try:
            return cls(
                cron=cron,
                every=_maybe(table.get("every"), f"{where}.every"),
                after=_maybe(table.get("after"), f"{where}.after"),
                zone=zone,
                offset=_maybe(table.get("offset"), f"{where}.offset", zero=True) or 0.0,
                overlap=overlap,
                catchup_window=_maybe(table.get("catchup_window"), f"{where}.catchup_window")
                or DEFAULT_CATCHUP,
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _maybe(value: Any, where: str, *, zero: bool = False) -> float | None:
    if value is None:
        return None
    seconds = duration_seconds(value, where)
    if seconds == 0 and zero:
        return 0.0
    return seconds


def duration_seconds(value: Any, where: str) -> float:
    """Seconds from a number, an ISO 8601 duration (``PT15M``) or a DSL duration object."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        from batonflow.dsl._durations import to_seconds

        try:
            seconds = to_seconds(value)
        except Exception:
            raise ConfigError(
                f"{where}: {value!r} is not a duration; expected seconds, an ISO 8601 duration"
                " such as PT15M, or an object such as {minutes = 15}"
            ) from None
    if seconds < 0 or not math.isfinite(seconds):
        raise ConfigError(f"{where}: expected a duration of zero or more, got {value!r}")
    return seconds


def iso(at: float) -> str:
    """A tick's instant as it appears in keys and listings: UTC, second precision."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.isoformat(timespec="milliseconds" if at % 1 else "seconds").replace("+00:00", "Z")
