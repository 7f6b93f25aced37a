"""What ``batonflow dataflow`` reads besides the tasks: a document's governance settings
(``document.metadata.batonflow``, checked by the loader with ``_policy``) and,
optionally, the deployment's TOML configuration. Both are read with the parsers the runtime
uses (``batonflow.governance``, ``batonflow.providers``), so the report cannot disagree with
what a run would do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batonflow._toml import read_toml
from batonflow.dsl._loader import DslDocument
from batonflow.dsl._policy import policy_of
from batonflow.errors import ConfigError

__all__ = [
    "DataflowConfig",
    "EgressCheck",
    "Governance",
    "Redaction",
    "load_dataflow_config",
    "parse_dataflow_config",
    "read_governance",
]


@dataclass(frozen=True, slots=True)
class Redaction:
    """What is taken out at one place: ``detectors`` (``email``, ``iban``...), jq ``fields``,
    and ``keep`` (when set, only these paths survive)."""

    detectors: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    keep: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "detectors": list(self.detectors),
            "fields": list(self.fields),
            "keep": None if self.keep is None else list(self.keep),
        }

    def describe(self) -> str:
        items = [*self.detectors, *(f"`{f}`" for f in self.fields)]
        if self.keep is not None:
            items.append("only " + ", ".join(f"`{k}`" for k in self.keep) + " kept")
        return ", ".join(items) or "nothing"


@dataclass(frozen=True, slots=True)
class Governance:
    """A document's ``metadata.batonflow``; ``None`` where a setting is absent. ``steps`` maps
    a task name to its redaction per destination (``persist``, ``model``)."""

    subjects: str | None = None
    retention: str | None = None
    deadline: str | None = None
    egress: tuple[str, ...] | None = None
    persist: Redaction | None = None
    model: Redaction | None = None
    steps: Mapping[str, Mapping[str, Redaction]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataflowConfig:
    """The parts of a deployment's TOML file the report uses.

    ``providers``: ``[providers]`` (a ``ProvidersConfig``, None without the table);
    ``egress``: ``[governance.egress]`` as an ``EgressPolicy`` (no table: any public host);
    ``redact``: ``[governance.redact]``, the floor every workflow gets; ``retention``:
    ``[governance.retention]`` (workflow name -> ISO 8601 duration); ``smtp``: the ``[email]``
    server as ``host:port``."""

    source: str
    providers: Any = None
    egress: Any = None
    redact: Governance = field(default_factory=Governance)
    retention: Mapping[str, str] = field(default_factory=dict)
    smtp: str | None = None


def read_governance(document: DslDocument) -> Governance:
    """The document's governance settings (checked by the loader: see ``_policy``)."""
    header = document.raw.get("document") or {}
    settings = (header.get("metadata") or {}).get("batonflow")
    if not isinstance(settings, dict):
        return Governance()
    policy = policy_of(document.raw)
    retention, deadline = settings.get("retention"), settings.get("deadline")
    egress = settings.get("egress")
    rules = _governance_of(policy.redaction) if policy.redaction else Governance()
    return Governance(
        subjects=policy.subjects,
        retention=retention.strip().upper() if isinstance(retention, str) else None,
        deadline=deadline.strip().upper() if isinstance(deadline, str) else None,
        egress=tuple(egress) if isinstance(egress, list) else None,
        persist=rules.persist,
        model=rules.model,
        steps=rules.steps,
    )


def _governance_of(rules: Any) -> Governance:
    """A ``RedactionRules`` as the report holds it."""
    steps: dict[str, dict[str, Redaction]] = {}
    for destination, table in (("persist", rules.step_persist), ("model", rules.step_model)):
        for name, policy in table.items():
            steps.setdefault(name, {})[destination] = _redaction(policy)
    return Governance(
        persist=_redaction(rules.persist) if rules.persist else None,
        model=_redaction(rules.model) if rules.model else None,
        steps=steps,
    )


def _redaction(policy: Any) -> Redaction:
    return Redaction(tuple(policy.detectors), tuple(policy.fields), policy.keep)


