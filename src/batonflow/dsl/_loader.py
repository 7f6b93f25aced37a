"""Loading a workflow document: read the text (YAML 1.2 or JSON), validate it against the
typed model and the DSL's rules, and keep where every part of it is in the file.

    doc = load_document("order.yaml")
    doc.model.document.name                  # the typed Workflow
    for name, task in doc.model.do: ...      # the top-level tasks, in order
    doc.position("/do/1/callPet/call")       # Position(line=12, column=9)

An invalid document raises :class:`DslValidationError` with every problem found, each with its
file, line, column and JSON pointer.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batonflow import _limits
from batonflow.dsl import _policy
from batonflow.dsl._model import checks as _model_checks
from batonflow.dsl._model.base import describe
from batonflow.dsl._model.errors import Finding, translate
from batonflow.dsl._model.workflow import Workflow
from batonflow.dsl._verdict import expression_findings
from batonflow.dsl._yaml import (
    Parsed,
    Position,
    Positions,
    SourceSyntaxError,
    parse_text,
    split_pointer,
)
from batonflow.errors import ConfigError

__all__ = ["DocumentProblem", "DslDocument", "DslValidationError", "load_document"]


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """One thing wrong (or, as a warning, doubtful) in a workflow document.

    ``path`` is the JSON pointer of the place (``""`` for the whole document, ``None`` when the
    text could not be read as data); ``line`` and ``column`` are 1-based. ``code`` is a short
    category: ``syntax``, ``duplicate-key``, ``missing``, ``unexpected``, ``type``, ``flow``,
    ``reference``, ``call``... ``found`` and ``expected`` say what is there and what may be."""

    source: str
    line: int | None
    column: int | None
    path: str | None
    message: str
    code: str
    found: str | None = None
    expected: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "code": self.code,
            "message": self.message,
            "found": self.found,
            "expected": self.expected,
        }


class DslValidationError(ConfigError):
    """A workflow document that cannot be run; ``problems`` lists all that was found."""

    def __init__(self, source: str, problems: Sequence[DocumentProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''} in the workflow document"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


@dataclass(frozen=True, slots=True)
class DslDocument:
    """A valid workflow document: the typed ``model``, the ``raw`` JSON data it was read
    from, the ``source`` it came from, the ``positions`` of its parts, and ``warnings``."""

    model: Workflow
    raw: dict[str, Any]
    source: str
    positions: Positions
    warnings: tuple[DocumentProblem, ...] = field(default=())

    def position(self, pointer: str) -> Position | None:
        """Where the node at JSON ``pointer`` starts (its key, for a property), or else its
        nearest ancestor's."""
        return self.positions.at(pointer)

    def value_position(self, pointer: str) -> Position | None:
        """Where the value at ``pointer`` starts."""
        return self.positions.value_at(pointer)


def load_document(source: str | Path, *, text: str | None = None) -> DslDocument:
    """Read, validate and type a workflow document.

    ``source`` is the file to read, or, with ``text``, the name to report the text under.
    Raises :class:`DslValidationError` (a ``ConfigError``) listing every problem found.
    """
    name = str(source)
    if text is None:
        text = _read(Path(source))
    try:
        parsed = parse_text(text, name)
    except SourceSyntaxError as exc:
        where = exc.position
        problem = DocumentProblem(
            name, where.line if where else None, where.column if where else None, None,
            exc.message, "syntax",
        )  # fmt: skip
        raise DslValidationError(name, [problem]) from None
    return _validate(name, parsed)


def _read(path: Path) -> str:
    try:
        return _read_regular(path)
    except _NotRegular as exc:
        reason = str(exc)
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "is a directory, not a workflow file"
    except UnicodeDecodeError:
        reason = "is not UTF-8 text"
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror}"
    problem = DocumentProblem(str(path), None, None, None, reason, "io")
    raise DslValidationError(str(path), [problem])


class _NotRegular(Exception):
    pass


def _read_regular(path: Path) -> str:
    """The file's text, if it is a regular file within the size limit: a FIFO or a device is
    refused before it is opened (reading one could block forever or never end)."""
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(info.st_mode):
        raise _NotRegular("is not a regular file (a FIFO, a socket or a device); give a file")
    limit = _limits.MAX_DOCUMENT_BYTES
    if info.st_size > limit:
        raise _NotRegular(f"is {info.st_size} bytes long; the limit is {limit}")
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _NotRegular(f"is more than {limit} bytes long; the limit is {limit}")
    return data.decode("utf-8")


def _validate(name: str, parsed: Parsed) -> DslDocument:
    located = _Locator(name, parsed)
    problems = [located.duplicate(d.pointer, d.key, d.first) for d in parsed.duplicates]
    data = parsed.data
    if not isinstance(data, dict):
        finding = Finding("", f"expected a workflow (an object), found {describe(data)}", "type")
        raise DslValidationError(name, [*problems, located(finding)])
    context: dict[str, Any] = {}
    try:
        model = Workflow.model_validate(data, context=context)
    except ValidationError as exc:
        problems.extend(located(f) for f in translate(exc, data, context))
        raise DslValidationError(name, _in_order(problems)) from None
    problems.extend(located(f) for f in _model_checks.check(model))
    problems.extend(located(f) for f in _policy.findings(data))
    problems.extend(located(f) for f in expression_findings(data))
    if problems:
        raise DslValidationError(name, _in_order(problems))
    warnings = tuple(_in_order([located(f) for f in _model_checks.warnings(model)]))
    return DslDocument(model, data, name, parsed.positions, warnings)


def _in_order(problems: list[DocumentProblem]) -> list[DocumentProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.path or ""))


class _Locator:
    """Gives findings their file position."""

    def __init__(self, source: str, parsed: Parsed) -> None:
        self.source = source
        self.positions = parsed.positions
        self.data = parsed.data

    def __call__(self, finding: Finding) -> DocumentProblem:
        """At the value for a wrong scalar, else where the entry starts (its key: an empty
        value has no place of its own)."""
        pointer = finding.pointer
        if finding.on_key or not self._is_scalar(pointer):
            where = self.positions.at(pointer)
        else:
            where = self.positions.value_at(pointer)
        return DocumentProblem(
            self.source, where.line if where else None, where.column if where else None,
            pointer, finding.message, finding.code, finding.found, finding.expected,
        )  # fmt: skip

    def _is_scalar(self, pointer: str) -> bool:
        node = self.data
        for segment in split_pointer(pointer):
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return False
        return node is not None and not isinstance(node, dict | list)

    def duplicate(self, pointer: str, key: str, first: Position) -> DocumentProblem:
        finding = Finding(
            pointer,
            f"duplicate key '{key}' (first at line {first.line}); the last one counts",
            "duplicate-key",
            key,
            on_key=True,
        )
        return self(finding)
