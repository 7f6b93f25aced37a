"""Input, output and export schemas (JSON Schema), checked where the data flow says.

A schema with a regular expression in it (``pattern``, ``patternProperties``) is checked in an
evaluator process under the expression budget: a pattern that backtracks for ever
(``(a+)+$``) would otherwise hold the event loop. Any other schema is checked here."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from batonflow.dsl._expr import Evaluator
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError
from batonflow.dsl._sandbox import BudgetExceeded


class SchemaValidator:
    async def validate(
        self, schema: Any, value: Any, where: str, what: str, evaluator: Evaluator
    ) -> None:
        """Raise a validation error (400) unless ``value`` matches ``schema``'s document;
        patterns are searched by ``evaluator``'s pool, under its budget."""
        if not isinstance(schema, dict) or "document" not in schema:
            raise WorkflowError(
                Problem.of(
                    ErrorType.CONFIGURATION,
                    "only inline schemas (schema.document) are supported, not external resources",
                    instance=where,
                )
            )
        if schema.get("format", "json").split(":")[0] != "json":
            raise WorkflowError(
                Problem.of(
                    ErrorType.CONFIGURATION,
                    f"schema format {schema['format']!r} is not supported (only json)",
                    instance=where,
                )
            )
        found = await first_error(schema, value, where, what, evaluator)
        if found is not None:
            path, message = found
            raise WorkflowError(
                Problem.of(
                    ErrorType.VALIDATION,
                    f"the {what} does not match its schema at {path}: {message}",
                    title="Schema validation failed",
                    instance=where,
                )
            )


async def first_error(
    schema: dict[str, Any], value: Any, where: str, what: str, evaluator: Evaluator
) -> tuple[str, str] | None:
    """The JSON path (``/a/0/b``) and message of the first place ``value`` breaks the inline
    schema ``schema`` (``{"document": ...}``), or None when it matches; a schema with patterns
    is checked by ``evaluator``'s pool, under its budget."""
    document = json.dumps(schema["document"], sort_keys=True)
    validator = _validator(document, where)
    if '"pattern' in document:
        found = await _isolated(schema["document"], value, where, what, evaluator)
    else:
        error = next(iter(validator.iter_errors(value)), None)
        found = None if error is None else ([str(p) for p in error.absolute_path], error.message)
    return None if found is None else ("/" + "/".join(found[0]), found[1])


async def _isolated(
    document: Any, value: Any, where: str, what: str, evaluator: Evaluator
) -> tuple[list[str], str] | None:
    try:
        outcome = await evaluator.pool.run({"schema": document}, json.dumps(value))
    except BudgetExceeded as over:
        raise WorkflowError(
            Problem.of(
                ErrorType.VALIDATION,
                f"checking the {what} against its schema (it has regular expressions) {over}",
                title="Schema validation failed",
                instance=where,
            )
        ) from None
    if outcome.error is not None or not outcome.results or outcome.results[0] is None:
        if outcome.error is not None:
            raise WorkflowError(
                Problem.of(
                    ErrorType.CONFIGURATION,
                    f"invalid JSON Schema: {outcome.error}",
                    instance=where,
                )
            )
        return None
    error = outcome.results[0]
    return [str(p) for p in error["path"]], str(error["message"])


@lru_cache(maxsize=256)
def _validator(document: str, where: str) -> Draft202012Validator:
    schema = json.loads(document)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise WorkflowError(
            Problem.of(
                ErrorType.CONFIGURATION, f"invalid JSON Schema: {error.message}", instance=where
            )
        ) from None
    return Draft202012Validator(schema)
