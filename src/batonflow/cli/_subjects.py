"""``batonflow subject export|erase`` (UK GDPR Art. 15 and 17) and ``batonflow purge``.

The subject id typed here (an e-mail address, a client number) is used only to compute its
reference; it is not stored, and it does not appear in the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import batonflow as bf
from batonflow.cli import _setup
from batonflow.cli._exit_codes import ExitCode
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    console,
    note,
    print_json,
    private_file,
    resolve_db,
)
from batonflow.cli._ops import opened_store
from batonflow.cli._options import AsJson, Db, Token
from batonflow.governance._identity import authorize, cli_identity
from batonflow.governance._retention import (
    PurgeReport,
    Retention,
    parse_retention,
    retention_from_metadata,
)
from batonflow.governance._retention import (
    purge as purge_runs,
)
from batonflow.governance._subjects import Erasure, erase_subject, export_subject, wrap_store
from batonflow.store import Store

__all__ = ["purge", "subject_app"]

subject_app = typer.Typer(
    help="Data subjects: export everything held about a person (UK GDPR Art. 15), or erase it"
    " by destroying their key (Art. 17).",
    no_args_is_help=True,
)

SubjectId = Annotated[
    str,
    typer.Argument(
        metavar="SUBJECT_ID",
        help="The person's identifier as the workflow's subjects expression gives it (an e-mail"
        " address, a client number). E-mail addresses match whatever their case.",
        show_default=False,
    ),
]
DEFAULT_CONFIG = "batonflow.toml"


@subject_app.command("export")
def export(
    subject_id: SubjectId,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the export to FILE (created readable by you only) instead of stdout.",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
) -> None:
    """Everything held about a data subject, as one JSON document.

    Each of their runs with its input, output, steps, failed attempts, events and audit
    entries, decrypted. Payloads of an erased subject show as {"$erased": true}. The export is
    itself recorded in the audit trail.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        document = asyncio.run(_export(path, subject_id, token))
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if out is None:
            sys.stdout.write(text)
        else:
            _write_private(out, text)
    runs = len(document["runs"])
    where = f" to {out}" if out is not None else ""
    if runs == 0 and document["erased"] is None:
        note(f"no data is held about that subject (reference {document['subject']})")
    else:
        note(f"exported {runs} run{'s' * (runs != 1)} about {document['subject']}{where}")


async def _export(db: str, subject_id: str, token: str | None) -> dict[str, Any]:
    async with opened_store(db) as raw:
        store = wrap_store(raw)
        identity = await cli_identity(store, token)
        authorize(identity, "subject.export")
        return await export_subject(store, subject_id, actor=identity.name, now=time.time())


def _write_private(path: Path, text: str) -> None:
    """Personal data: the file is created (or made) 0600."""
    with private_file(path) as file:
        file.write(text)


@subject_app.command("erase")
def erase(
    subject_id: SubjectId,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask for confirmation (scripts).")
    ] = False,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Erase a data subject: destroy their key, so that nothing held about them can be read.

    Their unfinished runs are cancelled. Run records and the audit trail stay (the chain still
    verifies) with their payloads unreadable. There is no undo. Erasing again, or erasing a
    subject nothing is held about, changes nothing and says so.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        if not yes:
            if not sys.stdin.isatty():
                raise bf.ConfigError(
                    "subject erase cannot be undone: pass --yes to confirm without a terminal"
                )
            typer.confirm(
                "Erase everything held about this subject? This cannot be undone", abort=True
            )
        result = asyncio.run(_erase(path, subject_id, token))
    if as_json:
        print_json(_erasure_doc(result))
        if result.remainders:
            raise typer.Exit(int(ExitCode.STORE_ERROR))
        return
    out = console()
    if result.outcome == "unknown":
        out.print(
            f"no data is held about that subject (reference {result.subject}); nothing erased"
        )
    elif result.outcome == "already-erased":
        out.print(
            f"already erased at {_when(result.erased_at)} by {result.actor}: {len(result.runs)}"
            f" run(s) unreadable; nothing more to do"
        )
    else:
        out.print(
            f"erased {result.subject}: {len(result.runs)} run(s) now unreadable"
            + (f", {len(result.cancelled)} unfinished run(s) cancelled" if result.cancelled else "")
        )
    for remainder in result.remainders:
        out.print(f"NOT erased: {remainder}", markup=False)
    if result.remainders:
        raise typer.Exit(int(ExitCode.STORE_ERROR))  # the erasure is incomplete: say so


async def _erase(db: str, subject_id: str, token: str | None) -> Erasure:
    async with opened_store(db) as raw:
        store = wrap_store(raw)
        identity = await cli_identity(store, token)
        authorize(identity, "subject.erase")
        return await erase_subject(store, subject_id, actor=identity.name, now=time.time())


