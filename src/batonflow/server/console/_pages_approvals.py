"""``/approvals``: what waits for the signed-in person to decide, with what they need to decide
it (the original message, the model's label and confidence, votes so far, time left); deciding
is a plain form post to :func:`batonflow.governance.decide` (the rules of the approval apply:
who may, separation of duties, one vote a person, comments where required, expiry), and a
wrong label is corrected with :func:`batonflow.catalog.correct_label`, as the API does. Runs'
personal data opens for deciders through ``open_for_reading`` (audited)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.catalog import correct_label
from batonflow.governance._access import open_for_reading
from batonflow.governance._approval import (
    ApprovalRequest,
    aliases_in,
    approvals_of,
    decide,
    get_request,
    list_pending,
    may_decide,
)
from batonflow.governance._identity import Identity, can
from batonflow.server._auth import require, service_of
from batonflow.server._service import Service
from batonflow.server.console import _links as links
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render

Decider = Annotated[Identity, Depends(signed_in("approval.decide"))]


@dataclass
class Waiting:
    """One open approval as the inbox shows it."""

    request: ApprovalRequest
    message: Any = None  # the run's input: the original e-mail, when it is one
    label: dict[str, Any] | None = None  # the classify step's output, with its step id
    votes: list[dict[str, Any]] = field(default_factory=list)
    can_correct: bool = False


def _label_of(steps: list[bf.StepRecord]) -> dict[str, Any] | None:
    """The output of the run's classify step (label, confidence, labels), if it has one."""
    for step in steps:
        try:
            output = json.loads(step.output_json or "null")
        except ValueError:
            continue
        if isinstance(output, dict) and {"label", "confidence", "labels"} <= set(output):
            return {**output, "step_id": step.step_id}
    return None


async def _open(service: Service, me: Identity, requests: list[ApprovalRequest]) -> list[Waiting]:
    """Each request with its run's message, label and votes, read as a decider (audited)."""
    store = await open_for_reading(
        service.store, me, what="console approvals", runs=[r.run_id for r in requests],
        now=service.now(), action="approval.decide", personal=True,
    )  # fmt: skip
    found = []
    for request in requests:
        run = await store.get_run(request.run_id)
        if run is None:
            continue
        states = [s for s in await approvals_of(store, run.id) if s.request.id == request.id]
        found.append(
            Waiting(
                request, json.loads(run.input_json), _label_of(await store.load_steps(run.id)),
                states[0].decisions if states else [], can(me, "label.correct"),
            )
        )  # fmt: skip
    return found


@router.get("/approvals")
async def inbox(request: Request, me: Decider) -> Response:
    service = service_of(request)
    store = service.store
    aliases = await aliases_in(store, me)
    pending = sorted(await list_pending(store), key=lambda a: a.expires_at or float("inf"))
    mine = [r for r in pending if may_decide(r, me, aliases) is None]
    others = [(r, may_decide(r, me, aliases)) for r in pending if r not in mine]
    context = {"waiting": await _open(service, me, mine), "others": others, "now": service.now()}
    return render(request, "approvals.html", context)


async def _request(service: Service, approval_id: str) -> ApprovalRequest:
    found = await get_request(service.store, approval_id)
    if found is None:
        raise Refused("No such approval", f"there is no approval {approval_id!r}", status=404)
    return found


@router.get("/approvals/{approval_id:path}/decide")
async def one(approval_id: str, request: Request, me: Decider) -> Response:
    """One approval and its decision form (where an e-mail's link leads: seeing never decides)."""
    service = service_of(request)
    found = await _request(service, approval_id)
    if found.id not in {r.id for r in await list_pending(service.store)}:
        raise Refused("This approval is closed", f"{found.title!r} was already decided or"
                      " expired: there is nothing left to decide", status=409)  # fmt: skip
    reason = may_decide(found, me, await aliases_in(service.store, me))
    if reason is not None:
        raise Refused("You may not decide this approval", reason)
    context = {"item": (await _open(service, me, [found]))[0], "now": service.now()}
    return render(request, "approval.html", context)


@router.post("/approvals/{approval_id:path}/decide")
async def decide_one(approval_id: str, request: Request, me: Decider) -> Response:
    form = await posted(request)
    service = service_of(request)
    found = await _request(service, approval_id)
    option = str(form.get("option", "")).strip()
    comment = str(form.get("comment", "")).strip()[:10_000] or None
    target = service.engine if service.engine is not None else service.store
    try:
        decision = await decide(
            target, found.run_id, me, option, comment=comment, approval_id=found.id
        )
    except bf.ApprovalRefused as exc:
        raise Refused("Your decision was refused", str(exc), audited=True) from None
    except bf.EventTimeout as exc:  # expired meanwhile
        raise Refused("This approval expired", str(exc), status=409) from None
    service.poke()
    response = RedirectResponse("/approvals", status_code=303)
    flash(request, response, f"You decided {decision.option!r} on {found.title!r}.")
    return response


@router.post("/approvals/{approval_id:path}/label")
async def correct(approval_id: str, request: Request, me: Decider) -> Response:
    """The model's label was wrong: keep the right one as an example (``label.correct``)."""
    form = await posted(request)
    try:
        await require(request, me, "label.correct")
    except bf.AccessDenied as exc:
        raise Refused("You may not correct labels", str(exc), audited=True) from None
    service = service_of(request)
    found = await _request(service, approval_id)
    step = str(form.get("step", "")) or None
    try:
        done = await correct_label(
            service.store, found.run_id, str(form.get("label", "")), actor=me.name,
            now=service.now(), step_id=step,
        )  # fmt: skip
    except bf.ConfigError as exc:
        raise Refused("This label was not kept", str(exc), status=400) from None
    response = RedirectResponse("/approvals", status_code=303)
    flash(request, response, f"Label corrected from {done.previous!r} to {done.label!r}:"
          " the classifier learns from it.")  # fmt: skip
    return response


@router.get("/approvals/link/{token}")
async def link_page(token: str, request: Request) -> Response:
    """Where an approval e-mail's link leads: the approval and a form. Opening it decides
    nothing (mail scanners open links)."""
    service = service_of(request)
    try:
        link, found = await links.read_link(service.store, token, service.now())
        who = await links.identity_of(service.store, link)
    except links.BadLink as exc:
        raise Refused("This link cannot be used", str(exc), status=410) from None
    item = (await _open(service, who, [found]))[0]
    item.can_correct = False
    context = {"item": item, "now": service.now(), "link_for": who.name,
               "decide_action": f"/approvals/link/{token}"}  # fmt: skip
    return render(request, "approval.html", context)


@router.post("/approvals/link/{token}")
async def link_decide(token: str, request: Request) -> Response:
    """The decision, as the identity the link was sent to; the link is then used up."""
    form = await posted(request)
    service = service_of(request)
    now = service.now()
    try:
        link, found = await links.read_link(service.store, token, now)
        who = await links.identity_of(service.store, link)
        await links.use_link(service.store, link, now)
    except links.BadLink as exc:
        raise Refused("This link cannot be used", str(exc), status=410) from None
    option = str(form.get("option", "")).strip()
    comment = str(form.get("comment", "")).strip()[:10_000] or None
    target = service.engine if service.engine is not None else service.store
    try:
        decision = await decide(target, found.run_id, who, option, comment=comment,
                                approval_id=found.id)  # fmt: skip
    except bf.ApprovalRefused as exc:
        raise Refused("Your decision was refused", str(exc), audited=True) from None
    service.poke()
    return render(request, "decided.html", {"decision": decision, "title": found.title})
