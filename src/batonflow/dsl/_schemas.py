"""Input, output and export schemas (JSON Schema), checked where the data flow says."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from batonflow.dsl._problems import ErrorType, Problem, WorkflowError


class SchemaValidator:
    def validate(self, schema: Any, value: Any, where: str, what: str) -> None:
        """Raise a validation error (400) unless ``value`` matches ``schema``'s document."""
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
        found = first_error(schema, value, where)
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


def first_error(schema: dict[str, Any], value: Any, where: str) -> tuple[str, str] | None:
    """The JSON path (``/a/0/b``) and message of the first place ``value`` breaks the inline
    schema ``schema`` (``{"document": ...}``), or None when it matches."""
    validator = _validator(json.dumps(schema["document"], sort_keys=True), where)
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    return "/" + "/".join(str(p) for p in error.absolute_path), error.message


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
