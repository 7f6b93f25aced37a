"""The ground the typed workflow model stands on: the base class, the scalar types with the
schema's patterns, durations, named lists (task lists, switch cases, extensions), and the
helpers that turn the schema's ``oneOf`` alternatives into discriminated unions.

Unions are chosen by a discriminator (the JSON type of the value, or which key an object has),
so a wrong value is reported against the one alternative the author meant, never as a failure
of every alternative. Union tags start with ``§`` so error locations can drop them.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, NamedTuple, TypeVar, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    GetCoreSchemaHandler,
    Tag,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from batonflow.dsl._yaml import join_pointer

if TYPE_CHECKING:
    from batonflow.dsl._model.tasks import Task

T = TypeVar("T")

TAG = "§"  # union tags in error locations start with this; they are not document keys

STRING = TAG + "string"
OBJECT = TAG + "object"
ARRAY = TAG + "array"


class Model(BaseModel):
    """Base of every model: immutable, strict JSON types, camelCase aliases, no unknown keys
    unless the schema allows them (``extra="allow"`` in those models)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        defer_build=True,
        revalidate_instances="never",
    )

    #: explanations for keys that authors put where they do not belong
    unexpected_hints: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _note_shape(cls, data: Any, info: ValidationInfo) -> Any:
        """Remember which model read which object, so that an unknown key can be reported with
        the keys that were expected there; and refuse ``null`` for optional properties (absent
        is not null: the schema types them string, object...)."""
        if not isinstance(data, dict):
            return data
        if isinstance(info.context, dict):
            info.context.setdefault("models", {})[id(data)] = cls
        if any(v is None for v in data.values()):
            typed = _typed_keys(cls)
            return {k: NULL if v is None and k in typed else v for k, v in data.items()}
        return data

    @classmethod
    def document_keys(cls) -> list[str]:
        """The document keys this model reads: its own first, then inherited ones."""
        own: list[str] = []
        for klass in cls.__mro__:
            names = getattr(klass, "__annotations__", {})
            for name, info in cls.model_fields.items():
                key = info.alias or name
                if name in names and key not in own:
                    own.append(key)
        return own

    def to_data(self) -> Any:
        """This model as plain JSON data, as it was written (defaults not added)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class _Null:
    """An explicit ``null`` where the schema wants a typed value: fails every type check."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()
_TYPED_KEYS: dict[type[Model], frozenset[str]] = {}


def _typed_keys(cls: type[Model]) -> frozenset[str]:
    """The keys of ``cls`` whose value may not be ``null`` (all but those of any type)."""
    keys = _TYPED_KEYS.get(cls)
    if keys is None:
        fields = cls.model_fields.items()
        keys = frozenset(f.alias or n for n, f in fields if f.annotation is not Any)
        _TYPED_KEYS[cls] = keys
    return keys


class OpenModel(Model):
    """A model that keeps keys the schema does not name (``additionalProperties`` allowed)."""

    model_config = ConfigDict(extra="allow")


# -- value checks ---------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A value as an author would recognise it in the document."""
    if value is None or value is NULL:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return str(value)


def invalid(
    code: str, message: str, value: Any, *, expected: str | None = None, found: str | None = None
) -> Exception:
    """A validation error an author can act on. ``message`` may name ``{found}`` and
    ``{expected}`` (never put document text in ``message`` itself: braces are placeholders)."""
    context: dict[str, Any] = {"found": describe(value) if found is None else found}
    if expected is not None:
        context["expected"] = expected
    return PydanticCustomError(code, message, context)


def _search(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)  # JSON Schema patterns are searched, not matched
    return lambda value: compiled.search(value) is not None


is_runtime_expression = _search(r"^\s*\$\{.+\}\s*$")
is_uri = _search(r"^[A-Za-z][A-Za-z0-9+\-.]*://.*")
is_iso_duration = _search(
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)


