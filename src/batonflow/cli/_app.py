"""The ``batonflow`` commands: parse, call the public API (through ``_ops``), render.

Every command accepts ``--json`` (one JSON document on stdout) and ``--db`` (default: the
``BATONFLOW_DB`` environment variable, else ``./batonflow.db``). Errors go to stderr as
``error: ...`` with an exit code from the one table in ``_exit_codes``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

import batonflow as bf
from batonflow.cli import _ops, _remote, _render, _setup, _worker
from batonflow.cli._exit_codes import ExitCode, exit_code_for
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    configure_logging,
    console,
    ensure_cwd_on_path,
    load_workflow,
    note,
    print_error,
    print_json,
    read_json_option,
    resolve_db,
)
from batonflow.cli._options import AsJson, Db, Token

if TYPE_CHECKING:
    from batonflow.dsl import DslDocument, DslValidationError

app = typer.Typer(
    name="batonflow",
    help="Durable AI workflows: run them, watch them, and steer them from the shell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
events_app = typer.Typer(
    help="Events: CloudEvents for listening workflow documents, raw events for Python"
    " workflows, and a run's lifecycle events.",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")


def _governance_commands() -> None:
    from batonflow.cli._approvals import approval_app
    from batonflow.cli._audit import audit_app
    from batonflow.cli._connectors import connector_app
    from batonflow.cli._dataflow import dataflow
    from batonflow.cli._identities import identity_app, token_app
    from batonflow.cli._keys import keys_app
    from batonflow.cli._label import label_app
    from batonflow.cli._serve import serve
    from batonflow.cli._subjects import purge, subject_app
    from batonflow.cli._triggers import triggers_app

    app.add_typer(approval_app, name="approval")
    app.add_typer(audit_app, name="audit")
    app.add_typer(connector_app, name="connector")
    app.add_typer(identity_app, name="identity")
    app.add_typer(keys_app, name="keys")
    app.add_typer(label_app, name="label")
    app.add_typer(token_app, name="token")
    app.add_typer(subject_app, name="subject")
    app.add_typer(triggers_app, name="triggers")
    app.command()(dataflow)
    app.command("purge")(purge)
    app.command("serve")(serve)


RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.", show_default=False)]
Linger = Annotated[
    float,
    typer.Option(
        "--linger",
        min=0,
        metavar="SECONDS",
        help="Keep executing a parked run that wakes by itself within this many seconds (a retry"
        " backoff, a short sleep); beyond that, or when it waits for an event, report it as"
        " waiting and exit.",
    ),
]
DEFAULT_LINGER = 60.0
WithDocuments = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        metavar="FILE",
        help="A workflow document that `run: workflow` tasks may start (repeatable).",
    ),
]
AllowProcesses = Annotated[
    bool,
    typer.Option(
        "--allow-processes",
        help="Let workflow documents run local processes (`run: shell`, `run: script`)."
        " Off by default: a workflow file cannot run programs on this machine unless you say so.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"batonflow {bf.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log the engine's activity to stderr.")
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            envvar=_setup.CONFIG_ENV,
            metavar="FILE",
            help="The configuration file: providers, e-mail, secrets, governance (default:"
            " ./batonflow.toml when it exists).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=_remote.SERVER_ENV,
            metavar="URL",
            help="Act on a running `batonflow serve` over HTTP instead of a local database"
            " (run, list, show, cancel, suspend, resume, events deliver; needs --token).",
        ),
    ] = None,
) -> None:
    configure_logging(logging.INFO if verbose else logging.ERROR)
    with cli_errors():
        _setup.choose(config)
        _remote.choose(server)


# -- run and worker -----------------------------------------------------------------------------


@app.command()
def run(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help="The workflow: module:function, path/to/file.py:function, or a Serverless"
            " Workflow document (.yaml, .yml, .json).",
            show_default=False,
        ),
    ],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON|@FILE",
            help="The run's input: JSON text, @file.json, or @- for stdin. Default: null.",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            "-k",
            help="Start at most one run for this key; again, it reports that run.",
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Only record the run (pending) and print its id; `batonflow worker` executes"
            " it. Works while a worker holds the database.",
        ),
    ] = False,
    linger: Linger = DEFAULT_LINGER,
    documents: WithDocuments = None,
    allow_processes: AllowProcesses = False,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of a workflow and wait for it to end or to park.

    A run that waits for an event, a long sleep or an operator is reported as `waiting`
    (exit 0): `batonflow worker` (or `batonflow resume RUN_ID --wait`) continues it.
    """
    started: list[str] = []
    if _remote.server() is not None:
        with cli_errors():
            value = read_json_option(input, "--input")
            details = asyncio.run(_remote.start(token, ref, value, idempotency_key))
        _report_run(details, db=db, as_json=as_json, detached=True)
        return
    with cli_errors():
        value = read_json_option(input, "--input")
        timeout: float | None = None
        pick: _ops.Pick
        if _dsl().is_document(ref):  # a workflow document: the DSL runtime runs it
            document = _dsl().load(ref)
            value, timeout = _dsl().payload(document, value), _dsl().timeout_of(document)
            pick = _dsl_workflow
        else:
            wf = load_workflow(ref)
            pick = lambda _session: wf  # noqa: E731 - the workflow does not need the session
        path = resolve_db(db, must_exist=False)
        dsl = _ops.DslOptions(allow_processes, tuple(documents or ()))
        if detach:
            details = asyncio.run(
                _ops.submit(
                    path, pick, value, idempotency_key=idempotency_key, timeout=timeout,
                    token=token, dsl=dsl,
                )
            )  # fmt: skip
        else:
            details = _interruptible(
                _ops.start_and_follow(
                    path, pick, value, idempotency_key=idempotency_key, linger=linger,
                    started=started.append, timeout=timeout, token=token, dsl=dsl,
                ),
                started, db,
            )  # fmt: skip
    _report_run(details, db=db, as_json=as_json, detached=detach)


