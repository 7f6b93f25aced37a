"""``/healthz`` (the process is up), ``/readyz`` (the store answers and its migrations are
current), ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

import batonflow as bf
from batonflow.governance._alert_dispatch import ALERT_RECORD
from batonflow.governance._approval import list_pending
from batonflow.server._auth import allowed, service_of
from batonflow.store import AuditRecord

router = APIRouter(tags=["operations"])
_ENDS = {"run.completed": "completed", "run.faulted": "faulted", "run.cancelled": "cancelled"}


class Health(BaseModel):
    status: str
    version: str = bf.__version__
    detail: str | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no authentication)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request) -> Any:
    """The store answers and its schema is current (no authentication)."""
    service = service_of(request)
    try:
        await service.store.get_run("readyz-probe")
        current = getattr(service.store, "schema_current", None)
        if current is not None and not await current():
            raise bf.StoreError("the database schema is not at this version's migrations")
    except (bf.BatonflowError, OSError) as exc:
        body = Health(status="unavailable", detail=str(exc)).model_dump()
        return JSONResponse(body, status_code=503)
    return Health(status="ready")


class Metrics:
    """Counters fed by the change feed (so they count the work of every process sharing the
    store, since this one started), gauges read from the store at each scrape, and the commit
    latency of this process's store (observed by the store's writer, see :meth:`watch`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter("batonflow_runs_started", "Runs started", ["workflow"], registry=r)
        self.ended = Counter(
            "batonflow_runs_ended", "Runs ended, by outcome", ["workflow", "outcome"], registry=r
        )
        self.steps = Histogram(
            "batonflow_step_duration_seconds", "Step latency (last attempt)", ["kind"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600), registry=r,
        )  # fmt: skip
        self.by_status = Gauge("batonflow_runs", "Runs by status", ["status"], registry=r)
        self.oldest_approval = Gauge(
            "batonflow_oldest_waiting_approval_seconds", "Age of the oldest open approval",
            registry=r,
        )  # fmt: skip
        self.alerts_open = Gauge("batonflow_alerts_open", "Alerts not acknowledged", registry=r)
        self.scrape = Gauge(
            "batonflow_store_read_seconds", "How long the scrape's store reads took", registry=r
        )
        self.commits = Histogram(
            "batonflow_store_commit_seconds",
            "Time for a write transaction of this process to commit (durable); one commit may"
            " carry many writes (group commit)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self._workflows: dict[str, str] = {}

    def watch(self, store: bf.Store) -> None:
        """Observe ``store``'s commits (both built-in stores offer ``observe_commits``; a
        wrapping store passes it through)."""
        observe = getattr(store, "observe_commits", None)
        if observe is not None:
            observe(self.commits.observe)

    def see(self, record: AuditRecord) -> None:
        data = _object(record.data_json)
        if record.kind == "run.created" and record.run_id:
            workflow = str(data.get("workflow", "sealed"))
            if len(self._workflows) > 100_000:
                self._workflows.clear()
            self._workflows[record.run_id] = workflow
            self.started.labels(workflow).inc()
        elif record.kind in _ENDS and record.run_id:
            workflow = self._workflows.pop(record.run_id, "unknown")
            self.ended.labels(workflow, _ENDS[record.kind]).inc()
        elif record.kind in ("step.completed", "step.failed"):
            start, end = data.get("started_at"), data.get("finished_at")
            if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
                self.steps.labels(str(data.get("kind", "step"))).observe(end - start)

    async def refresh(self, store: bf.Store) -> None:
        began = time.perf_counter()
        counts = await store.count_runs()
        for status in bf.RunStatus:
            self.by_status.labels(status.value).set(counts.get(status, 0))
        pending = await list_pending(store)
        oldest = min((p.requested_at for p in pending), default=None)
        self.oldest_approval.set(0 if oldest is None else max(0.0, time.time() - oldest))
        alerts = await store.list_records(ALERT_RECORD)
        self.alerts_open.set(sum(1 for _, t in alerts if _object(t).get("state") != "acknowledged"))
        self.scrape.set(time.perf_counter() - began)


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics (needs a token with the read role)."""
    await allowed("read")(request)
    service = service_of(request)
    collected: Metrics = request.app.state.metrics
    await collected.refresh(service.store)
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)


def names(metrics: Metrics) -> Iterable[str]:
    return [m.name for m in metrics.registry.collect()]
