"""What a program builds from one configuration file, as the CLI does: the store (sealed per
data subject), the governed outbound client, the model providers and catalog, and the DSL
runtime::

    setup = Setup.load("batonflow.toml")
    async with setup.session("runs.db") as session, session.engine() as engine:
        handle = await session.runtime.start(engine, document, input, started_by="intake")

The file is ``--config FILE``, else ``$BATONFLOW_CONFIG``, else ``./batonflow.toml`` when it
exists; without one, every default applies: the offline local model, no allow-list beyond
blocking private addresses, no redaction floor, no alerts. Its tables::

    [providers.NAME] / [fallback]   model providers (docs/providers.md)
    [email]                         the SMTP server of the `email` function
    [secrets]                       what documents read as $secrets: name = { env = "VAR" }
                                    (or { value = "..." } for settings that are not secret)
    [governance.egress]             the global allow-list (docs/governance.md)
    [governance.connectors]         connector names for hosts (`connector disable NAME`)
    [governance.redact]             the redaction floor every workflow gets
    [governance.retention]          workflow = "P6Y" (`batonflow purge`)
    [governance.alerts]             webhooks, SMTP, deadlines
    [governance.subjects]           missing = "refuse" | "flag": a run whose input names
                                    none of the data subjects its document declares
    [governance.keys]               where the master key and reference secret live:
                                    file = "PATH" | env = "VAR" | provider = "mod:factory"
                                    (default: <database>.key beside a SQLite database,
                                    $BATONFLOW_KEYS for PostgreSQL; docs/security.md)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

import batonflow as bf
from batonflow import _net
from batonflow._toml import read_toml
from batonflow.governance import (
    ConnectorMap,
    ConnectorSwitches,
    EgressPolicy,
    Redactor,
    SealedStore,
    wrap_store,
)
from batonflow.governance._keys import KeyProvider, load_provider
from batonflow.governance._redaction_rules import redaction_config
from batonflow.governance._scrub import Scrubber
from batonflow.store import AuditEntry

if TYPE_CHECKING:
    from batonflow.dsl import DslRuntime

CONFIG_ENV = "BATONFLOW_CONFIG"

#: Audit entries raised in steps that carry facts, never personal data (hosts, models, token
#: counts, redaction counts, routing conditions): readable after a subject's erasure.
CLEAR_KINDS = frozenset(
    {
        "model.call", "model.redacted", "data.redacted", "egress.call", "egress.denied",
        "email.sent", "email.failed", "route.decision",
    }
)  # fmt: skip
DEFAULT_CONFIG = "batonflow.toml"


@dataclass
class Setup:
    """A parsed configuration file (or the defaults) and what is built from it."""

    source: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None = None) -> Setup:
        """``path``, else ``$BATONFLOW_CONFIG``, else ``./batonflow.toml`` if present."""
        named = path or os.environ.get(CONFIG_ENV)
        if named is None:
            if not Path(DEFAULT_CONFIG).is_file():
                return cls("<defaults>")
            named = DEFAULT_CONFIG
        setup = cls(named, read_toml(named))
        setup.check()
        return setup

    def check(self) -> None:
        """Parse every table now, so a mistake is reported before anything runs."""
        self.providers_config()
        self.egress()
        self.redactor()
        self.secrets()
        self.mailer()
        self.alerts()
        self.retention()
        self.expression_budget()
        self.key_provider(None)
        self.missing_subjects()
        self.classify_examples()

    def _governance(self) -> Mapping[str, Any]:
        table = self.data.get("governance", {})
        if not isinstance(table, Mapping):
            raise bf.ConfigError(f"{self.source}: governance: must be a table")
        return table

    # -- the policy in effect ---------------------------------------------------------------------
    def policy(self) -> dict[str, Any]:
        """What this configuration decides about data and access: its governance tables and the
        providers (names, kinds, models, endpoints) and e-mail server data may go to. It holds
        no secrets: the file names environment variables, never their values."""
        providers = self.data.get("providers", {})
        return {
            "governance": self._governance(),
            "providers": {
                name: {k: v for k, v in entry.items() if k in ("kind", "model", "base_url")}
                for name, entry in (providers.items() if isinstance(providers, Mapping) else ())
                if isinstance(entry, Mapping)
            },
            "fallback": self.data.get("fallback", {}),
            "email": {k: v for k, v in self.data.get("email", {}).items() if k in ("host", "port")},
        }

    async def record_policy(self, store: bf.Store, actor: str, now: float | None = None) -> bool:
        """Put the policy in effect on the audit trail when it differs from the last one
        recorded (``policy.changed``, by ``actor``: whoever first acts under it); True if so."""
        policy = self.policy()
        text = json.dumps(policy, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        previous = await store.get_record("policy", "current")
        before = json.loads(previous).get("sha256") if previous else None
        if before == digest:
            return False
        at = time.time() if now is None else now
        data = {"sha256": digest, "previous": before, "source": self.source, "policy": policy}
        entry = AuditEntry("policy.changed", json.dumps(data, default=str), actor=actor)
        record = json.dumps({"sha256": digest, "source": self.source, "since": at})
        await store.put_record("policy", "current", record, at, audit=[entry])
        return True

    # -- the store ------------------------------------------------------------------------------
    def store(self, db: str) -> SealedStore:
        """The database, sealing the data of runs with data subjects under their keys (audit
        entries that by construction hold no personal data stay readable: ``CLEAR_KINDS``)."""
        return wrap_store(
            bf.open_store(db),
            clear_kinds=CLEAR_KINDS,
            key_provider=self.key_provider(db),
            scrub=Scrubber(self.secrets(secret_only=True)),
        )

    def key_provider(self, db: str | None) -> KeyProvider:
        """``[governance.keys]``: where the master key and the reference secret live (never
        in the database ``db``)."""
        return load_provider(self._governance().get("keys"), f"{self.source}: governance.keys", db)

    # -- outbound traffic -----------------------------------------------------------------------
    def egress(self) -> tuple[EgressPolicy, ConnectorMap]:
        gov = self._governance()
        policy = EgressPolicy.parse(gov.get("egress"), f"{self.source}: governance.egress")
        connectors = ConnectorMap.parse(
            gov.get("connectors"), f"{self.source}: governance.connectors"
        )
        config = self.providers_config()
        for name, provider in config.providers.items() if config else ():
            host = urlsplit(provider.base_url or _DEFAULT_URLS.get(provider.kind, "")).hostname
            if host:  # a configured provider is reachable, and can be switched off by name
                where = f"{self.source}: providers.{name}.base_url"
                policy = policy.allowing([host], where)
                connectors = connectors.with_connector(name, [host])
        console = self.data.get("console", {})
        oidc = console.get("oidc", {}) if isinstance(console, Mapping) else {}
        for name, entry in oidc.items() if isinstance(oidc, Mapping) else ():
            issuer = entry.get("issuer") if isinstance(entry, Mapping) else None
            host = urlsplit(issuer).hostname if isinstance(issuer, str) else None
            if host:  # a console sign-in provider is one of the operator's services
                policy = policy.allowing([host], f"{self.source}: console.oidc.{name}.issuer")
        return policy, connectors

    def client(self, store: bf.Store, clock: bf.Clock | None = None) -> httpx.AsyncClient:
        """The one outbound client: allow-list, private-address block, connector switches,
        every call audited."""
        policy, connectors = self.egress()
        switches = ConnectorSwitches(store, clock)
        return _net.make_client(layers=[policy.layer(switches=switches, connectors=connectors)])

    # -- data -----------------------------------------------------------------------------------
    def redactor(self) -> Redactor:
        return Redactor(default=redaction_config(self.data, self.source))

    def missing_subjects(self) -> str:
        """``[governance.subjects] missing``: what a run of a document declaring data subjects
        gets when its input names none: ``"refuse"`` (the default) or ``"flag"``."""
        table = self._governance().get("subjects", {})
        where = f"{self.source}: governance.subjects"
        if not isinstance(table, Mapping) or set(table) - {"missing"}:
            raise bf.ConfigError(f'{where}: expected a table with missing = "refuse" or "flag"')
        value = table.get("missing", "refuse")
        if value not in ("refuse", "flag"):
            raise bf.ConfigError(f'{where}.missing: expected "refuse" or "flag", got {value!r}')
        return str(value)

    def secrets(self, *, secret_only: bool = False) -> dict[str, Any]:
        """``[secrets]``: each ``name = { env = "VAR" }`` read from the environment now (and
        each ``{ value = ... }`` setting, unless ``secret_only``: those are not secret)."""
        table = self.data.get("secrets", {})
        if not isinstance(table, Mapping):
            raise bf.ConfigError(f"{self.source}: secrets: must be a table")
        values: dict[str, Any] = {}
        for name, entry in table.items():
            where = f"{self.source}: secrets.{name}"
            if not isinstance(entry, Mapping) or set(entry) not in ({"env"}, {"value"}):
                raise bf.ConfigError(
                    f'{where}: expected {{ env = "VARIABLE" }} (or {{ value = ... }} for a '
                    "setting that is not secret)"
                )
            if "value" in entry:
                if not secret_only:
                    values[name] = entry["value"]
            elif entry["env"] in os.environ:
                values[name] = os.environ[entry["env"]]
        return values

    # -- models and functions ---------------------------------------------------------------------
    def providers_config(self) -> Any:
        if "providers" not in self.data:
            return None  # (and the model SDKs are not imported: seconds of CPU)
        from batonflow.providers import parse_config

        return parse_config(self.data, self.source)

    def mailer(self, client: httpx.AsyncClient | None = None) -> Any:
        """The ``email`` function's mailer; ``client`` (egress-controlled) fetches its OAuth2
        tokens when ``[email.oauth2]`` is configured."""
        if "email" not in self.data:
            return None
        from batonflow.catalog._email import Mailer, parse_smtp_settings

        return Mailer(parse_smtp_settings(self.data, self.source), client=client)

    def expression_budget(self) -> Any:
        """``[expressions]``: the time and memory budget of every runtime expression
        (``seconds``, ``memory_mb``, ``processes``: see ``batonflow.dsl.ExpressionBudget``)."""
        from batonflow.dsl import ExpressionBudget

        table = self.data.get("expressions", {})
        if not isinstance(table, Mapping):
            raise bf.ConfigError(f"{self.source}: expressions: must be a table")
        known = {"seconds": float, "memory_mb": int, "processes": int}
        options: dict[str, Any] = {}
        for key, value in table.items():
            kind = known.get(key)
            if kind is None:
                raise bf.ConfigError(
                    f"{self.source}: expressions.{key}: unknown setting; expected one of "
                    f"{', '.join(known)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bf.ConfigError(f"{self.source}: expressions.{key}: must be a number")
            options[key] = kind(value)
        try:
            return ExpressionBudget(**options)
        except ValueError as exc:
            raise bf.ConfigError(f"{self.source}: expressions: {exc}") from None

    def classify_examples(self) -> dict[str, Any]:
        """``[classify.examples]``: workflow name -> a file of labelled examples (``.jsonl`` or
        ``.json``, relative to this file) that its ``classify`` steps learn from."""
        table = self.data.get("classify", {})
        if not isinstance(table, Mapping) or set(table) - {"examples"}:
            raise bf.ConfigError(f"{self.source}: [classify] has only an `examples` table")
        files = table.get("examples", {})
        if not isinstance(files, Mapping):
            raise bf.ConfigError(f"{self.source}: [classify.examples] must be a table")
        from batonflow.catalog import load_examples

        found: dict[str, Any] = {}
        for workflow, path in files.items():
            if not isinstance(path, str) or not path:
                raise bf.ConfigError(
                    f"{self.source}: classify.examples.{workflow}: expected a file path"
                )
            found[workflow] = load_examples(Path(self.source).parent / path)
        return found

    def retention(self) -> dict[str, Any]:
        """``[governance.retention]``: workflow name -> how long its ended runs are kept."""
        from batonflow.governance._retention import retention_config

        return dict(retention_config(self.data, self.source))

    def schedules(
        self, runtime: Any, documents: Sequence[str] = (), client: httpx.AsyncClient | None = None
    ) -> list[Any]:
        """The triggers: ``[triggers.schedules.NAME]`` and ``[triggers.mailboxes.NAME]``
        tables, and the ``schedule`` of the workflow documents named by ``[triggers]
        documents`` (paths relative to this file) and ``documents``; ``runtime`` runs the
        documents, ``client`` (egress-controlled) fetches mailbox OAuth2 tokens."""
        from batonflow.dsl import load_document
        from batonflow.triggers import load_schedules

        table = self.data.get("triggers", {})
        named = table.get("documents", []) if isinstance(table, Mapping) else []
        if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
            raise bf.ConfigError(f"{self.source}: [triggers] documents: expected a list of paths")
        base = Path(self.source).parent if self.source != "<defaults>" else Path()
        paths = [str(base / p) for p in named] + list(documents)
        loaded = [load_document(path).raw for path in dict.fromkeys(paths)]
        return load_schedules(
            self.data, self.source, runtime=runtime, documents=loaded, client=client,
            egress=self.egress()[0],
        )  # fmt: skip

    def alerts(self) -> Any:
        table = self._governance().get("alerts")
        if table is None:
            return None
        from batonflow.governance._alert_config import AlertSettings

        return AlertSettings.parse(table, self.source)

    def functions(
        self, store: bf.Store, client: httpx.AsyncClient, clock: bf.Clock | None = None
    ) -> dict[str, Callable[..., Any]]:
        """What a document's ``call:`` may name: the catalog (llm, classify, extract, agent)
        on the configured providers (model-bound data redacted by the ``model`` rules),
        ``approval``, and ``email`` when an SMTP server is configured.

        They are built on first use: the model SDKs take seconds of CPU to import, which a
        worker whose documents call no model (or a CLI command) should not pay at start."""
        built: dict[str, Callable[..., Any]] = {}

        def build() -> dict[str, Callable[..., Any]]:
            if not built:
                built.update(self._functions(store, client, clock))
            return built

        names = ["llm", "classify", "extract", "agent", "approval"]
        if "email" in self.data:
            names.append("email")
        return {name: _lazy(name, build, name in _WITH_CONTEXT) for name in names}

    def _functions(
        self, store: bf.Store, client: httpx.AsyncClient, clock: bf.Clock | None
    ) -> dict[str, Callable[..., Any]]:
        from batonflow.catalog import Catalog, approval
        from batonflow.providers import RedactingProvider, build_providers

        redactor = self.redactor()
        providers = build_providers(
            self.providers_config(), client=client, clock=clock, on_call=_audit_model_call
        )
        guarded = {n: RedactingProvider(p, redactor.model_policy) for n, p in providers.items()}
        functions: dict[str, Callable[..., Any]] = {
            **Catalog(
                guarded, store=store, client=client, examples=self.classify_examples()
            ).functions(),
            "approval": approval,
        }
        mailer = self.mailer(client)
        if mailer is not None:
            functions.update(mailer.functions())
        return functions

    def engine(
        self, store: bf.Store, *, client: httpx.AsyncClient | None = None, **options: Any
    ) -> bf.Engine:
        """An engine on ``store`` that redacts before persisting, per this configuration,
        raises ``[governance.alerts]`` as it sees their events (webhooks post through
        ``client``, else through a governed client of its own), and makes OpenTelemetry spans
        for runs and steps (no-ops unless an SDK is configured)."""
        from batonflow._tracing import TracingHook

        hooks = list(options.pop("hooks", ()))
        alerts = self.alerts()
        if alerts is not None:
            hooks.append(
                alerts.hook(
                    lambda engine: self.client(engine.store, engine.clock),
                    client=client,
                    deadline_of=document_deadline,
                )
            )
        around = [TracingHook(), *options.pop("around", ())]
        return bf.Engine(
            store, redact=self.redactor().persist, hooks=hooks, around=around, **options
        )

    @asynccontextmanager
    async def session(
        self,
        db: str,
        *,
        allow_processes: bool = False,
        documents: Sequence[str] = (),
        clock: bf.Clock | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> AsyncIterator[Session]:
        """The store, the outbound client and the DSL runtime of one program or command; the
        client is closed at the end, the store is opened by the engine. ``functions`` are
        added to (and override) the ones the configuration gives documents."""
        from batonflow.dsl import DslRuntime, load_document

        store = self.store(db)
        client = self.client(store, clock)
        try:
            runtime = DslRuntime(
                client=client,
                secrets=self.secrets(),
                functions={**self.functions(store, client, clock), **(functions or {})},
                allow_processes=allow_processes,
                expression_budget=self.expression_budget(),
                missing_subjects=self.missing_subjects(),
            )
            for path in documents:
                runtime.add_document(load_document(path).raw)
            yield Session(self, store, runtime, client)
        finally:
            await client.aclose()


@dataclass
class Session:
    """What one command works with: the (sealed) store and the DSL runtime bound to it."""

    setup: Setup
    store: SealedStore
    runtime: DslRuntime
    client: httpx.AsyncClient

    async def acting(self, token: str | None, action: str) -> str:
        """Who does ``action``: see :func:`acting` (the store must be open). The policy in
        effect is recorded first if it changed, attributed to them."""
        name = await acting(self.store, token, action)
        await self.setup.record_policy(self.store, name)
        return name

    def engine(self, workflows: Sequence[bf.Workflow[Any, Any]] = (), **options: Any) -> bf.Engine:
        """An engine on the session's store that knows the DSL runtime's workflow."""
        known = [self.runtime.workflow, *workflows]
        options.setdefault("http", self.client)  # Python steps call out through it too
        return self.setup.engine(self.store, workflows=known, client=self.client, **options)


def document_deadline(run: bf.RunRecord) -> float | None:
    """A document run's impact tolerance: ``metadata.batonflow.deadline`` of the document it
    carries (read once per run); None for other runs."""
    if "/" not in run.workflow and run.workflow != "serverless-workflow":
        return None  # not a document run (and the DSL stack need not be imported)
    if run.id not in _DEADLINES:
        from batonflow.dsl._runtime import policy_for

        if len(_DEADLINES) > 100_000:  # a long-lived worker: forget ended runs now and then
            _DEADLINES.clear()
        try:
            policy = policy_for(run)
        except Exception:  # a malformed document already failed its run; no deadline
            policy = None
        _DEADLINES[run.id] = policy.deadline if policy is not None else None
    return _DEADLINES[run.id]


_DEADLINES: dict[str, float | None] = {}

#: Catalog functions that run at workflow level with the run's context (bf.takes_context).
_WITH_CONTEXT = frozenset({"agent", "approval"})


def _lazy(
    name: str, build: Callable[[], Mapping[str, Callable[..., Any]]], with_context: bool
) -> Callable[..., Any]:
    """``name`` of the functions ``build`` makes, built on the first call."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        result = build()[name](*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    call.__name__ = call.__qualname__ = name
    return bf.core.takes_context(call) if with_context else call


_DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


def _audit_model_call(record: Any) -> None:
    """Every model call attempt on the audit trail: provider, model, tokens, cost, outcome."""
    bf.core.audit(
        "model.call",
        {
            "provider": record.provider, "model": record.model,
            "input_tokens": record.input_tokens, "output_tokens": record.output_tokens,
            "cost": record.cost, "latency": record.latency, "outcome": record.outcome,
        },
    )  # fmt: skip


async def acting(store: bf.Store, token: str | None, action: str) -> str:
    """The name of the identity a command acts as, once its roles allow ``action`` (the store
    open): ``--token``, else ``$BATONFLOW_TOKEN``; the local user while the database has no
    identities."""
    from batonflow.governance._identity import authorize, cli_identity

    me = await cli_identity(store, token)
    authorize(me, action)
    return me.name