def _dsl_workflow(session: _setup.Session) -> bf.Workflow[Any, Any]:
    return session.runtime.workflow


def _dsl() -> ModuleType:
    """The workflow-document commands' module (it registers on this app, so import it late)."""
    from batonflow.cli import _dsl as module

    return module


def _interruptible(
    work: Coroutine[Any, Any, _ops.RunDetails], started: list[str], db: str
) -> _ops.RunDetails:
    """Run ``work``; on Ctrl-C the engine closes first: finished steps are recorded and the
    run is handed back for the next engine."""
    try:
        details = asyncio.run(work)
    except KeyboardInterrupt:
        if not started:
            raise
        flag = _render.db_flag(db)
        print_error(
            f"interrupted: run {started[0]} was handed back; its finished steps are recorded",
            f"continue it with `batonflow worker{flag}` or "
            f"`batonflow resume {started[0]} --wait{flag}`",
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    return details


def _report_run(details: _ops.RunDetails, *, db: str, as_json: bool, detached: bool) -> None:
    run = details.run
    if as_json:
        print_json(_render.details_doc(details))
    elif detached:
        print(run.id)
        note(f"run {run.id} is {run.status.value}; `batonflow worker{_render.db_flag(db)}` runs it")
    else:
        _render.render_details(console(), details, db=db, full=False)
    if run.status is bf.RunStatus.FAULTED:
        error = _render.short_error(bf.problem_of(run))
        print_error(
            f"run {run.id} ({run.workflow}) faulted: {error}",
            "once the cause is fixed, retry the step that failed (steps that succeeded are not"
            f" run again): `batonflow resume {run.id} --wait{_render.db_flag(db)}`",
        )
        raise typer.Exit(int(ExitCode.RUN_FAULTED))
    if run.status is bf.RunStatus.CANCELLED:
        print_error(f"run {run.id} ({run.workflow}) was cancelled")
        raise typer.Exit(int(ExitCode.RUN_CANCELLED))


@app.command()
def worker(
    db: Db = DEFAULT_DB,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1, help="At most this many runs at once (default 500)."
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-q",
            metavar="NAMES",
            help="Only execute runs of these queues (comma-separated; `default` is runs on no"
            " queue). Default: every queue.",
        ),
    ] = None,
    queue_limits: Annotated[
        list[str] | None,
        typer.Option(
            "--queue-limit",
            metavar="NAME:LIMITS",
            help="Limits of a named queue, enforced across all workers (give every worker the"
            " same), e.g. llm:concurrency=4,per_worker=2,rate=50/60 (rate: runs started per"
            " SECONDS). Repeatable.",
        ),
    ] = None,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=0.5,
            metavar="SECONDS",
            help="How long this worker's runs wait, if it dies, before another worker takes"
            " them over; renewed every third of it.",
        ),
    ] = 30.0,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            min=0.05,
            metavar="SECONDS",
            help="Look for runnable runs at least this often (PostgreSQL also wakes workers"
            " at once with LISTEN/NOTIFY).",
        ),
    ] = 1.0,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            metavar="SECONDS",
            help="On SIGTERM or Ctrl-C, let runs in flight end or park for this long before"
            " handing the rest back.",
        ),
    ] = 10.0,
    documents: WithDocuments = None,
    allow_processes: AllowProcesses = False,
    triggers: Annotated[
        bool,
        typer.Option(
            "--triggers",
            help="Also host the triggers (schedules in batonflow.toml and in [triggers]"
            " documents): see `batonflow triggers`.",
        ),
    ] = False,
) -> None:
    """Execute runs from the database until Ctrl-C or SIGTERM.

    On SQLite one worker executes runs; on PostgreSQL (`--db postgresql://...`) start as many
    as you like, on as many machines: they share the work, and a dead worker's runs are taken
    over when its lease expires. Parked runs wake on time or when their event arrives. Each
    run's workflow is imported from the reference stored with it. Stopping is graceful: no new
    runs start, runs in flight get --grace seconds, then record the steps they finished and are
    handed back.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=False)
        ensure_cwd_on_path()
        if logging.getLogger("batonflow").level > logging.WARNING:
            configure_logging(logging.WARNING)  # a worker reports faulted runs as they happen
        options: dict[str, Any] = {"lease_seconds": lease, "poll_interval": poll}
        if concurrency is not None:
            options["max_concurrent_runs"] = concurrency
        if queue_limits:
            options["queues"] = dict(_worker.parse_queue_limit(s) for s in queue_limits)
        options["serve"] = _worker.served(queues)

        def ready(engine: bf.Engine) -> None:
            note(
                f"batonflow worker {engine.owner}: executing runs on {_worker.where(path)}"
                f" (pid {os.getpid()}); stop with Ctrl-C or SIGTERM"
            )

        dsl = _ops.DslOptions(allow_processes, tuple(documents or ()))
        hosting = _worker.TriggerOptions() if triggers else None
        asyncio.run(
            _worker.work(path, options=options, grace=grace, ready=ready, dsl=dsl, triggers=hosting)
        )
        note("batonflow worker: stopped; runs in flight were handed back")


# -- reading ---------------------------------------------------------------------------------


@app.command("list")
def list_runs(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only runs with this status: " + ", ".join(s.value for s in bf.RunStatus) + ".",
        ),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow (name).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    with cli_errors():
        wanted = _status(status)
        if _remote.server() is not None:
            work = _remote.list_runs(token, status=wanted, workflow=workflow, limit=limit)
            runs = asyncio.run(work)
        else:
            path = resolve_db(db, must_exist=True, read_only=True)
            runs = asyncio.run(_ops.list_runs(path, status=wanted, workflow=workflow, limit=limit))
    if as_json:
        print_json([_render.run_doc(r) for r in runs])
    else:
        _render.render_runs(console(), runs)


def _status(value: str | None) -> bf.RunStatus | None:
    if value is None:
        return None
    try:
        return bf.RunStatus(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in bf.RunStatus)
        raise bf.ConfigError(
            f"--status: unknown status {value!r}; expected one of {names}"
        ) from None


@app.command()
def show(run_id: RunId, db: Db = DEFAULT_DB, as_json: AsJson = False, token: Token = None) -> None:
    """Show a run in full: its steps, failed attempts, events, and what it waits for.

    Includes the input, the output or error (with its traceback), the step timeline with each
    failed attempt under its step, the events it received, and, for a parked run, what it
    waits for and how to continue it. A run with data subjects shows its data only to the
    operator and admin roles, and the reading is recorded on the audit trail.
    """
    with cli_errors():
        if _remote.server() is not None:
            details = asyncio.run(_remote.show(token, run_id))
        else:
            path = resolve_db(db, must_exist=True, read_only=True)
            details = asyncio.run(_ops.show(path, run_id, token))
    if as_json:
        print_json(_render.details_doc(details))
    else:
        _render.render_details(console(), details, db=db, full=True)


# -- operator actions ----------------------------------------------------------------------------


def _change(
    run_id: str, db: str, as_json: bool, action: _ops.Action, token: str | None, **options: Any
) -> None:
    with cli_errors():
        if _remote.server() is not None:
            verb = {_ops.CANCEL: "cancel", _ops.SUSPEND: "suspend"}.get(action, "resume")
            work = _remote.change(token, run_id, verb, options.get("reason"))
            before, after = asyncio.run(work)
        else:
            path = resolve_db(db, must_exist=True)
            before, after = asyncio.run(
                _ops.change_status(path, run_id, action, token=token, **options)
            )
    if as_json:
        print_json(_render.run_doc(after))
    else:
        _render.render_transition(console(), before, after)


@app.command()
def cancel(
    run_id: RunId,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Recorded in the run's error message.")
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a run and its unfinished child runs.

    A worker executing it notices at its next lease heartbeat and stops it.
    """
    _change(run_id, db, as_json, _ops.CANCEL, token, reason=reason)


