"""A catalog bound to providers by name, so step inputs are plain JSON."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batonflow.catalog._functions import classify as _classify
from batonflow.catalog._functions import extract_pinned, llm_pinned
from batonflow.errors import ConfigError
from batonflow.providers import Provider

__all__ = ["Catalog"]


class Catalog:
    """The catalog functions bound to providers by name.

    Every method takes only JSON-able arguments (``provider="default"`` names a provider), so a
    durable step's recorded input is clean JSON, and returns JSON that pins who answered::

        catalog = Catalog(providers={"default": chain})
        result = await ctx.step(catalog.classify, text, ["billing", "support"])

    Results: ``llm`` -> ``{"output": text-or-value, "model": {...}}``; ``classify`` ->
    ``{"label", "confidence", "rationale", "model": {...}}``; ``extract`` ->
    ``{"data": value, "model": {...}}``; ``model`` is ``{"provider": name, "id": model id}``.
    :meth:`functions` gives the same methods for ``DslRuntime(functions=...)``.
    """

    def __init__(self, providers: Mapping[str, Provider], *, default: str = "default") -> None:
        if not providers:
            raise ConfigError("Catalog needs at least one provider")
        self.providers: dict[str, Provider] = dict(providers)
        self.default = default

    def provider(self, name: str | None = None) -> Provider:
        """The provider called ``name`` (the default one for None); ConfigError if unknown."""
        key = self.default if name is None else name
        try:
            return self.providers[key]
        except KeyError:
            known = ", ".join(sorted(self.providers))
            raise ConfigError(
                f"no provider named {key!r} in the catalog (known: {known})"
            ) from None

    async def llm(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        schema: Mapping[str, Any] | None = None,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """:func:`batonflow.catalog.llm`; ``messages`` are ``{"role", "content"}`` objects."""
        answer = await llm_pinned(
            self.provider(provider),
            prompt=prompt,
            messages=messages,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            schema=schema,
            attempts=attempts,
        )
        return {"output": answer.value, "model": answer.model}

    async def classify(
        self,
        text: str,
        labels: Mapping[str, str] | Sequence[str],
        *,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """:func:`batonflow.catalog.classify` with the provider named."""
        return await _classify(
            self.provider(provider),
            text,
            labels,
            model=model,
            temperature=temperature,
            attempts=attempts,
        )

    async def extract(
        self,
        text: str,
        schema: Mapping[str, Any],
        *,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """:func:`batonflow.catalog.extract` with the provider named."""
        answer = await extract_pinned(
            self.provider(provider),
            text,
            schema,
            model=model,
            temperature=temperature,
            attempts=attempts,
        )
        return {"data": answer.value, "model": answer.model}

    def functions(self, prefix: str = "") -> dict[str, Callable[..., Any]]:
        """``{"llm", "classify", "extract"}`` (each name prefixed) for ``DslRuntime(functions=)``:
        a DSL ``call: classify`` with ``with: {text: ..., labels: [...]}`` runs
        :meth:`classify` as a durable step."""
        return {
            f"{prefix}llm": self.llm,
            f"{prefix}classify": self.classify,
            f"{prefix}extract": self.extract,
        }
