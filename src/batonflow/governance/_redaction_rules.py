"""Which redaction applies where: per workflow, per step, for storage and for models.

A workflow document carries its rules in ``document.metadata.batonflow.redact``::

    redact:
      persist: {detectors: [email, phone, uk_ni, iban, card], fields: [.card.number]}
      model:   {detectors: [email, phone, uk_ni, iban, card]}
      steps:
        classify: {keep: [.subject, .body]}          # both destinations
        reply:    {model: {fields: [.customer.phone]}}  # the model destination only

Step names are the engine's step names; a DSL task, whose step is named by its JSON pointer
(``/do/0/classify``), is matched by its task name (``classify``). A step's policy is combined
with the workflow's: the union of fields and detectors, and the step's ``keep`` (and
``replacement``) when it sets one. The same object, as the TOML table ``[governance.redact]``
(:func:`redaction_config`), is the global floor of a :class:`Redactor`: its fields and
detectors apply to every workflow, which can add to them but never take them away.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from batonflow.core import audit, current_step
from batonflow.core._context import run_identifiers
from batonflow.errors import ConfigError
from batonflow.governance._redaction import Redacted, RedactionPolicy

__all__ = ["Destination", "RedactionRules", "Redactor", "redaction_config", "redaction_scope"]

Destination = Literal["persist", "model"]
_DESTINATIONS: tuple[Destination, ...] = ("persist", "model")


def _combine(base: RedactionPolicy | None, over: RedactionPolicy | None) -> RedactionPolicy | None:
    return over if base is None else base.combined(over)


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """One workflow's redaction: ``persist`` before anything is stored, ``model`` before
    anything is sent to a model provider, and per-step additions to each."""

    persist: RedactionPolicy | None = None
    model: RedactionPolicy | None = None
    step_persist: Mapping[str, RedactionPolicy] = field(default_factory=dict)
    step_model: Mapping[str, RedactionPolicy] = field(default_factory=dict)

    def policy(self, destination: Destination, step: str | None) -> RedactionPolicy | None:
        """The effective policy for ``step`` (None: outside any step), or None if nothing
        applies."""
        base, steps = (
            (self.persist, self.step_persist)
            if destination == "persist"
            else (self.model, self.step_model)
        )
        policy = _combine(base, None if step is None else _step_entry(steps, step))
        return None if policy is None or policy.is_empty else policy

    def for_persist(self, step: str | None = None) -> RedactionPolicy | None:
        return self.policy("persist", step)

    def for_model(self, step: str | None = None) -> RedactionPolicy | None:
        return self.policy("model", step)

    def combined(self, other: RedactionRules) -> RedactionRules:
        """These rules with ``other`` on top (see :meth:`RedactionPolicy.combined`)."""

        def steps(a: Mapping[str, RedactionPolicy], b: Mapping[str, RedactionPolicy]) -> Any:
            return {n: p for n in {**a, **b} if (p := _combine(a.get(n), b.get(n))) is not None}

        return RedactionRules(
            persist=_combine(self.persist, other.persist),
            model=_combine(self.model, other.model),
            step_persist=steps(self.step_persist, other.step_persist),
            step_model=steps(self.step_model, other.step_model),
        )

    @classmethod
    def parse(cls, data: Any, where: str) -> RedactionRules:
        """Rules from a ``redact`` object (``persist``, ``model``, ``steps``); ConfigError
        naming ``where`` (e.g. ``"client.yaml: document.metadata.batonflow.redact"``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: must be a mapping with persist, model or steps, "
                f"got {type(data).__name__}"
            )
        for key in data:
            if key not in ("persist", "model", "steps"):
                raise ConfigError(
                    f"{where}: unknown key {key!r}; expected one of model, persist, steps"
                )
        policies = {
            d: RedactionPolicy.parse(data[d], f"{where}.{d}") if d in data else None
            for d in _DESTINATIONS
        }
        steps = data.get("steps", {})
        if not isinstance(steps, Mapping):
            raise ConfigError(
                f"{where}.steps: must map step names to policies, got {type(steps).__name__}"
            )
        per_step: dict[Destination, dict[str, RedactionPolicy]] = {"persist": {}, "model": {}}
        for name, entry in steps.items():
            for destination, policy in _step_policies(entry, f"{where}.steps.{name}").items():
                per_step[destination][str(name)] = policy
        return cls(policies["persist"], policies["model"], per_step["persist"], per_step["model"])