@app.command()
def suspend(
    run_id: RunId, db: Db = DEFAULT_DB, token: Token = None, as_json: AsJson = False
) -> None:
    """Pause a run at its next step boundary, until `batonflow resume`."""
    _change(run_id, db, as_json, _ops.SUSPEND, token)


@app.command()
def resume(
    run_id: RunId,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Also execute the run here, like `batonflow run` (needs the engine lock, so no"
            " worker may be running); accepts pending and waiting runs too.",
        ),
    ] = False,
    linger: Linger = DEFAULT_LINGER,
    db: Db = DEFAULT_DB,
    allow_processes: AllowProcesses = False,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Continue a suspended run, or retry a faulted run from the step that failed.

    Without --wait this only marks the run pending; a running `batonflow worker` continues it.
    """
    if wait and _remote.server() is not None:
        with cli_errors():
            raise bf.ConfigError("resume --wait executes the run here; not with --server")
    if not wait:
        _change(run_id, db, as_json, _ops.RESUME, token)
        if not as_json:
            note(
                f"a worker continues it: `batonflow worker{_render.db_flag(db)}`"
                f" (or `batonflow resume {run_id} --wait{_render.db_flag(db)}`)"
            )
        return
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        dsl = _ops.DslOptions(allow_processes)
        _, details = asyncio.run(_ops.resume_and_follow(path, run_id, linger, token=token, dsl=dsl))
    _report_run(details, db=db, as_json=as_json, detached=False)


@events_app.command("deliver")
def events_deliver(
    topic: Annotated[
        str, typer.Argument(metavar="TOPIC", help="The event's topic.", show_default=False)
    ],
    run_id: Annotated[
        str | None, typer.Option("--run", "-r", metavar="RUN_ID", help="Deliver to this run.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Deliver to the run(s) waiting with this correlation key."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", metavar="JSON|@FILE", help="The payload: JSON, @file or @-."),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Deliver a raw event to a Python workflow's `ctx.wait_for_event` (by run or by key).

    It is stored first: a run that starts waiting for it later gets it.
    """
    with cli_errors():
        payload = read_json_option(data, "--data")
        if _remote.server() is not None:
            event, target = asyncio.run(_remote.send_event(token, topic, payload, run_id, key))
        else:
            path = resolve_db(db, must_exist=True)
            event, target = asyncio.run(
                _ops.send_event(path, topic, payload, run_id=run_id, key=key, token=token)
            )
    if as_json:
        print_json(_render.event_doc(event))
        return
    to = f"run {event.run_id}" if event.run_id else f"key {event.key!r}"
    console().print(f"delivered event #{event.id} {event.topic!r} to {to}", markup=False)
    if target is not None and target.status is bf.RunStatus.PENDING:
        note(
            f"run {target.id} is pending: `batonflow worker{_render.db_flag(db)}` continues it"
            f" (or `batonflow resume {target.id} --wait{_render.db_flag(db)}`)"
        )
    elif target is not None and target.status is bf.RunStatus.WAITING:
        note(f"run {target.id} is not waiting for {topic!r} yet; its next wait for it takes it")


