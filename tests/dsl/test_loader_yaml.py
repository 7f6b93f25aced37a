"""Reading the text: YAML 1.2 (never 1.1's surprises), JSON, and the position of every node."""

from __future__ import annotations

import pytest

from batonflow.dsl._yaml import (
    Position,
    SourceSyntaxError,
    is_json_text,
    join_pointer,
    parse_text,
    split_pointer,
)


def test_yaml_1_2_scalars() -> None:
    data = parse_text(
        "on: yes\nno: off\nt: 2024-01-01\nf: 5.0\nn: 012\no: 0o12\nh: 0x1F\nq: '5'\n"
        "z: ~\nb: True\ns: !!str 5\nv: 1.0.3\nk: 1_000\n"
    ).data
    assert data == {
        "on": "yes",
        "no": "off",
        "t": "2024-01-01",
        "f": 5.0,
        "n": 12,
        "o": 10,
        "h": 31,
        "q": "5",
        "z": None,
        "b": True,
        "s": "5",
        "v": "1.0.3",
        "k": "1_000",
    }


@pytest.mark.parametrize("text", ["e: .inf", "e: -.Inf", "e: .nan"])
def test_infinity_and_nan_are_refused_where_they_are(text: str) -> None:
    # a run records its document as JSON, which has no infinity: refused at reading, not later
    with pytest.raises(SourceSyntaxError, match="not a JSON number") as caught:
        parse_text(f"a: 1\n{text}\n")
    assert caught.value.position == (2, 4)


def test_keys_are_strings_as_in_json() -> None:
    assert parse_text("200: ok\ntrue: yes\n~: x\n").data == {
        "200": "ok",
        "true": "yes",
        "null": "x",
    }


def test_positions_of_every_node() -> None:
    parsed = parse_text("do:\n  - getPet:\n      call: http\n      with: {method: get}\n")
    entries, values = parsed.positions.entries, parsed.positions.values
    assert entries["/do"] == Position(1, 1)
    assert entries["/do/0"] == Position(2, 5)
    assert entries["/do/0/getPet/call"] == Position(3, 7)
    assert values["/do/0/getPet/call"] == Position(3, 13)
    assert entries["/do/0/getPet/with/method"] == Position(4, 14)
    assert str(values["/do/0/getPet/with/method"]) == "4:22"


def test_a_pointer_without_a_position_takes_its_nearest_ancestors() -> None:
    positions = parse_text("a:\n  b: 1\n").positions
    assert positions.at("/a/b/c/d") == Position(2, 3)
    assert positions.value_at("/a/b/c") == Position(2, 6)
    assert positions.at("") == Position(1, 1)


def test_keys_with_slashes_and_tildes_are_escaped_in_pointers() -> None:
    parsed = parse_text("'a/b':\n  '~c': 1\n")
    assert parsed.positions.entries["/a~1b/~0c"] == Position(2, 3)
    assert join_pointer("/x", "a/b", 0) == "/x/a~1b/0"
    assert split_pointer("/a~1b/~0c") == ["a/b", "~c"]
    assert split_pointer("") == []


def test_duplicate_keys_are_reported_and_the_last_counts() -> None:
    parsed = parse_text("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert parsed.data == {"a": 1, "b": {"c": 2}}
    (duplicate,) = parsed.duplicates
    assert (duplicate.pointer, duplicate.key) == ("/b/c", "c")
    assert (duplicate.position, duplicate.first) == (Position(4, 3), Position(3, 3))


def test_anchors_aliases_and_merge_keys() -> None:
    parsed = parse_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nl: [*b]\n")
    assert parsed.data["m"] == {"x": 1, "y": 3}
    assert parsed.data["l"] == [{"x": 1, "y": 2}]


def test_an_alias_into_itself_is_an_error() -> None:
    with pytest.raises(SourceSyntaxError) as caught:
        parse_text("a: &x [*x]\n")
    assert caught.value.position == Position(1, 4)


@pytest.mark.parametrize(
    ("text", "where", "start"),
    [
        ("a: [1\nb: 2\n", Position(2, 2), "invalid YAML: expected ',' or ']'"),
        ("a: b: c\n", Position(1, 5), "invalid YAML: mapping values are not allowed here"),
        ("a: 1\n---\nb: 2\n", Position(2, 1), "invalid YAML: but found another document"),
        ("", Position(1, 1), "the document is empty"),
        ("? [a]\n: 1\n", Position(1, 3), "a mapping key must be a string"),
        ("a: !!int x\n", Position(1, 4), "'x' is not a valid !!int"),
    ],
)
def test_syntax_errors_say_where(text: str, where: Position, start: str) -> None:
    with pytest.raises(SourceSyntaxError) as caught:
        parse_text(text)
    assert caught.value.position == where
    assert caught.value.message.startswith(start)


def test_json_is_read_by_json_with_positions_from_the_yaml_reader() -> None:
    text = '{\n  "on": {"b": [1, "\\ud83d\\ude00"]},\n  "c": true\n}'
    parsed = parse_text(text, "wf.json")
    assert parsed.data == {"on": {"b": [1, "\U0001f600"]}, "c": True}
    assert parsed.positions.entries["/on/b/1"] == Position(2, 19)
    assert parsed.positions.entries["/c"] == Position(3, 3)


def test_json_that_yaml_cannot_read_keeps_its_data() -> None:
    parsed = parse_text('{\n  "a": "\x7f"\n}', "wf.json")  # DEL: JSON allows it, YAML does not
    assert parsed.data == {"a": "\x7f"}
    assert parsed.positions.at("/a") == Position(1, 1)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('{"a": 1,}', Position(1, 9), "invalid JSON: Expecting property name"),
        ('{"a": NaN}', Position(1, 1), "invalid JSON: NaN is not a JSON value"),
    ],
)
def test_json_syntax_errors(text: str, where: Position, message: str) -> None:
    with pytest.raises(SourceSyntaxError) as caught:
        parse_text(text, "wf.json")
    assert caught.value.position == where
    assert caught.value.message.startswith(message)


def test_what_is_read_as_json() -> None:
    assert is_json_text("a: 1", "wf.JSON")
    assert is_json_text('  {"a": 1}')
    assert is_json_text('{"a": 1}', "wf")
    assert not is_json_text('{"a": 1}', "wf.yml")
    assert not is_json_text("a: {}", "wf.yaml")


def test_text_that_opens_an_object_but_is_not_json_is_yaml() -> None:
    assert parse_text("{a: 1, b: [x]}").data == {"a": 1, "b": ["x"]}
    assert parse_text('{"a": 1,}').data == {"a": 1}
    with pytest.raises(SourceSyntaxError) as caught:
        parse_text("{a: [}")
    assert caught.value.message.startswith("invalid YAML")
