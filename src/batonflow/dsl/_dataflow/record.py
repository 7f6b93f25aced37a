"""A data-flow report as a record of processing activities (UK GDPR Art. 30), in Markdown.

The section names what Art. 30(1) asks a controller to record (purposes, categories of data
subjects and personal data, recipients, transfers to third countries, time limits for erasure,
security measures) plus the human decision points Art. 22 cares about, each filled from the
workflow document. It is a draft for the firm's records: what static analysis cannot know is
said, so the reviewer knows what to check.
"""

from __future__ import annotations

from collections.abc import Iterable

from batonflow.dsl._dataflow.report import DataflowReport, Flow, describe_expiry

__all__ = ["record_of_processing"]

_RECIPIENT_KINDS = ("http", "openapi", "grpc", "asyncapi", "a2a", "mcp", "auth", "function")


def record_of_processing(report: DataflowReport) -> str:
    """The Markdown section for ``report``."""
    wf = report.workflow
    name = f"{wf.get('namespace')}/{wf.get('name')} {wf.get('version')}"
    rows = [
        ("Processing activity", f"`{name}` (workflow document `{report.source}`)"),
        ("Purpose", _purpose(report)),
        ("Data subjects", _subjects(report)),
        ("Categories of personal data", _categories(report)),
        ("Recipients", _recipients(report)),
        ("International transfers", _transfers(report)),
        ("Retention", _retention(report)),
        ("Security measures", _security(report)),
        ("Human decision points (Art. 22)", _decisions(report)),
    ]
    lines = [
        "## Record of processing activities (UK GDPR Art. 30)",
        "",
        f"Drafted by `batonflow dataflow` from `{report.source}` by reading the workflow"
        " document (nothing was run). Review every row before it enters the firm's records.",
        "",
        "| Item | Record |",
        "|---|---|",
        *(f"| {item} | {_cell(text)} |" for item, text in rows),
        "",
        "### Data sent to each recipient",
        "",
        "| Task | Kind | Recipient | Input fields | Other data | Line |",
        "|---|---|---|---|---|---|",
        *(_flow_row(flow) for flow in report.flows),
    ]
    if not report.flows:
        lines.append("| - | - | no data leaves the workflow | - | - | - |")
    if report.flags:
        lines += ["", "### Points to review", ""]
        lines += [
            f"- **{flag.severity}** ({flag.code}{_at(flag.line)}): {_inline(flag.message)}"
            for flag in report.flags
        ]
    return "\n".join(lines) + "\n"


def _purpose(report: DataflowReport) -> str:
    parts = [str(report.workflow[k]) for k in ("title", "summary") if report.workflow.get(k)]
    return ": ".join(parts) or "not stated: add `document.title` or `document.summary`"


def _subjects(report: DataflowReport) -> str:
    if report.governance.subjects is None:
        return "not declared (`metadata.batonflow.subjects`): runs cannot be found by subject"
    return f"identified in each run's input by `{report.governance.subjects}`"


def _categories(report: DataflowReport) -> str:
    gov = report.governance
    parts = ["input fields: " + (", ".join(f"`{f}`" for f in report.input_fields) or "none seen")]
    rules = [gov.persist, gov.model, *(r for step in gov.steps.values() for r in step.values())]
    if report.global_redaction is not None:
        rules += [report.global_redaction.persist, report.global_redaction.model]
    detectors = sorted({d for rule in rules if rule for d in rule.detectors})
    if detectors:
        parts.append("personal data the workflow expects and redacts: " + ", ".join(detectors))
    other = sorted({o for flow in report.flows for o in flow.other if not o.startswith("$secrets")})
    if other:
        parts.append("data produced during the run: " + ", ".join(other))
    return "; ".join(parts)


def _recipients(report: DataflowReport) -> str:
    parts: list[str] = []
    hosts = _unique(f.target for f in report.of_kind(*_RECIPIENT_KINDS))
    if hosts:
        parts.append("services: " + ", ".join(hosts))
    vendors = _unique(v["vendor"] for f in report.of_kind("model") for v in f.details["vendors"])
    if vendors:
        parts.append("model providers: " + ", ".join(vendors))
    mail = _unique(f.target for f in report.of_kind("email"))
    if mail:
        parts.append("e-mail recipients: " + "; ".join(mail))
    events = _unique(f.target for f in report.of_kind("emit"))
    if events:
        parts.append("consumers of events: " + ", ".join(events))
    people = _unique(f.target for f in report.of_kind("approval"))
    if people:
        parts.append("approvers: " + "; ".join(people))
    processes = _unique(f.target for f in report.of_kind("process"))
    if processes:
        parts.append("local processes: " + ", ".join(processes))
    return "; ".join(parts) or "none: no data leaves the workflow"