# -- workflow documents ---------------------------------------------------------------------------


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...",
            help="Serverless Workflow documents (YAML or JSON).",
            show_default=False,
        ),
    ],
    as_json: AsJson = False,
) -> None:
    """Check Serverless Workflow DSL 1.0.3 documents: syntax, schema, flow and references.

    Prints `ok` for each valid file and every problem of an invalid one, as
    FILE:LINE:COLUMN: JSON-POINTER: message. Exits 0 only if every file is valid.
    """
    from batonflow.dsl import DslValidationError, load_document  # here: it imports pydantic

    results: list[DslDocument | DslValidationError] = []
    with cli_errors():
        for file in files:
            try:
                results.append(load_document(file))
            except DslValidationError as exc:
                results.append(exc)
    failed = [r for r in results if isinstance(r, DslValidationError)]
    if as_json:
        print_json({"valid": not failed, "files": [_validation_doc(r) for r in results]})
    else:
        _render_validation(results)
    if failed:
        print_error(f"{len(failed)} of {len(results)} workflow documents are invalid")
        raise typer.Exit(int(exit_code_for(failed[0])))


def _validation_doc(result: DslDocument | DslValidationError) -> dict[str, Any]:
    """One file's verdict for `validate --json`."""
    if isinstance(result, bf.ConfigError):  # a DslValidationError
        return {
            "file": result.source,
            "valid": False,
            "problems": [p.to_dict() for p in result.problems],
        }
    document = result.model.document
    return {
        "file": result.source,
        "valid": True,
        "dsl": document.dsl,
        "namespace": document.namespace,
        "name": document.name,
        "version": document.version,
        "tasks": sum(1 for _ in result.model.walk()),
        "warnings": [w.to_dict() for w in result.warnings],
    }


def _render_validation(results: list[DslDocument | DslValidationError]) -> None:
    """`ok  FILE  (name namespace version, N tasks)` per valid file, its warnings after it;
    every problem of an invalid file."""
    out = console()
    for result in results:
        if isinstance(result, bf.ConfigError):  # a DslValidationError
            for problem in result.problems:
                out.print(Text(str(problem), style="red"), soft_wrap=True)
            continue
        doc = result.model.document
        tasks = sum(1 for _ in result.model.walk())
        line = Text("ok", style="green")
        line.append(f"  {result.source}  ({doc.name} {doc.namespace} {doc.version}, ")
        line.append(f"{tasks} task{'s' if tasks != 1 else ''})")
        out.print(line, soft_wrap=True)
        for warning in result.warnings:
            out.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


_governance_commands()
