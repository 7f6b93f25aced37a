"""Alerts: a faulted run, a run open past its workflow's deadline, an approval about to expire.

The per-workflow deadline is the firm's impact tolerance: the longest a piece of work may stay
unfinished before people must act. :class:`AlertMonitor` looks at the store on an interval (any
number of monitors may share one store) and tells every configured channel at once.

Each occurrence is raised once. Its dedupe key is the key of a governance record ``kind="alert"``
written, together with the ``alert.raised`` audit entry, in one transaction *before* anything is
sent: a monitor that finds the record already there (another monitor, or itself before a
restart) stays silent. Delivery outcomes update that record and add ``alert.sent`` or
``alert.failed`` entries. Nothing in here may stop the monitor: a channel that stays down is
retried with backoff on the injected clock, then logged at ERROR and recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batonflow.core import Clock
from batonflow.core._ids import short_run_id
from batonflow.errors import ConfigError
from batonflow.governance._alert_channels import Alert, AlertChannel, AlertKind
from batonflow.governance._alert_dispatch import Dispatcher, clip
from batonflow.store import RunRecord, RunStatus, Store

__all__ = ["AlertMonitor", "expiring_alert", "faulted_alert", "overdue_alert"]

log = logging.getLogger("batonflow.alerts")

#: Governance record kind of the approvals this module reads (it writes ``ALERT_RECORD``).
APPROVAL_RECORD = "approval"
#: A run in one of these statuses is still open, so it can be overdue (FAULTED included: a
#: run nobody has resumed or cancelled has not delivered its service).
OPEN_STATUSES = (
    RunStatus.PENDING,
    RunStatus.RUNNING,
    RunStatus.WAITING,
    RunStatus.SUSPENDED,
    RunStatus.FAULTED,
)
#: ``deadlines`` key for workflows without a deadline of their own.
ANY_WORKFLOW = "*"


class AlertMonitor:
    """Finds what needs an alert and raises each occurrence once through every channel.

    ``deadlines`` maps a workflow name (or ``"*"``: any other workflow) to the seconds a run may
    stay open; ``deadline_of(run)`` gives a run's own tolerance where ``deadlines`` names none
    (a workflow document's ``metadata.batonflow.deadline``, which the run carries);
    ``expiring_within``: alert on a pending approval that expires within this many
    seconds. A channel failing ``attempts`` times in a row (waiting ``retry_delay``, doubling, on
    ``clock`` between tries) is given up on for that alert. ``scan_limit`` bounds each store
    query (see :meth:`check`).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        channels: Sequence[AlertChannel],
        deadlines: Mapping[str, float] | None = None,
        expiring_within: float | None = 3600.0,
        *,
        attempts: int = 4,
        retry_delay: float = 1.0,
        scan_limit: int = 1000,
        deadline_of: Callable[[RunRecord], float | None] | None = None,
    ) -> None:
        for name, seconds in (deadlines or {}).items():
            if seconds <= 0:
                raise ConfigError(f"alert deadline for {name!r}: expected a positive duration")
        self.store, self.clock = store, clock
        self.dispatcher = Dispatcher(
            store, clock, channels, attempts=attempts, retry_delay=retry_delay
        )
        self.channels = self.dispatcher.channels
        self.deadlines = dict(deadlines or {})
        self.deadline_of = deadline_of
        self.expiring_within = expiring_within
        self._scan_limit = scan_limit
        #: When the next known deadline or approval warning falls (clock time), or None.
        self.next_due: float | None = None
        self._known: set[str] = set()  # keys whose record exists: skip the store look-up
        self._unusable: set[str] = set()  # malformed approval records already reported
        #: Names this monitor in the records it writes (host, process, instance).
        self.id = self.dispatcher.id

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds of the clock until cancelled, and at the moment the
        next deadline or approval warning it knows of falls due; never raises."""
        while True:
            try:
                await self.check()
            except Exception:  # the store may be down: try again next time
                log.exception("alert check failed; retrying in %ss", interval)
            wait = interval
            if self.next_due is not None:
                wait = min(wait, max(self.next_due - self.clock.now(), 0.0))
            await self.clock.sleep(wait)

    async def check(self) -> list[Alert]:
        """One pass: raise what needs raising; return the alerts this monitor raised. Alerts
        a channel has not received yet (it was down) are delivered again when due.

        A run is found FAULTED or open among the newest ``scan_limit`` runs of each status (and
        workflow with a deadline) that ``Store.list_runs`` returns; a warning is logged when a
        query hits that bound.
        """
        now = self.clock.now()
        self.next_due = None
        found = [*await self._faulted(now), *await self._overdue(now)]
        found += await self._expiring(now)
        raised = []
        for alert in found:
            if await self._raise(alert):
                raised.append(alert)
        try:
            redelivery = await self.dispatcher.retry_pending()
        except Exception:  # the store failed: the next check tries again
            log.exception("could not deliver pending alerts; retrying at the next check")
        else:
            if redelivery is not None:
                self._due(redelivery)
        if len(self._known) > 100_000:  # forget old keys: the records still dedupe
            self._known.clear()
        return raised

    # -- finding --------------------------------------------------------------------------------
    async def _runs(self, status: RunStatus, workflow: str | None = None) -> list[RunRecord]:
        runs = await self.store.list_runs(status=status, workflow=workflow, limit=self._scan_limit)
        if len(runs) >= self._scan_limit:
            log.warning(
                "more than %d %s runs%s: older ones are not checked for alerts",
                self._scan_limit,
                status.value,
                f" of {workflow}" if workflow else "",
            )
        return runs

    async def _faulted(self, now: float) -> list[Alert]:
        alerts = []
        for run in await self._runs(RunStatus.FAULTED):
            at = run.finished_at if run.finished_at is not None else run.updated_at
            alert = faulted_alert(run.id, run.workflow, at, _error(run.error_json), now)
            if alert.key not in self._known:
                alerts.append(alert)
        return alerts

    def _due(self, at: float) -> None:
        """Remember the earliest future moment something will need an alert."""
        if self.next_due is None or at < self.next_due:
            self.next_due = at

    async def _overdue(self, now: float) -> list[Alert]:
        if not self.deadlines and self.deadline_of is None:
            return []
        every = ANY_WORKFLOW in self.deadlines or self.deadline_of is not None
        scoped = [None] if every else list(self.deadlines)
        alerts = []
        for status in OPEN_STATUSES:
            for workflow in scoped:
                for run in await self._runs(status, workflow):
                    alert = self._overdue_alert(run, now)
                    if alert is not None:
                        alerts.append(alert)
        return alerts

    def _overdue_alert(self, run: RunRecord, now: float) -> Alert | None:
        tolerance = self.deadlines.get(run.workflow)
        if tolerance is None and self.deadline_of is not None:
            tolerance = self.deadline_of(run)
        if tolerance is None:
            tolerance = self.deadlines.get(ANY_WORKFLOW)
        if tolerance is None or f"run.overdue:{run.id}" in self._known:
            return None
        if now < run.created_at + tolerance:
            self._due(run.created_at + tolerance)
            return None
        return overdue_alert(run, tolerance, now)

    async def _expiring(self, now: float) -> list[Alert]:
        if self.expiring_within is None:
            return []
        alerts = []
        for key, data_json in await self.store.list_records(APPROVAL_RECORD):
            try:
                approval = approval_record(data_json)
            except ValueError as exc:
                if key not in self._unusable:  # say so once, not on every pass
                    self._unusable.add(key)
                    log.error("approval record %r cannot be checked for expiry: %s", key, exc)
                continue
            if approval is None:
                continue
            expires_at: float = approval["expires_at"]
            dedupe = expiring_key(key, expires_at)
            if dedupe in self._known:
                continue
            if expires_at - now > self.expiring_within:
                self._due(expires_at - self.expiring_within)
                continue
            workflow = await approval_workflow(self.store, approval)
            alerts.append(expiring_alert(key, approval, workflow, now))
        return alerts

    # -- raising ------------------------------------------------------------------------------
    async def _raise(self, alert: Alert) -> bool:
        claimed = await self.dispatcher.raise_(alert)
        if claimed is None:  # the store failed: the next check tries again
            return False
        self._known.add(alert.key)
        return claimed


def faulted_alert(
    run_id: str, workflow: str, at: float, error: Mapping[str, Any], now: float
) -> Alert:
    """The alert of a run that faulted at ``at`` (its ``finished_at``) with ``error`` (see
    :func:`error_details`); the key is the same whichever process builds it."""
    details = {"status": "faulted", "faulted_at": _iso(at), **error}
    summary = f"run {_short(run_id)} ({workflow}) faulted"
    key = f"run.faulted:{run_id}:{at:.3f}"
    return Alert("run.faulted", run_id, workflow, summary, now, key, details)


def overdue_alert(run: RunRecord, tolerance: float, now: float) -> Alert:
    """The alert of ``run``, still open ``tolerance`` seconds after it was created."""
    summary = (
        f"run {_short(run.id)} ({run.workflow}) overdue: open {_human(now - run.created_at)},"
        f" tolerance {_human(tolerance)}"
    )
    details = {
        "status": run.status.value,
        "created_at": _iso(run.created_at),
        "deadline_at": _iso(run.created_at + tolerance),
        "tolerance_seconds": tolerance,
    }
    return _alert("run.overdue", run, summary, now, f"run.overdue:{run.id}", details)


def expiring_key(approval: str, expires_at: float) -> str:
    return f"approval.expiring:{approval}:{expires_at:.3f}"


async def approval_workflow(store: Store, approval: Mapping[str, Any]) -> str:
    workflow = approval.get("workflow")
    if isinstance(workflow, str):
        return workflow
    run = await store.get_run(approval["run_id"])
    return run.workflow if run is not None else "?"


def expiring_alert(key: str, approval: Mapping[str, Any], workflow: str, now: float) -> Alert:
    """The alert of the open approval ``key`` (its record, parsed) about to expire."""
    run_id: str = approval["run_id"]
    left = approval["expires_at"] - now
    when = f"expires in {_human(left)}" if left > 0 else f"expired {_human(-left)} ago"
    title = clip(str(approval.get("title") or key), 80)
    summary = f"approval {title!r} on run {_short(run_id)} ({workflow}) {when}"
    details = {
        "approval": key,
        "title": approval.get("title"),
        "expires_at": _iso(approval["expires_at"]),
    }
    dedupe = expiring_key(key, approval["expires_at"])
    return Alert("approval.expiring", run_id, workflow, summary, now, dedupe, details)


def _alert(
    kind: AlertKind, run: RunRecord, summary: str, now: float, key: str, details: dict[str, Any]
) -> Alert:
    return Alert(kind, run.id, run.workflow, summary, now, key, details)


def approval_record(data_json: str) -> dict[str, Any] | None:
    """The record of an open approval that can expire, or None; ValueError if malformed.

    Relied on: ``run_id`` (string), ``expires_at`` (epoch seconds, an ISO 8601 date-time with
    an offset, or null: never expires), optional ``status`` (absent or ``"pending"``: open),
    optional ``title`` and ``workflow``.
    """
    try:
        data = json.loads(data_json)
        if data.get("status", "pending") != "pending" or data.get("expires_at") is None:
            return None
        expires_at = _instant(data["expires_at"])
        if not isinstance(data.get("run_id"), str):
            raise TypeError("run_id: expected a string")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from None
    return {**data, "expires_at": expires_at}


def _instant(value: Any) -> float:
    """Epoch seconds from a number or an ISO 8601 date-time with an offset."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"expires_at {value!r} has no UTC offset")
        return moment.timestamp()
    raise TypeError(f"expires_at: expected epoch seconds or an ISO 8601 date-time, got {value!r}")


def _error(error_json: str | None) -> dict[str, Any]:
    try:
        error = json.loads(error_json) if error_json else {}
    except ValueError:
        return {}
    return error_details(error)


def error_details(error: Any) -> dict[str, Any]:
    """``{"error": "Type: message", "step": ...}`` from a recorded error."""
    if not isinstance(error, dict):
        return {}
    message = error.get("message") or error.get("detail") or error.get("title") or ""
    found = {"error": clip(f"{error.get('type', '?')}: {message}", 500)}
    if isinstance(error.get("step"), str):
        found["step"] = error["step"]
    return found


def _short(run_id: str) -> str:
    return run_id if len(run_id) <= 8 else f"…{short_run_id(run_id)}"


def _iso(at: float) -> str:
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _human(seconds: float) -> str:
    """``1d 2h``, ``4h 12m``, ``42m``, ``30s``: the two largest units."""
    left = max(0, round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])
