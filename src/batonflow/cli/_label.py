"""``batonflow label correct``: a person puts a classification right, and the classifier learns.

The run's classified text and the right label become an example for that workflow's
``classify`` steps (sealed with the run's data subjects, audited), used from the next
classification on. See ``batonflow.catalog.correct_label``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from batonflow.catalog import Correction, correct_label
from batonflow.cli._io import DEFAULT_DB, cli_errors, console, print_json, resolve_db
from batonflow.cli._ops import opened_store
from batonflow.cli._options import AsJson, Db, Token
from batonflow.governance._identity import authorize, cli_identity

__all__ = ["label_app"]

label_app = typer.Typer(
    help="Classification labels: correct one, so the workflow's classifier learns from it.",
    no_args_is_help=True,
)


@label_app.command("correct")
def correct(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The run's id.", show_default=False)
    ],
    label: Annotated[
        str,
        typer.Option("--label", metavar="LABEL", help="The right label.", show_default=False),
    ],
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            metavar="STEP_ID",
            help="The classify step to correct (needed only if the run has several).",
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Correct the label a run's classify step gave; the e-mail becomes an example of LABEL
    for the workflow's next classifications. The correction is audited."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        done = asyncio.run(_correct(path, run_id, label, step, token))
    if as_json:
        print_json(
            {
                "run_id": done.run_id,
                "step_id": done.step_id,
                "workflow": done.workflow,
                "from": done.previous,
                "to": done.label,
                "actor": done.actor,
            }
        )
        return
    console().print(
        f"run {done.run_id} step {done.step_id}: {done.previous!r} corrected to {done.label!r}"
        f" by {done.actor}; {done.workflow} learns from it from the next classification on"
    )


async def _correct(
    db: str, run_id: str, label: str, step: str | None, token: str | None
) -> Correction:
    async with opened_store(db) as store:
        identity = await cli_identity(store, token)
        authorize(identity, "label.correct")
        return await correct_label(
            store, run_id, label, actor=identity.name, now=time.time(), step_id=step
        )
