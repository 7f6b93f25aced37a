"""Data subjects (export, erase), connector and provider kill switches, alerts (list,
acknowledge): the functions ``batonflow subject|connector`` call, with the same roles."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from batonflow.governance import erase_subject, export_subject, wrap_store
from batonflow.governance._alert_state import AlertState, acknowledge_alert, list_alerts
from batonflow.governance._connectors import ConnectorSwitches, check_switchable
from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._models import Body
from batonflow.server._paging import Cursor, Limit, Paged, page
from batonflow.server._problems import NotFound

router = APIRouter(tags=["governance"])
Reader = Annotated[Identity, Depends(allowed("read"))]


# -- data subjects ----------------------------------------------------------------------------


class SubjectBody(Body):
    subject: str = Field(..., min_length=1, max_length=500, description="e.g. an e-mail address")


class EraseBody(SubjectBody):
    confirm: Literal["erase"] = Field(
        ..., description='Must be "erase": the data cannot be recovered afterwards'
    )


class ErasureOut(BaseModel):
    subject: str
    outcome: str
    runs: list[str]
    cancelled: list[str]
    erased_at: float | None = None
    actor: str | None = None


@router.post("/subjects/export", tags=["subjects"])
async def subject_export(
    body: SubjectBody,
    request: Request,
    me: Annotated[Identity, Depends(allowed("subject.export"))],
) -> dict[str, Any]:
    """Everything held about a data subject, decrypted (audited as `subject.exported`)."""
    service = service_of(request)
    store = wrap_store(service.store)
    found: dict[str, Any] = await export_subject(
        store, body.subject, actor=me.name, now=service.now()
    )
    return found


@router.post("/subjects/erase", response_model=ErasureOut, tags=["subjects"])
async def subject_erase(
    body: EraseBody,
    request: Request,
    me: Annotated[Identity, Depends(allowed("subject.erase"))],
) -> ErasureOut:
    """Destroy a data subject's key: their runs' data becomes unreadable for good and their
    unfinished runs are cancelled. Needs `"confirm": "erase"`."""
    service = service_of(request)
    done = await erase_subject(
        wrap_store(service.store), body.subject, actor=me.name, now=service.now()
    )
    return ErasureOut(
        subject=done.subject, outcome=done.outcome, runs=list(done.runs),
        cancelled=list(done.cancelled), erased_at=done.erased_at, actor=done.actor,
    )  # fmt: skip


# -- connectors ---------------------------------------------------------------------------------


class ConnectorOut(BaseModel):
    name: str
    enabled: bool
    data: dict[str, Any] = {}


class ConnectorList(Paged):
    items: list[ConnectorOut]


class SwitchBody(Body):
    reason: str | None = Field(None, max_length=2000)


def _connector(state: Any) -> ConnectorOut:
    data = state.to_dict()
    return ConnectorOut(name=state.name, enabled=bool(data.get("enabled", True)), data=data)


@router.get("/connectors", response_model=ConnectorList, tags=["connectors"])
async def connectors(
    request: Request, me: Reader, limit: Limit = 100, cursor: Cursor = None
) -> ConnectorList:
    """Connectors and providers that were ever switched, with their state, by name."""
    states = await ConnectorSwitches(service_of(request).store).list()
    chosen, after = page(states, lambda s: str(s.name), limit, cursor)
    return ConnectorList(items=[_connector(s) for s in chosen], next_cursor=after)


@router.post("/connectors/{name}/disable", response_model=ConnectorOut, tags=["connectors"])
async def disable(
    name: str,
    request: Request,
    me: Annotated[Identity, Depends(allowed("connector.switch"))],
    body: SwitchBody | None = None,
) -> ConnectorOut:
    """Switch a connector or provider off: runs that need it wait (they neither fail nor
    skip the call) until it is enabled."""
    service = service_of(request)
    check_switchable(name, service.setup.egress()[1].names())
    switches = ConnectorSwitches(service.store)
    state, _ = await switches.disable(name, me.name, body.reason if body else None)
    return _connector(state)


@router.post("/connectors/{name}/enable", response_model=ConnectorOut, tags=["connectors"])
async def enable(
    name: str, request: Request, me: Annotated[Identity, Depends(allowed("connector.switch"))]
) -> ConnectorOut:
    """Switch a connector or provider on again."""
    check_switchable(name, service_of(request).setup.egress()[1].names())
    state, _ = await ConnectorSwitches(service_of(request).store).enable(name, me.name)
    service_of(request).poke()
    return _connector(state)


# -- alerts -------------------------------------------------------------------------------------


class AlertOut(BaseModel):
    key: str
    kind: str | None = None
    state: str
    summary: str | None = None
    run_id: str | None = None
    data: dict[str, Any] = {}


class AlertList(Paged):
    items: list[AlertOut]


def _alert(state: AlertState) -> AlertOut:
    return AlertOut(
        key=state.key, kind=state.kind, state=state.state, summary=state.summary,
        run_id=state.run_id, data=state.data,
    )  # fmt: skip


@router.get("/alerts", response_model=AlertList, tags=["alerts"])
async def alerts(
    request: Request, me: Reader, open: bool = False, limit: Limit = 100, cursor: Cursor = None
) -> AlertList:
    """Alerts raised by the monitors, by key; `open=true`: those not yet acknowledged."""
    found = [_alert(a) for a in await list_alerts(service_of(request).store, me, open_only=open)]
    chosen, after = page(found, lambda a: a.key, limit, cursor)
    return AlertList(items=chosen, next_cursor=after)


@router.post("/alerts/{key:path}/acknowledge", response_model=AlertOut, tags=["alerts"])
async def acknowledge(
    key: str, request: Request, me: Annotated[Identity, Depends(allowed("alert.acknowledge"))]
) -> AlertOut:
    """Mark an alert as seen by the caller (audited as `alert.acknowledged`)."""
    service = service_of(request)
    state = await acknowledge_alert(service.store, key, me, now=service.now())
    if state is None:
        raise NotFound(f"no alert {key!r}")
    return _alert(state)