def _checked(test: Callable[[str], bool], code: str, expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not test(value):
            message = "invalid value {found}; expected {expected}"
            raise invalid(code, message, value, expected=expected)
        return value

    return AfterValidator(check)


def _integral(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; so do we."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]
RuntimeExpression = Annotated[
    str, _checked(is_runtime_expression, "expression", "a runtime expression '${ ... }'")
]
Uri = Annotated[str, _checked(is_uri, "uri", "an absolute URI such as 'https://host/path'")]
UriOrExpression = Annotated[
    str,
    _checked(
        lambda v: is_uri(v) or is_runtime_expression(v),
        "uri",
        "an absolute URI such as 'https://host/path' or a runtime expression '${ ... }'",
    ),
]
NonEmptyStr = Annotated[str, _checked(bool, "empty", "a non-empty string")]


# -- unions ---------------------------------------------------------------------------------------


def json_kind(value: Any) -> str | None:
    """The union tag for a value's JSON type."""
    if isinstance(value, str):
        return STRING
    if isinstance(value, dict | BaseModel):  # a model when serializing
        return OBJECT
    if isinstance(value, list):
        return ARRAY
    return None


def by_json_kind(expected: str) -> Discriminator:
    """Choose a union member by the value's JSON type; otherwise report ``expected``."""
    return Discriminator(
        json_kind, custom_error_type="wrong_type", custom_error_message=f"expected {expected}"
    )


def require_one_of(value: dict[str, Any], keys: Sequence[str], what: str) -> list[str]:
    """The one of ``keys`` that ``value`` has; an error unless there is exactly one."""
    present = [k for k in keys if k in value]
    if len(present) > 1:
        message = f"{what} takes only one of {listing(keys, 'or')}; found {listing(present)}"
        raise invalid("ambiguous", message, value)
    if not present:
        raise invalid(
            "missing_kind",
            f"{what} needs one of {listing(keys, 'or')}; found {{found}}",
            value,
            expected=", ".join(keys),
            found=_found_keys(value, keys),
        )
    return present


def by_key(keys: Sequence[str], what: str) -> tuple[BeforeValidator, Discriminator]:
    """Choose a union member by which one of ``keys`` an object has (the schema's ``oneOf`` of
    ``required: [key]`` alternatives). Tags are ``§key``."""

    def check(value: Any) -> Any:
        if isinstance(value, dict):
            require_one_of(value, keys, what)
        return value

    def choose(value: Any) -> str | None:
        if isinstance(value, BaseModel):  # serializing
            value = {info.alias or name: None for name, info in type(value).model_fields.items()}
        if isinstance(value, dict):
            return next((TAG + k for k in keys if k in value), None)
        return None

    discriminator = Discriminator(
        choose, custom_error_type="wrong_type", custom_error_message=f"expected {what} (an object)"
    )
    return BeforeValidator(check), discriminator


def _found_keys(value: dict[str, Any], keys: Sequence[str]) -> str:
    if not value:
        return "an empty object"
    found = "keys " if len(value) > 1 else "key "
    found += ", ".join(f"'{k}'" for k in value)
    guesses = [g for k in value for g in difflib.get_close_matches(str(k), keys, n=1)]
    if guesses:
        found += f" (did you mean '{guesses[0]}'?)"
    return found


def listing(items: Sequence[str], last: str = "and") -> str:
    """``'a', 'b' and 'c'`` (or ``'a', 'b' or 'c'``)."""
    quoted = [f"'{i}'" for i in items]
    if len(quoted) <= 2:
        return f" {last} ".join(quoted)
    return ", ".join(quoted[:-1]) + f" {last} " + quoted[-1]


# -- durations ------------------------------------------------------------------------------------


class DurationInline(Model):
    """A duration as ``{days, hours, minutes, seconds, milliseconds}`` (at least one)."""

    days: Int | None = None
    hours: Int | None = None
    minutes: Int | None = None
    seconds: Int | None = None
    milliseconds: Int | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> DurationInline:
        if not self.model_fields_set:
            raise invalid(
                "empty",
                "an inline duration needs at least one of days, hours, minutes, seconds,"
                " milliseconds",
                {},
            )
        _runtime_reads(self.model_dump(exclude_none=True))
        return self

    def to_timedelta(self) -> timedelta:
        return timedelta(
            days=self.days or 0,
            hours=self.hours or 0,
            minutes=self.minutes or 0,
            seconds=self.seconds or 0,
            milliseconds=self.milliseconds or 0,
        )


DURATION_EXPECTED = (
    "an ISO 8601 duration such as 'PT5S', a runtime expression '${ ... }', or an object with"
    " days, hours, minutes, seconds or milliseconds"
)


def _duration_text(value: str) -> str:
    if not (is_iso_duration(value) or is_runtime_expression(value)):
        message = "invalid duration {found}; expected {expected}"
        raise invalid("duration", message, value, expected=DURATION_EXPECTED)
    if not is_runtime_expression(value):
        _runtime_reads(value)
    return value


def _runtime_reads(value: str | dict[str, Any]) -> None:
    """One verdict: a literal duration the runtime's parser refuses (years, months, beyond
    the longest duration) is refused here too, with the runtime's words."""
    from batonflow.dsl._durations import to_seconds  # the runtime's parser
    from batonflow.dsl._problems import WorkflowError

    try:
        to_seconds(value)
    except WorkflowError as error:
        detail = error.problem.detail or "invalid duration"
        raise invalid("duration", detail.replace("{", "{{").replace("}", "}}"), value) from None


DurationText = Annotated[str, AfterValidator(_duration_text)]
Duration = Annotated[
    Annotated[DurationInline, Tag(OBJECT)] | Annotated[DurationText, Tag(STRING)],
    by_json_kind("a duration: " + DURATION_EXPECTED),
]

_ISO_PART = re.compile(r"(\d+(?:\.\d+)?)([YMWDHS])")
_ISO_UNIT_DAYS = {"Y": 365.0, "M": 30.0, "W": 7.0, "D": 1.0}
_ISO_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0}


def duration_to_timedelta(value: DurationInline | str) -> timedelta | None:
    """A literal duration as a ``timedelta``; ``None`` for a runtime expression (evaluate it
    first). ISO years and months count 365 and 30 days."""
    if isinstance(value, DurationInline):
        return value.to_timedelta()
    if is_runtime_expression(value) or not is_iso_duration(value):
        return None
    date, _, time = value[1:].partition("T")
    days = sum(float(n) * _ISO_UNIT_DAYS[u] for n, u in _ISO_PART.findall(date))
    seconds = sum(float(n) * _ISO_UNIT_SECONDS[u] for n, u in _ISO_PART.findall(time))
    return timedelta(days=days, seconds=seconds)


# -- flow -----------------------------------------------------------------------------------------


class FlowDirective(enum.StrEnum):
    """The reserved values of ``then``; any other value names a task in the same list."""

    CONTINUE = "continue"
    EXIT = "exit"
    END = "end"


def is_flow_directive(then: str) -> bool:
    return then in FlowDirective.__members__.values()


# -- named lists ----------------------------------------------------------------------------------


class Entry(NamedTuple, Generic[T]):
    """One item of a named list: ``- name: value``."""

    name: str
    value: T


def _single_entry(what: str, noun: str) -> Callable[[Any], Any]:
    def check(item: Any) -> Any:
        if isinstance(item, dict) and len(item) != 1:
            if not item:
                raise invalid("item", f"{what} must name one {noun}; found an empty object", item)
            raise invalid(
                "item",
                f"{what} must name exactly one {noun}; found {{found}}"
                f" (start each {noun} with '- ')",
                item,
                found=f"{len(item)}: {', '.join(item)}",
            )
        return item

    return check


class NamedList(Sequence[Entry[T]]):
    """An ordered list of named entries, written ``- name: value`` (a list of single-key
    objects). Names are kept; they need not be unique."""

    what: ClassVar[str] = "a list item"
    noun: ClassVar[str] = "entry"
    min_items: ClassVar[int] = 0

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[tuple[str, T]] = ()) -> None:
        self._entries = tuple(Entry(name, value) for name, value in entries)

    @overload
    def __getitem__(self, index: int) -> Entry[T]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry[T]]: ...
    def __getitem__(self, index: int | slice) -> Entry[T] | Sequence[Entry[T]]:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NamedList):
            return self._entries == other._entries
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list: tasks hold dicts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._entries)!r})"

    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    def index_of(self, name: str) -> int | None:
        """The position of the first entry called ``name``, if any."""
        return next((i for i, e in enumerate(self._entries) if e.name == name), None)

    def get(self, name: str) -> T | None:
        """The value of the first entry called ``name``, if any."""
        index = self.index_of(name)
        return None if index is None else self._entries[index].value

    def to_data(self) -> list[dict[str, Any]]:
        return [{e.name: _dump(e.value)} for e in self._entries]

    @classmethod
    def item_type(cls) -> Any:
        """The type of the values; every concrete list class names it."""
        raise NotImplementedError(f"{cls.__name__} does not name its item type")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        entry = handler.generate_schema(dict[str, cls.item_type()])  # type: ignore[misc]
        item = core_schema.no_info_before_validator_function(
            _single_entry(cls.what, cls.noun), entry
        )
        items = core_schema.list_schema(item, min_length=cls.min_items, strict=True)
        return core_schema.no_info_after_validator_function(
            lambda raw: cls([next(iter(d.items())) for d in raw]),
            items,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.to_data()
            ),
        )


def _dump(value: Any) -> Any:
    return value.to_data() if isinstance(value, Model | NamedList) else value


class TaskList(NamedList["Task"]):
    """The tasks of a ``do`` (or ``try``, ``fork.branches``, ``catch.do``...), in order.

    Iterate for ``(name, task)`` pairs; ``items_at(pointer)`` also yields each task's JSON
    pointer (``/do/0/getPet``), the task reference the runtime reports in errors."""

    what = "a task list item"
    noun = "task"

    @classmethod
    def item_type(cls) -> Any:
        from batonflow.dsl._model.tasks import Task  # the task types contain task lists

        return Task

    def items_at(self, pointer: str) -> Iterator[tuple[str, str, Task]]:
        """``(pointer, name, task)`` for each task, given this list's own pointer."""
        for index, (name, task) in enumerate(self):
            yield join_pointer(pointer, index, name), name, task
