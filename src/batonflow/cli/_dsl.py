"""Commands for Serverless Workflow documents: graph, events send, events list; and the DSL
runtime every engine the CLI opens carries, so it can run and resume DSL runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import batonflow as bf
from batonflow.cli._app import RunId, app, events_app
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    console,
    note,
    print_json,
    read_json_option,
    resolve_db,
)
from batonflow.cli._options import AsJson, Db, Token

if TYPE_CHECKING:
    from batonflow.dsl import DslDocument

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")


def is_document(ref: str) -> bool:
    """Does ``ref`` name a workflow document rather than a Python module:function?"""
    return ref.lower().endswith(DOCUMENT_SUFFIXES) and ":" not in Path(ref).name


def load(path: str) -> DslDocument:
    from batonflow.dsl import load_document

    return load_document(path)


def payload(document: DslDocument, input: Any) -> dict[str, Any]:
    """A DSL run's kernel input: the document travels with the run."""
    return {"definition": document.raw, "input": input}


def timeout_of(document: DslDocument) -> float | None:
    from batonflow.dsl._runtime import _timeout

    return _timeout(document.raw)


# -- graph ------------------------------------------------------------------------------------


@app.command()
def graph(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A workflow document.", show_default=False)
    ],
) -> None:
    """Print the flow of a workflow document as a Mermaid flowchart.

    Paste it into any Mermaid renderer (GitHub and GitLab render ```mermaid blocks).
    """
    from batonflow.dsl._graph import mermaid

    with cli_errors():
        text = mermaid(load(file).raw)
    typer.echo(text, nl=False)


# -- events -----------------------------------------------------------------------------------


@events_app.command("send")
def events_send(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            metavar="JSON|@FILE",
            help="The CloudEvent (structured mode: specversion, id, source, type, data...):"
            " JSON, @file or @-.",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Deliver a CloudEvent to every run whose listen task awaits it.

    Runs that are parked wake up; a running `batonflow worker` continues them. Runs that start
    listening later do not get it.
    """
    from batonflow.dsl import WorkflowError
    from batonflow.dsl._events import check_event, publish

    with cli_errors():
        event = read_json_option(data, "--data")
        if not isinstance(event, dict):
            raise bf.ConfigError("--data: a CloudEvent is a JSON object")
        event = {"specversion": "1.0", **event}
        try:
            check_event(event, "/")
        except WorkflowError as error:
            raise bf.ConfigError(f"--data: {error.problem.detail}") from None
        path = resolve_db(db, must_exist=True)
        delivered = asyncio.run(_publish(path, event, publish, token))
    if as_json:
        print_json({"event": event, "delivered_to": delivered})
        return
    if delivered:
        console().print(
            f"delivered {event['type']} ({event['id']}) to {len(delivered)} run(s): "
            + ", ".join(delivered),
            markup=False,
        )
    else:
        note(f"no run is listening for {event['type']} ({event['id']}); nothing was delivered")


async def _publish(db: str, event: dict[str, Any], publish: Any, token: str | None) -> list[str]:
    from batonflow.cli import _setup

    store = _setup.current().store(db)  # sealed: events for runs with subjects are sealed too
    await store.open()
    try:
        me = await _setup.acting(store, token, "event.deliver")
        delivered: list[str] = await publish(store, event, time.time(), actor=me)
        return delivered
    finally:
        await store.close()


@events_app.command("list")
def events_list(run_id: RunId, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """A DSL run's lifecycle CloudEvents (workflow and task started, completed, faulted...),
    projected from its journal."""
    from batonflow.dsl._lifecycle import lifecycle_events

    with cli_errors():
        path = resolve_db(db, must_exist=True)
        run, steps = asyncio.run(_history(path, run_id))
        if not _is_dsl(run):
            raise bf.ConfigError(
                f"run {run_id} runs the Python workflow {run.workflow!r}; lifecycle events are"
                " for workflow documents (see `batonflow show` for its timeline)"
            )
        events = lifecycle_events(run, steps)
    if as_json:
        print_json(events)
        return
    out = console()
    for event in events:
        kind = event["type"].removeprefix("io.serverlessworkflow.").removesuffix(".v1")
        where = event["data"].get("task", "")
        out.print(f"{event['time']}  {kind:<20} {where}", markup=False, highlight=False)


async def _history(db: str, run_id: str) -> tuple[bf.RunRecord, list[bf.StepRecord]]:
    store = bf.open_store(db)
    await store.open()
    try:
        run = await store.get_run(run_id)
        if run is None:
            raise bf.RunNotFound(f"no run with id {run_id!r} in {db}")
        return run, await store.load_steps(run_id)
    finally:
        await store.close()


def _is_dsl(run: bf.RunRecord) -> bool:
    from batonflow.dsl._runtime import is_document_run

    return is_document_run(run.workflow)
