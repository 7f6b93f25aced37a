"""``batonflow dataflow FILE``: where a workflow's data goes, read from the document.

Text (Rich tables) for people, ``--format json`` (or ``--json``) for tools, ``--format
markdown`` for the firm's record of processing activities (UK GDPR Art. 30). An invalid
document fails as ``batonflow validate`` reports it: FILE:LINE:COLUMN: POINTER: message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batonflow.cli import _setup
from batonflow.cli._io import cli_errors, console, print_json

if TYPE_CHECKING:
    from batonflow.dsl._dataflow.report import DataflowReport, Flow

__all__ = ["ReportFormat", "dataflow"]

_SEVERITY_STYLE = {"high": "bold red", "warning": "yellow", "info": "cyan"}


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


def dataflow(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A workflow document.", show_default=False)
    ],
    format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="text (tables), json (the structure in docs/dataflow.md), or markdown (a"
            " record of processing activities, UK GDPR Art. 30).",
        ),
    ] = ReportFormat.text,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="TOML",
            help="The deployment's TOML config file (default: the root --config,"
            " $BATONFLOW_CONFIG, or ./batonflow.toml): its providers table names the model"
            " vendors, governance.egress the global allow-list, governance.retention and"
            " governance.redact the deployment's rules, email the SMTP server.",
        ),
    ] = None,
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            metavar="FILE",
            help="A workflow document that `run: workflow` tasks start, to analyse it too"
            " (repeatable).",
        ),
    ] = None,
) -> None:
    """Show which services and models a workflow can reach, which input fields go to each,
    where people decide, and how long run data is kept. Nothing is run."""
    from batonflow.dsl import load_document  # here: it imports pydantic
    from batonflow.dsl._dataflow.meta import load_dataflow_config
    from batonflow.dsl._dataflow.record import record_of_processing
    from batonflow.dsl._dataflow.report import analyse_dataflow

    with cli_errors():
        document = load_document(file)
        if config is None:  # the root --config, $BATONFLOW_CONFIG or ./batonflow.toml
            chosen = _setup.current().source
            config = chosen if chosen != "<defaults>" else None
        settings = load_dataflow_config(config) if config else None
        others = [load_document(path) for path in documents or ()]
        report = analyse_dataflow(document, config=settings, documents=others)
    if as_json or format is ReportFormat.json:
        print_json(report.to_dict())
    elif format is ReportFormat.markdown:
        typer.echo(record_of_processing(report), nl=False)
    else:
        _render(report)


def _render(report: DataflowReport) -> None:
    from batonflow.dsl._dataflow.report import describe_expiry

    out = console()
    wf = report.workflow
    out.print(
        Text(f"{wf.get('namespace')}/{wf.get('name')} {wf.get('version')}", style="bold")
        + Text(f"  {report.source}")
    )
    gov = report.governance
    retention = (
        f"run data retained for {report.retention}, then purged by `batonflow purge`"
        if report.retention
        else "no retention set: kept until deleted"
    )
    if report.egress_global is not None:
        egress = ", ".join(report.egress) or "nothing"
    else:
        egress = (", ".join(gov.egress or ()) or "none") + (
            " (narrowing the operator's [governance.egress] list: --config)"
        )
    facts = [
        ("purpose", str(wf.get("title") or wf.get("summary") or "-")),
        ("data subjects", gov.subjects or "not declared"),
        ("input fields", ", ".join(report.input_fields) or "-"),
        ("retention", retention),
        ("deadline", gov.deadline or "-"),
        ("egress allow-list", egress),
    ]
    for label, value in facts:
        out.print(Text(f"  {label + ':':<19}", style="dim") + Text(value))
    _table(out, "Services, models and events", report.of_kind(
        "http", "openapi", "grpc", "asyncapi", "a2a", "mcp", "auth", "model", "email", "emit",
        "listen", "function", "subflow", "process",
    ))  # fmt: skip
    approvals = report.of_kind("approval")
    if approvals:
        table = Table(title="People deciding", title_justify="left")
        for column in ("task", "approvers", "quorum", "expires", "on expiry", "shown", "line"):
            table.add_column(column)
        for flow in approvals:
            d = flow.details
            table.add_row(
                flow.task, flow.target, str(d.get("quorum")), str(d.get("expires_in") or "never"),
                describe_expiry(d.get("on_expiry")), _sent(flow), str(flow.line or ""),
            )  # fmt: skip
        out.print(table)
    for flag in report.flags:
        where = f" (line {flag.line})" if flag.line else ""
        out.print(Text(f"{flag.severity}: ", style=_SEVERITY_STYLE.get(flag.severity, ""))
                  + Text(flag.message + where), soft_wrap=True)  # fmt: skip


def _table(out: Console, title: str, flows: list[Flow]) -> None:
    if not flows:
        out.print(Text("no data leaves the workflow", style="dim"))
        return
    table = Table(title=title, title_justify="left")
    for column in ("task", "kind", "to", "input fields", "other data", "line"):
        table.add_column(column, overflow="fold")
    for flow in flows:
        kind = flow.kind
        if flow.kind in ("http", "a2a") and flow.details.get("method"):
            kind += f" {flow.details['method']}"
        elif flow.kind == "model":
            kind += f" ({flow.details.get('function')})"
        task = flow.task + (f"\nvia {flow.via}" if flow.via else "")
        table.add_row(
            task, kind, flow.target, ", ".join(flow.fields) or "-", ", ".join(flow.other) or "-",
            str(flow.line or ""),
        )  # fmt: skip
    out.print(table)


def _sent(flow: Flow) -> str:
    return ", ".join([*flow.fields, *flow.other]) or "-"
