"""``/connectors``: every configured connector and model provider and every host ever
switched, with its kill switch: who switched it, when and why. Switching is the API's
(``ConnectorSwitches`` after ``check_switchable``, role ``connector.switch``): a connector
switched off makes the runs that need it wait, neither failing nor skipping the call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._connectors import ConnectorState, ConnectorSwitches, check_switchable
from batonflow.governance._identity import Identity, can
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render

Switcher = Annotated[Identity, Depends(signed_in("connector.switch"))]


@router.get("/connectors")
async def connectors(request: Request, me: Annotated[Identity, Depends(signed_in())]) -> Response:
    service = service_of(request)
    switched = {s.name.lower(): s for s in await ConnectorSwitches(service.store).list()}
    configured = service.setup.egress()[1].names()
    rows: list[dict[str, Any]] = []
    for name in sorted({*configured, *(s.name for s in switched.values())}, key=str.lower):
        state = switched.get(name.lower(), ConnectorState(name))
        rows.append({"state": state, "configured": name in configured})
    context = {"rows": rows, "may_switch": can(me, "connector.switch")}
    return render(request, "connectors.html", context)


async def _switch(request: Request, me: Identity, *, enabled: bool) -> Response:
    form = await posted(request)
    name = str(form.get("name", "")).strip()
    service = service_of(request)
    try:
        check_switchable(name, service.setup.egress()[1].names())
    except bf.ConfigError as exc:
        raise Refused("No such connector", str(exc), status=400) from None
    switches = ConnectorSwitches(service.store)
    if enabled:
        state, changed = await switches.enable(name, me.name)
        service.poke()  # runs waiting for it may go on now
    else:
        reason = str(form.get("reason", "")).strip()[:2000] or None
        state, changed = await switches.disable(name, me.name, reason)
    verb = "on" if enabled else "off"
    message = f"{state.name} switched {verb}" if changed else f"{state.name} was already {verb}"
    response = RedirectResponse("/connectors", status_code=303)
    flash(request, response, message)
    return response


@router.post("/connectors/disable")
async def disable(request: Request, me: Switcher) -> Response:
    return await _switch(request, me, enabled=False)


@router.post("/connectors/enable")
async def enable(request: Request, me: Switcher) -> Response:
    return await _switch(request, me, enabled=True)
