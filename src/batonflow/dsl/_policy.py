"""batonflow's settings in a workflow document: ``document.metadata.batonflow``.

The Serverless Workflow spec leaves ``document.metadata`` free-form; batonflow reads its own
object there, so a document stays valid for every other runtime::

    document:
      metadata:
        batonflow:
          subjects: ${ [.from] }     # the data subjects of a run: jq on the run's input
          retention: P6Y             # how long an ended run's data is kept (then purged)
          deadline: PT4H             # impact tolerance: alert when a run is still open after it
          egress: [crm.example.test] # hosts this workflow may reach, beside the global list
          redact: {persist: {...}, model: {...}, steps: {...}}

Durations are ISO 8601; years and months are allowed here (retention is counted in years) and
taken as 365 and 30 days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batonflow.dsl._expr import Evaluator, check, is_expression
from batonflow.dsl._model.errors import Finding
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError
from batonflow.errors import ConfigError
from batonflow.governance._egress import egress_scope
from batonflow.governance._redaction_rules import RedactionRules

POINTER = "/document/metadata/batonflow"
EGRESS_POINTER = f"{POINTER}/egress"
_KEYS = ("subjects", "identifiers", "retention", "deadline", "egress", "redact")

_LONG = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_SECONDS = {
    "years": 365 * 86400.0, "months": 30 * 86400.0, "weeks": 7 * 86400.0, "days": 86400.0,
    "hours": 3600.0, "minutes": 60.0, "seconds": 1.0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DocumentPolicy:
    """The batonflow settings of one document (all optional)."""

    name: str
    subjects: str | None = None
    #: The run's own identifiers beyond its subjects' ids (names, phone numbers): jq on the
    #: input, kept from every model (``[subject]``).
    identifiers: str | None = None
    retention: float | None = None  # seconds
    deadline: float | None = None  # seconds
    egress: tuple[str, ...] = ()
    redaction: RedactionRules | None = None

    async def subjects_of(self, input: Any, evaluator: Evaluator) -> tuple[str, ...]:
        """The data subjects the ``subjects`` expression finds in a run's input (nulls, for
        a field an input lacks, are skipped), evaluated by ``evaluator`` (under its budget,
        off the event loop)."""
        return await self._strings(self.subjects, "subjects", input, evaluator)

    async def identifiers_of(self, input: Any, evaluator: Evaluator) -> tuple[str, ...]:
        """Everything that identifies the run's people: its subjects' ids and what the
        ``identifiers`` expression finds (names, numbers)."""
        subjects = await self.subjects_of(input, evaluator)
        return (*subjects, *await self._strings(self.identifiers, "identifiers", input, evaluator))

    async def _strings(
        self, expression: str | None, key: str, input: Any, evaluator: Evaluator
    ) -> tuple[str, ...]:
        if expression is None:
            return ()
        found = await evaluator.evaluate(expression, input, instance=f"{POINTER}/{key}")
        if found is None:
            return ()
        items = [i for i in (found if isinstance(found, list) else [found]) if i is not None]
        bad = [item for item in items if not isinstance(item, str | int) or item == ""]
        if bad:
            raise WorkflowError(
                Problem.of(
                    ErrorType.EXPRESSION,
                    f"{key} must give strings (or an array of them), got {bad!r}",
                    instance=f"{POINTER}/{key}",
                )
            )
        return tuple(dict.fromkeys(str(item).strip() for item in items))


def duration_seconds(value: Any, where: str) -> float:
    """Seconds in an ISO 8601 duration (``P6Y``, ``PT4H``)."""
    match = _LONG.match(value.strip().upper()) if isinstance(value, str) else None
    if match is None or value.strip().upper() in ("P", "PT") or value.strip().endswith("T"):
        raise _invalid(f"expected an ISO 8601 duration such as P6Y or PT4H, got {value!r}", where)
    return sum(float(v) * _SECONDS[k] for k, v in match.groupdict().items() if v is not None)


def _expression(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise _invalid("must be a runtime expression on the input, e.g. ${ [.from] }",
                       f"{POINTER}/{key}")  # fmt: skip
    if isinstance(value, str) and not is_expression(value):
        value = "${ " + value + " }"
    return value


def policy_of(document: Mapping[str, Any]) -> DocumentPolicy:
    """The document's batonflow settings, checked (WorkflowError naming the field if wrong)."""
    header = document.get("document") or {}
    name = str(header.get("name", ""))
    settings = (header.get("metadata") or {}).get("batonflow")
    if settings is None:
        return DocumentPolicy(name)
    if not isinstance(settings, Mapping):
        raise _invalid("must be an object", POINTER)
    unknown = sorted(set(settings) - set(_KEYS))
    if unknown:
        raise _invalid(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}",
            f"{POINTER}/{unknown[0]}",
        )
    subjects = _expression(settings, "subjects")
    identifiers = _expression(settings, "identifiers")
    egress = settings.get("egress", [])
    if not isinstance(egress, list) or not all(isinstance(h, str) and h for h in egress):
        raise _invalid("must be an array of host names", f"{POINTER}/egress")
    redact = settings.get("redact")
    redaction = None
    if redact is not None:
        try:
            redaction = RedactionRules.parse(redact, f"{POINTER}/redact")
        except ConfigError as error:
            detail = str(error).removeprefix(f"{POINTER}/redact: ")
            raise _invalid(detail, f"{POINTER}/redact") from None

    return DocumentPolicy(
        name=name,
        subjects=subjects,
        identifiers=identifiers,
        retention=_optional_duration(settings, "retention"),
        deadline=_optional_duration(settings, "deadline"),
        egress=tuple(egress),
        redaction=redaction,
    )


def findings(document: Mapping[str, Any]) -> list[Finding]:
    """What is wrong with the document's batonflow settings, for ``batonflow validate``."""
    try:
        policy = policy_of(document)
    except WorkflowError as error:
        where = error.problem.instance or POINTER
        return [Finding(where, error.problem.detail or str(error), "batonflow-metadata")]
    try:
        with egress_scope(policy.name, policy.egress, where=EGRESS_POINTER):
            pass
    except ConfigError as error:
        return [Finding(EGRESS_POINTER, str(error).removeprefix(EGRESS_POINTER + ": "), "egress")]
    if policy.subjects is not None:
        problem = check(policy.subjects, ())  # evaluated on the input alone: no $variables
        if problem is not None:
            detail = problem.detail or "invalid expression"
            return [Finding(f"{POINTER}/subjects", detail, "expression")]
    return []


def _optional_duration(settings: Mapping[str, Any], key: str) -> float | None:
    value = settings.get(key)
    return None if value is None else duration_seconds(value, f"{POINTER}/{key}")


def _invalid(message: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.of(ErrorType.VALIDATION, message, instance=where))
