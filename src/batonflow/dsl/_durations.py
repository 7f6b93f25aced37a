"""DSL durations: ISO 8601 (``PT1H30M``) or ``{days, hours, minutes, seconds, milliseconds}``."""

from __future__ import annotations

import math
import re
from typing import Any, Final

from batonflow.dsl._problems import ErrorType, Problem, WorkflowError

_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
MAX_SECONDS: Final = 100 * 366 * 86_400.0
"""The longest duration: 100 years. A wake-up time must stay a date the platform can show."""

_UNIT_SECONDS = {
    "weeks": 604_800.0,
    "days": 86_400.0,
    "hours": 3_600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


def to_seconds(duration: Any, *, where: str | None = None) -> float:
    """Seconds in a DSL duration. Years and months are refused: their length varies; so are
    durations longer than :data:`MAX_SECONDS`."""
    seconds = _seconds(duration, where)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise WorkflowError(
            Problem.of(
                ErrorType.CONFIGURATION,
                f"duration {_show(duration)} is out of range: at most 100 years "
                f"({MAX_SECONDS:.0f} seconds), and not negative",
                instance=where,
            )
        )
    return seconds


def _show(duration: Any) -> str:
    text = repr(duration)
    return text if len(text) <= 80 else text[:77] + "..."


def _seconds(duration: Any, where: str | None) -> float:
    if isinstance(duration, dict):
        unknown = set(duration) - (_UNIT_SECONDS.keys() - {"weeks"})
        if unknown or not duration:
            raise _bad(duration, where)
        try:
            return sum(_number(duration[unit]) * _UNIT_SECONDS[unit] for unit in duration)
        except (TypeError, ValueError, OverflowError):
            raise _bad(duration, where) from None
    if isinstance(duration, str):
        match = _ISO.match(duration.strip().upper())
        if match and duration.strip().upper() not in ("P", "PT") and not duration.endswith("T"):
            return sum(
                float(value) * _UNIT_SECONDS[unit]
                for unit, value in match.groupdict().items()
                if value is not None
            )
    raise _bad(duration, where)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("not a number")
    return float(value)


def _bad(duration: Any, where: str | None) -> WorkflowError:
    return WorkflowError(
        Problem.of(
            ErrorType.CONFIGURATION,
            f"invalid duration {_show(duration)}: expected an ISO 8601 duration such as PT1H30M "
            "(days, hours, minutes, seconds; no years or months) or an object with days, "
            "hours, minutes, seconds, milliseconds",
            instance=where,
        )
    )
