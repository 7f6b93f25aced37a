"""Our verdict on workflow documents equals the official JSON Schema's.

Every example, invalid fixture and CTK workflow of DSL 1.0.3 is judged by ``load_document`` and
by ``jsonschema.Draft202012Validator`` with the published schema: accept/reject must agree. The
same for the unreleased main snapshot, with its documented differences. Then mutations of the
examples (keys dropped, added, renamed; values of other types; parts of other examples moved in)
must also get the schema's verdict: that probes the model where no example goes.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batonflow.dsl import DslValidationError, load_document
from batonflow.dsl._yaml import parse_text

from .spec_kit import spec_path

#: the spec kit (every test here needs it: skipped without it outside CI, failed in CI)
SPEC = spec_path()
V103 = SPEC / "v1.0.3"
MAIN = SPEC / "main-4d42471"

#: the rules beyond the schema (flow targets, references, call typos) reject on their own
SEMANTIC_CODES = {"flow", "reference", "call"}

#: main-only features that DSL 1.0.3's schema rejects and batonflow accepts (additions)
MAIN_ONLY = {"for-inline-array.yaml", "try-catch-then-directive.yaml"}


@cache
def validator(snapshot: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads((snapshot / "schema" / "workflow.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def schema_accepts(snapshot: Path, data: Any) -> bool:
    return bool(validator(snapshot).is_valid(data))


def we_accept(source: str, text: str) -> bool:
    try:
        load_document(source, text=text)
    except DslValidationError:
        return False
    return True


def files(snapshot: Path, folder: str) -> list[Path]:
    return sorted((snapshot / folder).glob("*.yaml"))


def ctk_workflows(snapshot: Path) -> Iterator[tuple[str, str]]:
    """``(feature:line, yaml)`` for each ``Given a workflow with definition:`` block."""
    for feature in sorted((snapshot / "ctk" / "features").glob("*.feature")):
        lines = feature.read_text().splitlines()
        for index, line in enumerate(lines[:-1]):
            if "Given a workflow with definition" in line and lines[index + 1].strip() == '"""yaml':
                indent = len(lines[index + 1]) - len(lines[index + 1].lstrip())
                end = next(j for j in range(index + 2, len(lines)) if lines[j].strip() == '"""')
                body = "\n".join(text[indent:] for text in lines[index + 2 : end])
                yield f"{feature.name}:{index + 3}", body


def ctk_params(snapshot: Path) -> list[Any]:
    return [pytest.param(where, text, id=where) for where, text in ctk_workflows(snapshot)]


def _id(path: Path) -> str:
    return path.name


# -- DSL 1.0.3 ------------------------------------------------------------------------------------


def test_the_corpus_is_all_there() -> None:
    assert len(files(V103, "examples")) == 66
    assert len(files(V103, "fixtures-invalid")) == 3
    assert len(list(ctk_workflows(V103))) == 21
    assert len(files(MAIN, "examples")) == 68


@pytest.mark.parametrize("path", files(V103, "examples"), ids=_id)
def test_examples_are_accepted_like_the_schema_does(path: Path) -> None:
    assert schema_accepts(V103, parse_text(path.read_text(), path.name).data)
    document = load_document(path)
    assert document.warnings == ()
    assert document.model.to_data() == document.raw  # the model keeps all that was written


@pytest.mark.parametrize("path", files(V103, "fixtures-invalid"), ids=_id)
def test_invalid_fixtures_are_rejected_like_the_schema_does(path: Path) -> None:
    text = path.read_text()
    assert not schema_accepts(V103, parse_text(text, path.name).data)
    assert not we_accept(str(path), text)


@pytest.mark.parametrize(("where", "text"), ctk_params(V103))
def test_ctk_workflows_get_the_schemas_verdict(where: str, text: str) -> None:
    assert schema_accepts(V103, parse_text(text).data)
    assert we_accept(where, text)


# -- the invalid fixtures, told precisely ---------------------------------------------------------


def problems(path: Path) -> list[str]:
    with pytest.raises(DslValidationError) as caught:
        load_document(path)
    return [str(p) for p in caught.value.problems]


def test_an_extra_property_in_a_call_is_named_with_its_place() -> None:
    path = V103 / "fixtures-invalid" / "extra-property-in-call.yaml"
    assert problems(path) == [
        f"{path}:12:7: /do/0/getPet/foo: unexpected property 'foo'; expected one of"
        " call, with, if, input, output, export, timeout, then, metadata"
    ]


def test_two_tasks_in_one_item_is_told_with_the_fix() -> None:
    path = V103 / "fixtures-invalid" / "two-tasks-in-one-item.yaml"
    assert problems(path) == [
        f"{path}:7:5: /do/0: a task list item must name exactly one task;"
        " found 2: getPet, setMessage (start each task with '- ')"
    ]


def test_an_until_inside_until_and_the_duplicate_key_are_both_told() -> None:
    path = V103 / "fixtures-invalid" / "listen-any-until-any-until.yaml"
    assert problems(path) == [
        f"{path}:7:1: /do: duplicate key 'do' (first at line 6); the last one counts",
        f"{path}:14:13: /do/0/callDoctor/listen/to/until/until: unexpected property 'until':"
        " the events that end an 'until' cannot have an 'until' of their own",
    ]


# -- the main snapshot (after 1.0.3) --------------------------------------------------------------


