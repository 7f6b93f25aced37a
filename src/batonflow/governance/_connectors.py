"""Connector kill switches: ``batonflow connector disable crm`` holds every call to the CRM.

A *connector* is a named outside service: a model provider (``openai``, as configured) or an
HTTP service. Configuration maps host names to connector names::

    [governance.connectors]
    crm = ["crm.example.test", "*.crm.example.test"]

and a host that no connector claims is its own connector (``api.example.com``). A switch is a
governance record in the runs' own database (kind ``connector``), changed with its audit entry
in the same transaction, so every engine and worker sharing the database sees it.

While a connector is disabled, the egress layer raises
:class:`~batonflow.errors.ConnectorDisabled` for its hosts instead of calling them: the step
does not fail and uses up no attempt; the run waits and tries again ``retry_after`` seconds
later, until the connector is enabled. Engines read the switches at most once per ``ttl``
seconds, so a change reaches a run within ``ttl + retry_after`` seconds.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batonflow.core import Clock, SystemClock
from batonflow.errors import ConfigError
from batonflow.governance._egress import Address, HostPattern, parse_hosts
from batonflow.store import AuditEntry, Store

__all__ = [
    "CONNECTOR_KIND",
    "check_switchable",
    "ConnectorMap",
    "ConnectorState",
    "ConnectorSwitches",
    "connector_name",
]

CONNECTOR_KIND = "connector"
_NAME = re.compile(r"^[a-z0-9:\[][a-z0-9._:\[\]-]{0,252}$")


def connector_name(name: Any, where: str = "connector") -> str:
    """A connector name, normalised (lower case: names and hosts compare without case)."""
    text = name.strip().lower() if isinstance(name, str) else ""
    if not _NAME.match(text):
        raise ConfigError(
            f"{where}: {name!r} is not a connector name; expected a provider or connector name"
            " such as 'openai' or 'crm', or a host name such as 'api.example.com'"
        )
    return text


# -- which connector a host belongs to --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorMap:
    """Host patterns -> connector names; a host no connector claims is its own connector.
    An exact host entry wins over a wildcard or network one; otherwise the first listed wins."""

    connectors: tuple[tuple[str, tuple[HostPattern, ...]], ...] = ()

    @classmethod
    def parse(cls, table: Any, where: str = "governance.connectors") -> ConnectorMap:
        """From the ``[governance.connectors]`` TOML table (``None``: absent)."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{where}: expected a table of name = [hosts], got {type(table).__name__}"
            )
        result = cls()
        for name, hosts in table.items():
            result = result.with_connector(name, parse_hosts(hosts, f"{where}.{name}"))
        return result

    def with_connector(
        self, name: str, hosts: Iterable[str | HostPattern], where: str | None = None
    ) -> ConnectorMap:
        """This map plus ``hosts`` for connector ``name`` (say, a model provider and its base
        URL's host)."""
        clean = connector_name(name, where or "connector")
        where = where or f"connector {clean!r}"
        if isinstance(hosts, str):
            raise ConfigError(f"{where}: expected a list of hosts, got the string {hosts!r}")
        patterns = tuple(
            h if isinstance(h, HostPattern) else HostPattern.parse(h, f"{where}[{i}]")
            for i, h in enumerate(hosts)
        )
        for pattern in patterns:
            if pattern.kind == "any":
                raise ConfigError(f"{where}: '*' would make {clean!r} every host; list its hosts")
        return ConnectorMap((*self.connectors, (clean, patterns)))

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.connectors))

    def patterns_of(self, name: str) -> tuple[HostPattern, ...]:
        """The host patterns of connector ``name`` (``()``: not a configured connector)."""
        return tuple(p for n, patterns in self.connectors if n == name for p in patterns)

    def name_for(self, host: str, port: int, address: Address | None = None) -> str:
        """The connector ``host:port`` belongs to (the host itself when none claims it)."""
        for name, patterns in self.connectors:
            if any(p.names_exactly(host, port) for p in patterns):
                return name
        for name, patterns in self.connectors:
            if any(p.names(host, port, address) for p in patterns):
                return name
        return host


# -- the switches --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """A connector's switch: who last changed it, when, and why."""

    name: str
    enabled: bool = True
    actor: str | None = None
    reason: str | None = None
    changed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "actor": self.actor,
            "reason": self.reason,
            "changed_at": self.changed_at,
        }

    @classmethod
    def from_json(cls, name: str, text: str) -> ConnectorState:
        data = json.loads(text)
        return cls(
            name=name,
            enabled=bool(data.get("enabled", True)),
            actor=data.get("actor"),
            reason=data.get("reason"),
            changed_at=data.get("changed_at"),
        )