def _transfers(report: DataflowReport) -> str:
    parts: list[str] = []
    for flow in report.of_kind("model"):
        for vendor in flow.details["vendors"]:
            if vendor.get("transfer"):
                parts.append(f"{vendor['vendor']}: {vendor['transfer']}")
            elif "not given" in vendor["vendor"]:
                parts.append(f"{vendor['vendor']}: unknown (pass --config): check")
    hosts = _unique(
        str(f.details.get("host"))
        for f in report.of_kind(*_RECIPIENT_KINDS)
        if f.details.get("host")
    )
    if hosts:
        parts.append(
            "services (" + ", ".join(hosts) + "): check where each recipient processes data"
        )
    dynamic = [f for f in report.flows if f.details.get("dynamic")]
    if dynamic:
        parts.append("hosts decided at run time: limited by the egress allow-list only")
    return "; ".join(_unique(parts)) or "none identified"


def _retention(report: DataflowReport) -> str:
    if report.retention is None:
        return (
            "**no retention set: run data is kept until deleted** (set"
            " `metadata.batonflow.retention` or `[governance.retention]`)"
        )
    where = "" if report.retention_source == "document" else f" (from {report.retention_source})"
    return f"run data retained for {report.retention}, then purged by `batonflow purge`{where}"


def _security(report: DataflowReport) -> str:
    gov = report.governance
    parts: list[str] = []
    floor = report.global_redaction
    if gov.persist:
        parts.append(f"redaction before storage ({gov.persist.describe()})")
    if gov.model:
        parts.append(f"redaction before data is sent to a model ({gov.model.describe()})")
    for step, rules in gov.steps.items():
        for destination, rule in rules.items():
            parts.append(f"task `{step}` redacted for {destination} ({rule.describe()})")
    if floor is not None and (floor.persist or floor.model):
        for label, floor_rule in (("storage", floor.persist), ("models", floor.model)):
            if floor_rule is not None:
                parts.append(f"deployment-wide redaction for {label} ({floor_rule.describe()})")
    if report.egress_global is None:
        own = ", ".join(gov.egress or ()) or "none"
        parts.append(
            f"egress allow-list of the workflow: {own}, narrowing the deployment's"
            " [governance.egress] list (not given: pass --config)"
        )
    else:
        parts.append("egress allow-list: " + (", ".join(report.egress) or "nothing"))
        if report.block_private:
            parts.append("private and loopback addresses blocked")
    parts.append("every step and decision recorded in the hash-chained audit trail")
    if gov.subjects:
        parts.append("run data of each data subject encrypted with the subject's own key")
    return "; ".join(parts)


def _decisions(report: DataflowReport) -> str:
    approvals = report.of_kind("approval")
    models = report.of_kind("model")
    parts = [
        f"human approval at `{f.task}` (line {f.line}) by {f.target}, quorum"
        f" {f.details.get('quorum')}, expires {f.details.get('expires_in') or 'never'}, on"
        f" expiry {describe_expiry(f.details.get('on_expiry'))}"
        for f in approvals
    ]
    automated = ", ".join(f"`{f.task}` ({f.details.get('function')})" for f in models)
    if models and not approvals:
        parts.append(
            f"automated processing by models at {automated} with no human approval in the"
            " workflow: if an outcome has legal or similarly significant effects, Art. 22 applies"
        )
    elif models:
        parts.append(
            f"automated processing by models at {automated}: check that each outcome with legal"
            " or similar effects passes a human approval before it takes effect"
        )
    return "; ".join(parts) or "none: no model or human decision in the workflow"


def _flow_row(flow: Flow) -> str:
    cells = [
        f"`{flow.task}`" + (f" (via `{flow.via}`)" if flow.via else ""),
        flow.kind,
        flow.target,
        ", ".join(f"`{f}`" for f in flow.fields) or "-",
        ", ".join(flow.other) or "-",
        str(flow.line or "-"),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _at(line: int | None) -> str:
    return f", line {line}" if line else ""


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _inline(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")
