"""Where a workflow's data goes, read from the document without running it
(``batonflow dataflow``).

Every task is walked (inside ``do``, ``for``, ``fork``, ``try``/``catch``, ``switch`` jumps,
functions in ``use.functions`` and, when their documents are given, sub-workflows), following
what each task's input is made of through ``input.from``, ``set``, ``output.as`` and
``export.as`` (see ``paths``). Each place data leaves the process or a person decides
is a :class:`Flow`: an HTTP/OpenAPI/gRPC/AsyncAPI/A2A/MCP call, a model call, an approval, an
e-mail, an event emitted or awaited, a process, a sub-workflow, a function the runtime provides.
Each names the workflow-input fields that can reach it (an over-approximation: a field named may
not be sent, a field sent is named) and the other data that can (``response of getPet``).
What cannot be known statically (a host computed at run time, a function's code) is said, and
flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from batonflow.dsl._dataflow.meta import DataflowConfig, EgressCheck, Governance, read_governance
from batonflow.dsl._dataflow.paths import FromInput
from batonflow.dsl._dataflow.walk import Flag, Flow, Sink, Walker, describe_expiry
from batonflow.dsl._loader import DslDocument

__all__ = ["DataflowReport", "Flag", "Flow", "analyse_dataflow", "describe_expiry"]

FORMAT: Final = "batonflow-dataflow/1"


@dataclass(frozen=True, slots=True)
class DataflowReport:
    """The data flow of one workflow document. :meth:`to_dict` is the stable JSON form
    (``format`` names its version); ``docs/dataflow.md`` describes every key."""

    source: str
    workflow: Mapping[str, Any]
    governance: Governance
    input_fields: tuple[str, ...]
    flows: tuple[Flow, ...]
    flags: tuple[Flag, ...]
    retention: str | None = None  # the document's, else the config's for this workflow
    retention_source: str | None = None  # "document" or the config file
    egress_global: tuple[str, ...] | None = None  # None: not known (no config given)
    block_private: bool | None = None
    global_redaction: Governance | None = None
    config: str | None = None

    def of_kind(self, *kinds: str) -> list[Flow]:
        return [f for f in self.flows if f.kind in kinds]

    @property
    def egress(self) -> tuple[str, ...]:
        """The allow-list entries known to apply: the workflow's, then the global ones."""
        own = self.governance.egress or ()
        return tuple(dict.fromkeys([*own, *(self.egress_global or ())]))

    def to_dict(self) -> dict[str, Any]:
        gov = self.governance
        return {
            "format": FORMAT,
            "file": self.source,
            "config": self.config,
            "workflow": dict(self.workflow),
            "input_fields": list(self.input_fields),
            "subjects": gov.subjects,
            "retention": self.retention,
            "retention_source": self.retention_source,
            "deadline": gov.deadline,
            "egress": {
                "workflow": None if gov.egress is None else list(gov.egress),
                "global": None if self.egress_global is None else list(self.egress_global),
                "block_private": self.block_private,
            },
            "redaction": {
                "persist": gov.persist.to_dict() if gov.persist else None,
                "model": gov.model.to_dict() if gov.model else None,
                "steps": {
                    name: {d: rule.to_dict() for d, rule in rules.items()}
                    for name, rules in gov.steps.items()
                },
                "global": _redaction_dict(self.global_redaction),
            },
            "flows": [f.to_dict() for f in self.flows],
            "flags": [f.to_dict() for f in self.flags],
        }


def _redaction_dict(rules: Governance | None) -> dict[str, Any] | None:
    if rules is None:
        return None
    return {
        "persist": rules.persist.to_dict() if rules.persist else None,
        "model": rules.model.to_dict() if rules.model else None,
    }


