"""The walk behind ``batonflow dataflow``: every task of a document, in flow order, to a fixed
point, following what each task's data is made of (see ``paths``) and recording each
:class:`Flow` (data leaving, entering, or reaching a person) and :class:`Flag` (something to
review). ``_dataflow_calls`` handles ``call`` tasks; ``_dataflow`` assembles the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from batonflow.dsl._dataflow.meta import DataflowConfig, EgressCheck
from batonflow.dsl._dataflow.paths import (
    Data,
    FromInput,
    Obj,
    Shape,
    expression_shape,
    flatten,
    join,
    resolve,
    shape_of,
)
from batonflow.dsl._expr import is_expression
from batonflow.dsl._interpreter import task_kind
from batonflow.dsl._loader import DslDocument

__all__ = [
    "MODEL_FUNCTIONS",
    "US_VENDORS",
    "Flag",
    "Flow",
    "Sink",
    "State",
    "Walker",
    "describe_expiry",
    "host_of",
]

MODEL_FUNCTIONS: Final = ("llm", "classify", "extract", "agent")
#: Model vendors whose API is served from the USA unless a regional endpoint is configured.
US_VENDORS: Final = {
    "api.openai.com": "OpenAI",
    "api.anthropic.com": "Anthropic",
    "openrouter.ai": "OpenRouter",
}
_MAX_ROUNDS: Final = 25


@dataclass(frozen=True, slots=True)
class Flow:
    """One place data leaves the process, enters it, or reaches a person.

    ``kind``: ``http``, ``openapi``, ``grpc``, ``asyncapi``, ``a2a``, ``mcp``, ``auth`` (a
    token endpoint), ``model``, ``approval``, ``email``, ``emit``, ``listen``, ``process``,
    ``subflow`` or ``function``. ``target`` says where, for people (a host, a vendor, the
    recipients, an event type, a command). ``fields`` are workflow-input fields that may reach
    it (``.from``; ``.`` is the whole input); ``other`` is other data that may (``response of
    getPet``, ``$secrets.token``). ``details`` holds the kind's own facts (method, url, host,
    provider, approvers...). ``via`` names the calling task for what runs inside a sub-workflow
    or a function definition."""

    kind: str
    task: str
    pointer: str
    source: str
    line: int | None
    target: str
    fields: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    via: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task,
            "pointer": self.pointer,
            "file": self.source,
            "line": self.line,
            "target": self.target,
            "fields": list(self.fields),
            "other": list(self.other),
            "details": dict(self.details),
            "via": self.via,
        }


@dataclass(frozen=True, slots=True)
class Flag:
    """Something a reviewer must look at. ``severity``: ``high`` (a process, a host not on
    the allow-list), ``warning`` (decided at run time, not analysed, no retention) or ``info``.
    """

    severity: str
    code: str
    message: str
    pointer: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "pointer": self.pointer,
            "line": self.line,
        }


@dataclass
class Sink:
    """Flows and flags by the task that produced them: a task analysed again (a loop, a jump
    back) replaces what it reported before, so the last, settled analysis stands."""

    egress: EgressCheck
    flows: dict[str, list[Flow]] = field(default_factory=dict)
    flags: dict[str, list[Flag]] = field(default_factory=dict)

    def reset(self, key: str) -> None:
        self.flows[key] = []
        self.flags[key] = []

    def all_flows(self) -> Iterable[Flow]:
        return (f for flows in self.flows.values() for f in flows)

    def all_flags(self) -> list[Flag]:
        unique: dict[tuple[str, str, str | None], Flag] = {}
        for flags in self.flags.values():
            for flag in flags:
                unique.setdefault((flag.code, flag.message, flag.pointer), flag)
        return list(unique.values())


@dataclass(frozen=True, slots=True)
class State:
    data: Shape
    context: Shape


def _join_states(a: State | None, b: State) -> State:
    return b if a is None else State(join(a.data, b.data), join(a.context, b.context))


class Walker:
    """Walks one document's tasks (a sub-workflow gets its own walker, sharing the sink)."""

    def __init__(
        self,
        document: DslDocument,
        sink: Sink,
        config: DataflowConfig | None,
        documents: Mapping[tuple[str, str, str], DslDocument],
        *,
        via: str | None,
        depth: int = 0,
    ) -> None:
        self.document = document
        self.raw = document.raw
        self.sink = sink
        self.config = config
        self.documents = documents
        self.via = via
        self.depth = depth
        self.scope: dict[str, Shape] = {}
        self.raw_input: Shape = FromInput()  # what $workflow.input is
        self.key = ""  # the sink key of the task being analysed

    # -- structure ----------------------------------------------------------------------------

    def walk_document(self, raw_input: Shape) -> State:
        self.raw_input = raw_input
        start = State(raw_input, Data())
        start = State(self.transform(self.raw.get("input"), "from", start), Data())
        end = self.task_list(self.raw.get("do") or [], "/do", start)
        return State(self.transform(self.raw.get("output"), "as", end), end.context)

    def task_list(self, items: list[Any], pointer: str, start: State) -> State:
        """Analyse a task list to a fixed point of its flow; return the state leaving it."""
        names = [next(iter(item)) for item in items]
        entering: list[State | None] = [start] + [None] * (len(items) - 1)
        leaving: State | None = None
        for _ in range(_MAX_ROUNDS):
            changed, leaving = False, None
            for index, name in enumerate(names):
                state = entering[index]
                if state is None:
                    continue
                task_pointer = f"{pointer}/{index}/{name}"
                for directive, out in self.task(name, items[index][name], task_pointer, state):
                    target = _target(directive, index, names)
                    if target is None:
                        leaving = _join_states(leaving, out)
                        continue
                    joined = _join_states(entering[target], out)
                    if joined != entering[target]:
                        entering[target], changed = joined, True
            if not changed:
                break
        for index, name in enumerate(names):  # never reached by the flow: report them anyway
            if entering[index] is None:
                self.task(name, items[index][name], f"{pointer}/{index}/{name}", start)
        return leaving or start

    def task(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> list[tuple[str | None, State]]:
        """Analyse one task; return each way out of it (flow directive, state)."""
        outer_key = self.key
        self.key = f"{self.via or ''}>{self.document.source}#{pointer}"
        self.sink.reset(self.key)
        try:
            data = self.transform(task.get("input"), "from", state)
            kind = task_kind(task)
            raw, context = getattr(self, f"_{kind}")(
                name, task, pointer, State(data, state.context)
            )
            task_input = {"input": data}
            output = self.transform(task.get("output"), "as", State(raw, context), task_input)
            export = task.get("export")
            if export is not None and export.get("as") is not None:
                context = self.transform(export, "as", State(output, context), task_input)
        finally:
            self.key = outer_key
        after = State(output, context)
        if task.get("if") is not None:  # skipped when false: its input goes on as it came
            after = _join_states(state, after)
        if kind == "raise":
            return []
        if kind == "switch":
            ways: list[tuple[str | None, State]] = []
            for case in task["switch"]:
                spec = next(iter(case.values()))
                ways.append((spec.get("then"), after))
            if not any(not next(iter(c.values())).get("when") for c in task["switch"]):
                ways.append((task.get("then"), after))
            return ways
        return [(task.get("then"), after)]

    def transform(
        self,
        holder: Any,
        key: str,
        state: State,
        variables: Mapping[str, Shape] | None = None,
    ) -> Shape:
        """``input.from`` / ``output.as`` / ``export.as`` applied to ``state.data``."""
        spec = holder.get(key) if isinstance(holder, dict) else None
        if spec is None:
            return state.data
        names = {**self.variables(state), **(variables or {})}
        if isinstance(spec, str):
            return expression_shape(spec, names, state.data)
        return shape_of(spec, names, state.data)

    def variables(self, state: State) -> dict[str, Shape]:
        workflow = Obj((("input", self.raw_input),), Data())
        return {"input": state.data, "context": state.context, "workflow": workflow, **self.scope}

    def shape(self, value: Any, state: State) -> Shape:
        return shape_of(value, self.variables(state), state.data)

    # -- composite tasks ----------------------------------------------------------------------

    def _do(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        end = self.task_list(task["do"], f"{pointer}/do", state)
        return end.data, end.context

    def _for(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        loop = task["for"]
        over = loop.get("in")
        if isinstance(over, str):  # a runtime expression, ${ } or bare
            items = expression_shape(over, self.variables(state), state.data)
        else:  # an inline array (newer DSL)
            items = self.shape(over, state)
        saved = dict(self.scope)
        self.scope[loop.get("each") or "item"] = resolve(items, ("[]",))
        self.scope[loop.get("at") or "index"] = Data()
        try:
            end = self.task_list(task["do"], f"{pointer}/do", state)
        finally:
            self.scope = saved
        return join(state.data, end.data), join(state.context, end.context)

    def _fork(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        sources: frozenset[str] = frozenset()
        context = state.context
        for index, branch in enumerate(task["fork"]["branches"]):
            branch_name = next(iter(branch))
            branch_pointer = f"{pointer}/fork/branches/{index}/{branch_name}"
            for _, out in self.task(branch_name, branch[branch_name], branch_pointer, state):
                sources |= flatten(out.data)
                context = join(context, out.context)
        return Data(sources), context

    def _try(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        end = self.task_list(task["try"], f"{pointer}/try", state)
        catch = task.get("catch") or {}
        if not catch.get("do"):
            return join(state.data, end.data), end.context
        saved = dict(self.scope)
        self.scope[catch.get("as") or "error"] = Data(frozenset({f"error caught by {name}"}))
        try:
            handled = self.task_list(catch["do"], f"{pointer}/catch/do", state)
        finally:
            self.scope = saved
        return join(end.data, handled.data), join(end.context, handled.context)

    def _switch(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        return state.data, state.context

    _wait = _switch
    _raise = _switch

    def _set(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        value = task["set"]
        if isinstance(value, str) and not is_expression(value):
            return expression_shape(value, self.variables(state), state.data), state.context
        return self.shape(value, state), state.context

    # -- what leaves ---------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        name: str,
        pointer: str,
        target: str,
        sent: Shape | frozenset[str],
        **details: Any,
    ) -> Flow:
        sources = sent if isinstance(sent, frozenset) else flatten(sent)
        flow = Flow(
            kind=kind,
            task=name,
            pointer=pointer,
            source=self.document.source,
            line=self.line(pointer),
            target=target,
            fields=tuple(sorted(s for s in sources if s.startswith("."))),
            other=tuple(sorted(s for s in sources if not s.startswith("."))),
            details=details,
            via=self.via,
        )
        self.sink.flows[self.key].append(flow)
        return flow

    def flag(self, severity: str, code: str, message: str, pointer: str) -> None:
        self.sink.flags[self.key].append(
            Flag(severity, code, message, self.describe(pointer), self.line(pointer))
        )

    def describe(self, pointer: str) -> str:
        return pointer if self.via is None else f"{self.via} -> {self.document.source}#{pointer}"

    def line(self, pointer: str) -> int | None:
        at = self.document.position(pointer)
        return at.line if at else None

    def check_host(self, host: str | None, name: str, pointer: str, port: int = 443) -> None:
        """Flag a host the egress policy may refuse."""
        if not host:
            return
        verdict = self.sink.egress.verdict(host, port)
        if verdict is not None:
            severity, why = verdict
            code = "egress-private" if "private addresses" in why else "egress-not-allowed"
            self.flag(severity, code, f"{name}: {why}", pointer)

    def _emit(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        event = (task["emit"].get("event") or {}).get("with") or {}
        shape = self.shape(event, state)
        self.add(
            "emit", name, pointer, str(event.get("type", "?")), shape,
            type=event.get("type"), source=event.get("source"),
        )  # fmt: skip
        return shape, state.context

    def _listen(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        to = task["listen"].get("to") or {}
        filters: list[Any] = []
        for strategy in ("one", "any", "all"):
            spec = to.get(strategy)
            filters.extend([spec] if isinstance(spec, dict) else spec or [])
        types = [((f or {}).get("with") or {}).get("type") for f in filters]
        listed = ", ".join(str(t) for t in types if t) or "any event"
        sources = [((f or {}).get("with") or {}).get("source") for f in filters]
        self.add("listen", name, pointer, listed, Data(), types=[t for t in types if t],
                 sources=[s for s in sources if s])  # fmt: skip
        return Data(frozenset({f"events received by {name}"})), state.context

    def _run(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        run = task["run"]
        if "workflow" in run:
            return self.subflow(name, run["workflow"], pointer, state), state.context
        kind = next(k for k in ("shell", "container", "script") if k in run)
        spec = run[kind]
        if kind == "shell":
            what = _one_line(spec.get("command"))
        elif kind == "container":
            what = str(spec.get("image"))
        else:
            what = f"{spec.get('language', '?')} script"
        self.add("process", name, pointer, f"{kind}: {what}", self.shape(spec, state), process=kind)
        self.flag(
            "high", "process",
            f"{name}: runs a local process ({kind}: {what}) with workflow data; it runs only"
            " with --allow-processes, outside every egress and redaction control", pointer,
        )  # fmt: skip
        return Data(frozenset({f"output of process {name}"})), state.context

    def subflow(self, name: str, spec: dict[str, Any], pointer: str, state: State) -> Shape:
        ref = f"{spec.get('namespace')}/{spec.get('name')}:{spec.get('version', 'latest')}"
        sent = self.shape(spec.get("input"), state) if "input" in spec else state.data
        found = [
            doc for key, doc in self.documents.items()
            if key[1] == spec.get("name") and key[0] == spec.get("namespace")
            and spec.get("version", "latest") in ("latest", key[2])
        ]  # fmt: skip
        self.add("subflow", name, pointer, ref, sent, workflow=ref, resolved=bool(found))
        if not found or self.depth >= 5:
            self.flag(
                "warning", "subflow-not-analysed",
                f"{name}: sub-workflow {ref} was not given (--with FILE): what it does with"
                " the data it is sent is not analysed", pointer,
            )  # fmt: skip
            return Data(frozenset({f"output of sub-workflow {ref}"}))
        child = Walker(
            found[-1], self.sink, self.config, self.documents,
            via=self.describe(pointer), depth=self.depth + 1,
        )  # fmt: skip
        return child.walk_document(sent).data

    def function(
        self,
        name: str,
        function: str,
        defined: dict[str, Any],
        pointer: str,
        sent: Shape,
        state: State,
    ) -> list[tuple[str | None, State]]:
        """Analyse a ``use.functions`` definition on the arguments ``sent`` by task ``name``."""
        if self.depth >= 5:
            return [(None, State(Data(flatten(sent)), state.context))]
        inner = Walker(
            self.document, self.sink, self.config, self.documents,
            via=self.describe(pointer), depth=self.depth + 1,
        )  # fmt: skip
        inner.scope = dict(self.scope)
        inner.raw_input = self.raw_input
        return inner.task(f"{name}: {function}", defined, f"/use/functions/{function}",
                          State(sent, state.context))  # fmt: skip

    # -- calls ---------------------------------------------------------------------------------

    def _call(
        self, name: str, task: dict[str, Any], pointer: str, state: State
    ) -> tuple[Shape, Shape]:
        from batonflow.dsl._dataflow import calls as _dataflow_calls

        return _dataflow_calls.call(self, name, task, pointer, state), state.context


def _target(directive: str | None, index: int, names: list[str]) -> int | None:
    """The index a directive leads to within this list; None: it leaves the list."""
    if directive in (None, "continue"):
        return index + 1 if index + 1 < len(names) else None
    if directive in ("exit", "end"):
        return None
    return names.index(directive) if directive in names else None


def describe_expiry(value: Any) -> str:
    """An approval's ``on_expiry`` for people: ``reject``, ``fail``, ``escalate to ...``."""
    if value == "escalate":
        return "ask the same approvers again"
    if isinstance(value, dict) and isinstance(value.get("escalate"), dict):
        spec = value["escalate"]
        who = "; ".join(
            f"{kind} {', '.join(map(str, spec[kind]))}"
            for kind in ("users", "groups")
            if isinstance(spec.get(kind), list) and spec[kind]
        )
        after = f", expires {spec['expires_in']}" if spec.get("expires_in") else ""
        return f"escalate to {who or '?'}{after}"
    return str(value)


def _one_line(text: Any, limit: int = 60) -> str:
    lines = str(text).strip().splitlines() or [""]
    line = lines[0]
    if len(lines) > 1 or len(line) > limit:
        line = line[: limit - 3] + "..." if len(line) > limit else line + " ..."
    return line


def host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