def _step_entry(steps: Mapping[str, RedactionPolicy], step: str) -> RedactionPolicy | None:
    """The entry for ``step``: by its name, or for a DSL task step (named by its JSON pointer,
    ``/do/0/classify``) by the task's name."""
    if step in steps or not step.startswith("/"):
        return steps.get(step)
    return steps.get(step.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~"))


def _step_policies(entry: Any, where: str) -> dict[Destination, RedactionPolicy]:
    """A step entry: one policy for both destinations, or ``{persist: ..., model: ...}``."""
    if isinstance(entry, Mapping) and entry.keys() & set(_DESTINATIONS):
        for key in entry:
            if key not in _DESTINATIONS:
                raise ConfigError(
                    f"{where}: unknown key {key!r}; a step entry is either a policy or "
                    f"has only persist and model"
                )
        return {d: RedactionPolicy.parse(entry[d], f"{where}.{d}") for d in entry}
    policy = RedactionPolicy.parse(entry, where)
    return {"persist": policy, "model": policy}


class Redactor:
    """Workflow name -> :class:`RedactionRules`, on top of a global ``default`` (a floor that
    applies to every workflow, named or not).

    The engine calls :meth:`persist` before anything of a workflow is written to the store; a
    model provider wrapped in ``RedactingProvider`` asks :meth:`model_policy` before a call.
    """

    def __init__(
        self,
        rules: Mapping[str, RedactionRules] | None = None,
        *,
        default: RedactionRules | None = None,
    ) -> None:
        self._default = default or RedactionRules()
        self._rules: dict[str, RedactionRules] = dict(rules or {})
        self._cache: dict[tuple[Destination, str, str | None], RedactionPolicy | None] = {}

    def register(self, workflow: str, rules: RedactionRules | None) -> None:
        """Set (or with None remove) the rules of ``workflow``."""
        if rules is None:
            self._rules.pop(workflow, None)
        else:
            self._rules[workflow] = rules
        self._cache.clear()

    def rules(self, workflow: str) -> RedactionRules:
        """The workflow's rules combined with the global floor."""
        own = self._rules.get(workflow)
        return self._default if own is None else self._default.combined(own)

    def policy(
        self, destination: Destination, workflow: str, step: str | None = None
    ) -> RedactionPolicy | None:
        scoped = _scoped.get()
        if scoped is not None:  # a workflow document's own rules (see redaction_scope)
            return self._default.combined(scoped).policy(destination, step)
        key = (destination, workflow, step)
        if key not in self._cache:
            self._cache[key] = self.rules(workflow).policy(destination, step)
        return self._cache[key]

    def for_persist(self, workflow: str, step: str | None = None) -> RedactionPolicy | None:
        return self.policy("persist", workflow, step)

    def for_model(self, workflow: str, step: str | None = None) -> RedactionPolicy | None:
        return self.policy("model", workflow, step)

    def redact_persist(self, workflow: str, step: str | None, value: Any) -> Redacted:
        """``value`` redacted for storage, with the summary for the audit trail."""
        policy = self.for_persist(workflow, step)
        return Redacted(value) if policy is None else policy.apply(value)

    def persist(self, workflow: str, step: str | None, value: Any) -> Any:
        """``value`` as it may be written to the store (the input is not modified); inside a
        step, what was removed (counts, never values) goes on the audit trail. This is the
        engine's ``redact`` hook: ``Engine(redact=redactor.persist)``."""
        redacted = self.redact_persist(workflow, step, value)
        if redacted:
            audit("data.redacted", {"workflow": workflow, "step": step, **redacted.summary()})
        return redacted.value

    def model_policy(self) -> RedactionPolicy | None:
        """The model policy of the step executing now; outside a step, the global floor's.

        Pass this method as ``RedactingProvider(inner, redactor.model_policy)``.
        """
        try:
            info = current_step()
        except ConfigError:
            policy = self._default.for_model(None)
        else:
            policy = self.for_model(info.workflow, info.name)
        known = (*_known.get(), *run_identifiers())
        if not known:
            return policy
        return (policy or RedactionPolicy()).combined(RedactionPolicy(known=known))


_scoped: contextvars.ContextVar[RedactionRules | None] = contextvars.ContextVar(
    "batonflow_redaction", default=None
)


_known: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "batonflow_known_identifiers", default=()
)


@contextmanager
def known_identifiers(values: Iterable[str]) -> Iterator[None]:
    """Within the block (and the steps it starts), the run's own identifiers (its subjects'
    ids, the names and numbers a document's ``metadata.batonflow.identifiers`` finds) are
    taken out of everything sent to a model, wherever they appear (``[subject]``)."""
    token = _known.set(tuple(v for v in values if isinstance(v, str) and v.strip()))
    try:
        yield
    finally:
        _known.reset(token)


@contextmanager
def redaction_scope(rules: RedactionRules | None) -> Iterator[None]:
    """Within the block (and the steps it starts), redaction follows ``rules`` (on top of the
    global floor) whatever the workflow's name: every DSL run is one kernel workflow, so the
    DSL runtime scopes each run to its document's ``metadata.batonflow.redact``."""
    token = _scoped.set(rules)
    try:
        yield
    finally:
        _scoped.reset(token)


def redaction_config(data: Mapping[str, Any], source: str) -> RedactionRules:
    """The global rules from a parsed TOML config file (its ``[governance.redact]`` table;
    empty rules when there is none). ``source`` names the file in errors."""
    governance = data.get("governance", {})
    if not isinstance(governance, Mapping):
        raise ConfigError(f"{source}: governance: must be a table")
    if "redact" not in governance:
        return RedactionRules()
    return RedactionRules.parse(governance["redact"], f"{source}: governance.redact")