def _erasure_doc(result: Erasure) -> dict[str, Any]:
    return {
        "subject": result.subject,
        "outcome": result.outcome,
        "runs": list(result.runs),
        "cancelled": list(result.cancelled),
        "erased_at": result.erased_at,
        "actor": result.actor,
        "remainders": list(result.remainders),
    }


def _when(at: float | None) -> str:
    if at is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


# -- retention ----------------------------------------------------------------------------------


def purge(
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", metavar="NAME", help="Purge only this workflow's runs."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    retention: Annotated[
        list[str] | None,
        typer.Option(
            "--retention",
            metavar="WORKFLOW=DURATION",
            help="A retention period (ISO 8601: P6Y, P18M, P30D) for a workflow; overrides the"
            " file (repeatable).",
        ),
    ] = None,
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            metavar="FILE",
            help="A workflow document whose metadata.batonflow.retention applies to its runs"
            " (repeatable; runs of documents otherwise use the retention their own document"
            " carries).",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Delete ended runs kept longer than their workflow's retention period.

    Completed, cancelled and faulted runs whose end plus the retention has passed are deleted
    with their steps and events; each deletion, and the purge itself, is recorded in the audit
    trail. Retention comes from `[governance.retention]` in the configuration file, then
    each workflow document's `metadata.batonflow.retention` (a run carries its document),
    then --with and --retention. Workflows with no retention period are kept forever.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        policies = _policies(documents or [], retention or [])
        report = asyncio.run(_purge(path, policies, workflow, dry_run, token))
    if as_json:
        print_json(_purge_doc(report))
        return
    out = console()
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {len(report.runs)} run(s)")
    for p in report.runs:
        out.print(f"  {p.run_id}  {p.workflow}  {p.status.value}  ended {_when(p.finished_at)}")


def _policies(documents: list[str], options: list[str]) -> dict[str, Retention]:
    policies: dict[str, Retention] = dict(_setup.current().retention())
    for path in documents:
        from batonflow.dsl import load_document
        from batonflow.dsl._runtime import run_name

        document = load_document(path)
        found = retention_from_metadata(
            document.raw.get("document", {}).get("metadata"), where=f"{path}: document.metadata"
        )
        if found is not None:
            policies[run_name({"definition": document.raw})] = found
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name.strip():
            raise bf.ConfigError(
                f"--retention {option!r}: expected WORKFLOW=DURATION, e.g. enquiry=P6Y"
            )
        policies[name.strip()] = parse_retention(value, where=f"--retention {name.strip()}")
    return policies


async def _document_policies(store: Store, known: dict[str, Retention]) -> dict[str, Retention]:
    """The retention each ended document run carries in its own document (where the
    configuration and the options set none for that workflow)."""
    from batonflow.dsl._runtime import is_document_run

    found: dict[str, Retention] = {}
    for status in (bf.RunStatus.COMPLETED, bf.RunStatus.CANCELLED, bf.RunStatus.FAULTED):
        for run in await store.list_runs(status=status, limit=1_000_000):
            name = run.workflow
            if name in known or name in found or not is_document_run(name):
                continue
            try:
                definition = json.loads(run.input_json).get("definition") or {}
            except (ValueError, AttributeError):
                continue
            metadata = (definition.get("document") or {}).get("metadata")
            rule = retention_from_metadata(metadata, where=f"run {run.id}: document.metadata")
            if rule is not None:
                found[name] = rule
    return found


async def _purge(
    db: str, policies: dict[str, Retention], workflow: str | None, dry_run: bool, token: str | None
) -> PurgeReport:
    async with opened_store(db) as raw:
        store = wrap_store(raw)
        if dry_run:  # a dry run only reads: no identity needed, nothing recorded
            actor = "dry-run"
        else:
            actor = await _setup.acting(store, token, "run.purge")
        policies = {**await _document_policies(store, policies), **policies}
        if not policies:
            raise bf.ConfigError(
                "no retention periods: set [governance.retention] in the configuration file,"
                " metadata.batonflow.retention in a workflow document, or give"
                " --retention WORKFLOW=P6Y"
            )
        return await purge_runs(
            store, time.time(), policies, actor=actor, dry_run=dry_run, workflow=workflow
        )


def _purge_doc(report: PurgeReport) -> dict[str, Any]:
    return {
        "at": report.at,
        "dry_run": report.dry_run,
        "runs": [
            {
                "id": p.run_id,
                "workflow": p.workflow,
                "status": p.status.value,
                "finished_at": p.finished_at,
                "expired_at": p.expired_at,
            }
            for p in report.runs
        ],
    }
