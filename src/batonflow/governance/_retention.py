"""Retention periods per workflow, enforced by a purge that is itself audited (storage
limitation, UK GDPR Art. 5(1)(e)).

A workflow's retention is an ISO 8601 duration (``P6Y``, ``P18M``, ``P30D``, ``PT12H``), given in
its document's ``metadata.batonflow.retention`` or in the configuration file::

    [governance.retention]
    enquiry = "P6Y"
    triage = "P90D"

Years and months are calendar years and months (``P1Y`` after 29 February is 28 February of
the next year), as a legal retention period is meant. :func:`purge` deletes the ended runs
(completed, cancelled, faulted) whose end plus their workflow's retention has passed, each with
a ``run.purged`` audit entry in the same transaction, then appends one ``retention.purge``
summary. The audit entries stay: the trail records that the data existed and when it went.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batonflow._toml import read_toml
from batonflow.errors import ConfigError, InvalidTransition, RunNotFound
from batonflow.store import AuditEntry, RunRecord, RunStatus, Store

__all__ = [
    "PurgeReport",
    "Purged",
    "Retention",
    "load_retention",
    "parse_retention",
    "purge",
    "retention_config",
    "retention_from_metadata",
]

_ISO = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
#: The ended statuses a purge deletes (a faulted run can be resumed, but not forever).
ENDED = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAULTED)
_ALL = 1_000_000


@dataclass(frozen=True, slots=True)
class Retention:
    """How long an ended run is kept: calendar ``years`` and ``months``, plus ``seconds``."""

    text: str
    years: int = 0
    months: int = 0
    seconds: float = 0.0

    def expires(self, finished_at: float) -> float:
        """When a run that ended at ``finished_at`` (epoch seconds) may be purged."""
        start = dt.datetime.fromtimestamp(finished_at, dt.UTC)
        total = start.month - 1 + self.months + 12 * self.years
        year, month = start.year + total // 12, total % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day).timestamp() + self.seconds


def parse_retention(text: Any, *, where: str = "retention") -> Retention:
    """An ISO 8601 duration (``P6Y``, ``P1Y6M``, ``P30D``, ``PT36H``) as a Retention."""
    if isinstance(text, str):
        normal = text.strip().upper()
        match = _ISO.fullmatch(normal)
        if match and normal not in ("P", "PT") and not normal.endswith("T"):
            parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
            seconds = (
                parts.get("weeks", 0) * 604_800
                + parts.get("days", 0) * 86_400
                + parts.get("hours", 0) * 3_600
                + parts.get("minutes", 0) * 60
                + parts.get("seconds", 0)
            )
            r = Retention(normal, int(parts.get("years", 0)), int(parts.get("months", 0)), seconds)
            if (r.years, r.months, r.seconds) == (0, 0, 0):
                raise ConfigError(f"{where}: a retention of {text!r} would purge runs at once")
            return r
    raise ConfigError(
        f"{where}: invalid retention {text!r}: expected an ISO 8601 duration such as P6Y, "
        "P18M, P30D or PT12H"
    )


def retention_from_metadata(metadata: Any, *, where: str = "document.metadata") -> (
    Retention | None
):  # fmt: skip
    """The retention in a workflow document's ``metadata`` (``batonflow.retention``), if any."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(metadata).__name__}")
    ours = metadata.get("batonflow")
    if ours is None:
        return None
    if not isinstance(ours, Mapping):
        raise ConfigError(f"{where}.batonflow: expected an object, got {type(ours).__name__}")
    value = ours.get("retention")
    return None if value is None else parse_retention(value, where=f"{where}.batonflow.retention")


def load_retention(path: str | Path) -> dict[str, Retention]:
    """The ``[governance.retention]`` table of a TOML file: workflow name -> retention."""
    return retention_config(read_toml(path), str(path))


def retention_config(data: Mapping[str, Any], source: str) -> dict[str, Retention]:
    """The ``[governance.retention]`` table of a parsed configuration file (``source`` names
    the file in errors): workflow name -> retention. No table: keep everything."""
    governance = data.get("governance", {})
    if not isinstance(governance, Mapping):
        raise ConfigError(f"{source}: [governance] must be a table")
    table = governance.get("retention", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f'{source}: [governance.retention] must be a table of workflow = "P6Y"')
    return {
        name: parse_retention(value, where=f"{source}: governance.retention.{name}")
        for name, value in table.items()
    }


