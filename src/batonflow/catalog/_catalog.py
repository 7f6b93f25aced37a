"""A catalog bound to providers by name, so step inputs are plain JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from batonflow.catalog._budget import Meter, RunBudget, journal_guard
from batonflow.catalog._classify import Examples, load_examples, merge_examples
from batonflow.catalog._classify import _labels as _label_table
from batonflow.catalog._classify import _text as _clean_text
from batonflow.catalog._classify import classify as _classify
from batonflow.catalog._corrections import stored_examples
from batonflow.catalog._errors import InvalidModelOutput
from batonflow.catalog._functions import extract_pinned, llm_pinned
from batonflow.catalog._mcp import McpServer
from batonflow.catalog._tools import AgentTool, ApprovalHook, tool
from batonflow.core import current_step
from batonflow.errors import ConfigError
from batonflow.providers import Provider
from batonflow.store import Store

__all__ = ["Catalog"]


class Catalog:
    """The catalog functions bound to providers by name.

    Every method takes only JSON-able arguments (``provider="default"`` names a provider), so a
    durable step's recorded input is clean JSON, and returns JSON that pins who answered and
    what it used::

        catalog = Catalog(providers={"default": chain})
        result = await ctx.step(catalog.classify, text, ["billing", "support"])

    Results: ``llm`` -> ``{"output": text-or-value, "model", "usage"}``; ``classify`` ->
    ``{"label", "confidence", "rationale", "model", "usage"}``; ``extract`` ->
    ``{"data": value, "model", "usage"}``; ``model`` is ``{"provider": name, "id": model id}``,
    ``usage`` ``{"input_tokens", "output_tokens", "cost", "step"}`` (every call the step made,
    re-asks included). :meth:`functions` gives the same methods, and ``agent``, for
    ``DslRuntime(functions=...)``.

    ``budget`` caps each run's model spend, counted from the run's journal in ``store`` (the
    store the engine runs on; required with a budget). ``tools``, ``mcp_servers``, ``client``
    and ``approve`` serve DSL agents: tools and MCP servers they may name, the (egress) HTTP
    client of their HTTP tools, and the hook deciding calls of tools that need approval.

    ``classify`` learns from labelled examples: those it is given, those of ``examples``
    (``{workflow name: examples or the path of an examples file}``, e.g. from configuration)
    for the workflow it runs in, and, when ``store`` is given, the corrections people made to
    that workflow's earlier classifications (``batonflow label correct``).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        default: str = "default",
        budget: RunBudget | None = None,
        store: Store | None = None,
        tools: Sequence[AgentTool | Callable[..., Any]] = (),
        mcp_servers: Sequence[McpServer] = (),
        client: httpx.AsyncClient | None = None,
        approve: ApprovalHook | None = None,
        examples: Mapping[str, Examples | str] | None = None,
    ) -> None:
        if not providers:
            raise ConfigError("Catalog needs at least one provider")
        if budget is not None and store is None:
            raise ConfigError(
                "Catalog(budget=...) needs store=: the store the engine runs on, where each "
                "run's spend is read from its journal (e.g. store = bf.open_store(path), "
                "given to both the Engine and the Catalog)"
            )
        self.providers: dict[str, Provider] = dict(providers)
        self.default = default
        self.budget = budget
        self.store = store
        self.tools: dict[str, AgentTool] = _named(
            (t if isinstance(t, AgentTool) else tool(t) for t in tools), "tool"
        )
        self.mcp_servers: dict[str, McpServer] = _named(mcp_servers, "MCP server")
        self.client = client
        self.approve = approve
        self.examples: dict[str, Examples] = {
            workflow: load_examples(source) if isinstance(source, str) else source
            for workflow, source in (examples or {}).items()
        }

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

    def _meter(self, name: str | None) -> Meter:
        """The provider, counting what it uses and held to the run's budget."""
        guard = None
        if self.budget is not None and self.store is not None:
            guard = journal_guard(self.budget, self.store)
        return Meter(self.provider(name), guard)

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
        meter = self._meter(provider)
        with _charged(meter):
            answer = await llm_pinned(
                meter,
                prompt=prompt,
                messages=messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                schema=schema,
                attempts=attempts,
            )
        return {"output": answer.value, "model": answer.model, "usage": meter.spent.usage()}

    async def classify(
        self,
        text: str,
        labels: Mapping[str, str] | Sequence[str],
        *,
        examples: Examples | None = None,
        examples_file: str | None = None,
        abstain_below: float | None = None,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """:func:`batonflow.catalog.classify` with the provider named, learning from
        ``examples``, ``examples_file`` (see :func:`load_examples`), the examples configured
        for the workflow it runs in and the corrections kept in the store. The result also
        holds ``usage``, and the ``text`` and ``labels`` classified (what a correction of the
        step turns into an example)."""
        names = list(_label_table(labels))
        given = merge_examples(
            load_examples(examples_file) if examples_file is not None else None,
            examples,
            labels=names,
        )
        workflow = _workflow()
        configured = self.examples.get(workflow) if workflow else None
        learned = (
            await stored_examples(self.store, workflow)
            if self.store is not None and workflow
            else None
        )
        # configured and corrected examples are the workflow's: a step whose labels are a
        # subset (a workflow may classify twice) uses those of its own labels
        merged = merge_examples(
            given, configured, learned, labels=names, strict=False, where=f"examples of {workflow}"
        )
        meter = self._meter(provider)
        with _charged(meter):
            result = await _classify(
                meter,
                text,
                labels,
                examples=merged,
                abstain_below=abstain_below,
                model=model,
                temperature=temperature,
                attempts=attempts,
            )
        # what was classified, kept in the step's output so a person's correction can make
        # it an example (a document's task input is its data, not the `with:` arguments)
        return {**result, "usage": meter.spent.usage(), "text": _clean_text(text), "labels": names}

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
        meter = self._meter(provider)
        with _charged(meter):
            answer = await extract_pinned(
                meter, text, schema, model=model, temperature=temperature, attempts=attempts
            )
        return {"data": answer.value, "model": answer.model, "usage": meter.spent.usage()}

    def functions(self, prefix: str = "") -> dict[str, Callable[..., Any]]:
        """``{"llm", "classify", "extract", "agent"}`` (each name prefixed) for
        ``DslRuntime(functions=)``: a DSL ``call: classify`` with ``with: {text: ...,
        labels: [...]}`` runs :meth:`classify` as a durable step; ``call: agent`` runs an
        agent (see ``docs/agents.md``), whose turns and tool calls are steps of their own."""
        from batonflow.catalog._agent_dsl import dsl_agent

        return {
            f"{prefix}llm": self.llm,
            f"{prefix}classify": self.classify,
            f"{prefix}extract": self.extract,
            f"{prefix}agent": dsl_agent(self),
        }


@contextlib.contextmanager
def _charged(meter: Meter) -> Iterator[None]:
    """Puts what a failed question used on its :class:`InvalidModelOutput`, so the recorded
    error keeps it (the run's budget counts it)."""
    try:
        yield
    except InvalidModelOutput as exc:
        exc.usage = meter.spent.usage()
        raise


def _workflow() -> str:
    """The workflow of the step this runs in ("" outside a step)."""
    try:
        return current_step().workflow
    except ConfigError:
        return ""


def _named(items: Any, what: str) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for item in items:
        if item.name in table:
            raise ConfigError(f"Catalog: two {what}s are named {item.name!r}")
        table[item.name] = item
    return table