# -- egress ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressCheck:
    """Would the egress policy let a call to a host through? ``policy`` is the configured
    global policy (None: not known); ``own`` the workflow's list."""

    policy: Any
    own: tuple[Any, ...]
    listed: bool  # the workflow has a list of its own

    @classmethod
    def of(cls, governance: Governance, config: DataflowConfig | None) -> EgressCheck:
        from batonflow.governance._egress import parse_hosts

        own = parse_hosts(governance.egress or [], "document.metadata.batonflow.egress")
        policy = config.egress if config is not None else None
        return cls(policy, own, governance.egress is not None)

    def verdict(self, host: str, port: int, *, service: bool = False) -> tuple[str, str] | None:
        """``(severity, why)`` when the call may be refused, else None. The workflow's own
        list narrows the operator's, except for ``service`` hosts (configured providers)."""
        from batonflow.governance._egress import restricted

        host = host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        # The operator's policy is the ceiling; the workflow's own list only narrows it, and
        # only the operator opens private addresses.
        operator = list(self.policy.allow) if self.policy is not None else []
        private = (restricted(address) if address is not None else None) or (
            "a loopback name" if host == "localhost" or host.endswith(".localhost") else None
        )
        if not service and self.listed and not any(p.names(host, port, address) for p in self.own):
            return (
                "high",
                f"{host} is not on the workflow's own egress list: the call will be refused",
            )
        if private is not None:
            exact = any(
                p.names_exactly(host, port) or (address is not None and p.covers(address, port))
                for p in operator
            )
            if not exact and (self.policy is None or self.policy.block_private):
                return "high", (
                    f"{host} is {private}: private addresses are blocked unless the operator's"
                    " [governance.egress] allow lists them by exact name or network"
                )
            return None
        if self.policy is None or any(p.names(host, port, address) for p in operator):
            return None
        return "high", f"{host} is not on the egress allow-list: the call will be refused"

    def wider(self) -> list[str]:
        """The entries of the workflow's own list the operator's policy does not grant (the
        default policy when no configuration is given: any public host, nothing private)."""
        from batonflow.governance._egress import EgressPolicy

        policy = self.policy if self.policy is not None else EgressPolicy.parse(None)
        return list(policy.wider_than(self.own))


# -- the deployment's configuration file --------------------------------------------------------


def load_dataflow_config(path: str | Path) -> DataflowConfig:
    """Read ``[providers]``, ``[governance.egress]``, ``[governance.redact]``,
    ``[governance.retention]`` and ``[email]`` from a TOML file (each optional); errors are
    :class:`ConfigError` naming the file and the key."""
    return parse_dataflow_config(read_toml(path), str(path))


def parse_dataflow_config(data: Mapping[str, Any], source: str = "<memory>") -> DataflowConfig:
    from batonflow.governance._egress import EgressPolicy
    from batonflow.governance._redaction_rules import redaction_config
    from batonflow.governance._retention import parse_retention

    providers = None
    if "providers" in data:
        from batonflow.providers import parse_config  # here: it imports the SDK adapters

        providers = parse_config(data, source)
    governance = data.get("governance", {})
    if not isinstance(governance, Mapping):
        raise ConfigError(f"{source}: governance: must be a table")
    retention = governance.get("retention", {})
    if not isinstance(retention, Mapping):
        raise ConfigError(f'{source}: governance.retention: must be a table of workflow = "P6Y"')
    return DataflowConfig(
        source=source,
        providers=providers,
        egress=EgressPolicy.parse(governance.get("egress"), f"{source}: governance.egress"),
        redact=_governance_of(redaction_config(data, source)),
        retention={
            str(name): parse_retention(value, where=f"{source}: governance.retention.{name}").text
            for name, value in retention.items()
        },
        smtp=_smtp(data, source),
    )


def _smtp(data: Mapping[str, Any], source: str) -> str | None:
    table = data.get("email")
    if table is None:
        return None
    if not isinstance(table, Mapping) or not isinstance(table.get("host"), str):
        raise ConfigError(f"{source}: email.host: expected the SMTP server's host name")
    port = table.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigError(f"{source}: email.port: expected a port number")
    return f"{table['host']}:{port}"