class ConnectorSwitches:
    """Disable and enable connectors, stored as governance records of ``store``.

    :meth:`is_enabled` is the hot path (every outbound call): it answers from a snapshot of
    all switches read at most once per ``ttl`` seconds of ``clock``. ``retry_after`` is how long
    a run held by a disabled connector waits before trying again."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        ttl: float = 5.0,
        retry_after: float = 15.0,
    ) -> None:
        if ttl < 0 or retry_after <= 0:
            raise ConfigError("connector switches: ttl must be >= 0 and retry_after > 0")
        self._store = store
        self._clock = clock or SystemClock()
        self.ttl = ttl
        self.retry_after = retry_after
        self._snapshot: dict[str, ConnectorState] = {}
        self._read_at: float | None = None

    async def disable(
        self, name: str, actor: str, reason: str | None = None
    ) -> tuple[ConnectorState, bool]:
        """Switch ``name`` off; ``(its state, whether this changed it)``. Disabling a disabled
        connector changes nothing (its first reason stays)."""
        return await self._switch(name, actor, enabled=False, reason=reason)

    async def enable(self, name: str, actor: str) -> tuple[ConnectorState, bool]:
        """Switch ``name`` back on; ``(its state, whether this changed it)``."""
        return await self._switch(name, actor, enabled=True, reason=None)

    async def get(self, name: str) -> ConnectorState:
        clean = connector_name(name)
        text = await self._store.get_record(CONNECTOR_KIND, clean)
        return ConnectorState.from_json(clean, text) if text else ConnectorState(clean)

    async def list(self) -> builtins.list[ConnectorState]:
        """Every connector that has been switched, by name."""
        records = await self._store.list_records(CONNECTOR_KIND)
        return [ConnectorState.from_json(key, text) for key, text in records]

    async def is_enabled(self, name: str) -> bool:
        await self._refresh()
        state = self._snapshot.get(name.lower())
        return state is None or state.enabled

    async def disabled(self) -> builtins.list[str]:
        """The names of the connectors switched off now (from the same snapshot)."""
        await self._refresh()
        return [s.name for s in self._snapshot.values() if not s.enabled]

    async def _refresh(self) -> None:
        now = self._clock.now()
        if self._read_at is None or now - self._read_at >= self.ttl or now < self._read_at:
            self._snapshot = {s.name: s for s in await self.list()}
            self._read_at = now

    async def _switch(
        self, name: str, actor: str, *, enabled: bool, reason: str | None
    ) -> tuple[ConnectorState, bool]:
        clean = connector_name(name)
        if not isinstance(actor, str) or not actor.strip():
            raise ConfigError(f"connector {clean!r}: who is switching it? (an actor is required)")
        reason = reason.strip() or None if reason is not None else None
        current = await self.get(clean)
        if current.enabled is enabled:
            return current, False
        now = self._clock.now()
        state = ConnectorState(clean, enabled, actor, reason, now)
        kind = "connector.enabled" if enabled else "connector.disabled"
        data = {"connector": clean, "reason": reason} if not enabled else {"connector": clean}
        entry = AuditEntry(kind, json.dumps(data, separators=(",", ":")), actor=actor)
        record = json.dumps({k: v for k, v in state.to_dict().items() if k != "name"})
        await self._store.put_record(CONNECTOR_KIND, clean, record, now, audit=[entry])
        self._snapshot[clean] = state  # this process sees its own change at once
        return state, True


def check_switchable(name: str, known: Iterable[str]) -> str:
    """``name`` if it may be switched: a configured connector or provider (``known``) or a
    host name (a host nobody names is its own connector). A typo must not silently switch off
    nothing: anything else is a ConfigError listing what is known."""
    clean = connector_name(name)  # its syntax first, with that error
    names = list(known)
    host_like = "." in name or name == "localhost" or ":" in name
    if name.lower() in {k.lower() for k in names} or host_like:
        return clean
    listed = ", ".join(sorted(names)) or "none configured"
    raise ConfigError(
        f"no connector named {name!r} (known: {listed}; name a host, such as"
        " crm.example.com, or add it under [governance.connectors] in the configuration)"
    )
