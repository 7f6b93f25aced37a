"""``batonflow audit``: verify the trail's chain, sign its head, export it."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

import batonflow as bf
from batonflow.cli import _setup
from batonflow.cli._exit_codes import ExitCode
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    console,
    note,
    print_error,
    print_json,
    private_file,
    resolve_db,
)
from batonflow.cli._ops import opened_store
from batonflow.cli._options import AsJson, Db, Token
from batonflow.governance import _audit
from batonflow.governance._anchor import verify_configured
from batonflow.governance._audit_query import open_export
from batonflow.governance._identity import cli_identity
from batonflow.governance._report import RunReport, build_report
from batonflow.governance._report_render import report_html, report_text
from batonflow.store import AuditRecord

audit_app = typer.Typer(
    help="The audit trail: verify that nobody changed it, sign its head, export it.",
    no_args_is_help=True,
)


@audit_app.command("verify")
def verify(
    heads: Annotated[
        list[Path] | None,
        typer.Option(
            "--head",
            metavar="FILE",
            help="A signed head kept elsewhere (from `audit sign --out`); repeatable.",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            metavar="FILE",
            help="Trust only heads signed by this Ed25519 public key (PEM); default: the"
            " configured [governance.audit] public_key.",
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            metavar="FILE",
            help="An anchor file of signed heads (JSON lines); default: the configured"
            " [governance.audit] anchor.",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Recompute every entry's hash, check the chain, every signed head, and every row.

    Names the first entry that was edited, deleted, inserted or reordered, and every run,
    step, event, vote or stored head that differs from what the trail says. Exit code 12 when
    the trail does not verify.
    """
    with cli_errors():
        given = [_audit.SignedHead.from_json(p.read_text(), str(p)) for p in heads or []]
        path = resolve_db(db, must_exist=True, read_only=True)
        result = asyncio.run(_verify(path, given, public_key, anchor))
    if as_json:
        print_json(
            {"ok": result.ok, "entries": result.entries, "head_seq": result.head_seq,
             "head_hash": result.head_hash, "signed_heads": result.heads_checked,
             "runs": result.runs_checked, "problem": result.problem,
             "problems": list(result.state_problems) or
             ([result.problem] if result.problem else [])}
        )  # fmt: skip
    elif result.ok:
        console().print(
            Text(f"ok  {result.entries} entries, head {result.head_seq} {result.head_hash[:16]}…"
                 f", {result.heads_checked} signed head(s) match, {result.runs_checked} run(s)"
                 " match the trail", style="green")
        )  # fmt: skip
    else:
        print_error(f"the audit trail does not verify: {result.problem}")
        for more in result.state_problems[1:]:
            print_error(f"  also: {more}")
    if not result.ok:
        raise typer.Exit(int(ExitCode.AUDIT_BROKEN))


async def _verify(
    path: str, heads: list[_audit.SignedHead], public_key: Path | None, anchor: Path | None
) -> _audit.Verification:
    configured = _setup.current().audit_heads()
    async with opened_store(path) as store:
        return await verify_configured(
            store, configured, given=heads, public_key=public_key, anchor=anchor
        )


@audit_app.command("keygen")
def keygen(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the private key.")
    ],
) -> None:
    """Create an Ed25519 signing key (FILE, mode 0600) and its public key (FILE.pub)."""
    with cli_errors():
        public = _audit.generate_signing_key(out)
    console().print(f"private key: {out}\npublic key:  {public}", markup=False)
    note("keep the private key off the database server; give the public key to your auditor")


@audit_app.command("sign")
def sign(
    key: Annotated[
        Path, typer.Option("--key", metavar="FILE", help="The Ed25519 private key (PEM).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Also write the signed head to FILE."),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Sign the trail's current head; keep the copy (--out) somewhere the database is not."""
    with cli_errors():
        private = _audit.load_private_key(key)
        path = resolve_db(db, must_exist=True)
        head = asyncio.run(_sign(path, private, token))
        if out is not None:
            out.write_text(head.to_json() + "\n")
    if as_json:
        sys.stdout.write(head.to_json() + "\n")
        return
    console().print(f"signed head: entry {head.seq} {head.hash}", markup=False)
    if out is not None:
        note(f"wrote {out}: `batonflow audit verify --head {out}` checks the trail against it")


async def _sign(path: str, key: Any, token: str | None) -> _audit.SignedHead:
    async with opened_store(path) as store:
        actor = await _setup.acting(store, token, "audit.sign")
        return await _audit.sign_head(store, key, time.time(), actor=actor)


def _when(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise bf.ConfigError(
            f"{option} {value!r}: expected an ISO 8601 date or time, e.g. 2026-11-24 or"
            " 2026-11-24T09:30:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@audit_app.command("export")
def export(
    fmt: Annotated[
        str, typer.Option("--format", metavar="jsonl|csv", help="CloudEvents JSON Lines or CSV.")
    ] = "jsonl",
    run_id: Annotated[
        str | None, typer.Option("--run", metavar="RUN_ID", help="One run (and its children).")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", metavar="NAME", help="Runs of this workflow.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", metavar="ID", help="Entries concerning this data subject."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="From this time (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Before this time (ISO 8601).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write here, not to stdout.")
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
) -> None:
    """Write audit entries as CloudEvents (JSON Lines) or CSV, oldest first.

    Payloads of runs with data subjects are shown decrypted while the subject's key exists
    (to the operator and admin roles; a viewer sees them withheld), and as erased after
    `batonflow subject erase`. The export is recorded on the trail; --out files are created
    readable by you only.
    """
    with cli_errors():
        where = _audit.AuditFilter(
            run_id=run_id, workflow=workflow, since=_when(since, "--since"),
            until=_when(until, "--until"),
        )  # fmt: skip
        path = resolve_db(db, must_exist=True, read_only=True)
        if out is None:
            count = asyncio.run(_export(path, sys.stdout, fmt, where, subject, token))
        else:
            with private_file(out, newline="" if fmt == "csv" else None) as handle:
                count = asyncio.run(_export(path, handle, fmt, where, subject, token))
            note(f"wrote {count} entries to {out}")


async def _export(
    path: str,
    handle: Any,
    fmt: str,
    where: _audit.AuditFilter,
    subject: str | None,
    token: str | None,
) -> int:
    async with opened_store(path) as store:
        reader = await cli_identity(store, token)
        view, where = await open_export(
            store, reader, where, subject=subject, what="audit export", now=time.time()
        )
        opener = None
        if hasattr(view, "open_json"):

            async def opener(record: AuditRecord) -> Any:
                return await view.open_json(record.data_json, record.run_id or "")

        return await _audit.export(view, handle, fmt=fmt, where=where, opener=opener)


@audit_app.command("report")
def report(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to report on.")],
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a printable HTML page to FILE."),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
) -> None:
    """The story of one run in plain words: what came in, each step and decision with times
    and actors, approvals and votes, model calls, errors, what went out, redactions and
    erasure, and whether the audit chain holds for the entries it cites.

    Personal data shows for the operator and admin roles only; the reading is recorded. Exit
    code 3 for an unknown run.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=True, read_only=True)
        built = asyncio.run(_report(path, run_id, token))
        sys.stdout.write(report_text(built))
        if html is not None:
            with private_file(html) as handle:
                handle.write(report_html(built))
            note(f"wrote {html}")


async def _report(path: str, run_id: str, token: str | None) -> RunReport:
    async with opened_store(path) as store:
        reader = await cli_identity(store, token)
        return await build_report(store, reader, run_id, now=time.time())
