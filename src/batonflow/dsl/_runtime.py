"""Running Serverless Workflow documents on a batonflow engine."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx

import batonflow as bf
from batonflow import _net
from batonflow.core._engine import OUTPUT
from batonflow.dsl import _events
from batonflow.dsl._durations import to_seconds
from batonflow.dsl._expr import Evaluator, ExpressionBudget
from batonflow.dsl._interpreter import Interpreter
from batonflow.dsl._policy import EGRESS_POINTER, DocumentPolicy, policy_of
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError
from batonflow.dsl._schemas import SchemaValidator
from batonflow.governance._egress import egress_scope
from batonflow.governance._redaction_rules import known_identifiers, redaction_scope

_log = logging.getLogger("batonflow.governance")

#: The kernel workflow that interprets every DSL run; the document travels in the run's input.
WORKFLOW_NAME = "serverless-workflow"
#: Store records of document versions deployed over the API (key ``namespace/name@version``);
#: never rewritten, so a key once seen is a version known. Every process on the store runs them.
DEPLOYED_KIND = "workflow-document"


class DslRuntime:
    """Runs DSL documents durably: every run is a kernel run of one interpreter workflow whose
    input carries the document, so a run resumes with the definition it started with, whatever
    happened to the file since.

    ``client`` carries all outbound HTTP (default: batonflow's egress client); ``secrets`` are
    what ``$secrets`` and authentication policies may read; ``functions`` are Python callables a
    ``call:`` may name; ``allow_processes`` lets ``run: shell`` and ``run: script`` execute
    local processes (off by default); ``expression_budget`` bounds the time and memory of every
    runtime expression (see :class:`ExpressionBudget`). ``deployed``: the store whose deployed
    document versions ``run: workflow`` may also start (read when a name is not known here,
    and for ``latest``), so a version deployed through any process is found without a restart.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        secrets: Mapping[str, Any] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        allow_processes: bool = False,
        expression_budget: ExpressionBudget | None = None,
        missing_subjects: str = "refuse",
        deployed: bf.Store | None = None,
    ) -> None:
        if missing_subjects not in ("refuse", "flag"):
            raise bf.ConfigError(
                f"missing_subjects: expected 'refuse' or 'flag', got {missing_subjects!r}"
            )
        #: A run of a document that declares data subjects, whose input names none: refused
        #: at start ("refuse"), or run with a ``subject.missing`` audit entry ("flag").
        self.missing_subjects = missing_subjects
        self._client = client
        self._owns_client = client is None
        self.secrets: dict[str, Any] = dict(secrets or {})
        self.functions: dict[str, Callable[..., Any]] = dict(functions or {})
        self.allow_processes = allow_processes
        self.evaluator = Evaluator(expression_budget)
        self.schemas = SchemaValidator()
        self.descriptor = {"name": "batonflow", "version": bf.__version__, "metadata": {}}
        self.workflow: bf.Workflow[dict[str, Any], Any] = bf.Workflow(
            self._interpret,
            name=WORKFLOW_NAME,
            ref=None,
            prepare=self._prepare,
            run_name=run_name,
            claims=is_document_run,
        )
        self._documents: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self._deployed_store = deployed
        #: deployed versions read so far, by record key
        self.deployed: dict[str, dict[str, Any]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _net.make_client()
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- documents ----------------------------------------------------------------------------
    def add_document(self, document: Mapping[str, Any]) -> None:
        """Make a document available to ``run: workflow`` by namespace, name and version."""
        meta = document["document"]
        versions = self._documents.setdefault((meta["namespace"], meta["name"]), [])
        versions.append((str(meta["version"]), dict(document)))

    async def refresh_deployed(self) -> list[dict[str, Any]]:
        """Read the versions deployed since the last look into this runtime; the new ones.
        Cheap when nothing changed: one read of the records, no parsing of known keys."""
        if self._deployed_store is None:
            return []
        found = []
        for key, text in await self._deployed_store.list_records(DEPLOYED_KIND):
            if key not in self.deployed:
                document = json.loads(text)
                self.deployed[key] = document
                self.add_document(document)
                found.append(document)
        return found

    async def lookup_document(
        self, namespace: str | None, name: str, version: str, where: str
    ) -> dict[str, Any]:
        """:meth:`find_document`, after reading newly deployed versions when the name is not
        known here or the latest version is asked for."""
        if self._deployed_store is not None and version == "latest":
            await self.refresh_deployed()
        try:
            return self.find_document(namespace, name, version, where)
        except WorkflowError:
            if self._deployed_store is None or not await self.refresh_deployed():
                raise
        return self.find_document(namespace, name, version, where)

    def find_document(
        self, namespace: str | None, name: str, version: str, where: str
    ) -> dict[str, Any]:
        candidates = [
            (v, doc) for (ns, n), docs in self._documents.items() for v, doc in docs
            if n == name and (namespace is None or ns == namespace)
        ]  # fmt: skip
        if version != "latest":
            candidates = [(v, doc) for v, doc in candidates if v == version]
        if not candidates:
            raise WorkflowError(
                Problem.of(
                    ErrorType.CONFIGURATION,
                    f"no workflow {namespace or '*'}/{name} version {version} is known to this "
                    "runtime; load it with DslRuntime.add_document",
                    instance=where,
                )
            )
        return max(candidates, key=lambda pair: _version_key(pair[0]))[1]

    # -- runs ---------------------------------------------------------------------------------
    async def start(
        self,
        engine: bf.Engine,
        document: Mapping[str, Any],
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        started_by: str | None = None,
        run_id: str | None = None,
    ) -> bf.RunHandle[Any]:
        """Start a run of ``document`` (a validated document's plain data); ``started_by``
        names who started it (audited, and kept from deciding its approvals); ``run_id`` gives
        the run its id (a trigger derives it from what it acts on)."""
        engine.register(self.workflow)
        payload = {"definition": dict(document), "input": input}
        return await engine.start(
            self.workflow, payload, idempotency_key=idempotency_key, timeout=_timeout(document),
            started_by=started_by, run_id=run_id,
        )  # fmt: skip

    async def run(self, engine: bf.Engine, document: Mapping[str, Any], input: Any = None) -> Any:
        return await (await self.start(engine, document, input)).result()

    async def publish(self, engine: bf.Engine, event: dict[str, Any]) -> list[str]:
        """Deliver a CloudEvent to the runs listening for it; return their run ids."""
        _events.check_event(event, "/")
        delivered = await _events.publish(
            engine.store, event, engine.clock.now(), evaluator=self.evaluator
        )
        if delivered:
            engine.poke()
        return delivered

    async def _prepare(
        self, payload: Any, redact: bf.core.Redact | None
    ) -> tuple[Any, tuple[str, ...]]:
        stored, subjects = await _prepare(payload, redact, self.evaluator)
        if not subjects and self.missing_subjects == "refuse" and _declares_subjects(payload):
            raise WorkflowError(
                Problem.of(
                    ErrorType.VALIDATION,
                    "the document declares data subjects (metadata.batonflow.subjects) but"
                    " found none in this input: refused, so that its personal data is not"
                    " stored unsealed; fix the input, or set [governance.subjects] missing ="
                    ' "flag" to run such inputs with an audit entry',
                    instance="/document/metadata/batonflow/subjects",
                )
            )
        return stored, subjects

    async def _interpret(self, ctx: bf.Context, payload: dict[str, Any]) -> Any:
        document = payload["definition"]
        if self.missing_subjects == "flag" and not ctx.run.subjects and _declares_subjects(payload):
            await ctx.step(
                bf.step(_subjects_missing, name="$subjects-missing"), policy_of(document).name
            )
        interpreter = Interpreter(self, ctx, document, payload.get("input"), secrets=self.secrets)
        policy = policy_of(document)
        header = document.get("document") or {}
        # outbound calls of this run belong to its document (for the egress allow-list)
        name = f"{header.get('namespace', '')}/{policy.name}"
        with (
            egress_scope(name, policy.egress, where=EGRESS_POINTER),
            redaction_scope(policy.redaction),
            known_identifiers(await policy.identifiers_of(payload.get("input"), self.evaluator)),
        ):
            output = await interpreter.run()
            return ctx.engine.redacted(WORKFLOW_NAME, OUTPUT, output)


def run_name(payload: Any) -> str:
    """A DSL run is recorded under its document's ``namespace/name`` (so listing, retention,
    deadlines and audit exports name the document, not the interpreter)."""
    definition = payload.get("definition") if isinstance(payload, Mapping) else None
    header = definition.get("document") if isinstance(definition, Mapping) else None
    if not isinstance(header, Mapping) or not header.get("name"):
        return WORKFLOW_NAME
    return f"{header.get('namespace', 'default')}/{header['name']}"


def is_document_run(name: str) -> bool:
    """True for the workflow names DSL runs are recorded under (``namespace/name``, or the
    interpreter's own for runs recorded before runs were named after their documents)."""
    return name == WORKFLOW_NAME or "/" in name


async def _prepare(
    payload: Any, redact: bf.core.Redact | None, evaluator: Evaluator
) -> tuple[Any, tuple[str, ...]]:
    """A DSL run's input as stored and its data subjects: the document's
    ``metadata.batonflow.subjects`` on the user's input (under the expression budget, off the
    event loop), then its redaction rules on that input (the document is left as written)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("definition"), Mapping):
        return payload, ()
    policy = policy_of(payload["definition"])
    subjects = await policy.subjects_of(payload.get("input"), evaluator)
    if redact is None:
        return payload, subjects
    with redaction_scope(policy.redaction):
        return {**payload, "input": redact(WORKFLOW_NAME, None, payload.get("input"))}, subjects


def _declares_subjects(payload: Any) -> bool:
    definition = payload.get("definition") if isinstance(payload, Mapping) else None
    return isinstance(definition, Mapping) and policy_of(definition).subjects is not None


def _subjects_missing(workflow: str) -> None:
    """Put a run that should have had data subjects, and found none, on the audit trail."""
    bf.core.audit(
        "subject.missing",
        {"workflow": workflow, "note": "no data subject found: the run's data is not sealed"},
    )
    _log.warning(
        "workflow %s: no data subject found in the input; its data is not sealed", workflow
    )


def policy_for(run: bf.RunRecord) -> DocumentPolicy | None:
    """The document settings of a DSL run (None for other runs), read from its input."""
    if not is_document_run(run.workflow):
        return None
    payload = json.loads(run.input_json)
    definition = payload.get("definition") if isinstance(payload, dict) else None
    return policy_of(definition) if isinstance(definition, Mapping) else None


def _timeout(document: Mapping[str, Any]) -> float | None:
    """The workflow's own timeout (``timeout.after``, or a named one), as the run's deadline."""
    spec = document.get("timeout")
    if isinstance(spec, str):
        spec = ((document.get("use") or {}).get("timeouts") or {}).get(spec)
        if spec is None:
            raise WorkflowError(
                Problem.of(ErrorType.CONFIGURATION, "unknown named timeout", instance="/timeout")
            )
    if not isinstance(spec, Mapping) or "after" not in spec:
        return None
    return to_seconds(spec["after"], where="/timeout/after")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts: list[tuple[int, int | str]] = []
    for part in version.replace("-", ".").split("."):
        parts.append((1, int(part)) if part.isdigit() else (0, part))
    return tuple(parts)