def analyse_dataflow(
    document: DslDocument,
    *,
    config: DataflowConfig | None = None,
    documents: Sequence[DslDocument] = (),
) -> DataflowReport:
    """The data flow of ``document`` (loaded with :func:`~batonflow.dsl.load_document`).
    ``config`` names model vendors, the global egress and redaction rules, retention and the
    SMTP server; ``documents`` are the sub-workflows ``run: workflow`` may start."""
    governance = read_governance(document)
    sink = Sink(egress=EgressCheck.of(governance, config))
    walker = Walker(document, sink, config, {_key(d): d for d in documents}, via=None)
    walker.walk_document(FromInput())
    flows = tuple(
        sorted(sink.all_flows(), key=lambda f: (f.via or "", f.line or 0, _order(f.pointer)))
    )
    name = str((document.raw.get("document") or {}).get("name"))
    retention, retention_source = governance.retention, "document"
    if retention is None and config is not None and name in config.retention:
        retention, retention_source = config.retention[name], config.source
    flags = [
        *sink.all_flags(),
        *_governance_flags(document, governance, flows, retention),
        *_egress_flags(document, sink.egress),
    ]
    seen = {field for flow in flows for field in flow.fields}
    policy = config.egress if config is not None else None
    return DataflowReport(
        source=document.source,
        workflow=_describe(document),
        governance=governance,
        input_fields=tuple(sorted(set(_schema_fields(document.raw)) | seen)),
        flows=flows,
        flags=tuple(flags),
        retention=retention,
        retention_source=retention_source if retention is not None else None,
        egress_global=None if policy is None else tuple(p.text for p in policy.allow),
        block_private=None if policy is None else policy.block_private,
        global_redaction=config.redact if config is not None else None,
        config=config.source if config else None,
    )


def _order(pointer: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in pointer.split("/")]


def _key(document: DslDocument) -> tuple[str, str, str]:
    meta = document.raw["document"]
    return (str(meta["namespace"]), str(meta["name"]), str(meta["version"]))


def _describe(document: DslDocument) -> dict[str, Any]:
    meta = document.raw.get("document") or {}
    return {key: meta.get(key) for key in ("namespace", "name", "version", "title", "summary")}


def _schema_fields(raw: Mapping[str, Any]) -> list[str]:
    """The top-level properties the input schema declares (an inline JSON Schema only)."""
    schema = ((raw.get("input") or {}).get("schema") or {}).get("document")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return [f".{name}" for name in properties] if isinstance(properties, dict) else []


def _governance_flags(
    document: DslDocument, governance: Governance, flows: Sequence[Flow], retention: str | None
) -> list[Flag]:
    meta = "/document/metadata/batonflow"
    flags: list[Flag] = []
    if retention is None:
        flags.append(Flag(
            "warning", "no-retention",
            "no retention set (metadata.batonflow.retention or [governance.retention]): run"
            " data is kept until deleted", None, None,
        ))  # fmt: skip
    if governance.subjects is None and any(f.fields for f in flows):
        flags.append(Flag(
            "warning", "no-subjects",
            "no data subjects expression (metadata.batonflow.subjects): runs cannot be found"
            " for a subject access or erasure request", None, None,
        ))  # fmt: skip
    tasks = _task_names(document.raw.get("do") or [])
    for step in governance.steps:
        if step not in tasks:
            at = document.position(f"{meta}/redact/steps/{step}")
            flags.append(Flag(
                "warning", "unknown-step",
                f"redact.steps.{step}: no task of that name: the rule applies to nothing",
                f"{meta}/redact/steps/{step}", at.line if at else None,
            ))  # fmt: skip
    return flags


def _egress_flags(document: DslDocument, egress: EgressCheck) -> list[Flag]:
    """A workflow's own egress list asking for more than the operator's policy grants: it
    reaches nothing beyond that policy at run time, but a reviewer should know it asked."""
    pointer = "/document/metadata/batonflow/egress"
    at = document.position(pointer)
    return [
        Flag(
            "high",
            "egress-wider",
            f"egress: {entry!r} asks for more than the operator's policy grants (private,"
            " loopback, link-local and metadata addresses, and hosts beyond"
            " [governance.egress] allow, open only by the operator): the workflow's list can"
            " only narrow it, so calls there will be refused",
            pointer,
            at.line if at else None,
        )
        for entry in egress.wider()
    ]


def _task_names(items: list[Any]) -> set[str]:
    names: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and len(item) == 1:
                    name, task = next(iter(item.items()))
                    if isinstance(task, dict):
                        names.add(name)
                visit(item)
        elif isinstance(value, dict):
            for child in value.values():
                visit(child)

    visit(items)
    return names
