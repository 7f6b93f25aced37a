"""``/workflows``: what this service runs, every version of every document; one workflow's
versions, its graph (``server._svg``) and its data-flow report (services, models, which input
fields go where: ``dsl._dataflow``, as ``batonflow dataflow``); and, for a role that may
deploy, a document to validate (the verdict with file, line and field, as the API gives it)
and deploy as a new version (``Catalog.deploy``, audited ``workflow.deployed``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance._identity import Identity, can
from batonflow.server._auth import service_of
from batonflow.server._svg import svg_of
from batonflow.server._workflows import Problem, Validation, dataflow_of, validation_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render

Reader = Annotated[Identity, Depends(signed_in())]
MAX_DOCUMENT = 1_000_000


async def _listing(request: Request, me: Identity) -> dict[str, Any]:
    entries = await service_of(request).catalog.entries()
    workflows: dict[str, dict[str, Any]] = {}
    for e in entries:
        row = workflows.setdefault(e.name, {"name": e.name, "kind": e.kind, "versions": []})
        if e.version is not None:
            row["versions"].append({"version": e.version, "source": e.source})
    return {"workflows": list(workflows.values()), "may_deploy": can(me, "workflow.deploy")}


@router.get("/workflows")
async def workflows(request: Request, me: Reader) -> Response:
    context = {**await _listing(request, me), "verdict": None, "text": ""}
    return render(request, "workflows.html", context)


async def _document_text(form: FormData) -> str:
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_DOCUMENT + 1)
        if len(raw) > MAX_DOCUMENT:
            raise Refused("This document is too large", f"file: at most {MAX_DOCUMENT} bytes",
                          status=413)  # fmt: skip
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("This file is not text", f"file {upload.filename!r}: expected a YAML"
                          " or JSON document in UTF-8", status=400) from None  # fmt: skip
    text = str(form.get("document", ""))
    if not text.strip():
        raise Refused("No document given", "document: paste a workflow document or choose a"
                      " file", status=400)  # fmt: skip
    return text


@router.post("/workflows/validate")
async def validate(request: Request, me: Reader) -> Response:
    text = await _document_text(await posted(request))
    context = {**await _listing(request, me), "verdict": validation_of(text), "text": text}
    return render(request, "workflows.html", context)


@router.post("/workflows/deploy")
async def deploy(
    request: Request, me: Annotated[Identity, Depends(signed_in("workflow.deploy"))]
) -> Response:
    text = await _document_text(await posted(request))
    verdict = validation_of(text)
    service = service_of(request)
    if verdict.valid:
        try:
            entry = await service.catalog.deploy(text, me.name, service.now())
        except bf.ConfigError as exc:
            verdict = Validation(valid=False, problems=[Problem(message=str(exc))])
        else:
            if entry.document is not None:
                service.session.runtime.add_document(entry.document)
            response = RedirectResponse(f"/workflows/{entry.name}", status_code=303)
            flash(request, response, f"Deployed {entry.name} version {entry.version}")
            return response
    context = {**await _listing(request, me), "verdict": verdict, "text": text}
    return render(request, "workflows.html", context, status=400)


@router.get("/workflows/{name:path}")
async def workflow(
    name: str,
    request: Request,
    me: Reader,
    version: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    from batonflow.dsl._graph import mermaid

    service = service_of(request)
    entries = [e for e in await service.catalog.entries() if e.name == name]
    if not entries:
        raise Refused("No such workflow", f"there is no workflow {name!r} here", status=404)
    context: dict[str, Any] = {"name": name, "entries": entries, "entry": entries[-1],
                               "graph": None, "dataflow": None, "chosen": version}  # fmt: skip
    if entries[0].kind == "document":
        try:
            entry = await service.catalog.document(name, version)
        except bf.WorkflowNotFound as exc:
            raise Refused("No such version", str(exc), status=404) from None
        assert entry.document is not None
        context.update(entry=entry, graph=svg_of(mermaid(entry.document)),
                       dataflow=await dataflow_of(service, name, entry.version))  # fmt: skip
    return render(request, "workflow.html", context)