@dataclass(frozen=True, slots=True)
class Purged:
    run_id: str
    workflow: str
    status: RunStatus
    finished_at: float
    expired_at: float


@dataclass(frozen=True, slots=True)
class PurgeReport:
    at: float
    dry_run: bool
    runs: tuple[Purged, ...]


async def purge(
    store: Store,
    now: float,
    policies: Mapping[str, Retention | str],
    *,
    actor: str,
    dry_run: bool = False,
    workflow: str | None = None,
) -> PurgeReport:
    """Delete the ended runs past their workflow's retention (only ``workflow``'s, if given).

    Workflows without a policy are kept forever. ``dry_run``: report, delete nothing, audit
    nothing. Each deletion is audited as ``run.purged`` by ``actor``; a ``retention.purge``
    entry sums the pass up.
    """
    rules = {name: _as_retention(name, r) for name, r in policies.items()}
    if workflow is not None:
        if workflow not in rules:
            raise ConfigError(
                f"workflow {workflow!r} has no retention period; configured: "
                + (", ".join(sorted(rules)) or "none")
            )
        rules = {workflow: rules[workflow]}
    due = [p for name, rule in rules.items() for p in await _due(store, name, rule, now)]
    due.sort(key=lambda p: (p.finished_at, p.run_id))  # oldest first
    done = due if dry_run else [p for p in due if await _delete(store, p, rules, actor, now)]
    if not dry_run:
        await drop_run_records(store, {p.run_id for p in done}, now)
        summary = {
            "runs": len(done),
            "policies": {name: rule.text for name, rule in sorted(rules.items())},
        }
        await store.append_audit(
            [AuditEntry("retention.purge", json.dumps(summary), actor=actor)], now
        )
        compact = getattr(store, "compact", None)
        if done and compact is not None:
            await compact()
    return PurgeReport(now, dry_run, tuple(done))


#: The record kind of a corrected classification kept as an example
#: (``batonflow.catalog.correct_label``), keyed ``workflow RECORD_SEP run id RECORD_SEP step``.
EXAMPLE_KIND = "classify.example"
RECORD_SEP = "\x1f"
#: Store records that belong to one run and are deleted with it: kind -> the position of the
#: run id among the fields of the record's key.
RUN_RECORDS = {EXAMPLE_KIND: 1}


async def drop_run_records(store: Store, run_ids: set[str], now: float) -> int:
    """Delete the :data:`RUN_RECORDS` of the runs ``run_ids``; how many went."""
    dropped = 0
    for kind, field in RUN_RECORDS.items():
        for key, _ in await store.list_records(kind):
            parts = key.split(RECORD_SEP)
            if len(parts) > field and parts[field] in run_ids:
                await store.put_record(kind, key, None, now)
                dropped += 1
    return dropped


def _as_retention(name: str, rule: Retention | str) -> Retention:
    if isinstance(rule, Retention):
        return rule
    return parse_retention(rule, where=f"retention of workflow {name!r}")


async def _due(store: Store, workflow: str, rule: Retention, now: float) -> list[Purged]:
    out = []
    for status in ENDED:
        for run in await store.list_runs(status=status, workflow=workflow, limit=_ALL):
            ended = _ended_at(run)
            if rule.expires(ended) <= now:
                out.append(Purged(run.id, run.workflow, run.status, ended, rule.expires(ended)))
    return out


def _ended_at(run: RunRecord) -> float:
    return run.finished_at if run.finished_at is not None else run.updated_at


async def _delete(
    store: Store, p: Purged, rules: Mapping[str, Retention], actor: str, now: float
) -> bool:
    data = {
        "workflow": p.workflow,
        "status": p.status.value,
        "finished_at": p.finished_at,
        "retention": rules[p.workflow].text,
    }
    run = await store.get_run(p.run_id)
    subjects = run.subjects if run is not None else ()
    entry = AuditEntry("run.purged", json.dumps(data), p.run_id, None, actor, subjects)
    try:
        await store.delete_run(p.run_id, now, audit=[entry])
    except (RunNotFound, InvalidTransition):  # deleted meanwhile, or resumed since listed
        return False
    return True
