"""People correct a classification; the e-mail and the right label teach the classifier.

:func:`correct_label` finds the ``classify`` step of a run, checks the new label is one of that
step's labels, and keeps the classified text with the right label as a store record of kind
:data:`EXAMPLE_KIND`, keyed by workflow, run and step (a later correction of the same step
replaces it). The record is sealed under the run's data subjects, like the run's own payloads,
so erasing a subject makes it unreadable; a retention purge deletes it with its run (and it
is skipped if its run is gone any other way). The
correction is audited (``classify.corrected``: who, which run and step, from which label to
which; never the text). :func:`stored_examples` gives a workflow's corrections, which
:meth:`Catalog.classify <batonflow.catalog.Catalog.classify>` adds to its examples from the
next classification on.

The CLI (``batonflow label correct``), the API and the console call :func:`correct_label`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from batonflow.catalog._classify import UNSURE
from batonflow.errors import ConfigError, RunNotFound
from batonflow.governance._retention import EXAMPLE_KIND, RECORD_SEP
from batonflow.governance._sealed import ERASED
from batonflow.governance._subjects import SealedStore, wrap_store
from batonflow.store import AuditEntry, StepRecord, StepStatus, Store

__all__ = ["EXAMPLE_KIND", "Correction", "correct_label", "stored_examples"]

_SEP = RECORD_SEP


@dataclass(frozen=True, slots=True)
class Correction:
    """What :func:`correct_label` recorded."""

    run_id: str
    step_id: str
    workflow: str
    previous: str  # the label the step gave
    label: str  # the right one
    actor: str


def _key(workflow: str, run_id: str, step_id: str) -> str:
    return _SEP.join((workflow, run_id, step_id))


def _classify_call(step: StepRecord) -> tuple[str, list[str]] | None:
    """``(text, labels)`` of a completed ``Catalog.classify`` step (from its output, which
    holds them), None for any other step."""
    if step.status is not StepStatus.COMPLETED:
        return None
    try:
        output: Any = json.loads(step.output_json or "null")
    except ValueError:
        return None
    if not isinstance(output, dict) or not {"label", "confidence", "rationale"} <= set(output):
        return None
    text, labels = output.get("text"), output.get("labels")
    if not isinstance(text, str) or not isinstance(labels, list) or not labels:
        return None
    if not all(isinstance(n, str) for n in labels):
        return None
    return text, labels


async def _find_step(
    store: SealedStore, run_id: str, step_id: str | None
) -> tuple[StepRecord, str, list[str]]:
    found = []
    for step in await store.load_steps(run_id):
        call = _classify_call(step)
        if call is not None and (step_id is None or step.step_id == step_id):
            found.append((step, *call))
    if not found:
        which = f"classify step {step_id!r}" if step_id else "completed classify step"
        raise ConfigError(f"run {run_id} has no {which} to correct")
    if len(found) > 1:
        ids = ", ".join(f"{s.step_id} ({s.name})" for s, _, _ in found)
        raise ConfigError(f"run {run_id} has several classify steps ({ids}): name one with step")
    return found[0]


async def correct_label(
    store: Store,
    run_id: str,
    label: str,
    *,
    actor: str,
    now: float,
    step_id: str | None = None,
) -> Correction:
    """Record that the right label of run ``run_id``'s ``classify`` step (``step_id``, needed
    only when the run has several) is ``label``, as a person (``actor``) says.

    The classified text and ``label`` become an example for the run's workflow: sealed with
    the run's data subjects, audited, and used by :meth:`Catalog.classify` from the next
    classification on. RunNotFound for an unknown run; ConfigError for a run without such a
    step or a label that is not one of the step's labels."""
    sealed = wrap_store(store)
    run = await sealed.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r} in {sealed.url}")
    step, text, labels = await _find_step(sealed, run_id, step_id)
    if label not in labels:
        raise ConfigError(
            f"label {label!r} is not one of step {step.step_id}'s labels ({', '.join(labels)})"
        )
    previous = str(json.loads(step.output_json or "{}").get("label", ""))
    data = json.dumps({"text": text, "label": label}, ensure_ascii=False)
    refs = run.subjects
    body = await sealed.keys.seal(data, refs, run_id) if refs else data
    if refs and json.loads(body).get(ERASED):
        raise ConfigError(f"run {run_id}'s data subject was erased: its text cannot be kept")
    entry = AuditEntry(
        "classify.corrected",
        json.dumps({"workflow": run.workflow, "from": previous, "to": label}),
        run_id=run_id,
        step_id=step.step_id,
        actor=actor,
        subjects=refs,
    )
    key = _key(run.workflow, run_id, step.step_id)
    await sealed.put_record(EXAMPLE_KIND, key, body, now, audit=[entry])
    return Correction(run_id, step.step_id, run.workflow, previous, label, actor)


async def stored_examples(store: Store, workflow: str) -> list[dict[str, str]]:
    """The corrected examples of ``workflow``, oldest run first, as ``{"text", "label"}``.
    Examples whose subject was erased, or whose run was purged, are left out."""
    sealed = wrap_store(store)
    prefix = workflow + _SEP
    out = []
    for key, body in await sealed.list_records(EXAMPLE_KIND):
        if not key.startswith(prefix):
            continue
        run_id = key.split(_SEP)[1]
        if await sealed.inner.get_run(run_id) is None:  # purged
            continue
        value = json.loads(await sealed.keys.open(body, run_id))
        if not isinstance(value, dict) or value.get(ERASED):
            continue
        text, label = value.get("text"), value.get("label")
        if isinstance(text, str) and isinstance(label, str) and label != UNSURE:
            out.append({"text": text, "label": label})
    return out