@pytest.mark.parametrize("path", files(MAIN, "examples"), ids=_id)
def test_main_examples_are_accepted(path: Path) -> None:
    """All 68 examples of main pass; two use additions DSL 1.0.3's schema rejects."""
    data = parse_text(path.read_text(), path.name).data
    assert schema_accepts(MAIN, data)
    assert schema_accepts(V103, data) == (path.name not in MAIN_ONLY)
    assert we_accept(str(path), path.read_text())


@pytest.mark.parametrize(("where", "text"), ctk_params(MAIN))
def test_main_ctk_workflows_are_accepted(where: str, text: str) -> None:
    assert schema_accepts(MAIN, parse_text(text).data)
    assert we_accept(where, text)


def _example(snapshot: Path, name: str) -> Any:
    return parse_text((snapshot / "examples" / name).read_text()).data


def test_main_relaxations_of_103_rules_are_not_taken() -> None:
    """main relaxes two 1.0.3 rules: URIs need not be absolute, an emitted event needs no
    source. batonflow keeps 1.0.3's rules there (see docs/dsl.md)."""
    relative = _example(V103, "do-single.yaml")
    relative["do"][0]["getPet"]["with"]["endpoint"] = "/v2/pet/1"
    no_source = _example(V103, "emit.yaml")
    del no_source["do"][0]["emitEvent"]["emit"]["event"]["with"]["source"]
    for data in (relative, no_source):
        assert schema_accepts(MAIN, data)
        assert not schema_accepts(V103, data)
        assert not we_accept("x.json", json.dumps(data))


def test_main_additions_are_taken() -> None:
    """What main adds: ``schedule.on.read`` and a top-level ``evaluate`` (besides catch.then
    and inline for.in lists, which main's own examples use)."""
    data = _example(V103, "schedule-event-driven.yaml")
    data["schedule"]["read"] = "envelope"
    data["evaluate"] = {"language": "jq", "mode": "strict"}
    assert schema_accepts(MAIN, data)
    assert we_accept("x.json", json.dumps(data))


# -- mutations ------------------------------------------------------------------------------------

VALUES: list[Any] = [
    5, 5.5, "x", "${ .x }", "PT5S", "https://x.y/z", [], {}, None, True, [{"a": 1}], {"a": 1},
    "continue", "eventually", "http", "1.0.3", "-x-", "",
]  # fmt: skip
KEYS = [
    "foo", "then", "with", "do", "until", "use", "document", "source", "code", "after", "all",
    "any", "one", "call", "set", "for", "in", "amount", "while", "http", "stdio", "basic",
    "bearer", "token", "endpoint", "uri", "every", "version", "schema", "resource", "format",
    "from", "as", "catch", "retry", "errors", "status", "type", "read", "each",
]  # fmt: skip


def _nodes(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _nodes(value, (*path, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


def _mutate(data: Any, corpus: list[Any], rng: random.Random) -> Any:
    data = copy.deepcopy(data)
    path, node = rng.choice(list(_nodes(data)))
    operation = rng.randrange(6)
    if operation == 0 and isinstance(node, dict) and node:
        del node[rng.choice(list(node))]
    elif operation == 1 and isinstance(node, dict):
        node[rng.choice(KEYS)] = copy.deepcopy(rng.choice(VALUES))
    elif operation == 2 and path:
        _parent(data, path)[path[-1]] = copy.deepcopy(rng.choice(VALUES))
    elif operation == 3 and isinstance(node, dict) and node:
        node[rng.choice(KEYS)] = node.pop(rng.choice(list(node)))
    elif operation == 4 and isinstance(node, list) and node:
        node.append(copy.deepcopy(node[0]))
    elif operation == 5 and path:
        _, donor = rng.choice(list(_nodes(rng.choice(corpus))))
        _parent(data, path)[path[-1]] = copy.deepcopy(donor)
    return data


def _mutants(count: int, seed: int) -> Iterator[Any]:
    corpus = [parse_text(p.read_text()).data for p in files(V103, "examples")]
    rng = random.Random(seed)
    for example in corpus:
        for _ in range(count):
            mutant = example
            for _ in range(rng.randint(1, 3)):
                mutant = _mutate(mutant, corpus, rng)
            yield mutant


def test_mutated_examples_get_the_schemas_verdict() -> None:
    disagreements = []
    for mutant in _mutants(count=4, seed=20260101):
        text = json.dumps(mutant)
        try:
            load_document("mutant.json", text=text)
            ours, codes = True, set()
        except DslValidationError as exc:
            ours, codes = False, {p.code for p in exc.problems}
        theirs = schema_accepts(V103, mutant)
        if ours == theirs or (theirs and codes <= SEMANTIC_CODES):
            continue
        if ours and schema_accepts(MAIN, mutant):
            continue  # an addition of main's that we take (an inline for.in list...)
        disagreements.append((theirs, text[:300]))
    assert disagreements == []


def test_documents_are_read_from_json_too() -> None:
    for path in files(V103, "examples")[:10]:
        data = parse_text(path.read_text()).data
        text = json.dumps(data, indent=2)
        document = load_document(path.with_suffix(".json").name, text=text)
        assert document.raw == data
        line = 1 + next(i for i, t in enumerate(text.splitlines()) if t.startswith('    "name"'))
        assert document.position("/document/name") == (line, 5)
