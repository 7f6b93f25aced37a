"""``/alerts``: the alerts the monitors raised, open ones first, and acknowledging one (a form
post) through ``governance.acknowledge_alert``, the rule the API calls: admin or operator, once
per alert, on the audit trail as ``alert.acknowledged``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._alert_state import acknowledge_alert, list_alerts
from batonflow.governance._identity import Identity, can
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render


@router.get("/alerts")
async def alerts(request: Request, me: Annotated[Identity, Depends(signed_in())]) -> Response:
    found = await list_alerts(service_of(request).store, me)
    context = {
        "open": [a for a in found if a.is_open],
        "seen": [a for a in found if not a.is_open],
        "may_acknowledge": can(me, "alert.acknowledge"),
    }
    return render(request, "alerts.html", context)


@router.post("/alerts/acknowledge")
async def acknowledge(
    request: Request, me: Annotated[Identity, Depends(signed_in("alert.acknowledge"))]
) -> Response:
    form = await posted(request)
    key = str(form.get("key", ""))
    service = service_of(request)
    try:
        state = await acknowledge_alert(service.store, key, me, now=service.now())
    except bf.InvalidTransition as exc:
        raise Refused("Already acknowledged", str(exc), status=409) from None
    if state is None:
        raise Refused("No such alert", f"there is no alert {key!r}", status=404)
    response = RedirectResponse("/alerts", status_code=303)
    flash(request, response, f"Acknowledged: {state.summary or state.key}")
    return response
