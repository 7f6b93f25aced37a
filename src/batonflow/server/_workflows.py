"""``/api/v1/workflows``: what this service runs, validating and deploying documents, a
document's graph (Mermaid) and data-flow report."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from batonflow.governance._identity import Identity
from batonflow.server._auth import allowed, service_of
from batonflow.server._paging import Cursor, Limit, Paged, page
from batonflow.server._service import Service
from batonflow.server._svg import svg_of

router = APIRouter(prefix="/workflows", tags=["workflows"])
Reader = Annotated[Identity, Depends(allowed("read"))]
DocumentText = Annotated[
    str,
    Body(
        media_type="application/yaml",
        max_length=1_000_000,
        description="A Serverless Workflow document, YAML or JSON",
    ),
]
Name = Annotated[str, Query(min_length=1, max_length=300, description="The workflow's name")]
Version = Annotated[str | None, Query(max_length=100)]


class WorkflowOut(BaseModel):
    name: str
    kind: str
    version: str | None = None
    source: str | None = None


class WorkflowList(Paged):
    items: list[WorkflowOut]


class Problem(BaseModel):
    file: str | None = None
    line: int | None = None
    column: int | None = None
    pointer: str | None = None
    message: str


class Validation(BaseModel):
    valid: bool
    name: str | None = None
    version: str | None = None
    tasks: int = 0
    problems: list[Problem] = []
    warnings: list[dict[str, Any]] = []


@router.get("", response_model=WorkflowList)
async def list_workflows(
    request: Request, me: Reader, limit: Limit = 100, cursor: Cursor = None
) -> WorkflowList:
    """Python workflows and every version of every document, by name then version."""
    entries, after = page(await service_of(request).catalog.entries(), _order, limit, cursor)
    return WorkflowList(
        items=[WorkflowOut(name=e.name, kind=e.kind, version=e.version, source=e.source)
               for e in entries],
        next_cursor=after,
    )  # fmt: skip


def _order(entry: Any) -> str:
    """Name, then version with its numbers padded (so 1.10.0 comes after 1.9.0)."""
    version = re.sub(r"\d+", lambda m: m[0].zfill(12), entry.version or "")
    return f"{entry.name}\n{version}"


@router.post("/validate", response_model=Validation)
async def validate(text: DocumentText, me: Reader) -> Validation:
    """Check a document (syntax, schema, flow, references) without keeping it."""
    return validation_of(text)


def validation_of(text: str, where: str = "document") -> Validation:
    """The verdict on a document's text: its problems with file, line, column and field, or
    its name, version and task count (the API and the console show the same)."""
    from batonflow.dsl import DslValidationError, load_document

    try:
        document = load_document(where, text=text)
    except DslValidationError as exc:
        return Validation(valid=False, problems=[_problem(p) for p in exc.problems])
    header = document.model.document
    return Validation(
        valid=True, name=f"{header.namespace}/{header.name}", version=str(header.version),
        tasks=sum(1 for _ in document.model.walk()),
        warnings=[w.to_dict() for w in document.warnings],
    )  # fmt: skip


def _problem(p: Any) -> Problem:
    data = p.to_dict()
    return Problem(
        file=data.get("source"), line=data.get("line"), column=data.get("column"),
        pointer=data.get("path"), message=str(data.get("message", p)),
    )  # fmt: skip


@router.post("", status_code=201, response_model=WorkflowOut)
async def deploy(
    text: DocumentText,
    request: Request,
    me: Annotated[Identity, Depends(allowed("workflow.deploy"))],
) -> WorkflowOut:
    """Deploy a new version of a document (audited as `workflow.deployed`). Runs already
    started keep their version; new runs get the latest unless they name one."""
    service = service_of(request)
    entry = await service.catalog.deploy(text, me.name, service.now())
    await service.deployed()  # its schedule or webhook, hosted at once
    return WorkflowOut(name=entry.name, kind=entry.kind, version=entry.version, source="deployed")


@router.get(
    "/graph",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}, "image/svg+xml": {}}}},
)
async def graph(
    request: Request,
    me: Reader,
    workflow: Name,
    version: Version = None,
    format: Literal["mermaid", "svg"] = "mermaid",
) -> Response:
    """A document's flow as a Mermaid flowchart (`text/plain`) or an SVG picture."""
    from batonflow.dsl._graph import mermaid

    entry = await service_of(request).catalog.document(workflow, version)
    assert entry.document is not None
    text = mermaid(entry.document)
    if format == "svg":
        return Response(svg_of(text), media_type="image/svg+xml")
    return PlainTextResponse(text)


@router.get("/dataflow")
async def dataflow(
    request: Request, me: Reader, workflow: Name, version: Version = None
) -> dict[str, Any]:
    """Which services and models a document can reach, which input fields go to each, where
    people decide, how long run data is kept (the structure in docs/dataflow.md)."""
    return await dataflow_of(service_of(request), workflow, version)


async def dataflow_of(service: Service, workflow: str, version: str | None) -> dict[str, Any]:
    """The data-flow report of a deployed or folder document (as ``batonflow dataflow``)."""
    from batonflow.dsl import load_document
    from batonflow.dsl._dataflow.meta import load_dataflow_config
    from batonflow.dsl._dataflow.report import analyse_dataflow

    entry = await service.catalog.document(workflow, version)
    source = service.setup.source
    settings = load_dataflow_config(source) if source != "<defaults>" else None
    document = load_document(entry.source or "document", text=json.dumps(entry.document))
    report: dict[str, Any] = analyse_dataflow(document, config=settings).to_dict()
    return report
